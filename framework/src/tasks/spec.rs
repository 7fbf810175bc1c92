//! The `[task]` table: one variant per kind, each holding only the keys its kind takes.
//!
//! Deserialised by hand (as `config::MethodSpec`) so that an error keeps its key path, a key
//! of another kind names the kinds that take it, and everything a kind's keys must satisfy
//! together (a relation id's form, a table's one source, a delimiter, a class list) is
//! checked once, here: a `TaskSpec` that exists is valid. Serialised through [`Wire`], the
//! flat layout experiment files and records have always had, so a cell's canonical JSON (and
//! its id) does not depend on how the types are arranged.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{MalformedRows, Ranking, SickVariant, SplitNames, TableFormat, TableSource, TaskKind};
use crate::errors::NESTED_PATH;

/// The data budget every kind takes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub struct Budget {
    /// Number of training examples (the data budget).
    pub train_size: NonZeroUsize,
    /// Number of development examples, used for prompt selection.
    pub dev_size: NonZeroUsize,
    /// Cap on evaluation examples (a fixed, seed-independent subsample); default: all.
    #[serde(default)]
    pub test_size: Option<NonZeroUsize>,
    /// Sample classes equally instead of proportionally. Default false.
    #[serde(default)]
    pub balance: bool,
    /// The seed of the data split: which training and dev examples are drawn. Default: unset,
    /// the cell's `seed` draws them. Set (the few-shot protocol's `"task.data_seed" = [13,
    /// 21, 42, 87, 100]` grid axis), splits are crossed with search seeds and the report
    /// separates the two sources of variance.
    #[serde(default)]
    pub data_seed: Option<u64>,
    /// `error` (default) or `skip`.
    #[serde(default)]
    pub malformed_rows: MalformedRows,
}

impl Budget {
    /// `train_size` and `dev_size` examples, every other key at its default.
    pub fn new(train_size: NonZeroUsize, dev_size: NonZeroUsize) -> Self {
        Self {
            train_size,
            dev_size,
            test_size: None,
            balance: false,
            data_seed: None,
            malformed_rows: MalformedRows::Error,
        }
    }
}

/// A T-REx relation id such as `P19` (checked when read).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Relation(String);

impl Relation {
    pub fn parse(id: &str) -> Result<Self, String> {
        let ok = id.len() > 1 && id.starts_with('P') && id[1..].chars().all(|c| c.is_ascii_digit());
        if ok {
            Ok(Self(id.to_string()))
        } else {
            Err(format!("`{id}` is not a relation id like \"P19\""))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Relation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Relation::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A CSV / TSV field separator: one ASCII character other than a quote or a line break.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Delimiter(char);

impl Delimiter {
    pub fn parse(c: char) -> Result<Self, String> {
        if !c.is_ascii() || matches!(c, '"' | '\n' | '\r') {
            return Err("must be one ASCII character other than a quote or a line break, e.g. \";\" or \"\\t\"".into());
        }
        Ok(Self(c))
    }

    /// The separator as the byte the table reader splits on.
    pub fn byte(self) -> u8 {
        self.0 as u8
    }
}

impl<'de> Deserialize<'de> for Delimiter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Delimiter::parse(char::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// SST-2 sentiment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sst2Task {
    pub budget: Budget,
    /// The few-shot protocol (Gao et al., 2021, LM-BFF): draw exactly this many training
    /// examples of each class, and a dev set of the same size and balance from the training
    /// pool (never the task's own dev pool). `train_size` and `dev_size` must both be
    /// `per_class` × the number of classes (checked when the data is read). Default: unset
    /// (sizes as given, proportional unless `balance`). The same in every classification kind.
    pub per_class: Option<NonZeroUsize>,
}

/// SICK-E entailment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SickTask {
    pub budget: Budget,
    pub per_class: Option<NonZeroUsize>,
    /// `standard` (default), `balanced3` or `two_way` (kept as written: an explicit
    /// `standard` is part of the cell id).
    pub variant: Option<SickVariant>,
}

impl SickTask {
    pub fn variant(&self) -> SickVariant {
        self.variant.unwrap_or(SickVariant::Standard)
    }
}

/// LAMA fact retrieval on one T-REx relation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LamaTask {
    pub budget: Budget,
    pub relation: Relation,
    /// `train_size` and `dev_size` are upper bounds, and a relation with fewer facts uses all
    /// it has (the paper's "at most 1000 facts per relation"); the record's counts say how
    /// many were used. Default false: too few facts is an error. The same in relation
    /// extraction and fact probes.
    pub at_most: bool,
    /// LAMA's evaluation protocol (default) or `strict`; always written, so part of the id.
    pub ranking: Ranking,
}

/// Relation extraction on one T-REx relation (the context sentence given).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelationTask {
    pub budget: Budget,
    pub relation: Relation,
    pub at_most: bool,
    /// Replace the object in the context sentence by another object of the relation (the
    /// paper's perturbed setting). Default false.
    pub perturbed: bool,
}

