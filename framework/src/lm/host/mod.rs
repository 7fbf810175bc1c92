//! The host engine: the frozen masked LM on the CPU with fused kernels, for the search's
//! hot loop (candidate evaluation and trigger gradients).
//!
//! burn's CPU backends run every tensor op as its own pass over memory, mostly on one core,
//! and (in 0.21) decompose attention, LayerNorm and GELU into many such passes; the encoder
//! forward spends more time there than in its matrix products. The search never trains the
//! model, so this module keeps a plain `f32` copy of the weights and runs the same network
//! with:
//! - **packed sequences**: the padding of a batch is dropped and every row attends only to
//!   its own tokens, so no work is spent on padding (the result is the same: masked keys get
//!   weight exactly 0 in `f32`);
//! - **fused query/key/value** projections, and attention read in place from that fused
//!   matrix through strided products (no head transposes);
//! - **the last layer only at `[P]`** when only the `[MASK]` features are asked for: keys and
//!   values still come from every token, but the queries, attention output and feed-forward
//!   of the last layer run on one token per row;
//! - **the gradient w.r.t. the input embeddings only**: the weights are frozen, so the
//!   backward pass forms no weight gradients.
//!
//! ModernBERT's pre-norm layer (rotary positions, sliding-window attention, GeGLU) is
//! `modern.rs`; BERT's post-norm layer is `layer.rs`, which also holds `HostBlock`, either;
//! both attend through `attention.rs`.
//!
//! The kernels are single-threaded; callers run independent batches on separate cores
//! (`search::parallel`). [`HostModel::from_model`] copies any backend's weights, and
//! `tests/host_engine.rs` checks features and gradients against the burn model.
//!
//! This module mirrors [`crate::lm::model`]: its module doc holds the table of which function
//! here stands for which burn module. A change to either side needs the other and
//! `tests/host_engine.rs`.

/// Crate-private: its `View` feeds an `unsafe` GEMM, so only this crate builds views.
mod attention;
pub(crate) mod kernels;
mod layer;
mod modern;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use self::kernels::{Dense, Norm, NormCache, View, matmul};
use self::layer::{BlockCache, HostBlock, HostLayer, Queries};
use self::modern::{HostModernLayer, ModernParts};
use super::MaskedLm;

/// Right-padded rows as one list of real tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Packed {
    pub ids: Vec<u32>,
    pub segment_ids: Vec<u32>,
    /// Position of each token inside its row.
    pub positions: Vec<usize>,
    /// `rows + 1` offsets: row `r` is tokens `starts[r]..starts[r + 1]`.
    pub starts: Vec<usize>,
}

impl Packed {
    /// Packs `rows × seq_len` padded ids; a row's real tokens are its mask-1 prefix.
    pub fn from_padded(
        ids: &[u32],
        segment_ids: &[u32],
        attention_mask: &[f32],
        seq_len: usize,
    ) -> Self {
        let mut packed = Packed {
            ids: vec![],
            segment_ids: vec![],
            positions: vec![],
            starts: vec![0],
        };
        let rows = ids
            .chunks(seq_len.max(1))
            .zip(segment_ids.chunks(seq_len.max(1)));
        for ((row_ids, row_segments), mask) in rows.zip(attention_mask.chunks(seq_len.max(1))) {
            let len = mask.iter().take_while(|&&m| m > 0.5).count();
            debug_assert!(
                mask[len..].iter().all(|&m| m <= 0.5),
                "padding is on the right"
            );
            packed.ids.extend_from_slice(&row_ids[..len]);
            packed.segment_ids.extend_from_slice(&row_segments[..len]);
            packed.positions.extend(0..len);
            packed.starts.push(packed.ids.len());
        }
        packed
    }

    pub fn rows(&self) -> usize {
        self.starts.len() - 1
    }

    pub fn tokens(&self) -> usize {
        self.ids.len()
    }

    /// The packed index of position `position` of row `row`.
    pub fn token_index(&self, row: usize, position: usize) -> usize {
        debug_assert!(self.starts[row] + position < self.starts[row + 1]);
        self.starts[row] + position
    }
}

