//! Tasks of the paper: raw files → typed examples, the data budget, and metrics.
//!
//! - [`sst2`]: SST-2 sentiment (GLUE TSV).
//! - [`sick`]: SICK-E entailment (standard, 3-way balanced, 2-way).
//! - [`lama`]: LAMA fact retrieval and relation extraction (T-REx).
//! - [`sample`]: seeded, stratified sampling to a budget — the one place it happens.
//! - [`metrics`]: accuracy, P@1, P@10, MRR.

pub mod lama;
pub mod metrics;
pub mod sample;
pub mod sick;
pub mod sst2;

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Which task a cell runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    Sst2,
    SickE,
    Lama,
    RelationExtraction,
}

/// SICK-E variants of the paper's Table 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SickVariant {
    /// The three classes as distributed.
    Standard,
    /// Three classes, every split down-sampled to equal class counts.
    Balanced3,
    /// Contradiction vs. entailment (neutral pairs left out), every split balanced.
    TwoWay,
}

/// What to do with a malformed row (missing field, unknown label, bad JSON).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum MalformedRows {
    /// Stop with an error naming file and line (default).
    #[default]
    Error,
    /// Skip the row; the count is recorded in the cell's record.
    Skip,
}

/// The task of a cell and its data budget (the `[task]` table of an experiment).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// `sst2`, `sick_e`, `lama` or `relation_extraction`.
    pub kind: TaskKind,
    /// Number of training examples (the data budget).
    pub train_size: NonZeroUsize,
    /// Number of development examples, used for prompt selection.
    pub dev_size: NonZeroUsize,
    /// Cap on evaluation examples (a fixed, seed-independent subsample); default: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_size: Option<NonZeroUsize>,
    /// Sample classes equally instead of proportionally. Default false.
    #[serde(default)]
    pub balance: bool,
    /// SICK-E only: `standard` (default), `balanced3` or `two_way`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<SickVariant>,
    /// LAMA / relation extraction only: the T-REx relation id, e.g. `P19`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
    /// LAMA / relation extraction only: `train_size` and `dev_size` are upper bounds, and a
    /// relation with fewer facts uses all it has (the paper's "at most 1000 facts per
    /// relation"); the record's counts say how many were used. Default false: too few facts
    /// is an error.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub at_most: bool,
    /// Relation extraction only: replace the object in the context sentence by another
    /// object of the relation (the paper's perturbed setting). Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub perturbed: bool,
    /// `error` (default) or `skip`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub malformed_rows: MalformedRows,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl TaskSpec {
    /// Checks the combinations serde cannot: returns `(key, message)` on error.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let needs_relation = matches!(self.kind, TaskKind::Lama | TaskKind::RelationExtraction);
        if needs_relation && self.relation.is_none() {
            return Err((
                "task.relation".into(),
                "required for lama and relation_extraction, e.g. \"P19\"".into(),
            ));
        }
        if !needs_relation && self.relation.is_some() {
            return Err((
                "task.relation".into(),
                "only lama and relation_extraction take a relation".into(),
            ));
        }
        if self.variant.is_some() && self.kind != TaskKind::SickE {
            return Err(("task.variant".into(), "only sick_e has variants".into()));
        }
        if self.at_most && !needs_relation {
            return Err((
                "task.at_most".into(),
                "only lama and relation_extraction take budgets as upper bounds (classification budgets are exact)".into(),
            ));
        }
        if self.perturbed && self.kind != TaskKind::RelationExtraction {
            return Err((
                "task.perturbed".into(),
                "only relation_extraction can be perturbed".into(),
            ));
        }
        if let Some(rel) = &self.relation {
            let ok = rel.len() > 1
                && rel.starts_with('P')
                && rel[1..].chars().all(|c| c.is_ascii_digit());
            if !ok {
                return Err((
                    "task.relation".into(),
                    format!("`{rel}` is not a relation id like \"P19\""),
                ));
            }
        }
        Ok(())
    }

    /// Field names the task's examples have (what templates may reference).
    pub fn fields(&self) -> &'static [&'static str] {
        match self.kind {
            TaskKind::Sst2 => &["sentence"],
            TaskKind::SickE => &["sentence_A", "sentence_B"],
            TaskKind::Lama => &["sub_label"],
            TaskKind::RelationExtraction => &["sub_label", "context"],
        }
    }

    /// Classification tasks have a fixed label set; fact retrieval predicts any token.
    pub fn is_classification(&self) -> bool {
        matches!(self.kind, TaskKind::Sst2 | TaskKind::SickE)
    }
}

