//! Scoring prompts with a frozen masked LM, on whichever [`ScoringEngine`] the `engine`
//! setting resolves to: the gradient of the gold log-likelihood w.r.t. trigger embeddings,
//! and batched evaluation of many prompts at once, split into chunks of `eval_rows` run side
//! by side on the worker threads. Only the tokens a task needs are scored at `[P]`; the full
//! vocabulary is touched only at `[P]`, for the log-normaliser, and only when a
//! log-likelihood is needed.

use burn::tensor::backend::AutodiffBackend;

use super::engine::{self, Engine, EngineKind, ScoringEngine};
use super::target::{Gold, RowScore, Target};
use crate::backend::BackendKind;
use crate::lm::MaskedLm;
use crate::lm::host::HostModel;
use crate::prompt::Batch;

/// A frozen model on its engine, before the tokens scored at `[P]` are known: what the label
/// search needs ([`FrozenModel::mask_features`], [`FrozenModel::word_embeddings`]); with a
/// target it becomes a [`Scorer`] without converting the weights again.
pub struct FrozenModel {
    engine: Box<dyn ScoringEngine>,
    kind: EngineKind,
    /// Rows per forward pass in evaluation.
    eval_rows: usize,
}

impl FrozenModel {
    /// Freezes `model` on the engine `engine` resolves to for backend `B` (a backend this
    /// crate does not name itself counts as a GPU one: burn).
    pub fn new<B: AutodiffBackend>(
        model: MaskedLm<B>,
        eval_rows: usize,
        device: B::Device,
        engine: Engine,
    ) -> Self {
        let backend = BackendKind::of::<B>().unwrap_or(BackendKind::Cuda);
        let covered = HostModel::covers(&model);
        let kind = engine.resolve(backend, covered);
        if !covered && engine.resolve(backend, true) == EngineKind::Host {
            tracing::info!(
                "the host engine does not cover this model (projected embeddings or gelu_new); the search runs on burn"
            );
        }
        let (engine, kind) = engine::build(kind, model, device);
        Self {
            engine,
            kind,
            eval_rows: eval_rows.max(1),
        }
    }

    /// The scorer of `target` on this model.
    pub fn scoring(self, target: Target) -> Scorer {
        Scorer {
            model: self,
            target,
        }
    }

    /// `[rows, hidden]` head features at `[P]` (inputs of the label search).
    /// Chunks of `eval_rows`, side by side on the worker threads.
    pub fn mask_features(&self, batch: &Batch) -> Vec<f32> {
        super::parallel::map_ordered(&row_chunks(batch.rows, self.eval_rows), |&(start, end)| {
            self.engine.mask_features(&slice_rows(batch, start, end))
        })
        .concat()
    }

    /// `[vocab, hidden]` word embeddings, row-major.
    pub fn word_embeddings(&self) -> Vec<f32> {
        self.engine.word_embeddings()
    }
}

/// A frozen model on its engine and the target scored at `[P]`.
pub struct Scorer {
    model: FrozenModel,
    pub target: Target,
}

impl Scorer {
    /// Freezes `model` on the engine `auto` gives for backend `B` (the host engine on the
    /// CPU backends).
    pub fn new<B: AutodiffBackend>(
        model: MaskedLm<B>,
        target: Target,
        eval_rows: usize,
        device: B::Device,
    ) -> Self {
        Self::with_engine(model, target, eval_rows, device, Engine::Auto)
    }

    /// Freezes `model` on the engine `engine` resolves to for backend `B`.
    pub fn with_engine<B: AutodiffBackend>(
        model: MaskedLm<B>,
        target: Target,
        eval_rows: usize,
        device: B::Device,
        engine: Engine,
    ) -> Self {
        FrozenModel::new(model, eval_rows, device, engine).scoring(target)
    }

    /// Which engine runs this scorer.
    pub fn engine(&self) -> EngineKind {
        self.model.kind
    }

    /// Rows per forward pass in evaluation.
    pub fn eval_rows(&self) -> usize {
        self.model.eval_rows
    }

    /// Width of the word embeddings (of a trigger slot's gradient).
    pub fn embedding_size(&self) -> usize {
        self.model.engine.embedding_size()
    }

    pub fn vocab_size(&self) -> usize {
        self.model.engine.vocab_size()
    }

    /// `[vocab, hidden]` word embeddings, row-major.
    pub fn word_embeddings(&self) -> Vec<f32> {
        self.model.word_embeddings()
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
        if let Target::Words(words) = &self.target {
            return super::words::trigger_gradient(
                self.model.engine.as_ref(),
                words,
                batch,
                golds,
                weights,
                self.model.eval_rows,
            );
        }
        self.model
            .engine
            .trigger_gradient(&self.target, batch, golds, weights)
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
        if let Target::Words(words) = &self.target {
            // Its rows are chunked and run side by side inside.
            return super::words::score_rows(
                self.model.engine.as_ref(),
                words,
                batch,
                golds,
                self.model.eval_rows,
            );
        }
        // Chunks of at most `eval_rows`, and at least one per worker thread.
        let workers = super::parallel::workers(batch.rows);
        let chunk = self.model.eval_rows.min(batch.rows.div_ceil(workers));
        super::parallel::map_ordered(&row_chunks(batch.rows, chunk), |&(start, end)| {
            self.model.engine.score_rows(
                &self.target,
                &slice_rows(batch, start, end),
                &golds[start..end],
                need_log_likelihood,
            )
        })
        .into_iter()
        .flatten()
        .collect()
    }

    /// `[rows, hidden]` head features at `[P]` (inputs of the label search).
    /// Chunks of `eval_rows`, side by side on the worker threads.
    pub fn mask_features(&self, batch: &Batch) -> Vec<f32> {
        self.model.mask_features(batch)
    }

    /// Encoder rows that scoring `examples` prompts runs (`examples` for single tokens; see
    /// [`super::words`] for answers of several tokens).
    pub fn scoring_rows(&self, examples: usize) -> u64 {
        examples as u64 * self.target.scoring_rows()
    }

    /// Forward and backward encoder rows of the gradient of examples with `golds`.
    pub fn gradient_rows(&self, golds: &[Gold]) -> (u64, u64) {
        golds.iter().fold((0, 0), |(f, b), &g| {
            let (gf, gb) = self.target.gradient_rows(g);
            (f + gf, b + gb)
        })
    }

    /// HotFlip scores of every vocabulary token for one slot: `−(E · g)`, i.e. the
    /// first-order decrease of the loss when the slot's embedding moves to the token's.
    pub fn hotflip_scores(&self, slot_gradient: &[f32]) -> Vec<f32> {
        self.model
            .engine
            .embedding_products(slot_gradient)
            .into_iter()
            .map(|v| -v)
            .collect()
    }
}

/// `(start, end)` ranges of at most `size` rows (at least one) covering `0..rows`.
pub(crate) fn row_chunks(rows: usize, size: usize) -> Vec<(usize, usize)> {
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
