//! Planning: the grid of an [`Experiment`] expanded into cells, each a fully resolved,
//! validated [`CellSpec`] with a stable id (a hash of its canonical JSON: same spec, same
//! id, on every machine, whatever the key order of the TOML file).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::{CellSpec, ConfigError, Experiment, Labels, MethodSpec};
use crate::prompt::Template;
pub use crate::tasks::InvalidKey;
use crate::tasks::{DataPaths, TaskKind, TaskSpec, TextColumns};

/// One unit of work (serialised into a launcher's `plan.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// 16 hex digits of the SHA-256 of the spec's canonical JSON.
    pub id: String,
    /// Position in the plan (grid order), for `--cell-index` style entry points.
    pub index: usize,
    /// The grid values that made this cell (key path → value), for tables.
    pub grid: BTreeMap<String, Value>,
    pub spec: CellSpec,
    /// The method's template as [`validate`] parsed it (`None`: the method has none, or a
    /// manual LAMA cell that reads its relation's).
    #[serde(skip)]
    pub template: Option<Template>,
}

impl Cell {
    /// The text columns the cell reads from a table task ([`CellSpec::text_columns`]).
    pub fn text_columns(&self) -> TextColumns {
        self.spec.text_columns(self.template.as_ref())
    }
}

/// The id of a spec: SHA-256 of its canonical JSON (struct fields in declaration order,
/// maps sorted), first 16 hex digits.
pub fn cell_id(spec: &CellSpec) -> String {
    let canonical = serde_json::to_vec(spec).expect("specs serialise");
    hex::encode(&Sha256::digest(&canonical)[..8])
}

