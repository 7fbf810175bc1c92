//! Scoring prompts with a frozen masked LM: the gradient of the gold log-likelihood w.r.t.
//! trigger embeddings (autodiff), and batched evaluation of many prompts at once (no
//! autodiff). Only the tokens a task needs are scored at `[P]`; the full vocabulary is
//! touched only at `[P]`, for the log-normaliser, and only when a log-likelihood is needed.

use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};

use crate::lm::host::HostModel;
use crate::lm::{EncoderInput, MaskedLm};
use crate::prompt::Batch;
use crate::prompt::verbalizer::class_scores;
use crate::tasks::metrics::{pessimistic_rank, rank_in_order};

/// What is predicted at `[P]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Classification: label tokens of all classes, class after class, and each class's
    /// `(start, len)` columns. A class's score is the log-sum-exp of its tokens.
    Classes {
        label_ids: Vec<u32>,
        spans: Vec<(usize, usize)>,
    },
    /// Fact retrieval: the gold token is ranked among `candidate_ids`.
    Vocabulary { candidate_ids: Vec<u32> },
}

impl Target {
    pub(crate) fn scored_ids(&self) -> &[u32] {
        match self {
            Target::Classes { label_ids, .. } => label_ids,
            Target::Vocabulary { candidate_ids } => candidate_ids,
        }
    }
}

/// The gold answer of one example: class index (classification) or token id plus its
/// column in the candidate list (fact retrieval).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gold {
    pub index: usize,
    pub token: u32,
}

/// Per-example result of an evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowScore {
    /// 0-based pessimistic rank of the gold answer (0 = correct): candidates scoring the
    /// same as the gold count as above it.
    pub rank: usize,
    /// 0-based rank with ties broken by candidate order, as a sort of the scores orders them
    /// (LAMA's evaluation ranks by `topk`); equals `rank` when nothing ties the gold.
    pub rank_in_order: usize,
    /// Log-likelihood of the gold answer (class: log of its marginal probability); NaN when
    /// not requested.
    pub gold_log_likelihood: f32,
}

/// Which implementation runs the scorer's gradients and evaluations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// The host engine when the backend runs on the CPU, else burn.
    #[default]
    Auto,
    /// The host engine ([`crate::lm::host`]) whatever the backend.
    Host,
    /// burn's own tensor ops on the chosen backend.
    Burn,
}

impl Engine {
    /// Whether this choice runs the host engine for backend `B`.
    pub fn uses_host<B: Backend>(self) -> bool {
        match self {
            Engine::Auto => crate::backend::runs_on_host::<B>(),
            Engine::Host => true,
            Engine::Burn => false,
        }
    }
}

/// A frozen model ready for gradients (autodiff copy) and fast evaluation (inner copy).
pub struct Scorer<B: AutodiffBackend> {
    grad_model: MaskedLm<B>,
    eval_model: MaskedLm<B::InnerBackend>,
    /// The host engine's copy of the weights, when it runs the hot loop.
    host: Option<HostModel>,
    device: B::Device,
    pub target: Target,
    /// Rows per forward pass in evaluation.
    pub eval_rows: usize,
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

impl<B: AutodiffBackend> Scorer<B> {
    /// Freezes `model` (no parameter gradients: 2–3× cheaper backward passes); the hot loop
    /// runs on the host engine when the backend is a CPU one ([`Engine::Auto`]).
    pub fn new(model: MaskedLm<B>, target: Target, eval_rows: usize, device: B::Device) -> Self {
        Self::with_engine(model, target, eval_rows, device, Engine::Auto)
    }

    pub fn with_engine(
        model: MaskedLm<B>,
        target: Target,
        eval_rows: usize,
        device: B::Device,
        engine: Engine,
    ) -> Self {
        let grad_model = model.no_grad();
        let eval_model = grad_model.valid();
        let host = engine
            .uses_host::<B::InnerBackend>()
            .then(|| HostModel::from_model(&eval_model));
        Self {
            grad_model,
            eval_model,
            host,
            device,
            target,
            eval_rows: eval_rows.max(1),
        }
    }

    pub fn eval_model(&self) -> &MaskedLm<B::InnerBackend> {
        &self.eval_model
    }

