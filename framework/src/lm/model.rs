//! BERT / RoBERTa / DistilBERT / ELECTRA-generator / ALBERT / ModernBERT masked LM in burn,
//! mirroring transformers' `*ForMaskedLM` (post-norm encoder, exact-erf GELU, tied decoder;
//! DistilBERT without token types; ELECTRA and ALBERT with embeddings projected up to the
//! hidden size and a head projecting back down; ALBERT with one layer's weights repeated and
//! `gelu_new`; ModernBERT's pre-norm layers, [`Layer::PreNorm`], are in `super::modern`).
//!
//! The search never asks for full-vocabulary logits at every position: it embeds tokens
//! itself (so it can take gradients w.r.t. trigger embeddings), runs [`MaskedLm::encode`],
//! picks the [MASK] rows with [`MaskedLm::mask_features`] and scores only the tokens it
//! needs with [`MaskedLm::score_tokens`].
//!
//! ## The mirror contract with the host engine
//!
//! [`crate::lm::host`] runs the same network on a frozen `f32` copy for the search on CPU
//! backends. Each piece below has a twin there; a change to one needs the same change to
//! the other, and `tests/host_engine.rs` (BERT, RoBERTa, XLM-RoBERTa, DistilBERT and ModernBERT, single sentences and pairs:
//! hidden states, mask features, scores, trigger gradients) must pass for both.
//!
//! | here (burn) | host engine |
//! |---|---|
//! | `Embeddings` + `MaskedLm::encode` (words + positions with RoBERTa's offset + token types, LayerNorm) | `HostModel::embed` |
//! | `EncoderLayer::forward` (post-norm attention and feed-forward, exact GELU) | `HostLayer::forward` (fused QKV, packed rows) and `HostLayer::backward` |
//! | `MaskedLm::mask_features` (`MlmHead`'s transform at `[P]`) | `HostModel::mask_features`, `head_transform` |
//! | `MaskedLm::score_tokens` / `score_row_tokens` (tied decoder + bias) | `HostModel::score_tokens` |
//! | `MaskedLm::log_normalizer` | `HostModel::log_normalizer` (and `log_normalizer_with_gradient`) |
//! | autodiff w.r.t. `inputs_embeds` | `HostModel::input_gradient` (input-only backward) |
//! | `Layer::PreNorm` (`super::modern::ModernLayer`: pre-norm, rotary, sliding window, GeGLU) and `final_norm` (ModernBERT) | `HostBlock::PreNorm` (`host/modern.rs`: `HostModernLayer::forward` / `backward`) and `HostModel::final_norm` |
//! | `Embeddings::project` (ELECTRA, ALBERT), `Activation::GeluNew` (ALBERT) | none: `HostModel::covers` is false and the search runs on burn |

use burn::module::{Module, Param};
use burn::nn::{
    Dropout, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig,
};
use burn::tensor::activation::softmax;
use burn::tensor::{Int, Tensor, backend::Backend};

use super::config::{Activation, MaskedLmConfig};
use super::modern::ModernLayer;

/// The encoder input: word embeddings (before positions and segments are added) plus the
/// per-token segment ids and attention mask.
#[derive(Debug, Clone)]
pub struct EncoderInput<B: Backend> {
    /// `[batch, seq, hidden]`: rows of the word-embedding table, possibly `require_grad`.
    pub inputs_embeds: Tensor<B, 3>,
    /// `[batch, seq]` segment (token type) ids.
    pub token_type_ids: Tensor<B, 2, Int>,
    /// `[batch, seq]`: 1.0 for real tokens, 0.0 for padding.
    pub attention_mask: Tensor<B, 2>,
}

/// A masked language model: embeddings, encoder stack, MLM head.
#[derive(Module, Debug)]
pub struct MaskedLm<B: Backend> {
    pub(super) embeddings: Embeddings<B>,
    pub(super) layers: Vec<Layer<B>>,
    /// ModernBERT's norm after the last layer (pre-norm layers leave their output unnormed).
    pub(super) final_norm: Option<LayerNorm<B>>,
    pub(super) head: MlmHead<B>,
    /// Dropout probability inside the encoder (hidden states and attention weights), as in
    /// transformers' training mode. 0 (the default, eval mode) everywhere but fine-tuning;
    /// it only ever acts on an autodiff backend.
    #[module(skip)]
    pub dropout: f64,
    /// LayerNorm epsilon of every norm (burn keeps it private inside `LayerNorm`; the host
    /// engine needs it to reproduce the norms).
    #[module(skip)]
    pub layer_norm_eps: f64,
}