/// Sets `path` (dotted) inside `doc`, creating tables as needed.
fn set_path(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let mut node = doc;
    let segments: Vec<&str> = path.split('.').collect();
    for (i, seg) in segments.iter().enumerate() {
        let map = match node {
            Value::Object(map) => map,
            other => {
                return Err(format!(
                    "`{}` is {}, not a table",
                    segments[..i].join("."),
                    crate::config::describe(other)
                ));
            }
        };
        if i + 1 == segments.len() {
            map.insert(seg.to_string(), value);
            return Ok(());
        }
        node = map
            .entry(seg.to_string())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    Ok(())
}

/// Expands the grid: the union over grid blocks of each block's cartesian product (keys in
/// sorted order, values in file order).
pub fn plan(experiment: &Experiment) -> Result<Vec<Cell>, ConfigError> {
    plan_with_tables(experiment).map(|(cells, _)| cells)
}

/// A user's table as plan time read it (once per distinct task and columns, at the seed of
/// the first cell that uses it): what `autoprompt plan` shows before anything runs.
#[derive(Debug, Clone, PartialEq)]
pub struct TableData {
    /// The first cell that reads it.
    pub cell_index: usize,
    /// Every cell that reads it (plan indices, the first included).
    pub cells: Vec<usize>,
    pub seed: u64,
    /// The task's display name.
    pub name: String,
    /// Each split's pool and draw, by class.
    pub splits: Vec<crate::tasks::SplitSummary>,
}

impl TableData {
    /// Reads the table of cell `cell_index` (`spec`, reading `columns`) at its seed.
    fn read(
        experiment: &Experiment,
        cell_index: usize,
        spec: &CellSpec,
        columns: &TextColumns,
    ) -> Result<Self, crate::tasks::TaskError> {
        let data =
            crate::tasks::load_columns(&spec.task, &experiment.settings.data, spec.seed, columns)?;
        Ok(Self {
            cell_index,
            cells: vec![],
            seed: spec.seed,
            name: spec.task.display_name(),
            splits: data.splits,
        })
    }
}

/// The tables `selected` cells read, each as the first selected cell that reads it draws
/// from it: the plan's summary (`tables`) where that cell is the plan's first reader, else
/// read again at that cell's seed (`run --dry-run` of a few cells).
pub fn tables_for(
    experiment: &Experiment,
    tables: &[TableData],
    selected: &[Cell],
) -> Result<Vec<TableData>, crate::tasks::TaskError> {
    tables
        .iter()
        .filter_map(|t| {
            let first = selected.iter().find(|c| t.cells.contains(&c.index))?;
            Some(if first.index == t.cell_index {
                Ok(t.clone())
            } else {
                TableData::read(experiment, first.index, &first.spec, &first.text_columns())
            })
        })
        .collect()
}

/// [`plan`], plus the summary of every user table it read while checking the cells (so
/// that showing them reads no file again).
pub fn plan_with_tables(
    experiment: &Experiment,
) -> Result<(Vec<Cell>, Vec<TableData>), ConfigError> {
    let file = &experiment.file;
    let mut combos: Vec<Vec<(String, Value)>> = vec![];
    for block in &experiment.grid {
        for (key, _) in block {
            let root = key.split('.').next().unwrap_or("");
            if !["task", "model", "method", "seed"].contains(&root)
                || (root == "seed" && key != "seed")
            {
                return Err(ConfigError::Invalid {
                    file: file.clone(),
                    key: format!("grid.\"{key}\""),
                    message: "grid keys vary task.*, model.*, method.* or seed (seeds)".into(),
                    context: None,
                });
            }
        }
        let mut product: Vec<Vec<(String, Value)>> = vec![vec![]];
        for (key, values) in block {
            product = product
                .into_iter()
                .flat_map(|combo| {
                    values.iter().map(move |v| {
                        let mut c = combo.clone();
                        c.push((key.clone(), v.clone()));
                        c
                    })
                })
                .collect();
        }
        combos.extend(product);
    }
    let mut cells = Vec::with_capacity(combos.len());
    let mut seen = BTreeMap::new();
    // Per distinct (task, columns): its index in `tables`, or why it cannot be read.
    let mut preflight: BTreeMap<String, Result<usize, InvalidKey>> = BTreeMap::new();
    let mut tables = vec![];
    for (index, combo) in combos.into_iter().enumerate() {
        let context = (!combo.is_empty()).then(|| {
            combo
                .iter()
                .map(|(k, v)| format!("{k}={}", short(v)))
                .collect::<Vec<_>>()
                .join(", ")
        });
        let invalid = |key: String, message: String| ConfigError::Invalid {
            file: file.clone(),
            key,
            message,
            context: context.clone(),
        };
        let mut doc = experiment.base.clone();
        for (key, value) in &combo {
            set_path(&mut doc, key, value.clone())
                .map_err(|m| invalid(format!("grid.\"{key}\""), m))?;
        }
        let spec: CellSpec = serde_path_to_error::deserialize(&doc).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." {
                "(top level)".to_string()
            } else {
                key
            };
            let message = e.inner().to_string();
            // Errors inside a method carry their nested path (see config::NESTED_PATH).
            match message
                .split(crate::config::NESTED_PATH)
                .collect::<Vec<_>>()
                .as_slice()
            {
                [_, inner, rest] => invalid(format!("{key}.{inner}"), rest.to_string()),
                _ => invalid(key, message),
            }
        })?;
        let Checked { template } =
            validate(&spec, &experiment.settings.data).map_err(|e| invalid(e.key, e.message))?;
        if spec.task.table().is_some() {
            // A user's table is read once per distinct (task, columns) at plan time, so a bad
            // file, column, label or budget stops the run before any cell starts.
            let columns = spec.text_columns(template.as_ref());
            let memo_key = serde_json::to_string(&(&spec.task, &columns)).expect("specs serialise");
            let checked = preflight.entry(memo_key).or_insert_with(|| {
                TableData::read(experiment, index, &spec, &columns)
                    .map(|table| {
                        tables.push(table);
                        tables.len() - 1
                    })
                    .map_err(|e| InvalidKey::new(e.config_key(), crate::errors::chain_text(&e)))
            });
            match checked {
                Ok(table) => tables[*table].cells.push(index),
                Err(e) => return Err(invalid(e.key.clone(), e.message.clone())),
            }
        }
        let id = cell_id(&spec);
        if let Some(first) = seen.insert(id.clone(), index) {
            return Err(invalid(
                "grid".into(),
                format!(
                    "cells {first} and {index} are identical (id {id}); remove the duplicate grid value"
                ),
            ));
        }
        cells.push(Cell {
            id,
            index,
            grid: combo.into_iter().collect(),
            spec,
            template,
        });
    }
    Ok((cells, tables))
}

