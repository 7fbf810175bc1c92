//! AutoPrompt's searches: triggers ([`trigger`]) and label tokens ([`labels`]), on top of a
//! [`scorer::Scorer`] that wraps the frozen model on one of two engines behind one seam
//! ([`engine::ScoringEngine`]: burn, or the host engine), speaking the scoring vocabulary of
//! [`target`]. Plain data in (encoded prompts, golds,
//! settings), plain results out; no files, no configuration loading.

mod burn_engine;
pub mod candidates;
pub mod engine;
pub mod evaluation;
mod host;
pub mod labels;
pub mod parallel;
pub mod scorer;
pub mod target;
pub mod trigger;
pub mod words;

use serde::{Deserialize, Serialize};

pub use engine::{Engine, EngineKind, ScoringEngine};
pub use scorer::{FrozenModel, Scorer};
pub use target::{Gold, RowScore, Target};
pub use trigger::{EncoderRows, SearchResult, SearchStep, StopReason};
pub use words::{FillOrder, LengthNorm, MultiToken, WordTarget};

/// Class balance during the search.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Batches drawn uniformly, plain mean loss (reference).
    #[default]
    None,
    /// Batches drawn round-robin across classes.
    Sample,
    /// Class-weighted loss (each class contributes equally).
    Loss,
}

/// The metric that decides between candidates and between dev checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectBy {
    /// Accuracy / P@1, ties counted as wrong (reference for classification).
    Accuracy,
    /// Mean gold log-likelihood (reference for fact retrieval).
    LogLikelihood,
}

/// Trigger-search settings (`[method.search]`); defaults are the paper's code's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchSettings {
    /// Search iterations per restart. Default 100.
    pub iters: usize,
    /// Train examples per batch. Default 32.
    pub batch_size: usize,
    /// Batches whose gradients are summed per iteration. Default 10.
    pub accumulation_steps: usize,
    /// HotFlip candidates evaluated per iteration. Default 10.
    pub num_candidates: usize,
    /// Rows per forward pass when evaluating. Default 256.
    pub eval_batch_size: usize,
    /// Exclude capitalised trigger candidates. Default false.
    pub filter_capitalized: bool,
    /// Exclude trigger candidates that are not purely alphabetic. Default false.
    pub filter_non_alphabetic: bool,
    /// `none` (default), `sample` or `loss`.
    pub balance: Balance,
    /// Stop a restart after this many iterations without a dev improvement. Default: never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patience: Option<usize>,
    /// Independent searches from the initial trigger; the best on dev wins. Default 1.
    pub restarts: usize,
    /// Default: `accuracy` for classification, `log_likelihood` for fact retrieval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub select_by: Option<SelectBy>,
    /// Initial token of every trigger slot. Default: the mask token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_trigger: Option<String>,
    /// Fresh training batches the current prompt and every candidate are scored on each
    /// iteration (the metric over all their rows decides). Default: `accumulation_steps`, as
    /// in the paper's code (10 × 32 = 320 examples); 1 scores them on one batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_batches: Option<usize>,
    /// Let the starting prompt (every slot `initial_trigger`) compete for best-on-dev.
    /// Default false: as in the paper's code, the best dev metric starts at −∞, so the first
    /// accepted trigger is kept over the start; the start is the result only when no
    /// candidate is ever accepted. Always serialised: it changed the search's default, so
    /// cells from before it have other ids.
    pub keep_initial: bool,
    /// Trigger sequences kept between iterations (a beam search; the paper's code has none
    /// and lists greedy instability as a limitation). Each member is expanded with the
    /// candidates of its own gradient; the members and all expansions are scored on the same
    /// evaluation batches and the best `beam_size` distinct sequences are kept. Default 1:
    /// exactly the reference's greedy step.
    #[serde(skip_serializing_if = "is_one")]
    pub beam_size: usize,
    /// Trigger slots changed by one candidate. Default 1 (the reference: one random slot,
    /// its top `num_candidates` tokens). Above 1, as GCG's `n_replace`: each of the
    /// `num_candidates` candidates changes this many distinct random slots, each to a token
    /// drawn from that slot's top `num_candidates`.
    #[serde(skip_serializing_if = "is_one")]
    pub positions_per_step: usize,
    /// Under accuracy selection, stop scoring a candidate once it provably cannot be chosen
    /// (exact branch and bound: the same decisions as scoring every row; see [`evaluation`]).
    /// Default true; false scores every candidate on every row. Log-likelihood selection is
    /// never pruned.
    #[serde(skip_serializing_if = "is_true")]
    pub prune: bool,
}

/// Options whose default is true are left out of the serialised settings (cell ids).
fn is_true(value: &bool) -> bool {
    *value
}

/// Options whose default is 1 are left out of the serialised settings, so the cells that
/// predate them keep their ids.
fn is_one(value: &usize) -> bool {
    *value == 1
}

impl SearchSettings {
    /// Batches of candidate evaluation per iteration (see [`SearchSettings::eval_batches`]).
    pub fn eval_batches(&self) -> usize {
        self.eval_batches.unwrap_or(self.accumulation_steps).max(1)
    }
}

impl Default for SearchSettings {
    fn default() -> Self {
        Self {
            iters: 100,
            batch_size: 32,
            accumulation_steps: 10,
            num_candidates: 10,
            eval_batch_size: 256,
            filter_capitalized: false,
            filter_non_alphabetic: false,
            balance: Balance::None,
            patience: None,
            restarts: 1,
            select_by: None,
            initial_trigger: None,
            eval_batches: None,
            keep_initial: false,
            beam_size: 1,
            positions_per_step: 1,
            prune: true,
        }
    }
}

/// Label-token search settings (`[method.label_search]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabelSearchSettings {
    /// Label tokens kept per class. Default 3.
    pub k: usize,
    /// Full-batch Adam steps of the logistic regression. Default 200.
    pub steps: usize,
    /// Adam learning rate. Default 0.01.
    pub lr: f64,
}

impl Default for LabelSearchSettings {
    fn default() -> Self {
        Self {
            k: 3,
            steps: 200,
            lr: 0.01,
        }
    }
}