/// Where a table kind's rows come from and how its files are read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableTask {
    /// What reports call the task (default: the file stem or the hub id); not empty.
    pub name: Option<String>,
    /// Exactly one of `train` + `test` (+ `dev`), `file` + `split_column`, or `hub`.
    pub source: TableSource,
    /// `csv`, `tsv`, `jsonl`, `json` or `parquet` (default: by extension).
    pub format: Option<TableFormat>,
    /// CSV and TSV files: the field separator (default `,` for CSV, a tab for TSV). CSV
    /// quoting (`"`) applies whatever the separator.
    pub delimiter: Option<Delimiter>,
}

/// Any labelled table: text columns → one of a fixed set of labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClassificationTask {
    pub budget: Budget,
    pub per_class: Option<NonZeroUsize>,
    pub table: TableTask,
    /// The label column (default `label`); strings or integers.
    pub label: Option<String>,
    /// The classes to keep, in order (at least one, none twice); rows with other labels are
    /// dropped and counted. Default: every label of the training pool.
    pub labels: Option<Vec<String>>,
}

impl ClassificationTask {
    /// The label column (`label` unless `task.label` says).
    pub fn label_column(&self) -> &str {
        self.label.as_deref().unwrap_or("label")
    }
}

/// Any subject → object table, probed like LAMA.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FactProbeTask {
    pub budget: Budget,
    pub at_most: bool,
    pub ranking: Ranking,
    pub table: TableTask,
    /// The subject column (default `sub_label`, as in LAMA's files).
    pub subject: Option<String>,
    /// The object column (default `obj_label`).
    pub object: Option<String>,
    /// The candidate answers, one word per line (default: the model's whole vocabulary).
    /// Facts whose object is not a candidate are dropped and counted.
    pub vocab: Option<PathBuf>,
}

impl FactProbeTask {
    /// The subject column (`sub_label` unless `task.subject` says).
    pub fn subject_column(&self) -> &str {
        self.subject.as_deref().unwrap_or("sub_label")
    }

    /// The object column (`obj_label` unless `task.object` says).
    pub fn object_column(&self) -> &str {
        self.object.as_deref().unwrap_or("obj_label")
    }
}

/// The task of a cell and its data budget (the `[task]` table of an experiment), tagged by
/// `kind`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskSpec {
    Sst2(Sst2Task),
    SickE(SickTask),
    Lama(LamaTask),
    RelationExtraction(RelationTask),
    Classification(ClassificationTask),
    FactProbe(FactProbeTask),
}

impl TaskSpec {
    pub fn kind(&self) -> TaskKind {
        match self {
            TaskSpec::Sst2(_) => TaskKind::Sst2,
            TaskSpec::SickE(_) => TaskKind::SickE,
            TaskSpec::Lama(_) => TaskKind::Lama,
            TaskSpec::RelationExtraction(_) => TaskKind::RelationExtraction,
            TaskSpec::Classification(_) => TaskKind::Classification,
            TaskSpec::FactProbe(_) => TaskKind::FactProbe,
        }
    }

    pub fn budget(&self) -> &Budget {
        match self {
            TaskSpec::Sst2(t) => &t.budget,
            TaskSpec::SickE(t) => &t.budget,
            TaskSpec::Lama(t) => &t.budget,
            TaskSpec::RelationExtraction(t) => &t.budget,
            TaskSpec::Classification(t) => &t.budget,
            TaskSpec::FactProbe(t) => &t.budget,
        }
    }