fn short(v: &Value) -> String {
    match v {
        Value::Object(map) => map
            .get("kind")
            .and_then(Value::as_str)
            .map_or_else(|| "{..}".to_string(), |k| format!("{{kind={k}}}")),
        other => other.to_string(),
    }
}

/// What [`validate`] parsed from a cell's spec, so that nothing parses it again.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// The method's template (`None`: the method has none, or a manual LAMA cell that reads
    /// its relation's).
    pub template: Option<Template>,
}

fn bad_key(key: &str, message: impl Into<String>) -> InvalidKey {
    InvalidKey::new(key.to_string(), message.into())
}

/// Checks what deserialising a spec cannot (the task checked itself as it was read): model
/// settings, the method against the task, the task's files; returns what it parsed.
pub fn validate(spec: &CellSpec, data: &DataPaths) -> Result<Checked, InvalidKey> {
    if spec.model.source.trim().is_empty() {
        return Err(bad_key(
            "model.source",
            "must name a model directory, hub id or `splade-tiny`",
        ));
    }
    if spec.model.max_length < 8 {
        return Err(bad_key(
            "model.max_length",
            format!("{} is too short (at least 8)", spec.model.max_length),
        ));
    }
    let template = check_method(&spec.method, &spec.task)?;
    for path in required_files(&spec.task, data) {
        if !path.is_file() {
            return Err(bad_key(
                "task.kind",
                format!(
                    "data file `{}` is missing ({})",
                    path.display(),
                    data_hint(spec.task.kind())
                ),
            ));
        }
    }
    Ok(Checked { template })
}

/// The method's settings against the task; its template parsed.
fn check_method(method: &MethodSpec, task: &TaskSpec) -> Result<Option<Template>, InvalidKey> {
    let classification = task.is_classification();
    let needs_classification = |name: &str| {
        if classification {
            Ok(())
        } else {
            Err(bad_key(
                "method.kind",
                format!("{name} needs a classification task"),
            ))
        }
    };
    Ok(match method {
        MethodSpec::Majority => None,
        MethodSpec::Manual {
            template, labels, ..
        } => {
            let parsed = match template {
                Some(t) => Some(check_template(t, task, false)?),
                None if !task.has_builtin_template() => {
                    return Err(bad_key(
                        "method.template",
                        "required (only LAMA relations have a built-in manual template)",
                    ));
                }
                None => None,
            };
            check_labels(labels, classification, false)?;
            parsed
        }
        MethodSpec::Autoprompt {
            template,
            labels,
            search,
            ..
        } => {
            let parsed = check_template(template, task, true)?;
            check_labels(labels, classification, true)?;
            check_search(search, parsed.num_triggers())?;
            Some(parsed)
        }
        MethodSpec::LinearProbe { probe } => {
            needs_classification("linear_probe")?;
            if probe.epochs == 0 || probe.batch_size == 0 {
                return Err(bad_key(
                    "method.probe",
                    "epochs and batch_size must be at least 1",
                ));
            }
            if !(0.0..1.0).contains(&probe.dropout) {
                return Err(bad_key(
                    "method.probe.dropout",
                    format!("{} is not in [0, 1)", probe.dropout),
                ));
            }
            None
        }
        MethodSpec::Finetune { finetune } => {
            needs_classification("finetune")?;
            if finetune.epochs == Some(0) || finetune.batch_size == 0 {
                return Err(bad_key(
                    "method.finetune",
                    "epochs and batch_size must be at least 1",
                ));
            }
            if !(0.0..1.0).contains(&finetune.dropout) || !(0.0..=1.0).contains(&finetune.warmup) {
                return Err(bad_key(
                    "method.finetune",
                    "dropout must be in [0, 1) and warmup in [0, 1]",
                ));
            }
            None
        }
        MethodSpec::LabelSearch { template, .. } => {
            let parsed = check_template(template, task, true)?;
            needs_classification("label_search")?;
            Some(parsed)
        }
    })
}

