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
//! - [`sample`]: seeded, stratified sampling to a budget — the one place it happens.
//! - [`metrics`]: accuracy, P@1, P@10, MRR.

pub mod generic;
pub mod hub;
pub mod lama;
pub mod metrics;
pub mod sample;
pub mod sick;
pub mod sst2;
pub mod table;

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
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

/// Where a table task's rows come from (resolved from the flat `[task]` keys by
/// [`TaskSpec::table_source`]).
#[derive(Debug, Clone, PartialEq, Eq)]
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
        splits: SplitNames,
    },
    /// `hub` (+ `config`, `revision`): a Hugging Face dataset repository.
    Hub {
        id: String,
        config: Option<String>,
        revision: String,
        splits: SplitNames,
    },
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
    /// Classification, the few-shot protocol (Gao et al., 2021, LM-BFF): draw exactly this
    /// many training examples of each class, and a dev set of the same size and balance from
    /// the training pool (never the task's own dev pool). `train_size` and `dev_size` must
    /// both be `per_class` × the number of classes (checked when the data is read).
    /// Default: unset (sizes as given, proportional unless `balance`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_class: Option<NonZeroUsize>,
    /// The seed of the data split: which training and dev examples are drawn. Default: unset,
    /// the cell's `seed` draws them. Set (the few-shot protocol's `"task.data_seed" = [13,
    /// 21, 42, 87, 100]` grid axis), splits are crossed with search seeds and the report
    /// separates the two sources of variance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_seed: Option<u64>,
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
    /// `lama` and `fact_probe`: `lama` (LAMA's evaluation protocol) or `strict`. Filled in by
    /// [`TaskSpec::normalize`], so it is part of those cells' ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranking: Option<Ranking>,
    /// What reports call the task (table kinds; default: the file stem or the hub id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Table kinds: the training pool's file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<PathBuf>,
    /// Table kinds: the dev pool's file (default: dev is drawn from the training pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<PathBuf>,
    /// Table kinds: the evaluation split's file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<PathBuf>,
    /// Table kinds: one file holding every split (with `split_column`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// With `file`: the column naming each row's split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_column: Option<String>,
    /// With `file` or `hub`: split names (default train = "train", test = "test", no dev).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub splits: Option<SplitNames>,
    /// Table kinds: a Hugging Face dataset repository, `owner/name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
    /// With `hub`: the dataset configuration (subset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// With `hub`: a branch, tag or commit (default `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Table kinds: `csv`, `tsv`, `jsonl`, `json` or `parquet` (default: by extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<TableFormat>,
    /// CSV and TSV files: the field separator, one ASCII character such as `";"` or `"\t"`
    /// (default `,` for CSV, a tab for TSV). CSV quoting (`"`) applies whatever the separator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<char>,
    /// Classification: the label column (default `label`); strings or integers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Classification: the classes to keep, in order (strings or integers); rows with other
    /// labels are dropped and counted. Default: every label of the training pool.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "label_names"
    )]
    pub labels: Option<Vec<String>>,
    /// Fact probes: the subject column (default `sub_label`, as in LAMA's files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Fact probes: the object column (default `obj_label`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Fact probes: the candidate answers, one word per line (default: the model's whole
    /// vocabulary). Facts whose object is not a candidate are dropped and counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab: Option<PathBuf>,
}