    pub fn budget_mut(&mut self) -> &mut Budget {
        match self {
            TaskSpec::Sst2(t) => &mut t.budget,
            TaskSpec::SickE(t) => &mut t.budget,
            TaskSpec::Lama(t) => &mut t.budget,
            TaskSpec::RelationExtraction(t) => &mut t.budget,
            TaskSpec::Classification(t) => &mut t.budget,
            TaskSpec::FactProbe(t) => &mut t.budget,
        }
    }

    /// The few-shot protocol's examples per class (classification kinds).
    pub fn per_class(&self) -> Option<NonZeroUsize> {
        match self {
            TaskSpec::Sst2(t) => t.per_class,
            TaskSpec::SickE(t) => t.per_class,
            TaskSpec::Classification(t) => t.per_class,
            _ => None,
        }
    }

    /// Whether the budget's sizes are upper bounds (fact kinds with `at_most`).
    pub fn at_most(&self) -> bool {
        match self {
            TaskSpec::Lama(t) => t.at_most,
            TaskSpec::RelationExtraction(t) => t.at_most,
            TaskSpec::FactProbe(t) => t.at_most,
            _ => false,
        }
    }

    /// The T-REx relation of `lama` and `relation_extraction`.
    pub fn relation(&self) -> Option<&str> {
        match self {
            TaskSpec::Lama(t) => Some(t.relation.as_str()),
            TaskSpec::RelationExtraction(t) => Some(t.relation.as_str()),
            _ => None,
        }
    }

    /// SICK-E's variant as written (`None`: not given).
    pub fn variant(&self) -> Option<SickVariant> {
        match self {
            TaskSpec::SickE(t) => t.variant,
            _ => None,
        }
    }

    /// Relation extraction's perturbed setting.
    pub fn perturbed(&self) -> bool {
        matches!(self, TaskSpec::RelationExtraction(t) if t.perturbed)
    }

    /// The table a `classification` or `fact_probe` task reads.
    pub fn table(&self) -> Option<&TableTask> {
        match self {
            TaskSpec::Classification(t) => Some(&t.table),
            TaskSpec::FactProbe(t) => Some(&t.table),
            _ => None,
        }
    }

    /// The ranking protocol of the task's metrics (`strict` where there is no choice).
    pub fn ranking(&self) -> Ranking {
        match self {
            TaskSpec::Lama(t) => t.ranking,
            TaskSpec::FactProbe(t) => t.ranking,
            _ => Ranking::Strict,
        }
    }

    /// Field names the paper's tasks give their examples (what templates may reference).
    /// Table kinds have their files' columns instead, checked when the data is read.
    pub fn fields(&self) -> &'static [&'static str] {
        match self.kind() {
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
            self,
            TaskSpec::Sst2(_) | TaskSpec::SickE(_) | TaskSpec::Classification(_)
        )
    }

    /// What reports call the task: `task.name`; else, for a table kind, the hub id or the
    /// file's stem (the parent directory's name when the train file is just `train.*`);
    /// else the kind as written (`sst2`, `sick_e`, ...).
    pub fn display_name(&self) -> String {
        let Some(table) = self.table() else {
            return self.kind().name().to_string();
        };
        if let Some(name) = &table.name {
            return name.clone();
        }
        let stem = |p: &Path| p.file_stem().map(|s| s.to_string_lossy().into_owned());
        match &table.source {
            TableSource::Hub { id, .. } => id.clone(),
            TableSource::OneFile { file, .. } => stem(file).unwrap_or_default(),
            TableSource::Files { train, .. } => {
                let own = stem(train).unwrap_or_default();
                let generic = ["train", "training"].contains(&own.to_ascii_lowercase().as_str());
                match train.parent().and_then(|d| d.file_name()) {
                    Some(dir) if generic => dir.to_string_lossy().into_owned(),
                    _ => own,
                }
            }
        }
    }

    /// Whether the task brings its own manual template (LAMA relations do).
    pub fn has_builtin_template(&self) -> bool {
        matches!(self, TaskSpec::Lama(_) | TaskSpec::RelationExtraction(_))
    }
}