/// A frozen copy of a [`MaskedLm`] as plain row-major `f32` arrays.
#[derive(Debug, Clone)]
pub struct HostModel {
    /// `[vocab, hidden]`: word embeddings and the tied decoder.
    word: Vec<f32>,
    /// `None` for ModernBERT (rotary positions, inside its layers).
    position: Option<Vec<f32>>,
    /// `None` for DistilBERT and ModernBERT (no token types).
    token_type: Option<Vec<f32>>,
    position_offset: usize,
    embedding_norm: Norm,
    layers: Vec<HostBlock>,
    /// ModernBERT's norm after the last layer.
    final_norm: Option<Norm>,
    head_dense: Dense,
    head_norm: Norm,
    decoder_bias: Vec<f32>,
    hidden: usize,
}

/// Activations a gradient pass keeps from its forward pass.
#[derive(Debug, Clone, Default)]
pub struct ForwardCache {
    embedding_norm: NormCache,
    layers: Vec<BlockCache>,
    final_norm: NormCache,
    head_pre: Vec<f32>,
    head_norm: NormCache,
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("f32 tensor data")
}

fn dense<B: Backend>(linear: &burn::nn::Linear<B>) -> Dense {
    let [inputs, outputs] = linear.weight.dims();
    Dense {
        weight: values(linear.weight.val()),
        bias: linear
            .bias
            .as_ref()
            .map_or_else(|| vec![0.0; outputs], |b| values(b.val())),
        inputs,
        outputs,
    }
}

fn norm<B: Backend>(layer_norm: &burn::nn::LayerNorm<B>, eps: f64) -> Norm {
    let gamma = values(layer_norm.gamma.val());
    let beta = layer_norm
        .beta
        .as_ref()
        .map_or_else(|| vec![0.0; gamma.len()], |b| values(b.val()));
    Norm {
        gamma,
        beta,
        eps: eps as f32,
    }
}

impl HostModel {
    /// Whether the host engine computes what `model` computes: exact GELU, no embedding
    /// projection, and either BERT's post-norm layers with learned positions (BERT, RoBERTa,
    /// XLM-RoBERTa, DistilBERT) or ModernBERT's pre-norm layers with rotary positions and a
    /// final norm; not ELECTRA's or ALBERT's projection, nor ALBERT's `gelu_new`.
    pub fn covers<B: Backend>(model: &MaskedLm<B>) -> bool {
        use crate::lm::config::Activation;
        use crate::lm::model::Layer;
        let gelu = Activation::Gelu;
        let post_norm = model.embeddings.position.is_some()
            && model.final_norm.is_none()
            && model
                .layers
                .iter()
                .all(|l| matches!(l, Layer::PostNorm(l) if l.activation == gelu));
        let pre_norm = model.embeddings.position.is_none()
            && model.final_norm.is_some()
            && model
                .layers
                .iter()
                .all(|l| matches!(l, Layer::PreNorm(l) if l.activation == gelu));
        model.embeddings.project.is_none()
            && model.head.activation == gelu
            && (post_norm || pre_norm)
    }