/// Parses a method's template and checks it against the task's fields (a table task's
/// fields are its file's columns, checked when the file is read).
fn check_template(
    template: &str,
    task: &TaskSpec,
    allow_triggers: bool,
) -> Result<Template, InvalidKey> {
    let parsed =
        Template::parse(template).map_err(|e| bad_key("method.template", e.to_string()))?;
    if task.table().is_none() {
        parsed
            .check_fields(task.fields())
            .map_err(|e| bad_key("method.template", e.to_string()))?;
    }
    if !allow_triggers && parsed.num_triggers() > 0 {
        return Err(bad_key(
            "method.template",
            "a manual prompt has no [T] trigger slots",
        ));
    }
    Ok(parsed)
}

/// Label words where the task has classes, none where it predicts the object.
fn check_labels(
    labels: &Option<Labels>,
    classification: bool,
    auto_ok: bool,
) -> Result<(), InvalidKey> {
    match (classification, labels) {
        (true, None) => Err(bad_key(
            "method.labels",
            "a classification task needs labels, e.g. { \"0\" = [\"bad\"], \"1\" = [\"good\"] }",
        )),
        (true, Some(Labels::Keyword(_))) if !auto_ok => Err(bad_key(
            "method.labels",
            "\"auto\" is only available to the autoprompt method",
        )),
        (false, Some(_)) => Err(bad_key(
            "method.labels",
            "fact retrieval predicts the object itself; remove labels",
        )),
        (true, Some(Labels::Words(words))) => match words
            .iter()
            .find(|(_, ws)| ws.iter().any(|w| w.trim().is_empty()))
        {
            Some((label, _)) => Err(bad_key(
                &format!("method.labels.{label}"),
                "has an empty word (a word is the text a class is read as, e.g. \"good\" or \"very good\")",
            )),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// The trigger search's counts (each at least 1) against the template's `slots`.
fn check_search(search: &crate::search::SearchSettings, slots: usize) -> Result<(), InvalidKey> {
    for (key, value) in [
        ("batch_size", search.batch_size),
        ("num_candidates", search.num_candidates),
        ("eval_batch_size", search.eval_batch_size),
        ("accumulation_steps", search.accumulation_steps),
        ("restarts", search.restarts),
        ("eval_batches", search.eval_batches.unwrap_or(1)),
        ("beam_size", search.beam_size),
        ("positions_per_step", search.positions_per_step),
    ] {
        if value == 0 {
            return Err(bad_key(
                &format!("method.search.{key}"),
                "must be at least 1",
            ));
        }
    }
    if search.positions_per_step > slots.max(1) {
        return Err(bad_key(
            "method.search.positions_per_step",
            format!(
                "{} is more than the template's {slots} [T] slots",
                search.positions_per_step
            ),
        ));
    }
    Ok(())
}

fn data_hint(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Classification | TaskKind::FactProbe => "table tasks name their files in [task]",
        TaskKind::Sst2 | TaskKind::SickE => {
            "set data_dir or AUTOPROMPT_DATA_DIR to a directory with sst2/ and sick/"
        }
        _ => {
            "set lama_dir / lpaqa_dir (AUTOPROMPT_LAMA_DIR, AUTOPROMPT_LPAQA_DIR); LAMA comes from facebookresearch/LAMA's data.zip"
        }
    }
}

/// Files a task reads (checked at plan time so a typo fails before any cell runs).
pub fn required_files(task: &TaskSpec, data: &DataPaths) -> Vec<PathBuf> {
    match task {
        TaskSpec::Sst2(_) => vec![
            data.data_dir.join("sst2/train.tsv"),
            data.data_dir.join("sst2/dev.tsv"),
        ],
        TaskSpec::SickE(_) => vec![data.data_dir.join("sick/SICK.txt")],
        TaskSpec::Lama(t) => vec![
            data.lama_dir.join("relations.jsonl"),
            data.lama_dir.join("common_vocab_cased.txt"),
            data.lpaqa_dir
                .join(format!("TREx_train/{}.jsonl", t.relation.as_str())),
        ],
        TaskSpec::RelationExtraction(t) => vec![
            data.lama_dir.join("relations.jsonl"),
            data.lama_dir.join("common_vocab_cased.txt"),
            data.lama_dir
                .join(format!("TREx/{}.jsonl", t.relation.as_str())),
        ],
        // Read (and so checked) in full by the planner.
        TaskSpec::Classification(_) | TaskSpec::FactProbe(_) => vec![],
    }
}
