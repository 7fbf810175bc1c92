//! The host implementation of [`ScoringEngine`]: the search's operations on the host engine's
//! fused CPU kernels ([`crate::lm::host`]). Same inputs, outputs and loss as the burn
//! implementation ([`super::burn_engine`]); `tests/host_engine.rs` checks the two agree.

use burn::tensor::backend::Backend;

use super::engine::ScoringEngine;
use super::target::{Gold, RowScore, Target, row_scores};
use crate::lm::MaskedLm;
use crate::lm::host::{HostModel, Packed};
use crate::prompt::Batch;

/// The host engine's own `f32` copy of a frozen model: the only copy of the weights the
/// search holds when it runs here.
pub struct HostEngine {
    model: HostModel,
}

impl HostEngine {
    /// `None` when the host engine does not cover `model` ([`HostModel::covers`]).
    pub fn from_model<B: Backend>(model: &MaskedLm<B>) -> Option<Self> {
        Some(Self {
            model: HostModel::from_model(model)?,
        })
    }
}

impl ScoringEngine for HostEngine {
    fn trigger_gradient(
        &self,
        target: &Target,
        batch: &Batch,
        golds: &[Gold],
        weights: Option<&[f32]>,
    ) -> (f32, Vec<Vec<f32>>) {
        trigger_gradient(&self.model, target, batch, golds, weights)
    }

    fn score_rows(
        &self,
        target: &Target,
        batch: &Batch,
        golds: &[Gold],
        need_log_likelihood: bool,
    ) -> Vec<RowScore> {
        score_rows(&self.model, target, batch, golds, need_log_likelihood)
    }

    fn token_log_probs(&self, batch: &Batch, ids: &[u32]) -> Vec<f32> {
        let features = mask_features(&self.model, batch);
        let log_z = self.model.log_normalizer(&features);
        let mut scores = self.model.score_tokens(&features, ids);
        for (row, z) in scores.chunks_mut(ids.len().max(1)).zip(&log_z) {
            row.iter_mut().for_each(|s| *s -= z);
        }
        scores
    }

    fn mask_features(&self, batch: &Batch) -> Vec<f32> {
        mask_features(&self.model, batch)
    }

    fn embedding_products(&self, slot_gradient: &[f32]) -> Vec<f32> {
        self.model.embedding_products(slot_gradient)
    }

    fn word_embeddings(&self) -> Vec<f32> {
        (0..self.model.vocab_size() as u32)
            .flat_map(|t| self.model.word_embedding(t).iter().copied())
            .collect()
    }

    fn embedding_size(&self) -> usize {
        self.model.hidden_size()
    }

    fn vocab_size(&self) -> usize {
        self.model.vocab_size()
    }
}

fn packed_with_masks(batch: &Batch) -> (Packed, Vec<usize>) {
    let packed = Packed::from_padded(
        &batch.ids,
        &batch.segment_ids,
        &batch.attention_mask,
        batch.seq_len,
    );
    let masks = batch
        .predict_positions
        .iter()
        .enumerate()
        .map(|(row, &p)| packed.token_index(row, p))
        .collect();
    (packed, masks)
}

/// `[rows, h]` head features at `[P]`.
fn mask_features(host: &HostModel, batch: &Batch) -> Vec<f32> {
    let (packed, masks) = packed_with_masks(batch);
    host.mask_features(&packed, &masks)
}

/// Evaluates every row of `batch` in one pass.
fn score_rows(
    host: &HostModel,
    target: &Target,
    batch: &Batch,
    golds: &[Gold],
    need_log_likelihood: bool,
) -> Vec<RowScore> {
    let features = mask_features(host, batch);
    let log_z = need_log_likelihood.then(|| host.log_normalizer(&features));
    let scores = host.score_tokens(&features, target.scored_ids());
    row_scores(target, &scores, log_z.as_deref(), golds)
}

/// Loss (weighted mean of minus the gold log-likelihood) and its gradient w.r.t. the input
/// embeddings at each trigger slot, summed over the batch: `[slots][hidden]`.
fn trigger_gradient(
    host: &HostModel,
    target: &Target,
    batch: &Batch,
    golds: &[Gold],
    weights: Option<&[f32]>,
) -> (f32, Vec<Vec<f32>>) {
    let h = host.hidden_size();
    let rows = batch.rows;
    let (packed, masks) = packed_with_masks(batch);
    let (features, cache) = host.mask_features_for_gradient(&packed, &masks);
    let (log_z, expected) = host.log_normalizer_with_gradient(&features);
    let mut loss = 0.0;
    let mut d_features = vec![0.0; rows * h];
    for row in 0..rows {
        let weight = weights.map_or(1.0, |w| w[row]);
        let f = &features[row * h..(row + 1) * h];
        // The gold answer's log-score and its gradient w.r.t. the features (a mixture of
        // decoder rows); the normaliser's gradient is the expected decoder row.
        let (gold_score, gold_direction) = gold_score_and_gradient(host, target, f, golds[row]);
        loss -= weight * (gold_score - log_z[row]);
        let d = &mut d_features[row * h..(row + 1) * h];
        let expected = &expected[row * h..(row + 1) * h];
        for ((d, g), e) in d.iter_mut().zip(&gold_direction).zip(expected) {
            *d = -weight * (g - e) / rows as f32;
        }
    }
    let d_embeds = host.input_gradient(&packed, &masks, &cache, &d_features);
    let slots = batch.num_triggers;
    let mut grads = vec![vec![0.0; h]; slots];
    for row in 0..rows {
        for (slot, grad) in grads.iter_mut().enumerate() {
            let token = packed.token_index(row, batch.trigger_positions[row * slots + slot]);
            let src = &d_embeds[token * h..(token + 1) * h];
            grad.iter_mut().zip(src).for_each(|(g, s)| *g += s);
        }
    }
    (loss / rows as f32, grads)
}

/// The unnormalised gold log-score of one row (a class: log-sum-exp of its tokens' logits;
/// a fact: the gold token's logit) and its gradient w.r.t. the row's features.
fn gold_score_and_gradient(
    host: &HostModel,
    target: &Target,
    features: &[f32],
    gold: Gold,
) -> (f32, Vec<f32>) {
    let tokens: &[u32] = match target {
        Target::Classes { label_ids, spans } => {
            let (start, len) = spans[gold.index];
            &label_ids[start..start + len]
        }
        Target::Vocabulary { .. } => std::slice::from_ref(&gold.token),
        Target::Words(_) => unreachable!("the scorer expands word targets into token rows"),
    };
    let logits = host.score_tokens(features, tokens);
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = weights.iter().sum();
    let mut direction = vec![0.0; features.len()];
    for (&token, w) in tokens.iter().zip(&weights) {
        let share = w / sum;
        let row = host.word_embedding(token);
        direction
            .iter_mut()
            .zip(row)
            .for_each(|(d, e)| *d += share * e);
    }
    (max + sum.ln(), direction)
}