#[derive(Module, Debug)]
pub(super) struct Embeddings<B: Backend> {
    pub word: Embedding<B>,
    /// `None` for ModernBERT, whose positions are rotary (inside attention).
    pub position: Option<Embedding<B>>,
    /// `None` for DistilBERT, which has no token types (segment ids are ignored).
    pub token_type: Option<Embedding<B>>,
    pub norm: LayerNorm<B>,
    /// ELECTRA with `embedding_size ≠ hidden_size`: the normalised embeddings projected to
    /// the hidden size (`embeddings_project`).
    pub project: Option<Linear<B>>,
    /// 0 for BERT; `padding_idx + 1` for RoBERTa, whose position ids start after the pad id.
    #[module(skip)]
    pub position_offset: usize,
}

/// One encoder layer of either layout. (The variants differ by a few hundred bytes of module
/// handles, a dozen layers per model: not worth a box, which burn's `Module` does not derive
/// through.)
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub(super) enum Layer<B: Backend> {
    /// BERT's post-norm layer (BERT, RoBERTa, DistilBERT, ELECTRA, ALBERT).
    PostNorm(EncoderLayer<B>),
    /// ModernBERT's pre-norm layer with rotary attention and a GeGLU feed-forward.
    PreNorm(ModernLayer<B>),
}

#[derive(Module, Debug)]
pub(super) struct EncoderLayer<B: Backend> {
    pub query: Linear<B>,
    pub key: Linear<B>,
    pub value: Linear<B>,
    pub attention_output: Linear<B>,
    pub attention_norm: LayerNorm<B>,
    pub intermediate: Linear<B>,
    pub output: Linear<B>,
    pub output_norm: LayerNorm<B>,
    #[module(skip)]
    pub num_heads: usize,
    #[module(skip)]
    pub activation: Activation,
}

/// The MLM head: dense → GELU → LayerNorm (the "transform"), then the decoder, which is the
/// word-embedding matrix (tied) plus a bias.
#[derive(Module, Debug)]
pub(super) struct MlmHead<B: Backend> {
    /// Without a bias in ModernBERT by default (`classifier_bias`).
    pub dense: Linear<B>,
    pub norm: LayerNorm<B>,
    pub bias: Param<Tensor<B, 1>>,
    #[module(skip)]
    pub activation: Activation,
}

/// `gelu_new` (ALBERT): `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`, as transformers'
/// `NewGELUActivation`, in primitive ops.
pub fn gelu_tanh<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let inner = (x.clone() + x.clone().powi_scalar(3).mul_scalar(0.044715))
        .mul_scalar((2.0 / std::f64::consts::PI).sqrt());
    x.mul_scalar(0.5) * inner.tanh().add_scalar(1.0)
}

pub(super) fn activate<B: Backend, const D: usize>(
    activation: Activation,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    match activation {
        Activation::Gelu => gelu_exact(x),
        Activation::GeluNew => gelu_tanh(x),
    }
}

/// Exact GELU, `x · Φ(x)` with the error function, written out in primitive ops so that
/// autodiff differentiates `erf` exactly (burn 0.21's fused `gelu_backward` uses the tanh
/// approximation, which would break gradient parity with transformers).
pub fn gelu_exact<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let cdf = x
        .clone()
        .div_scalar(std::f64::consts::SQRT_2)
        .erf()
        .add_scalar(1.0)
        .mul_scalar(0.5);
    x * cdf
}

impl<B: Backend> MaskedLm<B> {
    /// A randomly initialised model of the given size (for speed measurements and tests;
    /// real use goes through [`super::load_weights`]).
    pub fn random(config: &MaskedLmConfig, device: &B::Device) -> Self {
        let h = config.hidden_size;
        let e = config.embedding_size;
        let norm_of = |d| {
            LayerNormConfig::new(d)
                .with_epsilon(config.layer_norm_eps)
                .init(device)
        };
        let norm = || norm_of(h);
        let linear = |i, o| LinearConfig::new(i, o).init(device);
        if let Some(modern) = &config.modern {
            return super::modern::random(config, modern, device);
        }
        let embeddings = Embeddings {
            word: EmbeddingConfig::new(config.vocab_size, e).init(device),
            position: Some(EmbeddingConfig::new(config.max_position_embeddings, e).init(device)),
            token_type: (config.type_vocab_size > 0)
                .then(|| EmbeddingConfig::new(config.type_vocab_size, e).init(device)),
            norm: norm_of(e),
            project: (e != h).then(|| linear(e, h)),
            position_offset: config.position_offset(),
        };
        let layers = (0..config.num_layers)
            .map(|_| {
                Layer::PostNorm(EncoderLayer {
                    query: linear(h, h),
                    key: linear(h, h),
                    value: linear(h, h),
                    attention_output: linear(h, h),
                    attention_norm: norm(),
                    intermediate: linear(h, config.intermediate_size),
                    output: linear(config.intermediate_size, h),
                    output_norm: norm(),
                    num_heads: config.num_heads,
                    activation: config.activation,
                })
            })
            .collect();
        let head = MlmHead {
            dense: linear(h, e),
            norm: norm_of(e),
            bias: Param::from_tensor(Tensor::zeros([config.vocab_size], device)),
            activation: config.activation,
        };
        Self {
            embeddings,
            layers,
            final_norm: None,
            head,
            dropout: 0.0,
            layer_norm_eps: config.layer_norm_eps,
        }
    }

