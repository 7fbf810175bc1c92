//! ModernBERT's encoder layer in burn, mirroring transformers' `ModernBertEncoderLayer`
//! (eager attention):
//!
//! - **pre-norm**: `x + attn(norm(x))`, then `x + mlp(norm(x))`; the first layer has no
//!   attention norm (the embeddings' norm precedes it), and the stack ends in a final norm
//!   ([`super::MaskedLm`] holds it);
//! - **rotary positions** instead of a position table, with one base for global layers and
//!   another for local ones (`rotate_half` form: the two halves of each head are the pairs);
//! - **local layers** see only tokens at most `sliding_window` positions away (`|i − j| ≤ w`,
//!   transformers' inclusive bidirectional window); global layers see every real token;
//! - **GeGLU** feed-forward: `Wi` gives `[input | gate]`, the output is `Wo(act(input) · gate)`;
//! - biases only where the config asks (`attention_bias`, `mlp_bias`, `norm_bias`).
//!
//! Padding is only ever masked as keys, and positions count from the start of each row, so a
//! row's result does not depend on how far the batch pads it (`tests/parity.rs` checks this).
//! The host engine's twin is `lm::host::modern` (`tests/host_engine.rs` compares them).

use burn::module::{Module, Param};
use burn::nn::{Dropout, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Tensor, TensorData, backend::Backend};

use super::config::{Activation, MaskedLmConfig, ModernBert};
use super::model::{Embeddings, Layer, MaskedLm, MlmHead, activate, attend, tokenwise};

/// One ModernBERT layer.
#[derive(Module, Debug)]
pub(super) struct ModernLayer<B: Backend> {
    /// `None` in the first layer (transformers' `Identity`).
    pub attention_norm: Option<LayerNorm<B>>,
    /// `Wqkv`: hidden → `[q | k | v]`, one product.
    pub qkv: Linear<B>,
    /// `Wo` of the attention.
    pub attention_output: Linear<B>,
    pub mlp_norm: LayerNorm<B>,
    /// `Wi`: hidden → `[input | gate]`, each of the intermediate size.
    pub mlp_in: Linear<B>,
    /// `Wo` of the feed-forward.
    pub mlp_out: Linear<B>,
    #[module(skip)]
    pub num_heads: usize,
    #[module(skip)]
    pub activation: Activation,
    /// The rotary base of this layer's span.
    #[module(skip)]
    pub rope_theta: f64,
    /// `Some(w)` for a local layer: the largest distance a token attends across.
    #[module(skip)]
    pub window: Option<usize>,
}

impl<B: Backend> ModernLayer<B> {
    /// `x [batch, seq, h]`, `padding [batch, 1, 1, seq]` (additive) → `[batch, seq, h]`.
    pub(super) fn forward(
        &self,
        x: Tensor<B, 3>,
        padding: Tensor<B, 4>,
        dropout: &Dropout,
    ) -> Tensor<B, 3> {
        let [batch, seq, h] = x.dims();
        let device = x.device();
        let heads = self.num_heads;
        let head_dim = h / heads;
        let normed = match &self.attention_norm {
            Some(norm) => norm.forward(x.clone()),
            None => x.clone(),
        };
        let qkv = tokenwise(&self.qkv, normed);
        let split = |i: usize| {
            qkv.clone()
                .narrow(2, i * h, h)
                .reshape([batch, seq, heads, head_dim])
                .swap_dims(1, 2)
        };
        let (cos, sin) = rotary_table::<B>(seq, head_dim, self.rope_theta, &device);
        let q = rotate(split(0), &cos, &sin);
        let k = rotate(split(1), &cos, &sin);
        let mask = match self.window {
            Some(window) => {
                padding.expand([batch, 1, seq, seq])
                    + window_bias::<B>(seq, window, &device).expand([batch, 1, seq, seq])
            }
            None => padding,
        };
        let context = attend(q, k, split(2), mask, dropout);
        let x = x + dropout.forward(tokenwise(&self.attention_output, context));
        let gated = tokenwise(&self.mlp_in, self.mlp_norm.forward(x.clone()));
        let inner_size = gated.dims()[2] / 2;
        let inner = activate(self.activation, gated.clone().narrow(2, 0, inner_size))
            * gated.narrow(2, inner_size, inner_size);
        x + dropout.forward(tokenwise(&self.mlp_out, inner))
    }
}

