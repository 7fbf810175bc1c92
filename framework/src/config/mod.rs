//! Experiment files: the TOML schema, layered loading, and validation.
//!
//! Loading is two-staged (see ARCHITECTURE.md): figment layers — the TOML file, then
//! `AUTOPROMPT_*` environment variables, then `--set key.path=value` overrides — produce one
//! document; [`crate::plan`] expands its `[grid]` and deserialises every cell into typed
//! specs ([`CellSpec`]) with `deny_unknown_fields`. Errors name the file, the key path,
//! what was found and what was expected.

mod launcher;
mod method;

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use launcher::{LauncherKind, LauncherOptions};
pub use method::{Labels, LabelsKeyword, MethodKind, MethodSpec};

pub use crate::errors::NESTED_PATH;

use crate::prompt::{LengthLimit, Truncate};
use crate::tasks::{DataPaths, TaskSpec};

pub use crate::backend::BackendKind;

/// The model of a cell (`[model]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// A local directory, a Hugging Face hub id, or `splade-tiny` (default).
    #[serde(default = "default_model")]
    pub source: String,
    /// Longest token sequence; fields are truncated to fit. Default 128 (capped by the model).
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// Where a field too long for `max_length` loses its tokens: `end` (default), `start`
    /// or `middle` (left out of the cell id when `end`).
    #[serde(default, skip_serializing_if = "Truncate::is_end")]
    pub truncate: Truncate,
    /// Refuse a checkpoint with tensors the model does not use (extra task heads), instead
    /// of skipping them with a warning. Default false (left out of the cell id when false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strict: bool,
}

impl ModelSpec {
    /// The length limit of this cell's inputs: `max_length`, capped by what the model
    /// (`model_max_sequence`, its position table or tokenizer limit) accepts.
    pub fn length_limit(&self, model_max_sequence: usize) -> LengthLimit {
        LengthLimit {
            max_tokens: self.max_length.min(model_max_sequence),
            truncate: self.truncate,
        }
    }

    /// What loading does with unused checkpoint tensors.
    pub fn unused_tensors(&self) -> crate::lm::UnusedTensors {
        if self.strict {
            crate::lm::UnusedTensors::Refuse
        } else {
            crate::lm::UnusedTensors::Skip
        }
    }
}

fn default_model() -> String {
    crate::lm::EMBEDDED_MODEL.to_string()
}
fn default_max_length() -> usize {
    128
}

impl Default for ModelSpec {
    fn default() -> Self {
        Self {
            source: default_model(),
            max_length: default_max_length(),
            truncate: Truncate::End,
            strict: false,
        }
    }
}

/// Everything that defines one cell's result. Its canonical JSON is hashed into the cell id,
/// so machine-specific settings (paths, backend) are deliberately not part of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellSpec {
    pub task: TaskSpec,
    #[serde(default)]
    pub model: ModelSpec,
    pub method: MethodSpec,
    /// Seed of sampling and search. Default 0.
    #[serde(default)]
    pub seed: u64,
}

impl CellSpec {
    /// The text columns a cell reads from a table task: its template's fields (`template`,
    /// the method's template parsed); none for `majority`; every text column for the linear
    /// probe and fine-tuning (which encode the whole row). A manual cell without a template
    /// reads the task's built-in one.
    pub fn text_columns(
        &self,
        template: Option<&crate::prompt::Template>,
    ) -> crate::tasks::TextColumns {
        use crate::tasks::TextColumns;
        match (&self.method, template) {
            (MethodSpec::Majority, _) => TextColumns::Named(vec![]),
            (_, Some(template)) => {
                TextColumns::Named(template.fields().into_iter().map(str::to_string).collect())
            }
            (_, None) => TextColumns::AllText,
        }
    }
}

/// Settings of a run that do not change what a cell computes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSettings {
    pub backend: BackendKind,
    /// Who runs the search's gradients and evaluations (`auto`: the host engine on CPU
    /// backends). Results agree to float rounding, so it is not part of a cell's id.
    pub engine: crate::search::Engine,
    pub data: DataPaths,
    pub results_dir: PathBuf,
    /// How often a running search or fine-tuning saves its state to resume from after a
    /// kill (`checkpoint_seconds`; 0 saves at every iteration or epoch).
    pub checkpoint_every: std::time::Duration,
    /// How often a running cell logs its progress when stderr is not a terminal
    /// (`progress_seconds`; 0: never). A terminal shows bars instead.
    pub progress_every: std::time::Duration,
}

