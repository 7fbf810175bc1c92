//! Tasks: raw files → typed examples, the data budget, and metrics.
//!
//! The paper's tasks, each with its own file layout:
//! - [`sst2`]: SST-2 sentiment (GLUE TSV).
//! - [`sick`]: SICK-E entailment (standard, 3-way balanced, 2-way).
//! - [`lama`]: LAMA fact retrieval and relation extraction (T-REx).
//!
//! A user's own data, any labelled table:
//! - [`generic`]: `classification` and `fact_probe` tasks from tables.
//! - [`table`]: reading CSV, TSV, JSON Lines, JSON and Parquet into string columns.
//! - [`hub`]: a Hugging Face dataset repository's split files, from the cache or the hub.
//!
//! And what every kind shares:
//! - [`spec`]: the `[task]` table, one variant per kind, parsed (and so checked) when read.
//! - [`sample`]: seeded, stratified sampling to a budget — the one place it happens.
//! - [`metrics`]: accuracy, P@1, P@10, MRR.

pub mod generic;
pub mod hub;
pub mod lama;
pub mod metrics;
pub mod sample;
pub mod sick;
pub mod spec;
pub mod sst2;
pub mod table;

pub use spec::{
    Budget, ClassificationTask, Delimiter, FactProbeTask, LamaTask, Relation, RelationTask,
    SickTask, Sst2Task, TableTask, TaskSpec,
};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A key of a cell's spec (its path as the experiment file writes it, e.g. `task.relation`)
/// and what is wrong with its value: what validation reports, and the planner turns into a
/// configuration error naming the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct InvalidKey {
    pub key: String,
    pub message: String,
}

impl InvalidKey {
    pub fn new(key: String, message: String) -> Self {
        Self { key, message }
    }
}

/// Which task a cell runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    Sst2,
    SickE,
    Lama,
    RelationExtraction,
    /// Any labelled table: text columns → one of a fixed set of labels.
    Classification,
    /// Any subject → object table, probed like LAMA.
    FactProbe,
}

impl TaskKind {
    /// Kinds that read a user's table (`train`/`test`, `file` or `hub`) rather than a fixed
    /// layout under `data_dir` / `lama_dir`.
    pub fn reads_table(self) -> bool {
        matches!(self, TaskKind::Classification | TaskKind::FactProbe)
    }

    /// The name as written in an experiment file (`sick_e`, `fact_probe`, ...).
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Sst2 => "sst2",
            TaskKind::SickE => "sick_e",
            TaskKind::Lama => "lama",
            TaskKind::RelationExtraction => "relation_extraction",
            TaskKind::Classification => "classification",
            TaskKind::FactProbe => "fact_probe",
        }
    }
}

/// How a table file is read: by its extension unless `task.format` says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableFormat {
    /// Comma-separated, a header row, `"` quoting.
    Csv,
    /// Tab-separated, a header row, no quoting (as GLUE's and SICK's files).
    Tsv,
    /// One JSON object per line.
    Jsonl,
    /// One JSON array of objects.
    Json,
    Parquet,
}

impl TableFormat {
    /// The format an extension names (`.csv`, `.tsv`, `.jsonl`/`.ndjson`, `.json`, `.parquet`).
    pub fn from_extension(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "csv" => TableFormat::Csv,
            "tsv" | "tab" => TableFormat::Tsv,
            "jsonl" | "ndjson" => TableFormat::Jsonl,
            "json" => TableFormat::Json,
            "parquet" | "pq" => TableFormat::Parquet,
            _ => return None,
        })
    }
}

/// Split names of a one-file table (`split_column`) or a hub dataset: which value (or hub
/// split) is the training pool, which the evaluation split, and which, if any, the dev pool
/// (without one, dev is drawn from the training pool, disjoint from train).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitNames {
    #[serde(default = "default_train_split")]
    pub train: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    #[serde(default = "default_test_split")]
    pub test: String,
}

fn default_train_split() -> String {
    "train".into()
}
fn default_test_split() -> String {
    "test".into()
}

impl Default for SplitNames {
    fn default() -> Self {
        Self {
            train: default_train_split(),
            dev: None,
            test: default_test_split(),
        }
    }
}

/// Where a table task's rows come from: exactly one of `train` + `test` (+ `dev`), `file` +
/// `split_column`, or `hub` (the `[task]` keys, resolved when the task is read). Keys left
/// to their defaults stay `None`, as written (they are part of the cell id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TableSource {
    /// `train`, optional `dev`, `test`: one file each.
    Files {
        train: PathBuf,
        dev: Option<PathBuf>,
        test: PathBuf,
    },
    /// `file` + `split_column`: one file, rows assigned to splits by a column.
    OneFile {
        file: PathBuf,
        split_column: String,
        /// Default: train = "train", test = "test", no dev.
        splits: Option<SplitNames>,
    },
    /// `hub` (+ `config`, `revision`): a Hugging Face dataset repository.
    Hub {
        id: String,
        config: Option<String>,
        /// A branch, tag or commit (default `main`).
        revision: Option<String>,
        splits: Option<SplitNames>,
    },
}