// ---------------------------------------------------------------------------------------
// Serialisation: the flat layout, keys in this order, each left out where it always was.

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// A task as experiment files write it and cell ids hash it: every kind's keys in one
/// table, in this order, with these rules for leaving a key out. Changing it changes ids
/// (`cell_ids::every_shipped_experiment_keeps_its_cell_ids`).
#[derive(Serialize, Default)]
struct Wire<'a> {
    kind: Option<TaskKind>,
    train_size: usize,
    dev_size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    test_size: Option<NonZeroUsize>,
    balance: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    per_class: Option<NonZeroUsize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<SickVariant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    relation: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    at_most: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    perturbed: bool,
    #[serde(skip_serializing_if = "is_default")]
    malformed_rows: MalformedRows,
    #[serde(skip_serializing_if = "Option::is_none")]
    ranking: Option<Ranking>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    train: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dev: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    test: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    split_column: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    splits: Option<&'a SplitNames>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<TableFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delimiter: Option<Delimiter>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vocab: Option<&'a Path>,
}

impl<'a> Wire<'a> {
    fn of(spec: &'a TaskSpec) -> Self {
        let b = spec.budget();
        let mut w = Wire {
            kind: Some(spec.kind()),
            train_size: b.train_size.get(),
            dev_size: b.dev_size.get(),
            test_size: b.test_size,
            balance: b.balance,
            per_class: spec.per_class(),
            data_seed: b.data_seed,
            variant: spec.variant(),
            relation: spec.relation(),
            at_most: spec.at_most(),
            perturbed: spec.perturbed(),
            malformed_rows: b.malformed_rows,
            ..Wire::default()
        };
        match spec {
            TaskSpec::Lama(t) => w.ranking = Some(t.ranking),
            TaskSpec::Classification(t) => {
                w.table(&t.table);
                w.label = t.label.as_deref();
                w.labels = t.labels.as_deref();
            }
            TaskSpec::FactProbe(t) => {
                w.ranking = Some(t.ranking);
                w.table(&t.table);
                w.subject = t.subject.as_deref();
                w.object = t.object.as_deref();
                w.vocab = t.vocab.as_deref();
            }
            TaskSpec::Sst2(_) | TaskSpec::SickE(_) | TaskSpec::RelationExtraction(_) => {}
        }
        w
    }

    fn table(&mut self, table: &'a TableTask) {
        self.name = table.name.as_deref();
        match &table.source {
            TableSource::Files { train, dev, test } => {
                self.train = Some(train);
                self.dev = dev.as_deref();
                self.test = Some(test);
            }
            TableSource::OneFile {
                file,
                split_column,
                splits,
            } => {
                self.file = Some(file);
                self.split_column = Some(split_column);
                self.splits = splits.as_ref();
            }
            TableSource::Hub {
                id,
                config,
                revision,
                splits,
            } => {
                self.hub = Some(id);
                self.config = config.as_deref();
                self.revision = revision.as_deref();
                self.splits = splits.as_ref();
            }
        }
        self.format = table.format;
        self.delimiter = table.delimiter;
    }
}

impl Serialize for TaskSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Wire::of(self).serialize(serializer)
    }
}

// ---------------------------------------------------------------------------------------
// Deserialisation: by hand, by kind.

/// The budget's keys, which every kind takes.
const BUDGET_KEYS: [&str; 6] = [
    "train_size",
    "dev_size",
    "test_size",
    "balance",
    "data_seed",
    "malformed_rows",
];

/// Where a table task's rows come from and how they are read.
const TABLE_KEYS: [&str; 12] = [
    "name",
    "train",
    "dev",
    "test",
    "file",
    "split_column",
    "splits",
    "hub",
    "config",
    "revision",
    "format",
    "delimiter",
];

/// The keys `kind` takes besides the budget's.
fn own_keys(kind: TaskKind) -> Vec<&'static str> {
    let table = TABLE_KEYS.as_slice();
    let parts: [&[&'static str]; 2] = match kind {
        TaskKind::Sst2 => [&["per_class"], &[]],
        TaskKind::SickE => [&["per_class", "variant"], &[]],
        TaskKind::Lama => [&["relation", "at_most", "ranking"], &[]],
        TaskKind::RelationExtraction => [&["relation", "at_most", "perturbed"], &[]],
        TaskKind::Classification => [&["per_class", "label", "labels"], table],
        TaskKind::FactProbe => [&["at_most", "ranking", "subject", "object", "vocab"], table],
    };
    parts.concat()
}