/// `labels = ["neg", "pos"]` or `labels = [1, 5]`: class names as strings.
fn label_names<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Name {
        Text(String),
        Integer(i64),
    }
    let names: Vec<Name> = Vec::deserialize(d)?;
    Ok(Some(
        names
            .into_iter()
            .map(|n| match n {
                Name::Text(s) => s,
                Name::Integer(i) => i.to_string(),
            })
            .collect(),
    ))
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl TaskSpec {
    /// A spec of `kind` with this budget and every option at its default.
    pub fn new(kind: TaskKind, train_size: NonZeroUsize, dev_size: NonZeroUsize) -> Self {
        Self {
            kind,
            train_size,
            dev_size,
            test_size: None,
            balance: false,
            per_class: None,
            data_seed: None,
            variant: None,
            relation: None,
            at_most: false,
            perturbed: false,
            malformed_rows: MalformedRows::Error,
            ranking: None,
            name: None,
            train: None,
            dev: None,
            test: None,
            file: None,
            split_column: None,
            splits: None,
            hub: None,
            config: None,
            revision: None,
            format: None,
            delimiter: None,
            label: None,
            labels: None,
            subject: None,
            object: None,
            vocab: None,
        }
    }

    /// Fills in defaults that depend on the kind (LAMA's ranking protocol for `lama` and
    /// `fact_probe`), so that they are part of the cell's id.
    pub fn normalize(&mut self) {
        if matches!(self.kind, TaskKind::Lama | TaskKind::FactProbe) && self.ranking.is_none() {
            self.ranking = Some(Ranking::Lama);
        }
    }

    /// The ranking protocol of the task's metrics (`strict` where there is no choice).
    pub fn ranking(&self) -> Ranking {
        self.ranking.unwrap_or(match self.kind {
            TaskKind::Lama | TaskKind::FactProbe => Ranking::Lama,
            _ => Ranking::Strict,
        })
    }

    /// Checks the combinations serde cannot.
    pub fn validate(&self) -> Result<(), InvalidKey> {
        let err = |key: &str, message: &str| {
            Err(InvalidKey::new(format!("task.{key}"), message.to_string()))
        };
        let needs_relation = matches!(self.kind, TaskKind::Lama | TaskKind::RelationExtraction);
        if needs_relation && self.relation.is_none() {
            return err(
                "relation",
                "required for lama and relation_extraction, e.g. \"P19\"",
            );
        }
        if !needs_relation && self.relation.is_some() {
            return err(
                "relation",
                "only lama and relation_extraction take a relation",
            );
        }
        if self.variant.is_some() && self.kind != TaskKind::SickE {
            return err("variant", "only sick_e has variants");
        }
        if self.per_class.is_some() && !self.is_classification() {
            return err(
                "per_class",
                "only classification tasks (sst2, sick_e, classification) draw examples per class",
            );
        }
        if self.at_most && !(needs_relation || self.kind == TaskKind::FactProbe) {
            return err(
                "at_most",
                "only lama, relation_extraction and fact_probe take budgets as upper bounds (classification budgets are exact)",
            );
        }
        if self.ranking.is_some() && !matches!(self.kind, TaskKind::Lama | TaskKind::FactProbe) {
            return err(
                "ranking",
                "only lama and fact_probe choose a ranking protocol",
            );
        }
        if self.perturbed && self.kind != TaskKind::RelationExtraction {
            return err("perturbed", "only relation_extraction can be perturbed");
        }
        if let Some(c) = self.delimiter
            && (!c.is_ascii() || matches!(c, '"' | '\n' | '\r'))
        {
            return err(
                "delimiter",
                "must be one ASCII character other than a quote or a line break, e.g. \";\" or \"\\t\"",
            );
        }
        if let Some(rel) = &self.relation {
            let ok = rel.len() > 1
                && rel.starts_with('P')
                && rel[1..].chars().all(|c| c.is_ascii_digit());
            if !ok {
                return err(
                    "relation",
                    &format!("`{rel}` is not a relation id like \"P19\""),
                );
            }
        }
        self.validate_table_keys()?;
        if self.kind.reads_table() {
            self.table_source()?;
        }
        Ok(())
    }

    /// Keys of the table kinds: only they take them, and each only where it means something.
    fn validate_table_keys(&self) -> Result<(), InvalidKey> {
        let given = |key: &'static str, present: bool| present.then_some(key);
        let table_keys = [
            given("name", self.name.is_some()),
            given("train", self.train.is_some()),
            given("dev", self.dev.is_some()),
            given("test", self.test.is_some()),
            given("file", self.file.is_some()),
            given("split_column", self.split_column.is_some()),
            given("splits", self.splits.is_some()),
            given("hub", self.hub.is_some()),
            given("config", self.config.is_some()),
            given("revision", self.revision.is_some()),
            given("format", self.format.is_some()),
            given("delimiter", self.delimiter.is_some()),
        ];
        let classification_keys = [
            given("label", self.label.is_some()),
            given("labels", self.labels.is_some()),
        ];
        let fact_keys = [
            given("subject", self.subject.is_some()),
            given("object", self.object.is_some()),
            given("vocab", self.vocab.is_some()),
        ];
        let reject = |keys: &[Option<&'static str>], who: &str| match keys.iter().flatten().next() {
            Some(key) => Err(InvalidKey::new(
                format!("task.{key}"),
                format!(
                    "only {who} take{} this key (task.kind is `{}`)",
                    if who.contains(" and ") { "" } else { "s" },
                    self.kind.name()
                ),
            )),
            None => Ok(()),
        };
        if !self.kind.reads_table() {
            reject(&table_keys, "classification and fact_probe")?;
        }
        if self.kind != TaskKind::Classification {
            reject(&classification_keys, "classification")?;
        }
        if self.kind != TaskKind::FactProbe {
            reject(&fact_keys, "fact_probe")?;
        }
        if let Some(name) = &self.name
            && name.trim().is_empty()
        {
            return Err(InvalidKey::new(
                "task.name".into(),
                "must not be empty".into(),
            ));
        }
        if let Some(labels) = &self.labels {
            if labels.is_empty() {
                return Err(InvalidKey::new(
                    "task.labels".into(),
                    "list at least one class".into(),
                ));
            }
            let mut seen = BTreeMap::new();
            for l in labels {
                if seen.insert(l, ()).is_some() {
                    return Err(InvalidKey::new(
                        "task.labels".into(),
                        format!("`{l}` is listed twice"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Where a table task's rows come from: exactly one of `train` + `test` (+ `dev`),
    /// `file` + `split_column`, or `hub`.
    pub fn table_source(&self) -> Result<TableSource, InvalidKey> {
        let err = |key: &str, message: String| Err(InvalidKey::new(format!("task.{key}"), message));
        let files = self.train.is_some() || self.test.is_some() || self.dev.is_some();
        match (files, &self.file, &self.hub) {
            (true, Some(_), _) => err(
                "file",
                "give either `file` (one file with a split column) or `train`/`dev`/`test` files, not both".into(),
            ),
            (true, _, Some(_)) => err(
                "hub",
                "give either `hub` or `train`/`dev`/`test` files, not both".into(),
            ),
            (false, Some(_), Some(_)) => err("hub", "give either `hub` or `file`, not both".into()),
            (false, None, None) => err(
                "kind",
                format!(
                    "{} needs its data: `train` and `test` files (optionally `dev`), one `file` with a `split_column`, or a `hub` dataset",
                    self.kind.name()
                ),
            ),
            (true, None, None) => {
                for (key, present) in [("split_column", self.split_column.is_some()), ("splits", self.splits.is_some()), ("config", self.config.is_some()), ("revision", self.revision.is_some())] {
                    if present {
                        return err(key, "only `file` or `hub` sources take this key".into());
                    }
                }
                let (Some(train), Some(test)) = (&self.train, &self.test) else {
                    let missing = if self.train.is_none() { "train" } else { "test" };
                    return err(missing, format!("required with separate split files (the {} split's file)", if missing == "train" { "training" } else { "evaluation" }));
                };
                Ok(TableSource::Files {
                    train: train.clone(),
                    dev: self.dev.clone(),
                    test: test.clone(),
                })
            }
            (false, Some(file), None) => {
                for (key, present) in [("config", self.config.is_some()), ("revision", self.revision.is_some())] {
                    if present {
                        return err(key, "only `hub` sources take this key".into());
                    }
                }
                let Some(split_column) = &self.split_column else {
                    return err("split_column", "required with `file`: the column naming each row's split".into());
                };
                Ok(TableSource::OneFile {
                    file: file.clone(),
                    split_column: split_column.clone(),
                    splits: self.splits.clone().unwrap_or_default(),
                })
            }
            (false, None, Some(id)) => {
                if self.split_column.is_some() {
                    return err("split_column", "a hub dataset's splits are its files; use `splits` to name them".into());
                }
                let valid = id.split('/').count() == 2 && id.split('/').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
                if !valid {
                    return err("hub", format!("`{id}` is not a dataset id like \"owner/name\""));
                }
                Ok(TableSource::Hub {
                    id: id.clone(),
                    config: self.config.clone(),
                    revision: self.revision.clone().unwrap_or_else(|| "main".into()),
                    splits: self.splits.clone().unwrap_or_default(),
                })
            }
        }
    }

    /// Field names the paper's tasks give their examples (what templates may reference).
    /// Table kinds have their files' columns instead, checked when the data is read.
    pub fn fields(&self) -> &'static [&'static str] {
        match self.kind {
            TaskKind::Sst2 => &["sentence"],
            TaskKind::SickE => &["sentence_A", "sentence_B"],
            TaskKind::Lama => &["sub_label"],
            TaskKind::RelationExtraction => &["sub_label", "context"],
            TaskKind::Classification | TaskKind::FactProbe => &[],
        }
    }

    /// Classification tasks have a fixed label set; fact retrieval predicts any token.
    pub fn is_classification(&self) -> bool {
        matches!(
            self.kind,
            TaskKind::Sst2 | TaskKind::SickE | TaskKind::Classification
        )
    }

    /// The label column of a classification table (`label` unless `task.label` says).
    pub fn label_column(&self) -> &str {
        self.label.as_deref().unwrap_or("label")
    }

    /// The subject column of a fact table (`sub_label` unless `task.subject` says).
    pub fn subject_column(&self) -> &str {
        self.subject.as_deref().unwrap_or("sub_label")
    }

    /// The object column of a fact table (`obj_label` unless `task.object` says).
    pub fn object_column(&self) -> &str {
        self.object.as_deref().unwrap_or("obj_label")
    }

    /// What reports call the task: `task.name`; else, for a table kind, the hub id or the
    /// file's stem (the parent directory's name when the train file is just `train.*`);
    /// else the kind as written (`sst2`, `sick_e`, ...).
    pub fn display_name(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        let stem = |p: &Path| p.file_stem().map(|s| s.to_string_lossy().into_owned());
        match self.table_source() {
            Ok(TableSource::Hub { id, .. }) => id,
            Ok(TableSource::OneFile { file, .. }) => stem(&file).unwrap_or_default(),
            Ok(TableSource::Files { train, .. }) => {
                let own = stem(&train).unwrap_or_default();
                let generic = ["train", "training"].contains(&own.to_ascii_lowercase().as_str());
                match train.parent().and_then(|d| d.file_name()) {
                    Some(dir) if generic => dir.to_string_lossy().into_owned(),
                    _ => own,
                }
            }
            Err(_) => self.kind.name().to_string(),
        }
    }

    /// Whether the task brings its own manual template (LAMA relations do).
    pub fn has_builtin_template(&self) -> bool {
        matches!(self.kind, TaskKind::Lama | TaskKind::RelationExtraction)
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
    let seed = spec.data_seed.unwrap_or(seed);
    match spec.kind {
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
