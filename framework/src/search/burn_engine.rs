//! The burn implementation of [`ScoringEngine`]: the frozen model's own tensor ops on any
//! backend (CUDA's path; on the CPU backends the host engine is the default). Gradients flow
//! only to the input embeddings (`no_grad` model); evaluations run the inner backend.

use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};

use super::engine::ScoringEngine;
use super::target::{Gold, RowScore, Target, row_scores};
use crate::lm::{EncoderInput, MaskedLm};
use crate::prompt::Batch;

/// A frozen model: an autodiff copy for gradients, its inner copy (same weights) for
/// evaluation.
pub struct BurnEngine<B: AutodiffBackend> {
    grad_model: MaskedLm<B>,
    eval_model: MaskedLm<B::InnerBackend>,
    device: B::Device,
}

impl<B: AutodiffBackend> BurnEngine<B> {
    /// Freezes `model` (no parameter gradients: 2–3× cheaper backward passes).
    pub fn new(model: MaskedLm<B>, device: B::Device) -> Self {
        let grad_model = model.no_grad();
        let eval_model = grad_model.valid();
        Self {
            grad_model,
            eval_model,
            device,
        }
    }
}

pub(crate) fn int_tensor<B: Backend, const D: usize>(
    values: impl IntoIterator<Item = usize>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D, Int> {
    let values: Vec<i64> = values.into_iter().map(|v| v as i64).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

pub(crate) fn to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("f32 tensor data")
}

/// Tensors of a batch on a device.
fn encoder_input<B: Backend>(
    model: &MaskedLm<B>,
    batch: &Batch,
    device: &B::Device,
) -> (EncoderInput<B>, Tensor<B, 1, Int>) {
    let shape = [batch.rows, batch.seq_len];
    let ids = int_tensor::<B, 2>(batch.ids.iter().map(|&i| i as usize), shape, device);
    let input = EncoderInput {
        inputs_embeds: model.embed_tokens(ids),
        token_type_ids: int_tensor::<B, 2>(
            batch.segment_ids.iter().map(|&i| i as usize),
            shape,
            device,
        ),
        attention_mask: Tensor::from_data(
            TensorData::new(batch.attention_mask.clone(), shape),
            device,
        ),
    };
    let predict = int_tensor::<B, 1>(
        batch.predict_positions.iter().copied(),
        [batch.rows],
        device,
    );
    (input, predict)
}

impl<B: AutodiffBackend> ScoringEngine for BurnEngine<B> {
    fn trigger_gradient(
        &self,
        target: &Target,
        batch: &Batch,
        golds: &[Gold],
        weights: Option<&[f32]>,
    ) -> (f32, Vec<Vec<f32>>) {
        let model = &self.grad_model;
        let device = &self.device;
        let (mut input, predict) = encoder_input(model, batch, device);
        let embeds = input.inputs_embeds.detach().require_grad();
        input.inputs_embeds = embeds.clone();
        let hidden = model.encode(input);
        let features = model.mask_features(hidden, predict);
        let gold_ll = gold_log_likelihood(model, target, features, golds);
        let rows = batch.rows;
        let weights = Tensor::<B, 1>::from_data(
            TensorData::new(
                weights.map_or_else(|| vec![1.0; rows], <[f32]>::to_vec),
                [rows],
            ),
            device,
        );
        let loss = (gold_ll * weights).sum().neg().div_scalar(rows as f64);
        let loss_value = to_vec(loss.clone())[0];
        let grads = loss.backward();
        let grad = embeds.grad(&grads).expect("embeddings require grad");
        let hidden_size = grad.dims()[2];
        let flat = grad.reshape([rows * batch.seq_len, hidden_size]);
        let slots = batch.num_triggers;
        let index = (0..rows)
            .flat_map(|r| (0..slots).map(move |s| (r, s)))
            .map(|(r, s)| r * batch.seq_len + batch.trigger_positions[r * slots + s]);
        let picked = flat.select(
            0,
            int_tensor::<B::InnerBackend, 1>(index, [rows * slots], device),
        );
        let summed = picked
            .reshape([rows, slots, hidden_size])
            .sum_dim(0)
            .reshape([slots, hidden_size]);
        let values = to_vec(summed);
        (
            loss_value,
            values.chunks(hidden_size).map(<[f32]>::to_vec).collect(),
        )
    }

    fn score_rows(
        &self,
        target: &Target,
        batch: &Batch,
        golds: &[Gold],
        need_log_likelihood: bool,
    ) -> Vec<RowScore> {
        let model = &self.eval_model;
        let device = &self.device;
        let (input, predict) = encoder_input(model, batch, device);
        let features = model.mask_features(model.encode(input), predict);
        let ids = target.scored_ids();
        let id_tensor =
            int_tensor::<B::InnerBackend, 1>(ids.iter().map(|&i| i as usize), [ids.len()], device);
        let log_z = need_log_likelihood.then(|| to_vec(model.log_normalizer(features.clone())));
        let scores = to_vec(model.score_tokens(features, id_tensor));
        row_scores(target, &scores, log_z.as_deref(), golds)
    }

    fn token_log_probs(&self, batch: &Batch, ids: &[u32]) -> Vec<f32> {
        let model = &self.eval_model;
        let device = &self.device;
        let (input, predict) = encoder_input(model, batch, device);
        let features = model.mask_features(model.encode(input), predict);
        let id_tensor =
            int_tensor::<B::InnerBackend, 1>(ids.iter().map(|&i| i as usize), [ids.len()], device);
        let log_z = model.log_normalizer(features.clone());
        let scores = model.score_tokens(features, id_tensor);
        to_vec(scores - log_z.unsqueeze_dim(1))
    }

    fn mask_features(&self, batch: &Batch) -> Vec<f32> {
        let (input, predict) = encoder_input(&self.eval_model, batch, &self.device);
        to_vec(
            self.eval_model
                .mask_features(self.eval_model.encode(input), predict),
        )
    }

    fn embedding_products(&self, slot_gradient: &[f32]) -> Vec<f32> {
        let h = slot_gradient.len();
        let g = Tensor::<B::InnerBackend, 2>::from_data(
            TensorData::new(slot_gradient.to_vec(), [h, 1]),
            &self.device,
        );
        to_vec(self.eval_model.word_embedding_matrix().matmul(g))
    }

    fn word_embeddings(&self) -> Vec<f32> {
        to_vec(self.eval_model.word_embedding_matrix())
    }

    fn embedding_size(&self) -> usize {
        self.eval_model.embedding_size()
    }

    fn vocab_size(&self) -> usize {
        self.eval_model.vocab_size()
    }
}

/// Gold log-likelihood per row, normalised over the full vocabulary: `[rows]`.
fn gold_log_likelihood<M: Backend>(
    model: &MaskedLm<M>,
    target: &Target,
    features: Tensor<M, 2>,
    golds: &[Gold],
) -> Tensor<M, 1> {
    let device = features.device();
    let rows = golds.len();
    let log_z = model.log_normalizer(features.clone());
    match target {
        Target::Vocabulary { .. } => {
            let ids = int_tensor::<M, 1>(golds.iter().map(|g| g.token as usize), [rows], &device);
            model.score_row_tokens(features, ids) - log_z
        }
        Target::Classes { label_ids, spans } => {
            let ids = int_tensor::<M, 1>(
                label_ids.iter().map(|&i| i as usize),
                [label_ids.len()],
                &device,
            );
            let scores = model.score_tokens(features, ids);
            let classes: Vec<Tensor<M, 2>> = spans
                .iter()
                .map(|&(start, len)| {
                    crate::lm::model::log_sum_exp_rows(scores.clone().narrow(1, start, len))
                })
                .collect();
            let class_scores = Tensor::cat(classes, 1);
            let gold = int_tensor::<M, 2>(golds.iter().map(|g| g.index), [rows, 1], &device);
            class_scores.gather(1, gold).reshape([rows]) - log_z
        }
        Target::Words(_) => unreachable!("the scorer expands word targets into token rows"),
    }
}