/// `checkpoint_seconds` when the experiment does not set it.
pub const DEFAULT_CHECKPOINT_SECONDS: f64 = 300.0;

/// `progress_seconds` when the experiment does not set it.
pub const DEFAULT_PROGRESS_SECONDS: f64 = 60.0;

/// Top-level keys of an experiment file other than the cell spec.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExperimentFile {
    name: Option<String>,
    #[serde(default)]
    description: String,
    /// A paper table this experiment reproduces (key into `reports/paper/*.toml`).
    paper_table: Option<String>,
    data_dir: Option<PathBuf>,
    lama_dir: Option<PathBuf>,
    lpaqa_dir: Option<PathBuf>,
    results_dir: Option<PathBuf>,
    #[serde(default)]
    backend: BackendKind,
    #[serde(default)]
    engine: crate::search::Engine,
    checkpoint_seconds: Option<f64>,
    progress_seconds: Option<f64>,
    // The cell spec and grid are checked per cell by the planner.
    seed: Option<Value>,
    task: Option<Value>,
    model: Option<Value>,
    method: Option<Value>,
    #[serde(default)]
    launcher: LauncherOptions,
    /// A table (one cartesian product) or an array of tables (`[[grid]]`: the union of
    /// their products).
    grid: Option<Value>,
}

/// A loaded experiment: run settings, the base cell document, and the grid.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub name: String,
    pub description: String,
    pub paper_table: Option<String>,
    pub file: PathBuf,
    pub settings: RunSettings,
    /// Where cells run (`[launcher]`).
    pub launcher: LauncherOptions,
    /// `{task, model, method, seed}` before grid values are applied.
    pub base: Value,
    /// Grid blocks; each maps key paths (sorted; `seeds` becomes `seed`, `data_seeds` `task.data_seed`) to values. The plan is
    /// the union of every block's cartesian product.
    pub grid: Vec<Vec<(String, Vec<Value>)>>,
}

/// A configuration error: file, key path, what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read experiment file", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", path.display())]
    Syntax {
        path: PathBuf,
        #[source]
        source: Box<figment::Error>,
    },
    #[error("{}: key `{key}`: {message}{}", file.display(), context.as_ref().map(|c| format!(" (in grid cell {c})")).unwrap_or_default())]
    Invalid {
        file: PathBuf,
        key: String,
        message: String,
        context: Option<String>,
    },
    #[error("--set {arg}: {message}")]
    Override { arg: String, message: String },
}

/// Environment variables that may override top-level keys (`AUTOPROMPT_DATA_DIR`, ...);
/// nested keys use `__` (`AUTOPROMPT_TASK__TRAIN_SIZE=100`).
const ENV_KEYS: [&str; 8] = [
    "data_dir",
    "lama_dir",
    "lpaqa_dir",
    "results_dir",
    "backend",
    "engine",
    "checkpoint_seconds",
    "progress_seconds",
];

/// Parses one `--set key.path=value` (value as TOML; a bare word is a string).
pub fn parse_override(arg: &str) -> Result<(String, toml::Value), ConfigError> {
    let err = |message: &str| ConfigError::Override {
        arg: arg.to_string(),
        message: message.to_string(),
    };
    let (key, raw) = arg
        .split_once('=')
        .ok_or_else(|| err("expected key.path=value"))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(err("empty key or key segment"));
    }
    let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut table) => table.remove("v").expect("parsed key"),
        Err(_) => toml::Value::String(raw.trim().to_string()),
    };
    Ok((key.to_string(), value))
}