impl SplitNames {
    /// `task.splits` as given, else the default names.
    pub fn given_or_default(splits: &Option<SplitNames>) -> &SplitNames {
        static DEFAULT: std::sync::LazyLock<SplitNames> =
            std::sync::LazyLock::new(SplitNames::default);
        splits.as_ref().unwrap_or(&DEFAULT)
    }
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

/// How fact-retrieval predictions are ranked and scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ranking {
    /// facebookresearch/LAMA's evaluation (the paper's LAMA numbers come from it): duplicate
    /// (subject, object) evaluation facts removed, ties among candidates in candidate order
    /// (as a sort orders them), MRR counting the gold only within the top 10,000. Default for
    /// `lama` and `fact_probe`.
    Lama,
    /// Every evaluation fact kept, a tie counted against the gold, MRR over the whole ranking.
    /// Relation extraction always ranks this way.
    Strict,
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
    /// Fact retrieval: the candidate answers; `None` for classification.
    pub candidates: Option<Candidates>,
    /// The task's own manual template, where its data has one (LAMA relations).
    pub manual_template: Option<String>,
    /// Files read (hashed into provenance).
    pub files: Vec<PathBuf>,
    /// Rows skipped under `malformed_rows = "skip"`.
    pub skipped_rows: usize,
    /// Examples dropped by task rules (e.g. objects outside the common vocabulary).
    pub filtered_examples: usize,
    /// Where the data came from, beyond its files (a hub dataset's id and commit).
    pub origin: Option<String>,
    /// Table tasks: each split's pool and what the budget drew from it (for `plan`); empty
    /// for the paper's tasks.
    pub splits: Vec<SplitSummary>,
}

/// One split of a table task: its pool (rows usable after filtering, by class) and what the
/// budget drew from it. Dev drawn from the training pool shows that pool after train's draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitSummary {
    /// `train`, `dev` or `test`.
    pub split: &'static str,
    /// Rows of its pool, and per class (classification).
    pub pool: usize,
    pub pool_classes: BTreeMap<String, usize>,
    /// Rows drawn, and per class.
    pub drawn: usize,
    pub drawn_classes: BTreeMap<String, usize>,
}

/// Examples per label.
fn class_counts(xs: &[Example]) -> BTreeMap<String, usize> {
    let mut by_class = BTreeMap::new();
    for e in xs {
        *by_class.entry(e.label.clone()).or_insert(0) += 1;
    }
    by_class
}

impl SplitSummary {
    /// Counts a pool before its draw (classes only when `classified`).
    pub fn pool(split: &'static str, pool: &[Example], classified: bool) -> Self {
        Self {
            split,
            pool: pool.len(),
            pool_classes: if classified {
                class_counts(pool)
            } else {
                BTreeMap::new()
            },
            drawn: 0,
            drawn_classes: BTreeMap::new(),
        }
    }

    /// Adds what was drawn from the pool.
    pub fn with_drawn(mut self, drawn: &[Example]) -> Self {
        self.drawn = drawn.len();
        if !self.pool_classes.is_empty() {
            self.drawn_classes = class_counts(drawn);
        }
        self
    }

    /// Dev drawn from the training pool: that pool after train's draw.
    pub fn rest_of(split: &'static str, train: &SplitSummary) -> Self {
        let pool_classes = train
            .pool_classes
            .iter()
            .map(|(c, &n)| {
                (
                    c.clone(),
                    n - train.drawn_classes.get(c).copied().unwrap_or(0),
                )
            })
            .collect();
        Self {
            split,
            pool: train.pool - train.drawn,
            pool_classes,
            drawn: 0,
            drawn_classes: BTreeMap::new(),
        }
    }

    /// What a user should know before running: a class of the pool the draw leaves out,
    /// and a class with fewer rows than an even share of the budget (it cannot be balanced,
    /// and proportional draws give it few examples).
    pub fn warnings(&self) -> Vec<String> {
        let classes = self.pool_classes.len();
        if classes == 0 {
            return vec![];
        }
        let even = self.drawn.div_ceil(classes);
        let mut out = vec![];
        for (class, &rows) in &self.pool_classes {
            let drawn = self.drawn_classes.get(class).copied().unwrap_or(0);
            if drawn == 0 && self.drawn > 0 {
                out.push(format!(
                    "{}: class `{class}` has {rows} of {} rows and the budget of {} draws none of it",
                    self.split, self.pool, self.drawn
                ));
            } else if rows < even {
                out.push(format!(
                    "{}: class `{class}` has {rows} rows, fewer than an even share ({even}) of the budget of {}",
                    self.split, self.drawn
                ));
            }
        }
        out
    }
}

