//! `reports/paper.md`: the paper's published numbers (data in `reports/paper/*.toml`) next to
//! this project's, row by row, each with the model that produced it.
//!
//! A paper number is only ever paired with our number for the same method, setting and
//! metric; our model is printed in its own column, so a number from the embedded model never
//! lands in a column labelled with a paper model.

use crate::metric::{Measure, Metric, Split};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::MethodKind;
use crate::record::{Record, Status};
use crate::store::Store;
use crate::tasks::{SickVariant, TaskKind};

/// One table of the paper, as transcribed in `reports/paper/<file>.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperTable {
    /// "Table 1", as printed.
    pub table: String,
    pub title: String,
    /// Where the numbers come from.
    pub source: String,
    /// The experiment (its `name`) whose records reproduce this table.
    pub experiment: String,
    #[serde(default)]
    pub aggregate: Aggregate,
    /// Number of relations behind the paper's mean (for `mean_over_relations`).
    pub relations: Option<usize>,
    /// Paper setting → ours (`""` is a task's only setting; `"none"`: not measured here).
    #[serde(default)]
    pub variants: BTreeMap<String, String>,
    #[serde(default)]
    pub note: String,
    pub row: Vec<PaperRow>,
}

/// How our per-cell numbers become one number per paper row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// One cell (or the seed mean of cells) per row.
    #[default]
    None,
    /// The mean over relations of each relation's (seed-mean) metric.
    MeanOverRelations,
    /// The paper row's `variant` is a relation id.
    PerRelation,
}

/// One published number.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperRow {
    /// The row name as printed.
    pub paper_row: String,
    /// Our method id, or `other` for systems this project does not implement.
    pub method: String,
    /// The model the paper used.
    pub model: String,
    /// The table's setting (SICK-E variant, original/perturbed, a relation id, ...).
    #[serde(default)]
    pub variant: String,
    /// `accuracy`, `p_at_1`, `p_at_10` or `mrr` (percent in the paper).
    pub metric: Metric,
    pub value: f64,
    /// Trigger tokens of the paper's AutoPrompt row, where the table has several.
    pub triggers: Option<usize>,
    /// Where in the source the number was read.
    #[serde(default)]
    pub quote: String,
}

/// Our number for a paper row.
#[derive(Debug, Clone, PartialEq)]
pub struct Ours {
    pub model: String,
    /// In percent, like the paper.
    pub value: f64,
    /// Cells behind the number (seeds × relations).
    pub cells: usize,
    /// Relations behind a mean over relations.
    pub relations: usize,
    /// Training budget and search iterations, from the cell specs.
    pub budget: String,
}

/// Errors of the paper report.
#[derive(Debug, thiserror::Error)]
pub enum PaperError {
    #[error("{}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{}: experiment `{experiment}` is not in {}", path.display(), dir.display())]
    UnknownExperiment {
        path: PathBuf,
        experiment: String,
        dir: PathBuf,
    },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// The `*.toml` files of `dir`, in file-name order.
fn toml_files(dir: &Path) -> Result<Vec<PathBuf>, PaperError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| PaperError::Read {
            path: dir.to_owned(),
            source,
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// Reads every `*.toml` in `dir`, in file-name order.
pub fn read_tables(dir: &Path) -> Result<Vec<(PathBuf, PaperTable)>, PaperError> {
    toml_files(dir)?
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).map_err(|source| PaperError::Read {
                path: path.clone(),
                source,
            })?;
            let table: PaperTable = toml::from_str(&text).map_err(|e| PaperError::Parse {
                path: path.clone(),
                message: e.to_string(),
            })?;
            Ok((path, table))
        })
        .collect()
}

/// The records of every experiment in `experiments_dir`, by experiment name (an experiment
/// that has not run yet has none).
pub fn read_records(experiments_dir: &Path) -> Result<BTreeMap<String, Vec<Record>>, PaperError> {
    let mut records = BTreeMap::new();
    for file in toml_files(experiments_dir)? {
        let experiment = crate::config::load(&file, &[])?;
        let results = &experiment.settings.results_dir;
        let ran = results.join(&experiment.name).join("cells").is_dir();
        let found = if ran {
            Store::open(results, &experiment.name)?.records()?
        } else {
            vec![]
        };
        records.insert(experiment.name, found);
    }
    Ok(records)
}