    /// Vocabulary size of the embedding table (and of the decoder).
    pub fn vocab_size(&self) -> usize {
        self.embeddings.word.weight.dims()[0]
    }

    /// Width of the encoder's hidden states.
    pub fn hidden_size(&self) -> usize {
        self.embeddings
            .project
            .as_ref()
            .map_or(self.embedding_size(), |p| p.weight.dims()[1])
    }

    /// Width of the word embeddings, of the trigger gradients and of the head's features
    /// (the hidden size but for ELECTRA).
    pub fn embedding_size(&self) -> usize {
        self.embeddings.word.weight.dims()[1]
    }

    /// `[vocab, hidden]`: the word-embedding table, which is also the tied decoder.
    pub fn word_embedding_matrix(&self) -> Tensor<B, 2> {
        self.embeddings.word.weight.val()
    }

    /// `[batch, seq]` token ids → `[batch, seq, hidden]` word embeddings.
    pub fn embed_tokens(&self, input_ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.embeddings.word.forward(input_ids)
    }

    /// Runs embeddings (positions, segments, LayerNorm) and the encoder stack (and
    /// ModernBERT's final norm). Returns the last hidden states, `[batch, seq, hidden]`.
    pub fn encode(&self, input: EncoderInput<B>) -> Tensor<B, 3> {
        let [batch, seq, _] = input.inputs_embeds.dims();
        let device = input.inputs_embeds.device();
        let mut hidden = input.inputs_embeds;
        if let Some(position) = &self.embeddings.position {
            let offset = self.embeddings.position_offset as i64;
            let positions =
                Tensor::<B, 1, Int>::arange(offset..offset + seq as i64, &device).reshape([1, seq]);
            hidden = hidden + position.forward(positions);
        }
        if let Some(token_type) = &self.embeddings.token_type {
            hidden = hidden + token_type.forward(input.token_type_ids);
        }
        let dropout = Dropout { prob: self.dropout };
        hidden = dropout.forward(self.embeddings.norm.forward(hidden));
        if let Some(project) = &self.embeddings.project {
            hidden = tokenwise(project, hidden);
        }
        // Additive mask `[batch, 1, 1, seq]`: 0 for real tokens, a large negative for padding.
        let mask_bias = input
            .attention_mask
            .neg()
            .add_scalar(1.0)
            .mul_scalar(-1.0e9)
            .reshape([batch, 1, 1, seq]);
        for layer in &self.layers {
            hidden = match layer {
                Layer::PostNorm(layer) => layer.forward(hidden, mask_bias.clone(), &dropout),
                Layer::PreNorm(layer) => layer.forward(hidden, mask_bias.clone(), &dropout),
            };
        }
        match &self.final_norm {
            Some(norm) => norm.forward(hidden),
            None => hidden,
        }
    }

    /// The head's transform output (dense → GELU → LayerNorm) at one position per row:
    /// `hidden [batch, seq, h]`, `positions [batch]` → `[batch, e]` (`e` the embedding size,
    /// which is `h` but for ELECTRA).
    pub fn mask_features(
        &self,
        hidden: Tensor<B, 3>,
        positions: Tensor<B, 1, Int>,
    ) -> Tensor<B, 2> {
        let [batch, seq, h] = hidden.dims();
        let device = hidden.device();
        let row_starts =
            Tensor::<B, 1, Int>::arange(0..batch as i64, &device).mul_scalar(seq as i64);
        let rows = hidden
            .reshape([batch * seq, h])
            .select(0, row_starts + positions);
        self.head.transform(rows)
    }

    /// Decoder logits of only the requested tokens: `features [n, h]`, `token_ids [k]` → `[n, k]`.
    pub fn score_tokens(
        &self,
        features: Tensor<B, 2>,
        token_ids: Tensor<B, 1, Int>,
    ) -> Tensor<B, 2> {
        let k = token_ids.dims()[0];
        let (weights, bias) = self.decoder_rows(token_ids);
        features.matmul(weights.transpose()) + bias.reshape([1, k])
    }