/// Loads an experiment file with its environment and `--set` layers.
pub fn load(path: &Path, overrides: &[String]) -> Result<Experiment, ConfigError> {
    if !path.is_file() {
        return Err(ConfigError::Read {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let mut figment = Figment::new().merge(Toml::file_exact(path)).merge(
        Env::prefixed("AUTOPROMPT_")
            .filter(|k| {
                let k = k.as_str().to_ascii_lowercase();
                ENV_KEYS.contains(&k.as_str()) || k.contains("__")
            })
            .split("__"),
    );
    let mut axis_overrides = vec![];
    for arg in overrides {
        let (key, value) = parse_override(arg)?;
        let value = serde_json::to_value(&value).expect("TOML values are JSON-serialisable");
        // `seeds` and `data_seeds` only exist as grid axes; everything else also sets the
        // base document.
        if grid_axis(&key) == key {
            figment = figment.merge((key.clone(), value.clone()));
        }
        axis_overrides.push((key, value));
    }
    let syntax = |source: figment::Error| ConfigError::Syntax {
        path: path.to_owned(),
        source: Box::new(source),
    };
    let doc: figment::value::Value = figment.extract().map_err(syntax)?;
    let doc = serde_json::to_value(&doc).expect("figment values are JSON-serialisable");
    let file: ExperimentFile =
        serde_path_to_error::deserialize(&doc).map_err(|e| ConfigError::Invalid {
            file: path.to_owned(),
            key: e.path().to_string(),
            message: e.inner().to_string(),
            context: None,
        })?;
    let name = file.name.unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "experiment".into())
    });
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return Err(ConfigError::Invalid {
            file: path.to_owned(),
            key: "name".into(),
            message: format!(
                "`{name}` must be non-empty ASCII letters, digits, `_`, `-` or `.` (it names the results directory)"
            ),
            context: None,
        });
    }
    let invalid = |key: String, message: String| ConfigError::Invalid {
        file: path.to_owned(),
        key,
        message,
        context: None,
    };
    let blocks: Vec<(String, serde_json::Map<String, Value>)> = match file.grid {
        None => vec![("grid".into(), Default::default())],
        Some(Value::Object(table)) => vec![("grid".into(), table)],
        Some(Value::Array(tables)) if !tables.is_empty() => tables
            .into_iter()
            .enumerate()
            .map(|(i, t)| match t {
                Value::Object(table) => Ok((format!("grid[{i}]"), table)),
                other => Err(invalid(
                    format!("grid[{i}]"),
                    format!("expected a table, found {}", describe(&other)),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(invalid(
                "grid".into(),
                format!(
                    "expected a table or [[grid]] tables, found {}",
                    describe(&other)
                ),
            ));
        }
    };
    let mut grid = vec![];
    for (prefix, table) in blocks {
        let mut block = vec![];
        for (key, values) in table {
            let key_path = grid_axis(&key).to_string();
            match values {
                Value::Array(list) if !list.is_empty() => block.push((key_path, list)),
                other => {
                    return Err(invalid(
                        format!("{prefix}.{key}"),
                        format!(
                            "expected a non-empty list of values, found {}",
                            describe(&other)
                        ),
                    ));
                }
            }
        }
        block.sort_by(|a, b| a.0.cmp(&b.0));
        grid.push(block);
    }
    for (key, value) in &axis_overrides {
        override_axis(&mut grid, key, value);
    }
    let data_dir = file.data_dir.unwrap_or_else(|| PathBuf::from("data"));
    let interval = |key: &str, value: Option<f64>, default: f64| {
        let seconds = value.unwrap_or(default);
        if seconds.is_finite() && seconds >= 0.0 {
            Ok(std::time::Duration::from_secs_f64(seconds))
        } else {
            Err(invalid(
                key.to_string(),
                format!("expected a number of seconds >= 0, found {seconds}"),
            ))
        }
    };
    let checkpoint_every = interval(
        "checkpoint_seconds",
        file.checkpoint_seconds,
        DEFAULT_CHECKPOINT_SECONDS,
    )?;
    let progress_every = interval(
        "progress_seconds",
        file.progress_seconds,
        DEFAULT_PROGRESS_SECONDS,
    )?;
    let settings = RunSettings {
        backend: file.backend,
        engine: file.engine,
        data: DataPaths {
            lama_dir: file.lama_dir.unwrap_or_else(|| data_dir.join("lama")),
            lpaqa_dir: file.lpaqa_dir.unwrap_or_else(|| data_dir.join("lpaqa")),
            data_dir,
        },
        results_dir: file.results_dir.unwrap_or_else(|| PathBuf::from("results")),
        checkpoint_every,
        progress_every,
    };
    let mut base = serde_json::Map::new();
    for (key, value) in [
        ("task", file.task),
        ("model", file.model),
        ("method", file.method),
        ("seed", file.seed),
    ] {
        if let Some(v) = value {
            base.insert(key.to_string(), v);
        }
    }
    Ok(Experiment {
        name,
        description: file.description,
        paper_table: file.paper_table,
        file: path.to_owned(),
        settings,
        launcher: file.launcher,
        base: Value::Object(base),
        grid,
    })
}

/// Applies a `--set key=value` to the grid: the command line wins over the file, grid
/// included. Where a block varies `key`, a list replaces the axis's values and a single
/// value fixes it (so `--set model.source=splade-tiny` runs a grid over paper models on
/// the embedded one, and `--set 'task.relation=["P19","P20"]'` narrows a relation sweep).
/// Axes nested under `key` are dropped (the override sets their whole table). `seeds`
/// (`data_seeds`) sets the seed (data seed) axis of every block.
fn override_axis(grid: &mut [Vec<(String, Vec<Value>)>], key: &str, value: &Value) {
    let axis = grid_axis(key);
    let values = match value {
        Value::Array(list) if !list.is_empty() => list.clone(),
        other => vec![other.clone()],
    };
    let nested = format!("{axis}.");
    for block in grid.iter_mut() {
        block.retain(|(k, _)| !k.starts_with(&nested));
        match block.iter_mut().find(|(k, _)| k == axis) {
            Some((_, axis_values)) => *axis_values = values.clone(),
            None if axis == "seed" || axis != key => {
                block.push((axis.to_string(), values.clone()));
                block.sort_by(|a, b| a.0.cmp(&b.0));
            }
            None => {}
        }
    }
}

/// The key path a grid key varies: `seeds` is shorthand for `seed`, `data_seeds` for
/// `task.data_seed` (the few-shot protocol's data splits); other keys are paths already.
fn grid_axis(key: &str) -> &str {
    match key {
        "seeds" => "seed",
        "data_seeds" => "task.data_seed",
        other => other,
    }
}

/// A short description of a JSON value for error messages about experiment files.
pub fn describe(v: &Value) -> String {
    GridValue(v).described(Dialect::Toml)
}

/// A grid value (or any JSON value of a spec) as text: the one way plans, tables, curve
/// labels and error messages show one.
///
/// `Display`: strings as they are, anything else as JSON (`{:#}`, the alternate form: a
/// table by its `kind`, `{..}` without one, as the plan prints it).
#[derive(Debug, Clone, Copy)]
pub struct GridValue<'a>(pub &'a Value);

/// Whose words [`GridValue::described`] uses for nothing and a table / an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Experiment files: `nothing`, `a table`.
    Toml,
    /// Data files: `null`, `an object`.
    Json,
}