const KINDS: [TaskKind; 6] = [
    TaskKind::Sst2,
    TaskKind::SickE,
    TaskKind::Lama,
    TaskKind::RelationExtraction,
    TaskKind::Classification,
    TaskKind::FactProbe,
];

/// Why a `[task]` table does not make a task: a key inside it (empty: the table itself).
struct KeyError {
    key: String,
    message: String,
}

fn key_error(key: &str, message: impl Into<String>) -> KeyError {
    KeyError {
        key: key.to_string(),
        message: message.into(),
    }
}

/// Checks every key of `map` against the kind's: a key of other kinds names them, any other
/// key lists the kind's own (as serde's unknown-field error does).
fn check_keys(kind: TaskKind, map: &mut Map<String, Value>) -> Result<(), KeyError> {
    let own = own_keys(kind);
    let takes = |k: TaskKind, key: &str| BUDGET_KEYS.contains(&key) || own_keys(k).contains(&key);
    // `at_most = false` and `perturbed = false` say what every other kind does anyway.
    for key in ["at_most", "perturbed"] {
        if !own.contains(&key) && map.get(key) == Some(&Value::Bool(false)) {
            map.remove(key);
        }
    }
    for key in map.keys() {
        if takes(kind, key) {
            continue;
        }
        let takers: Vec<&str> = KINDS
            .into_iter()
            .filter(|&k| takes(k, key))
            .map(TaskKind::name)
            .collect();
        let message = match takers.as_slice() {
            [] => {
                let expected: Vec<String> = BUDGET_KEYS
                    .iter()
                    .chain(&own)
                    .map(|k| format!("`{k}`"))
                    .collect();
                format!(
                    "unknown field `{key}`, expected one of `kind`, {}",
                    expected.join(", ")
                )
            }
            [one] => format!("only {one} takes this key (task.kind is `{}`)", kind.name()),
            [first @ .., last] => format!(
                "only {} and {last} take this key (task.kind is `{}`){}",
                first.join(", "),
                kind.name(),
                if key == "at_most" {
                    "; classification budgets are exact"
                } else {
                    ""
                }
            ),
        };
        return Err(key_error(key, message));
    }
    Ok(())
}