/// The answers a fact-retrieval prompt ranks at `[P]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidates {
    /// These words (LAMA's common vocabulary, a `vocab` file); those that are not one token
    /// of the model are left out.
    Words(Vec<String>),
    /// Every token of the model but its special tokens (LAMA's ranking without a
    /// vocabulary subset).
    ModelVocabulary,
}

/// Which text columns a cell reads from a table (the paper's tasks have fixed fields).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum TextColumns {
    /// These columns (a template's fields), in this order.
    Named(Vec<String>),
    /// Every text column of the file but the label, object and split columns, in file order
    /// (the linear probe and fine-tuning read the whole row).
    AllText,
}

/// Errors reading task data. Each names the file (and line where there is one).
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("{path} ({hint})")]
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
    /// A whole table or one of its columns is unusable (wrong format, wrong type, empty).
    #[error("{}: {message}", path.display())]
    Table {
        path: PathBuf,
        /// The experiment key that named the file or column (`task.train`, `task.label`, ...).
        key: String,
        message: String,
    },
    /// A column a cell needs is not in the table.
    #[error("{}: no column `{column}` ({role}); the file's columns are: {}", path.display(), available.join(", "))]
    MissingColumn {
        path: PathBuf,
        column: String,
        /// What the column is for, in the experiment's terms (`task.label`, `a field of method.template`).
        role: String,
        key: String,
        available: Vec<String>,
    },
    /// One row of a table is malformed (null or empty text, unknown label, wrong type).
    #[error("{}: {place}, column `{column}`: {message}", path.display())]
    Row {
        path: PathBuf,
        /// `line 7` (CSV, TSV, JSON Lines), `row 7` (Parquet) or `item 7` (a JSON array).
        place: String,
        column: String,
        message: String,
    },
    /// A `[task]` setting contradicts the data (a listed class that never occurs, ...).
    #[error("{message}")]
    Setting { key: String, message: String },
    /// A hub dataset could not be found or fetched.
    #[error("{0}")]
    Hub(String),
    /// A hub dataset is not cached and downloading it failed; `message` says where to put it.
    #[error("{message}")]
    HubDownload {
        message: String,
        #[source]
        source: hub::DownloadError,
    },
}

impl TaskError {
    /// The experiment key a user should look at for this error (plan-time reports).
    pub fn config_key(&self) -> String {
        match self {
            TaskError::Table { key, .. }
            | TaskError::MissingColumn { key, .. }
            | TaskError::Setting { key, .. } => key.clone(),
            TaskError::Hub(_) | TaskError::HubDownload { .. } => "task.hub".into(),
            TaskError::Row { .. } | TaskError::Malformed { .. } => "task.malformed_rows".into(),
            TaskError::Budget { .. } => "task".into(),
            TaskError::Io { .. } => "task".into(),
        }
    }
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

/// Loads a task's files and samples its budget for `seed`, reading every text column of a
/// table task (see [`load_columns`]).
pub fn load(spec: &TaskSpec, paths: &DataPaths, seed: u64) -> Result<TaskData, TaskError> {
    load_columns(spec, paths, seed, &TextColumns::AllText)
}

/// Loads a task's files and samples its budget for `seed`. A table task reads only `text`
/// (and its label, object or split columns); the paper's tasks ignore it.
pub fn load_columns(
    spec: &TaskSpec,
    paths: &DataPaths,
    seed: u64,
    text: &TextColumns,
) -> Result<TaskData, TaskError> {
    // The data split's own seed, where the experiment crosses splits with search seeds.
    let seed = spec.budget().data_seed.unwrap_or(seed);
    match spec.kind() {
        TaskKind::Sst2 => sst2::load(spec, paths, seed),
        TaskKind::SickE => sick::load(spec, paths, seed),
        TaskKind::Lama | TaskKind::RelationExtraction => lama::load(spec, paths, seed),
        TaskKind::Classification | TaskKind::FactProbe => generic::load(spec, seed, text),
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

/// Removes repeated (`field`, label) facts, keeping the first of each (LAMA's evaluation
/// removes duplicate facts); returns how many were removed.
pub fn remove_duplicate_facts(examples: &mut Vec<Example>, field: &str) -> usize {
    let mut seen = std::collections::BTreeSet::new();
    let before = examples.len();
    examples.retain(|e| {
        seen.insert((
            e.field(field).unwrap_or_default().to_string(),
            e.label.clone(),
        ))
    });
    before - examples.len()
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