/// The report of the tables in `tables_dir` against the experiments in `experiments_dir`;
/// a table naming an experiment that is not there is an error.
pub fn build(experiments_dir: &Path, tables_dir: &Path) -> Result<String, PaperError> {
    let tables = read_tables(tables_dir)?;
    let records = read_records(experiments_dir)?;
    if let Some((path, table)) = tables
        .iter()
        .find(|(_, t)| !records.contains_key(&t.experiment))
    {
        return Err(PaperError::UnknownExperiment {
            path: path.clone(),
            experiment: table.experiment.clone(),
            dir: experiments_dir.to_owned(),
        });
    }
    Ok(report_markdown(&tables, &records))
}

/// The setting of a record in a table's terms: SICK-E variant, original/perturbed, or "".
fn setting_of(record: &Record) -> String {
    let task = &record.spec.task;
    match task.kind() {
        TaskKind::SickE => serde_json::to_value(task.variant().unwrap_or(SickVariant::Standard))
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        TaskKind::RelationExtraction if task.perturbed() => "perturbed".into(),
        TaskKind::RelationExtraction => "original".into(),
        _ => String::new(),
    }
}

fn trigger_count(record: &Record) -> Option<usize> {
    record
        .spec
        .method
        .template()
        .map(|t| t.matches("[T]").count())
}

/// "train 1000, 10 iters" from a cell's spec.
fn budget_of(record: &Record) -> String {
    let task = &record.spec.task;
    let cap = if task.at_most() { "≤ " } else { "" };
    let mut parts = vec![format!("train {cap}{}", task.budget().train_size)];
    if let Some(search) = record.spec.method.search_settings() {
        parts.push(format!("{} iters", search.iters));
    }
    if let Some(n) = task.budget().test_size {
        parts.push(format!("test ≤ {n}"));
    }
    parts.join(", ")
}

/// Our number for `row`: the seed mean of matching finished cells, per model actually used;
/// for `mean_over_relations`, the mean over relations of those. Rows whose setting is
/// mapped to `none`, or whose method is `other`, have none.
pub fn ours_for(table: &PaperTable, row: &PaperRow, records: &[Record]) -> Vec<Ours> {
    if row.method == "other" {
        return vec![];
    }
    let setting = match table.aggregate {
        Aggregate::PerRelation => String::new(),
        _ => table
            .variants
            .get(&row.variant)
            .cloned()
            .unwrap_or_else(|| row.variant.clone()),
    };
    if setting == "none" {
        return vec![];
    }
    // model → relation → (values, budget)
    let mut groups: BTreeMap<String, BTreeMap<String, (Vec<f64>, String)>> = BTreeMap::new();
    for record in records {
        let relation = record.spec.task.relation().unwrap_or_default().to_string();
        let matches = record.status == Status::Finished
            && record.spec.method.name() == row.method
            && setting_of(record) == setting
            && (table.aggregate != Aggregate::PerRelation || relation == row.variant)
            && (row.triggers.is_none() || trigger_count(record) == row.triggers);
        let Some(value) = record.metrics.get(&row.metric).filter(|_| matches) else {
            continue;
        };
        let model = match record.spec.method.kind() {
            MethodKind::Majority => "—".to_string(),
            _ => record.spec.model.source.clone(),
        };
        let entry = groups
            .entry(model)
            .or_default()
            .entry(relation)
            .or_insert_with(|| (vec![], budget_of(record)));
        entry.0.push(*value);
    }
    groups
        .into_iter()
        .map(|(model, by_relation)| {
            let cells = by_relation.values().map(|(v, _)| v.len()).sum();
            let means: Vec<f64> = by_relation
                .values()
                .map(|(v, _)| v.iter().sum::<f64>() / v.len() as f64)
                .collect();
            let mut budgets: Vec<&str> = by_relation.values().map(|(_, b)| b.as_str()).collect();
            budgets.sort_unstable();
            budgets.dedup();
            Ours {
                model,
                value: 100.0 * means.iter().sum::<f64>() / means.len() as f64,
                cells,
                relations: by_relation.len(),
                budget: budgets.join("; "),
            }
        })
        .collect()
}