    /// Copies the weights of `model` (any backend) to the host; `None` when the host engine
    /// does not cover it (see [`Self::covers`]).
    pub fn from_model<B: Backend>(model: &MaskedLm<B>) -> Option<Self> {
        use crate::lm::model::Layer;
        if !Self::covers(model) {
            return None;
        }
        let eps = model.layer_norm_eps;
        let hidden = model.hidden_size();
        let layers = model
            .layers
            .iter()
            .map(|layer| match layer {
                Layer::PostNorm(l) => HostBlock::PostNorm(HostLayer::new(
                    [dense(&l.query), dense(&l.key), dense(&l.value)],
                    dense(&l.attention_output),
                    norm(&l.attention_norm, eps),
                    dense(&l.intermediate),
                    dense(&l.output),
                    norm(&l.output_norm, eps),
                    l.num_heads,
                )),
                Layer::PreNorm(l) => HostBlock::PreNorm(HostModernLayer::new(ModernParts {
                    attention_norm: l.attention_norm.as_ref().map(|n| norm(n, eps)),
                    qkv: dense(&l.qkv),
                    attention_output: dense(&l.attention_output),
                    mlp_norm: norm(&l.mlp_norm, eps),
                    mlp_in: dense(&l.mlp_in),
                    mlp_out: dense(&l.mlp_out),
                    heads: l.num_heads,
                    rope_theta: l.rope_theta,
                    window: l.window,
                })),
            })
            .collect();
        let e = &model.embeddings;
        Some(Self {
            word: values(e.word.weight.val()),
            position: e.position.as_ref().map(|p| values(p.weight.val())),
            token_type: e.token_type.as_ref().map(|t| values(t.weight.val())),
            position_offset: e.position_offset,
            embedding_norm: norm(&e.norm, eps),
            layers,
            final_norm: model.final_norm.as_ref().map(|n| norm(n, eps)),
            head_dense: dense(&model.head.dense),
            head_norm: norm(&model.head.norm, eps),
            decoder_bias: values(model.head.bias.val()),
            hidden,
        })
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    pub fn vocab_size(&self) -> usize {
        self.decoder_bias.len()
    }

    /// The word embedding of `token` (also its decoder row).
    pub fn word_embedding(&self, token: u32) -> &[f32] {
        let h = self.hidden;
        &self.word[token as usize * h..(token as usize + 1) * h]
    }

    /// Word + position + segment embeddings (those the model has), before the embedding
    /// LayerNorm: `[tokens, h]`.
    fn embed(&self, packed: &Packed) -> Vec<f32> {
        let h = self.hidden;
        let mut x = Vec::with_capacity(packed.tokens() * h);
        for ((&id, &segment), &pos) in packed
            .ids
            .iter()
            .zip(&packed.segment_ids)
            .zip(&packed.positions)
        {
            let start = x.len();
            x.extend_from_slice(self.word_embedding(id));
            let token = &mut x[start..];
            if let Some(positions) = &self.position {
                let p = (pos + self.position_offset) * h;
                token
                    .iter_mut()
                    .zip(&positions[p..p + h])
                    .for_each(|(v, p)| *v += p);
            }
            if let Some(types) = &self.token_type {
                let s = segment as usize * h;
                token
                    .iter_mut()
                    .zip(&types[s..s + h])
                    .for_each(|(v, t)| *v += t);
            }
        }
        x
    }

    /// Embeddings and encoder stack; the last layer computes only `last_queries`.
    fn run(
        &self,
        packed: &Packed,
        last_queries: &Queries,
        mut cache: Option<&mut ForwardCache>,
    ) -> Vec<f32> {
        let mut x = self.embed(packed);
        self.embedding_norm
            .forward(&mut x, cache.as_deref_mut().map(|c| &mut c.embedding_norm));
        for (i, layer) in self.layers.iter().enumerate() {
            let queries = self.queries_of_layer(i, last_queries);
            let layer_cache = cache.as_deref_mut().map(|c| {
                c.layers.push(BlockCache::default());
                c.layers.last_mut().expect("just pushed")
            });
            x = layer.forward(&x, packed, queries, layer_cache);
        }
        if let Some(norm) = &self.final_norm {
            norm.forward(&mut x, cache.map(|c| &mut c.final_norm));
        }
        x
    }

    /// Layer `i` computes every token, except the last, which computes `last_queries`.
    fn queries_of_layer<'a>(&self, i: usize, last_queries: &'a Queries) -> &'a Queries {
        if i + 1 == self.layers.len() {
            last_queries
        } else {
            &Queries::All
        }
    }

    /// Last hidden states of every token, `[tokens, h]` (the full encoder forward).
    pub fn encode(&self, packed: &Packed) -> Vec<f32> {
        self.run(packed, &Queries::All, None)
    }

    /// The head transform (dense → GELU → LayerNorm) at `mask_tokens` (one packed index per
    /// row): `[rows, h]`.
    pub fn mask_features(&self, packed: &Packed, mask_tokens: &[usize]) -> Vec<f32> {
        let hidden = self.run(packed, &Queries::OnePerRow(mask_tokens.to_vec()), None);
        self.head_transform(&hidden, None)
    }

    /// [`Self::mask_features`] keeping what [`Self::input_gradient`] needs.
    pub fn mask_features_for_gradient(
        &self,
        packed: &Packed,
        mask_tokens: &[usize],
    ) -> (Vec<f32>, ForwardCache) {
        let mut cache = ForwardCache::default();
        let hidden = self.run(
            packed,
            &Queries::OnePerRow(mask_tokens.to_vec()),
            Some(&mut cache),
        );
        let features = self.head_transform(&hidden, Some(&mut cache));
        (features, cache)
    }

    fn head_transform(&self, hidden: &[f32], cache: Option<&mut ForwardCache>) -> Vec<f32> {
        let pre = self.head_dense.forward(hidden);
        let mut out = kernels::gelu_of(&pre);
        match cache {
            Some(c) => {
                self.head_norm.forward(&mut out, Some(&mut c.head_norm));
                c.head_pre = pre;
            }
            None => self.head_norm.forward(&mut out, None),
        }
        out
    }

    /// The gradient of a loss w.r.t. every packed token's word embedding, `[tokens, h]`,
    /// given the loss's gradient w.r.t. the mask features, `[rows, h]`.
    pub fn input_gradient(
        &self,
        packed: &Packed,
        mask_tokens: &[usize],
        cache: &ForwardCache,
        d_features: &[f32],
    ) -> Vec<f32> {
        let mut d = d_features.to_vec();
        self.head_norm.backward(&mut d, &cache.head_norm);
        kernels::gelu_backward(&mut d, &cache.head_pre);
        d = self.head_dense.backward_input(&d);
        if let Some(norm) = &self.final_norm {
            norm.backward(&mut d, &cache.final_norm);
        }
        let last_queries = Queries::OnePerRow(mask_tokens.to_vec());
        for (i, (layer, layer_cache)) in self.layers.iter().zip(&cache.layers).enumerate().rev() {
            let queries = self.queries_of_layer(i, &last_queries);
            d = layer.backward(&d, packed, queries, layer_cache);
        }
        self.embedding_norm.backward(&mut d, &cache.embedding_norm);
        d
    }

    /// Decoder logits of `token_ids` only: `features [rows, h]` → `[rows, k]`.
    pub fn score_tokens(&self, features: &[f32], token_ids: &[u32]) -> Vec<f32> {
        let h = self.hidden;
        let rows = features.len() / h;
        let k = token_ids.len();
        let mut decoder = Vec::with_capacity(k * h);
        for &id in token_ids {
            decoder.extend_from_slice(self.word_embedding(id));
        }
        let bias: Vec<f32> = token_ids
            .iter()
            .map(|&id| self.decoder_bias[id as usize])
            .collect();
        let mut out = bias.repeat(rows);
        matmul(
            &mut out,
            k,
            View::dense(features, rows, h),
            View::dense(&decoder, k, h).t(),
            true,
        );
        out
    }

    /// `E · v` for every vocabulary row `E` of the embedding table: `[vocab]` (HotFlip's
    /// first-order scores, with `v` a trigger-slot gradient).
    pub fn embedding_products(&self, v: &[f32]) -> Vec<f32> {
        let vocab = self.vocab_size();
        let mut out = vec![0.0; vocab];
        matmul(
            &mut out,
            1,
            View::dense(&self.word, vocab, self.hidden),
            View::dense(v, v.len(), 1),
            false,
        );
        out
    }

    /// Full-vocabulary logits at the mask features, `[rows, vocab]`.
    fn vocabulary_logits(&self, features: &[f32]) -> Vec<f32> {
        let h = self.hidden;
        let rows = features.len() / h;
        let vocab = self.vocab_size();
        let mut out = self.decoder_bias.repeat(rows);
        matmul(
            &mut out,
            vocab,
            View::dense(features, rows, h),
            View::dense(&self.word, vocab, h).t(),
            true,
        );
        out
    }

    /// `log Σ_v exp(logit_v)` per row: `[rows]`.
    pub fn log_normalizer(&self, features: &[f32]) -> Vec<f32> {
        kernels::log_sum_exp_rows(&self.vocabulary_logits(features), self.vocab_size())
    }

    /// The log-normaliser and its gradient w.r.t. the features, `Σ_v p_v · E_v` (the
    /// expected decoder row under the model's distribution): `([rows], [rows, h])`.
    pub fn log_normalizer_with_gradient(&self, features: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let h = self.hidden;
        let rows = features.len() / h;
        let vocab = self.vocab_size();
        let mut probs = self.vocabulary_logits(features);
        let log_z = kernels::log_sum_exp_rows(&probs, vocab);
        for (row, z) in probs.chunks_mut(vocab).zip(&log_z) {
            row.iter_mut().for_each(|v| *v = (*v - z).exp());
        }
        let mut expected = vec![0.0; rows * h];
        matmul(
            &mut expected,
            h,
            View::dense(&probs, rows, vocab),
            View::dense(&self.word, vocab, h),
            false,
        );
        (log_z, expected)
    }
}