impl GridValue<'_> {
    /// The value's kind and content for an error message (`string "x"`, `a list of 3`).
    pub fn described(&self, dialect: Dialect) -> String {
        match (self.0, dialect) {
            (Value::Null, Dialect::Toml) => "nothing".into(),
            (Value::Null, Dialect::Json) => "null".into(),
            (Value::Bool(b), _) => format!("boolean {b}"),
            (Value::Number(n), _) => format!("number {n}"),
            (Value::String(s), _) => format!("string {s:?}"),
            (Value::Array(a), _) => format!("a list of {}", a.len()),
            (Value::Object(_), Dialect::Toml) => "a table".into(),
            (Value::Object(_), Dialect::Json) => "an object".into(),
        }
    }

    /// A serialisable value as the experiment file spells it when it is a string (a unit
    /// enum's serde name); empty otherwise.
    pub fn name_of<T: Serialize>(value: &T) -> String {
        match serde_json::to_value(value) {
            Ok(Value::String(s)) => s,
            _ => String::new(),
        }
    }
}

impl std::fmt::Display for GridValue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Value::Object(m) if f.alternate() => {
                f.write_str(m.get("kind").and_then(|k| k.as_str()).unwrap_or("{..}"))?;
                // A method scoring answers of several tokens says how.
                match m.get("multi_token") {
                    Some(Value::Object(multi)) => {
                        let part = |key| multi.get(key).and_then(Value::as_str);
                        let how: Vec<&str> = [part("strategy"), part("normalize")]
                            .into_iter()
                            .flatten()
                            .collect();
                        write!(f, "+multi_token({})", how.join("/"))
                    }
                    _ => Ok(()),
                }
            }
            Value::String(s) => f.write_str(s),
            other => write!(f, "{other}"),
        }
    }
}