fn metric_label(metric: &Metric) -> &str {
    match metric {
        Metric::Of(Measure::PAt1, Split::Eval) => "P@1",
        Metric::Of(Measure::PAt10, Split::Eval) => "P@10",
        Metric::Of(Measure::Mrr, Split::Eval) => "MRR",
        other => other.as_str(),
    }
}

/// The markdown of one table.
pub fn table_markdown(table: &PaperTable, records: &[Record], source_file: &Path) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## {} — {}\n", table.table, table.title);
    let _ = writeln!(
        out,
        "Paper: {} (transcribed in `{}`). Ours: experiment `{}`.",
        table.source,
        source_file.display(),
        table.experiment
    );
    if !table.note.is_empty() {
        let _ = writeln!(out, "{}", table.note);
    }
    let per_relation = table.aggregate == Aggregate::PerRelation;
    let setting_header = if per_relation { "relation" } else { "setting" };
    let _ = writeln!(
        out,
        "\n| paper row | {setting_header} | metric | paper model | paper | our model | ours | cells | our budget |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    let mut paper_only = vec![];
    for row in &table.row {
        let ours = ours_for(table, row, records);
        if row.method == "other" {
            let setting = if row.variant.is_empty() {
                String::new()
            } else {
                format!("{}, ", row.variant)
            };
            paper_only.push(format!(
                "{} ({setting}{}) {:.1}",
                row.paper_row,
                metric_label(&row.metric),
                row.value
            ));
            continue;
        }
        let lead = format!(
            "| {} | {} | {} | {} | {:.1} |",
            row.paper_row,
            if row.variant.is_empty() {
                "—"
            } else {
                &row.variant
            },
            metric_label(&row.metric),
            row.model,
            row.value
        );
        if ours.is_empty() {
            let why = if table.variants.get(&row.variant).map(String::as_str) == Some("none") {
                "not measured here"
            } else {
                "not run"
            };
            let _ = writeln!(out, "{lead} — | {why} | 0 | — |");
        }
        for o in &ours {
            let cells = match (table.aggregate, table.relations) {
                (Aggregate::MeanOverRelations, Some(n)) => {
                    format!("{} ({} of {n} relations)", o.cells, o.relations)
                }
                _ => o.cells.to_string(),
            };
            let _ = writeln!(
                out,
                "{lead} {} | {:.1} | {cells} | {} |",
                o.model, o.value, o.budget
            );
        }
    }
    if !paper_only.is_empty() {
        let _ = writeln!(
            out,
            "\nPaper rows with no counterpart in this project: {}.",
            paper_only.join("; ")
        );
    }
    out
}

/// The whole report: every table, with the records of its experiment.
pub fn report_markdown(
    tables: &[(PathBuf, PaperTable)],
    records: &BTreeMap<String, Vec<Record>>,
) -> String {
    let mut out = String::from(
        "# The paper's tables, reproduced\n\n\
         Generated by `just reproduce` (`autoprompt paper-report`). Each row pairs one number \
         of Shin et al. (2020) with ours for the same method, setting and metric; `our model` \
         says which model produced ours. Where it is not the paper's model, the two numbers \
         measure different models and are shown side by side, not as a replication. Paper \
         numbers are percentages as printed; ours are converted to percent. `cells` counts the \
         runs (seeds × relations) behind our number.\n\n",
    );
    for (path, table) in tables {
        let found = records
            .get(&table.experiment)
            .map_or(&[][..], Vec::as_slice);
        out.push_str(&table_markdown(table, found, path));
        out.push('\n');
    }
    out
}