    /// Loss (weighted mean of minus the gold log-likelihood) and its gradient w.r.t. the
    /// input embeddings at each trigger slot, summed over the batch: `[slots][hidden]`.
    /// `weights` (one per row) implement class-weighted loss; `None` is the plain mean.
    pub fn trigger_gradient(
        &self,
        batch: &Batch,
        golds: &[Gold],
        weights: Option<&[f32]>,
    ) -> (f32, Vec<Vec<f32>>) {
        if let Some(host) = &self.host {
            return super::host::trigger_gradient(host, &self.target, batch, golds, weights);
        }
        let model = &self.grad_model;
        let device = &self.device;
        let (mut input, predict) = encoder_input(model, batch, device);
        let embeds = input.inputs_embeds.detach().require_grad();
        input.inputs_embeds = embeds.clone();
        let hidden = model.encode(input);
        let features = model.mask_features(hidden, predict);
        let gold_ll = self.gold_log_likelihood(model, features, golds);
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

    /// Gold log-likelihood per row, normalised over the full vocabulary: `[rows]`.
    fn gold_log_likelihood<M: Backend>(
        &self,
        model: &MaskedLm<M>,
        features: Tensor<M, 2>,
        golds: &[Gold],
    ) -> Tensor<M, 1> {
        let device = features.device();
        let rows = golds.len();
        let log_z = model.log_normalizer(features.clone());
        match &self.target {
            Target::Vocabulary { .. } => {
                let ids =
                    int_tensor::<M, 1>(golds.iter().map(|g| g.token as usize), [rows], &device);
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
        }
    }

    /// Evaluates every row of `batch` (chunked by `eval_rows`). `need_log_likelihood`
    /// adds the full-vocabulary normaliser at `[P]`; ranks never need it.
    pub fn score_rows(
        &self,
        batch: &Batch,
        golds: &[Gold],
        need_log_likelihood: bool,
    ) -> Vec<RowScore> {
        assert_eq!(batch.rows, golds.len());
        // Chunks of at most `eval_rows`, and at least one per worker thread.
        let workers = super::parallel::workers(batch.rows);
        let chunk = self.eval_rows.min(batch.rows.div_ceil(workers));
        super::parallel::map_ordered(&row_chunks(batch.rows, chunk), |&(start, end)| {
            self.score_chunk(
                &slice_rows(batch, start, end),
                &golds[start..end],
                need_log_likelihood,
            )
        })
        .into_iter()
        .flatten()
        .collect()
    }

    fn score_chunk(
        &self,
        batch: &Batch,
        golds: &[Gold],
        need_log_likelihood: bool,
    ) -> Vec<RowScore> {
        if let Some(host) = &self.host {
            return super::host::score_rows(host, &self.target, batch, golds, need_log_likelihood);
        }
        let model = &self.eval_model;
        let device = &self.device;
        let (input, predict) = encoder_input(model, batch, device);
        let features = model.mask_features(model.encode(input), predict);
        let ids = self.target.scored_ids();
        let id_tensor =
            int_tensor::<B::InnerBackend, 1>(ids.iter().map(|&i| i as usize), [ids.len()], device);
        let log_z = need_log_likelihood.then(|| to_vec(model.log_normalizer(features.clone())));
        let scores = to_vec(model.score_tokens(features, id_tensor));
        row_scores(&self.target, &scores, log_z.as_deref(), golds)
    }

    /// `[rows, hidden]` head features at `[P]` (inputs of the label search).
    /// Chunks of `eval_rows`, side by side on the worker threads.
    pub fn mask_features(&self, batch: &Batch) -> Vec<f32> {
        super::parallel::map_ordered(&row_chunks(batch.rows, self.eval_rows), |&(start, end)| {
            self.mask_features_chunk(&slice_rows(batch, start, end))
        })
        .concat()
    }

    fn mask_features_chunk(&self, batch: &Batch) -> Vec<f32> {
        if let Some(host) = &self.host {
            return super::host::mask_features(host, batch);
        }
        let (input, predict) = encoder_input(&self.eval_model, batch, &self.device);
        to_vec(
            self.eval_model
                .mask_features(self.eval_model.encode(input), predict),
        )
    }

    /// HotFlip scores of every vocabulary token for one slot: `−(E · g)`, i.e. the
    /// first-order decrease of the loss when the slot's embedding moves to the token's.
    pub fn hotflip_scores(&self, slot_gradient: &[f32]) -> Vec<f32> {
        if let Some(host) = &self.host {
            return host
                .embedding_products(slot_gradient)
                .into_iter()
                .map(|v| -v)
                .collect();
        }
        let h = slot_gradient.len();
        let g = Tensor::<B::InnerBackend, 2>::from_data(
            TensorData::new(slot_gradient.to_vec(), [h, 1]),
            &self.device,
        );
        to_vec(self.eval_model.word_embedding_matrix().matmul(g).neg())
    }
}

/// Per-row ranks and gold log-likelihoods from the scored tokens' logits `[rows, k]` and,
/// when computed, the full-vocabulary log-normaliser `[rows]`.
pub(crate) fn row_scores(
    target: &Target,
    scores: &[f32],
    log_z: Option<&[f32]>,
    golds: &[Gold],
) -> Vec<RowScore> {
    let k = target.scored_ids().len();
    scores
        .chunks(k)
        .zip(golds)
        .enumerate()
        .map(|(row, (logits, gold))| {
            let z = log_z.map_or(f32::NAN, |z| z[row]);
            match target {
                Target::Classes { spans, .. } => {
                    let classes = class_scores(logits, spans);
                    let rank = pessimistic_rank(&classes, gold.index);
                    RowScore {
                        rank,
                        rank_in_order: rank,
                        gold_log_likelihood: classes[gold.index] - z,
                    }
                }
                Target::Vocabulary { .. } => RowScore {
                    rank: pessimistic_rank(logits, gold.index),
                    rank_in_order: rank_in_order(logits, gold.index),
                    gold_log_likelihood: logits[gold.index] - z,
                },
            }
        })
        .collect()
}

/// `(start, end)` ranges of at most `size` rows (at least one) covering `0..rows`.
fn row_chunks(rows: usize, size: usize) -> Vec<(usize, usize)> {
    let size = size.max(1);
    (0..rows)
        .step_by(size)
        .map(|start| (start, (start + size).min(rows)))
        .collect()
}

/// Rows `start..end` of a batch.
pub fn slice_rows(batch: &Batch, start: usize, end: usize) -> Batch {
    let s = batch.seq_len;
    let t = batch.num_triggers;
    Batch {
        rows: end - start,
        seq_len: s,
        ids: batch.ids[start * s..end * s].to_vec(),
        segment_ids: batch.segment_ids[start * s..end * s].to_vec(),
        attention_mask: batch.attention_mask[start * s..end * s].to_vec(),
        predict_positions: batch.predict_positions[start..end].to_vec(),
        trigger_positions: batch.trigger_positions[start * t..end * t].to_vec(),
        num_triggers: t,
    }
}