/// One example: named text fields and a gold label (class name, or object for LAMA/RE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub fields: Vec<(String, String)>,
    pub label: String,
}

impl Example {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Where task files live (machine-specific, so not part of a cell's identity).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DataPaths {
    /// Holds `sst2/` and `sick/`.
    pub data_dir: PathBuf,
    /// LAMA: `TREx/`, `relations.jsonl`, `common_vocab_cased.txt`.
    pub lama_dir: PathBuf,
    /// LPAQA training facts: `TREx_train/`.
    pub lpaqa_dir: PathBuf,
}

/// A task's examples after loading and budget sampling.
#[derive(Debug, Clone)]
pub struct TaskData {
    pub train: Vec<Example>,
    pub dev: Vec<Example>,
    pub test: Vec<Example>,
    /// Class labels in a fixed order (classification); empty for fact retrieval.
    pub classes: Vec<String>,
    /// Fact retrieval: candidate answers (LAMA's common vocabulary), as words.
    pub candidate_vocab: Option<Vec<String>>,
    /// The task's own manual template, where its data has one (LAMA relations).
    pub manual_template: Option<String>,
    /// Files read (hashed into provenance).
    pub files: Vec<PathBuf>,
    /// Rows skipped under `malformed_rows = "skip"`.
    pub skipped_rows: usize,
    /// Examples dropped by task rules (e.g. objects outside the common vocabulary).
    pub filtered_examples: usize,
}

/// Errors reading task data. Each names the file (and line where there is one).
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("{path}: {source} ({hint})")]
    Io {
        path: PathBuf,
        hint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Malformed {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{what}: asked for {asked} examples but only {available} are available")]
    Budget {
        what: String,
        asked: usize,
        available: usize,
    },
}

pub(crate) fn read_text(path: &Path, hint: &str) -> Result<String, TaskError> {
    std::fs::read_to_string(path).map_err(|source| TaskError::Io {
        path: path.to_owned(),
        hint: hint.to_string(),
        source,
    })
}

/// Lines of a text file with CRLF endings and a missing final newline tolerated,
/// numbered from 1.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i + 1, l))
}

/// Collects rows under a malformed-row policy: errors stop, or are counted and skipped.
pub(crate) struct RowSink<T> {
    pub rows: Vec<T>,
    pub skipped: usize,
    policy: MalformedRows,
}

impl<T> RowSink<T> {
    pub fn new(policy: MalformedRows) -> Self {
        Self {
            rows: vec![],
            skipped: 0,
            policy,
        }
    }

    pub fn push(&mut self, row: Result<T, TaskError>) -> Result<(), TaskError> {
        match (row, self.policy) {
            (Ok(row), _) => self.rows.push(row),
            (Err(_), MalformedRows::Skip) => self.skipped += 1,
            (Err(e), MalformedRows::Error) => return Err(e),
        }
        Ok(())
    }
}

/// Loads a task's files and samples its budget for `seed`.
pub fn load(spec: &TaskSpec, paths: &DataPaths, seed: u64) -> Result<TaskData, TaskError> {
    match spec.kind {
        TaskKind::Sst2 => sst2::load(spec, paths, seed),
        TaskKind::SickE => sick::load(spec, paths, seed),
        TaskKind::Lama | TaskKind::RelationExtraction => lama::load(spec, paths, seed),
    }
}

/// Index of each example's label in `classes` (classification).
pub fn class_indices(examples: &[Example], classes: &[String]) -> Vec<usize> {
    examples
        .iter()
        .map(|e| {
            classes
                .iter()
                .position(|c| *c == e.label)
                .expect("loaders only emit known labels")
        })
        .collect()
}

/// Most frequent labels of `examples`, most frequent first (ties by label).
pub fn labels_by_frequency(examples: &[Example]) -> Vec<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for e in examples {
        *counts.entry(&e.label).or_default() += 1;
    }
    let mut ranked: Vec<(&str, usize)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    ranked.into_iter().map(|(l, _)| l.to_string()).collect()
}