    /// Decoder weights `[k, h]` (the tied word embeddings) and biases `[k]` of `token_ids`.
    fn decoder_rows(&self, token_ids: Tensor<B, 1, Int>) -> (Tensor<B, 2>, Tensor<B, 1>) {
        let weights = self
            .embeddings
            .word
            .weight
            .val()
            .select(0, token_ids.clone());
        (weights, self.head.bias.val().select(0, token_ids))
    }

    /// One decoder logit per row: `features [n, h]`, `token_ids [n]` → `[n]` (the gold
    /// token of each example, for the training loss of fact retrieval).
    pub fn score_row_tokens(
        &self,
        features: Tensor<B, 2>,
        token_ids: Tensor<B, 1, Int>,
    ) -> Tensor<B, 1> {
        let n = token_ids.dims()[0];
        let (weights, bias) = self.decoder_rows(token_ids);
        (features * weights).sum_dim(1).reshape([n]) + bias
    }

    /// `log Σ_v exp(logit_v)` over the whole vocabulary, `[n, h]` → `[n]`: turns the scores
    /// of [`Self::score_tokens`] into log-probabilities, at the cost of one `[n, vocab]` product
    /// at the [MASK] rows only.
    pub fn log_normalizer(&self, features: Tensor<B, 2>) -> Tensor<B, 1> {
        let n = features.dims()[0];
        let logits = features.matmul(self.embeddings.word.weight.val().transpose())
            + self.head.bias.val().unsqueeze_dim(0);
        log_sum_exp_rows(logits).reshape([n])
    }
}

/// Row-wise log-sum-exp, stabilised by the (detached) row maximum: `[n, k]` → `[n, 1]`.
pub fn log_sum_exp_rows<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let max = x.clone().max_dim(1).detach();
    (x - max.clone()).exp().sum_dim(1).log() + max
}

/// A linear layer applied to every token: `[batch, seq, in]` → `[batch, seq, out]`.
///
/// The tokens are flattened into one `[batch · seq, in]` matrix first, so the CPU backends
/// run one large GEMM (weights packed once) instead of `batch` small ones, each of which
/// would re-pack the weight matrix.
pub(super) fn tokenwise<B: Backend>(linear: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [batch, seq, width] = x.dims();
    let out = linear.forward(x.reshape([batch * seq, width]));
    let out_width = out.dims()[1];
    out.reshape([batch, seq, out_width])
}

impl<B: Backend> EncoderLayer<B> {
    /// `x [batch, seq, h]`, `mask_bias [batch, 1, 1, seq]` → `[batch, seq, h]`.
    fn forward(&self, x: Tensor<B, 3>, mask_bias: Tensor<B, 4>, dropout: &Dropout) -> Tensor<B, 3> {
        let [batch, seq, h] = x.dims();
        let heads = self.num_heads;
        let head_dim = h / heads;
        let split = |t: Tensor<B, 3>| t.reshape([batch, seq, heads, head_dim]).swap_dims(1, 2);
        let q = split(tokenwise(&self.query, x.clone()));
        let k = split(tokenwise(&self.key, x.clone()));
        let v = split(tokenwise(&self.value, x.clone()));
        let context = attend(q, k, v, mask_bias, dropout);
        let attended = self
            .attention_norm
            .forward(dropout.forward(tokenwise(&self.attention_output, context)) + x);
        let inner = activate(
            self.activation,
            tokenwise(&self.intermediate, attended.clone()),
        );
        self.output_norm
            .forward(dropout.forward(tokenwise(&self.output, inner)) + attended)
    }
}

/// Scaled dot-product attention over split heads: `q`, `k`, `v` `[batch, heads, seq, d]`
/// and an additive `mask_bias` broadcast to `[batch, heads, seq, seq]` → the context,
/// heads merged, `[batch, seq, heads · d]`.
pub(super) fn attend<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask_bias: Tensor<B, 4>,
    dropout: &Dropout,
) -> Tensor<B, 3> {
    let [batch, heads, seq, head_dim] = q.dims();
    let scores = q
        .matmul(k.swap_dims(2, 3))
        .div_scalar((head_dim as f64).sqrt())
        + mask_bias;
    dropout
        .forward(softmax(scores, 3))
        .matmul(v)
        .swap_dims(1, 2)
        .reshape([batch, seq, heads * head_dim])
}

impl<B: Backend> MlmHead<B> {
    fn transform(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.norm
            .forward(activate(self.activation, self.dense.forward(x)))
    }
}