/// Deserialises `T` from the task's keys (it ignores those it does not name), an error
/// keeping its path.
fn fields<T: serde::de::DeserializeOwned>(map: &Map<String, Value>) -> Result<T, KeyError> {
    serde_path_to_error::deserialize(Value::Object(map.clone())).map_err(|e| {
        let path = e.path().to_string();
        KeyError {
            key: if path == "." { String::new() } else { path },
            message: e.inner().to_string(),
        }
    })
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

#[derive(Deserialize)]
struct PerClass {
    per_class: Option<NonZeroUsize>,
}

#[derive(Deserialize)]
struct SickFields {
    variant: Option<SickVariant>,
}

#[derive(Deserialize)]
struct FactFields {
    relation: Option<Relation>,
    #[serde(default)]
    at_most: bool,
    #[serde(default)]
    perturbed: bool,
    ranking: Option<Ranking>,
}

#[derive(Deserialize)]
struct TableFields {
    name: Option<String>,
    train: Option<PathBuf>,
    dev: Option<PathBuf>,
    test: Option<PathBuf>,
    file: Option<PathBuf>,
    split_column: Option<String>,
    splits: Option<SplitNames>,
    hub: Option<String>,
    config: Option<String>,
    revision: Option<String>,
    format: Option<TableFormat>,
    delimiter: Option<Delimiter>,
}

#[derive(Deserialize)]
struct ClassificationFields {
    label: Option<String>,
    #[serde(default, deserialize_with = "label_names")]
    labels: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct FactProbeFields {
    subject: Option<String>,
    object: Option<String>,
    vocab: Option<PathBuf>,
}

impl FactFields {
    fn relation(self) -> Result<(Relation, Self), KeyError> {
        match self.relation.clone() {
            Some(r) => Ok((r, self)),
            None => Err(key_error(
                "relation",
                "required for lama and relation_extraction, e.g. \"P19\"",
            )),
        }
    }
}

impl TableFields {
    /// The table's one source: `train` + `test` (+ `dev`), `file` + `split_column`, or
    /// `hub`, each with only the keys it takes.
    fn parse(self, kind: TaskKind) -> Result<TableTask, KeyError> {
        let err = |key: &str, message: &str| Err(key_error(key, message));
        if let Some(name) = &self.name
            && name.trim().is_empty()
        {
            return err("name", "must not be empty");
        }
        let files = self.train.is_some() || self.test.is_some() || self.dev.is_some();
        let source = match (files, self.file, self.hub) {
            (true, Some(_), _) => {
                return err(
                    "file",
                    "give either `file` (one file with a split column) or `train`/`dev`/`test` files, not both",
                );
            }
            (true, _, Some(_)) => {
                return err(
                    "hub",
                    "give either `hub` or `train`/`dev`/`test` files, not both",
                );
            }
            (false, Some(_), Some(_)) => {
                return err("hub", "give either `hub` or `file`, not both");
            }
            (false, None, None) => {
                return Err(key_error(
                    "kind",
                    format!(
                        "{} needs its data: `train` and `test` files (optionally `dev`), one `file` with a `split_column`, or a `hub` dataset",
                        kind.name()
                    ),
                ));
            }
            (true, None, None) => {
                for (key, present) in [
                    ("split_column", self.split_column.is_some()),
                    ("splits", self.splits.is_some()),
                    ("config", self.config.is_some()),
                    ("revision", self.revision.is_some()),
                ] {
                    if present {
                        return err(key, "only `file` or `hub` sources take this key");
                    }
                }
                match (self.train, self.test) {
                    (Some(train), Some(test)) => TableSource::Files {
                        train,
                        dev: self.dev,
                        test,
                    },
                    (None, _) => {
                        return err(
                            "train",
                            "required with separate split files (the training split's file)",
                        );
                    }
                    (_, None) => {
                        return err(
                            "test",
                            "required with separate split files (the evaluation split's file)",
                        );
                    }
                }
            }
            (false, Some(file), None) => {
                for (key, present) in [
                    ("config", self.config.is_some()),
                    ("revision", self.revision.is_some()),
                ] {
                    if present {
                        return err(key, "only `hub` sources take this key");
                    }
                }
                let Some(split_column) = self.split_column else {
                    return err(
                        "split_column",
                        "required with `file`: the column naming each row's split",
                    );
                };
                TableSource::OneFile {
                    file,
                    split_column,
                    splits: self.splits,
                }
            }
            (false, None, Some(id)) => {
                if self.split_column.is_some() {
                    return err(
                        "split_column",
                        "a hub dataset's splits are its files; use `splits` to name them",
                    );
                }
                let valid = id.split('/').count() == 2
                    && id.split('/').all(|p| {
                        !p.is_empty()
                            && p.chars()
                                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                    });
                if !valid {
                    return Err(key_error(
                        "hub",
                        format!("`{id}` is not a dataset id like \"owner/name\""),
                    ));
                }
                TableSource::Hub {
                    id,
                    config: self.config,
                    revision: self.revision,
                    splits: self.splits,
                }
            }
        };
        Ok(TableTask {
            name: self.name,
            source,
            format: self.format,
            delimiter: self.delimiter,
        })
    }
}

/// At least one class, none twice.
fn check_labels(labels: &Option<Vec<String>>) -> Result<(), KeyError> {
    let Some(labels) = labels else {
        return Ok(());
    };
    if labels.is_empty() {
        return Err(key_error("labels", "list at least one class"));
    }
    let mut seen = std::collections::BTreeSet::new();
    match labels.iter().find(|l| !seen.insert(*l)) {
        Some(l) => Err(key_error("labels", format!("`{l}` is listed twice"))),
        None => Ok(()),
    }
}

/// The task a `[task]` table (without `kind`) describes for `kind`.
fn parse(kind: TaskKind, mut map: Map<String, Value>) -> Result<TaskSpec, KeyError> {
    check_keys(kind, &mut map)?;
    let budget: Budget = fields(&map)?;
    let per_class = || fields::<PerClass>(&map).map(|p| p.per_class);
    Ok(match kind {
        TaskKind::Sst2 => TaskSpec::Sst2(Sst2Task {
            budget,
            per_class: per_class()?,
        }),
        TaskKind::SickE => TaskSpec::SickE(SickTask {
            budget,
            per_class: per_class()?,
            variant: fields::<SickFields>(&map)?.variant,
        }),
        TaskKind::Lama => {
            let (relation, f) = fields::<FactFields>(&map)?.relation()?;
            TaskSpec::Lama(LamaTask {
                budget,
                relation,
                at_most: f.at_most,
                ranking: f.ranking.unwrap_or(Ranking::Lama),
            })
        }
        TaskKind::RelationExtraction => {
            let (relation, f) = fields::<FactFields>(&map)?.relation()?;
            TaskSpec::RelationExtraction(RelationTask {
                budget,
                relation,
                at_most: f.at_most,
                perturbed: f.perturbed,
            })
        }
        TaskKind::Classification => {
            let per_class = per_class()?;
            let own: ClassificationFields = fields(&map)?;
            let table = fields::<TableFields>(&map)?.parse(kind)?;
            check_labels(&own.labels)?;
            TaskSpec::Classification(ClassificationTask {
                budget,
                per_class,
                table,
                label: own.label,
                labels: own.labels,
            })
        }
        TaskKind::FactProbe => {
            let f: FactFields = fields(&map)?;
            let own: FactProbeFields = fields(&map)?;
            let table = fields::<TableFields>(&map)?.parse(kind)?;
            TaskSpec::FactProbe(FactProbeTask {
                budget,
                at_most: f.at_most,
                ranking: f.ranking.unwrap_or(Ranking::Lama),
                table,
                subject: own.subject,
                object: own.object,
                vocab: own.vocab,
            })
        }
    })
}

impl<'de> Deserialize<'de> for TaskSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut map = Map::<String, Value>::deserialize(deserializer)?;
        let kind = map
            .remove("kind")
            .ok_or_else(|| D::Error::missing_field("kind"))?;
        let kind: TaskKind = serde_json::from_value(kind.clone()).map_err(|_| {
            let shown = kind
                .as_str()
                .map_or_else(|| kind.to_string(), |s| format!("`{s}`"));
            let names: Vec<String> = KINDS.iter().map(|k| format!("`{}`", k.name())).collect();
            D::Error::custom(format!(
                "{NESTED_PATH}kind{NESTED_PATH}unknown variant {shown}, expected one of {}",
                names.join(", ")
            ))
        })?;
        parse(kind, map).map_err(|e| {
            if e.key.is_empty() {
                D::Error::custom(e.message)
            } else {
                D::Error::custom(format!("{NESTED_PATH}{}{NESTED_PATH}{}", e.key, e.message))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_json(v: Value) -> Result<TaskSpec, String> {
        serde_json::from_value(v).map_err(|e| e.to_string().replace(NESTED_PATH, "|"))
    }

    /// Keys in the flat layout's order, defaults left out as they always were, `ranking`
    /// written for the kinds that choose one.
    #[test]
    fn serialises_to_the_flat_layout() {
        let cases = [
            (
                serde_json::json!({"kind": "sick_e", "variant": "standard", "dev_size": 2, "train_size": 1, "at_most": false, "malformed_rows": "error"}),
                r#"{"kind":"sick_e","train_size":1,"dev_size":2,"balance":false,"variant":"standard"}"#,
            ),
            (
                serde_json::json!({"kind": "lama", "relation": "P19", "train_size": 1, "dev_size": 2, "perturbed": false, "at_most": true}),
                r#"{"kind":"lama","train_size":1,"dev_size":2,"balance":false,"relation":"P19","at_most":true,"ranking":"lama"}"#,
            ),
            (
                serde_json::json!({"kind": "classification", "file": "a.csv", "split_column": "s", "splits": {}, "delimiter": ";", "labels": [1, "b"], "per_class": 2, "data_seed": 3, "train_size": 4, "dev_size": 4, "test_size": 5, "malformed_rows": "skip", "name": "n", "format": "csv"}),
                r#"{"kind":"classification","train_size":4,"dev_size":4,"test_size":5,"balance":false,"per_class":2,"data_seed":3,"malformed_rows":"skip","name":"n","file":"a.csv","split_column":"s","splits":{"train":"train","test":"test"},"format":"csv","delimiter":";","labels":["1","b"]}"#,
            ),
            (
                serde_json::json!({"kind": "fact_probe", "hub": "o/n", "config": "c", "revision": "main", "subject": "s", "object": "o", "vocab": "v.txt", "ranking": "strict", "train_size": 1, "dev_size": 1}),
                r#"{"kind":"fact_probe","train_size":1,"dev_size":1,"balance":false,"ranking":"strict","hub":"o/n","config":"c","revision":"main","subject":"s","object":"o","vocab":"v.txt"}"#,
            ),
        ];
        for (keys, expected) in cases {
            let spec = parse_json(keys).unwrap();
            let json = serde_json::to_string(&spec).unwrap();
            assert_eq!(json, expected);
            assert_eq!(
                parse_json(serde_json::from_str(&json).unwrap()).unwrap(),
                spec
            );
        }
    }

    #[test]
    fn a_key_of_another_kind_names_the_kinds_that_take_it() {
        let err = |v| parse_json(v).unwrap_err();
        let sst2 = |key: &str, value: Value| {
            let mut v = serde_json::json!({"kind": "sst2", "train_size": 1, "dev_size": 1});
            v[key] = value;
            err(v)
        };
        assert_eq!(
            sst2("vocab", "v.txt".into()),
            "|vocab|only fact_probe takes this key (task.kind is `sst2`)"
        );
        assert_eq!(
            sst2("train", "t.csv".into()),
            "|train|only classification and fact_probe take this key (task.kind is `sst2`)"
        );
        assert!(
            sst2("at_most", true.into())
                .starts_with("|at_most|only lama, relation_extraction and fact_probe take")
        );
        let unknown = sst2("trian_size", 1.into());
        assert!(
            unknown.starts_with(
                "|trian_size|unknown field `trian_size`, expected one of `kind`, `train_size`"
            ) && unknown.ends_with("`per_class`"),
            "{unknown}"
        );
        let lama = |relation: Option<&str>| {
            let mut v = serde_json::json!({"kind": "lama", "train_size": 1, "dev_size": 1});
            if let Some(r) = relation {
                v["relation"] = r.into();
            }
            err(v)
        };
        assert!(lama(None).starts_with("|relation|required"));
        assert!(lama(Some("X19")).contains("`X19` is not a relation id"));
    }

    #[test]
    fn a_table_takes_exactly_one_source() {
        let table = |extra: Value| {
            let mut v =
                serde_json::json!({"kind": "classification", "train_size": 1, "dev_size": 1});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            parse_json(v)
        };
        assert!(
            table(serde_json::json!({}))
                .unwrap_err()
                .starts_with("|kind|classification needs its data")
        );
        assert!(
            table(serde_json::json!({"train": "a", "file": "b"}))
                .unwrap_err()
                .starts_with("|file|give either")
        );
        assert!(
            table(serde_json::json!({"train": "a"}))
                .unwrap_err()
                .starts_with("|test|required")
        );
        assert!(
            table(serde_json::json!({"hub": "x"}))
                .unwrap_err()
                .contains("not a dataset id")
        );
        assert!(
            table(serde_json::json!({"file": "a", "split_column": "s", "revision": "r"}))
                .unwrap_err()
                .starts_with("|revision|only `hub`")
        );
        assert!(
            table(serde_json::json!({"train": "a", "test": "b", "delimiter": "\""}))
                .unwrap_err()
                .starts_with("|delimiter|must be one ASCII")
        );
        assert!(
            table(serde_json::json!({"train": "a", "test": "b", "labels": ["x", "x"]}))
                .unwrap_err()
                .contains("`x` is listed twice")
        );
        assert!(
            table(serde_json::json!({"train": "a", "test": "b", "name": " "}))
                .unwrap_err()
                .starts_with("|name|must not be empty")
        );
    }
}
