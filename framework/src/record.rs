//! The record of one cell: plain serialisable data, no tensors. Everything the report
//! needs, and everything needed to trust a number: spec, metrics, prompt, trajectory,
//! timings and provenance.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::CellSpec;
use crate::metric::Metric;
use crate::prompt::Verbalizer;
use crate::search::SearchResult;
use crate::search::labels::LabelSearchResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Finished,
    Failed,
}

/// How many examples a cell used, and how many it could not.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub train: usize,
    pub dev: usize,
    pub test: usize,
    /// Malformed rows skipped under `malformed_rows = "skip"`.
    pub skipped_rows: usize,
    /// Examples removed by task rules (objects outside the common vocabulary, ...).
    pub filtered_examples: usize,
    /// Evaluation examples whose answer is not a single token of the model (counted as wrong).
    pub unscorable: usize,
    /// Examples (train, dev and evaluation) whose fields were cut to fit `model.max_length`,
    /// where `model.truncate` says (absent in records from before it was counted).
    #[serde(default)]
    pub truncated: usize,
}

/// The prompt a cell evaluated or found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptArtifact {
    pub template: String,
    pub trigger_ids: Vec<u32>,
    pub trigger_tokens: Vec<String>,
    /// Label tokens of each class (classification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verbalizer: Option<Verbalizer>,
    /// The template with triggers filled in, for reading.
    pub filled: String,
    /// The model the prompt was made for, so that it can be applied to any cell of a
    /// compatible model and refused elsewhere (absent in prompts from before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelIdentity>,
}

/// Which model a prompt's token ids belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelIdentity {
    /// `model.source` of the cell that made the prompt.
    pub source: String,
    /// Its vocabulary size (trigger and label token ids index this vocabulary).
    pub vocab_size: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub total_seconds: f64,
    pub load_seconds: f64,
    pub method_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_per_iteration: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub package_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
    pub backend: crate::backend::BackendKind,
    /// `host` or `burn`: who ran the search's hot loop (absent in records from before the
    /// host engine, which all ran on burn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<crate::search::EngineKind>,
    pub seed: u64,
    /// File path → SHA-256 of every data and model file used.
    pub files: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_origin: Option<String>,
    /// Where a hub dataset came from: `owner/name@<commit> (Hugging Face cache)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_origin: Option<String>,
    /// Checkpoint tensors the model did not use and loading skipped (grouped by prefix);
    /// absent when none were (and in records from before they were skipped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_tensors: Vec<String>,
    pub threads: usize,
}

fn one_attempt() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub experiment: String,
    pub index: usize,
    pub grid: BTreeMap<String, Value>,
    pub spec: CellSpec,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Times the cell has run, this run included (records from before it was counted: 1).
    #[serde(default = "one_attempt")]
    pub attempts: u32,
    /// Evaluation-split metrics (`accuracy`, `p_at_1`, `p_at_10`, `mrr`, ...) and the dev
    /// metrics (named with the prefix `dev_`), by name order.
    pub metrics: BTreeMap<Metric, f64>,
    pub counts: Counts,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<PromptArtifact>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_search: Option<LabelSearchResult>,
    pub timings: Timings,
    pub provenance: Provenance,
    /// What the cell predicted on each evaluation example. Not part of the record's JSON:
    /// the store writes it beside the record (`predictions/<id>.parquet`) and reads it
    /// from there ([`crate::store::Store::predictions`]).
    #[serde(skip)]
    pub predictions: Option<Predictions>,
}

/// A cell's predictions on its evaluation split, one row per example in split order (the
/// same examples in the same order for every cell of a task setting, whatever the method or
/// seed), so that two cells can be compared example by example.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Predictions {
    /// Classification: the class names, the order of every row's `scores`. Empty for fact
    /// retrieval.
    pub classes: Vec<String>,
    pub rows: Vec<Prediction>,
}

/// One evaluation example's prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Position of the example in the evaluation split.
    pub example: u32,
    /// The gold answer: a class name or a fact's object.
    pub gold: String,
    /// Classification: the class with the highest score (the first on a tie). `None` for
    /// fact retrieval and for an example that could not be scored.
    pub predicted: Option<String>,
    /// 0-based rank of the gold answer as the task's metric counts it (0: correct; a tie
    /// counts against the gold, except under LAMA's ranking, which breaks ties in candidate
    /// order). `None`: the example could not be scored (counted as wrong).
    pub rank: Option<u32>,
    /// Classification: the score of each class (prompts: the log-sum-exp of the class's
    /// label-token logits; linear probe and fine-tuning: the head's logits). Empty for fact
    /// retrieval and for methods without scores (majority).
    pub scores: Vec<f32>,
}

/// The index of the highest score, the first on a tie (`None` for no scores): the class a
/// cell's predictions name.
pub fn first_max(scores: &[f32]) -> Option<usize> {
    scores
        .iter()
        .enumerate()
        .fold(None, |best: Option<(usize, f32)>, (i, &s)| match best {
            Some((_, b)) if b >= s => best,
            _ => Some((i, s)),
        })
        .map(|(i, _)| i)
}

impl Prediction {
    /// Whether the metric counts the example as right.
    pub fn correct(&self) -> bool {
        self.rank == Some(0)
    }
}