/// `cos` and `sin` of every position's angles, `[1, 1, seq, head_dim]` each, as
/// transformers' default rotary embedding computes them in `f32`: angle `p · θ^(−2k/d)` for
/// the `k`-th of `d/2` frequencies, the table repeated for both halves.
fn rotary_table<B: Backend>(
    seq: usize,
    head_dim: usize,
    theta: f64,
    device: &B::Device,
) -> (Tensor<B, 4>, Tensor<B, 4>) {
    let half = head_dim / 2;
    let inv_freq: Vec<f32> = (0..half)
        .map(|k| 1.0 / (theta as f32).powf((2 * k) as f32 / head_dim as f32))
        .collect();
    let mut cos = Vec::with_capacity(seq * head_dim);
    let mut sin = Vec::with_capacity(seq * head_dim);
    for position in 0..seq {
        for _half in 0..2 {
            for f in &inv_freq {
                let angle = position as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
    }
    let table =
        |v: Vec<f32>| Tensor::<B, 4>::from_data(TensorData::new(v, [1, 1, seq, head_dim]), device);
    (table(cos), table(sin))
}

/// `x · cos + rotate_half(x) · sin`, `rotate_half([x1 | x2]) = [−x2 | x1]`.
fn rotate<B: Backend>(x: Tensor<B, 4>, cos: &Tensor<B, 4>, sin: &Tensor<B, 4>) -> Tensor<B, 4> {
    let half = x.dims()[3] / 2;
    let first = x.clone().narrow(3, 0, half);
    let second = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![second.neg(), first], 3);
    x * cos.clone() + rotated * sin.clone()
}

/// Additive `[1, 1, seq, seq]`: 0 where `|i − j| ≤ window`, a large negative elsewhere.
fn window_bias<B: Backend>(seq: usize, window: usize, device: &B::Device) -> Tensor<B, 4> {
    let values: Vec<f32> = (0..seq * seq)
        .map(|n| {
            let (i, j) = (n / seq, n % seq);
            if i.abs_diff(j) <= window { 0.0 } else { -1.0e9 }
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [1, 1, seq, seq]), device)
}

/// A randomly initialised ModernBERT of the given size (see [`MaskedLm::random`]).
pub(super) fn random<B: Backend>(
    config: &MaskedLmConfig,
    modern: &ModernBert,
    device: &B::Device,
) -> MaskedLm<B> {
    let h = config.hidden_size;
    let norm = || {
        LayerNormConfig::new(h)
            .with_epsilon(config.layer_norm_eps)
            .with_bias(modern.norm_bias)
            .init(device)
    };
    let linear = |i, o, bias| LinearConfig::new(i, o).with_bias(bias).init(device);
    let layers = modern
        .spans
        .iter()
        .enumerate()
        .map(|(i, &span)| {
            Layer::PreNorm(ModernLayer {
                attention_norm: (i > 0).then(norm),
                qkv: linear(h, 3 * h, modern.attention_bias),
                attention_output: linear(h, h, modern.attention_bias),
                mlp_norm: norm(),
                mlp_in: linear(h, 2 * config.intermediate_size, modern.mlp_bias),
                mlp_out: linear(config.intermediate_size, h, modern.mlp_bias),
                num_heads: config.num_heads,
                activation: config.activation,
                rope_theta: modern.rope_theta(span),
                window: modern.window(span),
            })
        })
        .collect();
    MaskedLm {
        embeddings: Embeddings {
            word: EmbeddingConfig::new(config.vocab_size, h).init(device),
            position: None,
            token_type: None,
            norm: norm(),
            project: None,
            position_offset: 0,
        },
        layers,
        final_norm: Some(norm()),
        head: MlmHead {
            dense: linear(h, h, modern.head_bias),
            norm: norm(),
            bias: Param::from_tensor(Tensor::zeros([config.vocab_size], device)),
            activation: modern.head_activation,
        },
        dropout: 0.0,
        layer_norm_eps: config.layer_norm_eps,
    }
}
