//! Reports: records → polars tables (`cells`, `summary` over seeds) → parquet, CSV, a
//! terminal table and a Markdown report. A pure function of the records: the same records
//! give byte-identical files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use polars::prelude::*;

pub mod nightly;
pub mod paired;
pub mod paper;
pub mod plot;
pub mod stats;
pub mod steps;

use crate::metric::{Metric, Statistic};
use crate::record::{Record, Status};
use crate::store::write_atomic;

/// Report errors.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("polars")]
    Polars(#[from] PolarsError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Plot(#[from] plot::PlotError),
    #[error(transparent)]
    Pair(#[from] paired::PairError),
    #[error("no records under {0}: run the experiment first")]
    Empty(PathBuf),
    #[error("{}: no summary; run `autoprompt report` on the experiment first", .0.display())]
    NoSummary(PathBuf),
    #[error("baseline {}", path.display())]
    Baseline {
        path: PathBuf,
        #[source]
        source: Box<ReportError>,
    },
}

/// Columns that identify a setting (everything but the seed).
pub const GROUP_KEYS: [&str; 7] = [
    "task",
    "relation",
    "variant",
    "model",
    "method",
    "train_size",
    "setting",
];

/// An 8-hex id of a cell's setting: the cell id ([`crate::plan::cell_id`], one hashing
/// scheme for both) of its spec with the seed zeroed and no data seed, so cells differing
/// only in their search seed or data split share it.
pub(crate) fn setting_id(record: &Record) -> String {
    let mut spec = record.spec.clone();
    spec.seed = 0;
    spec.task.budget_mut().data_seed = None;
    crate::plan::cell_id(&spec)[..8].to_string()
}

/// Whether any record crosses data splits with search seeds (`task.data_seed`).
fn has_data_seeds(records: &[Record]) -> bool {
    records
        .iter()
        .any(|r| r.spec.task.budget().data_seed.is_some())
}

/// Split and seed components of every metric of every setting whose cells have data seeds,
/// by (setting id, metric).
fn variance_components(
    records: &[Record],
    metrics: &[Metric],
) -> BTreeMap<(String, Metric), stats::Components> {
    let mut values: BTreeMap<(String, Metric), BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.status == Status::Finished) {
        let Some(split) = r.spec.task.budget().data_seed else {
            continue;
        };
        for m in metrics {
            if let Some(v) = r.metrics.get(m) {
                values
                    .entry((setting_id(r), m.clone()))
                    .or_default()
                    .entry(split)
                    .or_default()
                    .push(*v);
            }
        }
    }
    values
        .into_iter()
        .filter_map(|(key, splits)| {
            let groups: Vec<Vec<f64>> = splits.into_values().collect();
            stats::variance_components(&groups).map(|c| (key, c))
        })
        .collect()
}

/// What tables call a task: a table task's name (`task.name`, file stem or hub id); for the
/// paper's tasks the TOML spelling (`sst2`, `sick_e`, `lama`, `relation_extraction`).
pub fn task_label(task: &crate::tasks::TaskSpec) -> String {
    if task.kind().reads_table() {
        task.display_name()
    } else {
        toml_name(&task.kind())
    }
}

/// A unit enum value as the experiment file spells it (its serde name).
pub fn toml_name<T: serde::Serialize>(value: &T) -> String {
    crate::config::GridValue::name_of(value)
}

/// Metric names present in any finished record, sorted.
pub fn metric_names(records: &[Record]) -> Vec<Metric> {
    let names: BTreeSet<&Metric> = records
        .iter()
        .filter(|r| r.status == Status::Finished)
        .flat_map(|r| r.metrics.keys())
        .collect();
    names.into_iter().cloned().collect()
}

/// One row per cell.
pub fn cells_frame(records: &[Record]) -> Result<DataFrame, ReportError> {
    let mut records: Vec<&Record> = records.iter().collect();
    records.sort_by(|a, b| a.id.cmp(&b.id));
    let text =
        |f: &dyn Fn(&Record) -> Option<String>| records.iter().map(|r| f(r)).collect::<Vec<_>>();
    let mut columns = vec![
        Column::new("id".into(), text(&|r| Some(r.id.clone()))),
        Column::new("task".into(), text(&|r| Some(task_label(&r.spec.task)))),
        Column::new(
            "relation".into(),
            text(&|r| r.spec.task.relation().map(str::to_string)),
        ),
        Column::new(
            "variant".into(),
            text(&|r| r.spec.task.variant().map(|v| toml_name(&v))),
        ),
        Column::new(
            "model".into(),
            text(&|r| {
                Some(if r.spec.method.needs_model() {
                    r.spec.model.source.clone()
                } else {
                    "-".into()
                })
            }),
        ),
        Column::new(
            "method".into(),
            text(&|r| Some(r.spec.method.name().to_string())),
        ),
        Column::new(
            "train_size".into(),
            records
                .iter()
                .map(|r| r.spec.task.budget().train_size.get() as u64)
                .collect::<Vec<_>>(),
        ),
        Column::new("setting".into(), text(&|r| Some(setting_id(r)))),
        Column::new(
            "seed".into(),
            records.iter().map(|r| r.spec.seed).collect::<Vec<_>>(),
        ),
        Column::new(
            "data_seed".into(),
            records
                .iter()
                .map(|r| r.spec.task.budget().data_seed)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "status".into(),
            text(&|r| Some(format!("{:?}", r.status).to_lowercase())),
        ),
        Column::new(
            "seconds".into(),
            records
                .iter()
                .map(|r| r.timings.total_seconds)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "seconds_per_iteration".into(),
            records
                .iter()
                .map(|r| r.timings.seconds_per_iteration)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "options".into(),
            text(&|r| {
                r.spec
                    .method
                    .search_settings()
                    .map(|s| steps::changed_search_options(s).join(", "))
            }),
        ),
        Column::new(
            "multi_token".into(),
            text(&|r| r.spec.method.multi_token().map(|m| m.describe())),
        ),
        Column::new(
            "unscorable".into(),
            records
                .iter()
                .map(|r| r.counts.unscorable as u64)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "encoder_rows".into(),
            records
                .iter()
                .map(|r| r.search.as_ref().and_then(|s| s.rows).map(|x| x.total()))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "prompt".into(),
            text(&|r| r.prompt.as_ref().map(|p| p.filled.clone())),
        ),
        Column::new(
            "truncated".into(),
            records
                .iter()
                .map(|r| r.counts.truncated as u64)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "truncate".into(),
            text(&|r| Some(r.spec.model.truncate.name().to_string())),
        ),
    ];
    let owned: Vec<Record> = records.iter().map(|r| (*r).clone()).collect();
    if !has_data_seeds(&owned) {
        // Tables of experiments without data splits keep their columns.
        columns.retain(|c| c.name().as_str() != "data_seed");
    }
    for name in metric_names(&owned) {
        let values: Vec<Option<f64>> = records
            .iter()
            .map(|r| {
                (r.status == Status::Finished)
                    .then(|| r.metrics.get(&name).copied())
                    .flatten()
            })
            .collect();
        columns.push(Column::new(name.as_str().into(), values));
    }
    Ok(DataFrame::new(columns)?)
}

/// Aggregates finished cells over seeds: mean, sd, min, max, n and 95% CI half-width of
/// every metric, one row per setting.
pub fn summary_frame(cells: &DataFrame, metrics: &[Metric]) -> Result<DataFrame, ReportError> {
    let mut aggs = vec![
        col("seed").count().alias("n_seeds"),
        col("seconds").mean().alias("seconds_mean"),
        col("seconds_per_iteration")
            .mean()
            .alias("seconds_per_iteration_mean"),
    ];
    // One value per setting (the options are part of it).
    if cells.column("options").is_ok() {
        aggs.push(col("options").first().alias("options"));
    }
    // Not `_mean`: compute is not a metric the nightly comparison should hold steady.
    if cells.column("encoder_rows").is_ok() {
        aggs.push(
            col("encoder_rows")
                .cast(DataType::Float64)
                .mean()
                .alias("encoder_rows_per_cell"),
        );
    }
    // How answers of several tokens were scored (one way per setting), and the evaluation
    // examples whose answer could not be scored.
    if cells.column("multi_token").is_ok() {
        aggs.push(col("multi_token").first().alias("multi_token"));
    }
    if cells.column("unscorable").is_ok() {
        aggs.push(
            col("unscorable")
                .cast(DataType::Float64)
                .mean()
                .alias("unscorable_per_cell"),
        );
    }
    // Examples cut to fit the length limit, and where (one strategy per setting).
    if cells.column("truncated").is_ok() {
        aggs.push(
            col("truncated")
                .cast(DataType::Float64)
                .mean()
                .alias("truncated_per_cell"),
        );
        aggs.push(col("truncate").first().alias("truncate"));
    }
    for m in metrics {
        aggs.push(col(m.as_str()).mean().alias(m.column(Statistic::Mean)));
        aggs.push(col(m.as_str()).std(1).alias(m.column(Statistic::Sd)));
        aggs.push(col(m.as_str()).min().alias(m.column(Statistic::Min)));
        aggs.push(col(m.as_str()).max().alias(m.column(Statistic::Max)));
        aggs.push(col(m.as_str()).count().alias(m.column(Statistic::N)));
    }
    let keys: Vec<Expr> = GROUP_KEYS.iter().map(|k| col(*k)).collect();
    let mut summary = cells
        .clone()
        .lazy()
        .filter(col("status").eq(lit("finished")))
        .group_by_stable(keys)
        .agg(aggs)
        .sort(
            GROUP_KEYS.to_vec(),
            SortMultipleOptions::default().with_nulls_last(false),
        )
        .collect()?;
    for m in metrics {
        let n = summary.column(&m.column(Statistic::N))?.u32()?.clone();
        let sd = summary.column(&m.column(Statistic::Sd))?.f64()?.clone();
        let ci: Vec<Option<f64>> = n
            .into_iter()
            .zip(&sd)
            .map(|(n, sd)| match (n, sd) {
                (Some(n), Some(sd)) if n >= 2 => stats::t_quantile(u64::from(n) - 1, stats::LEVEL)
                    .map(|q| q * sd / f64::from(n).sqrt()),
                _ => None,
            })
            .collect();
        summary.with_column(Column::new(m.column(Statistic::Ci95).into(), ci))?;
    }
    Ok(summary)
}

/// `<metric>_sd_split` and `<metric>_sd_seed` columns: the variance components of each
/// summary row (by its setting id).
fn add_components(
    summary: &mut DataFrame,
    metrics: &[Metric],
    components: &BTreeMap<(String, Metric), stats::Components>,
) -> Result<(), ReportError> {
    let settings: Vec<Option<String>> = summary
        .column("setting")?
        .str()?
        .into_iter()
        .map(|s| s.map(str::to_string))
        .collect();
    for m in metrics {
        let part = |f: fn(&stats::Components) -> f64| {
            settings
                .iter()
                .map(|s| {
                    s.as_ref()
                        .and_then(|s| components.get(&(s.clone(), m.clone())))
                        .map(f)
                })
                .collect::<Vec<_>>()
        };
        summary.with_column(Column::new(
            m.column(Statistic::SdSplit).into(),
            part(|c| c.split_sd),
        ))?;
        summary.with_column(Column::new(
            m.column(Statistic::SdSeed).into(),
            part(|c| c.seed_sd),
        ))?;
    }
    Ok(())
}

fn parquet_bytes(df: &mut DataFrame) -> Result<Vec<u8>, ReportError> {
    let mut buf = vec![];
    ParquetWriter::new(&mut buf).finish(df)?;
    Ok(buf)
}

fn csv_bytes(df: &mut DataFrame) -> Result<Vec<u8>, ReportError> {
    let mut buf = vec![];
    CsvWriter::new(&mut buf).include_header(true).finish(df)?;
    Ok(buf)
}

/// Files a report wrote.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    pub summary: DataFrame,
    /// The report's Comparisons section (Markdown), when methods pair.
    pub comparisons: Option<String>,
    pub written: Vec<PathBuf>,
    pub failed_cells: Vec<(String, String)>,
}

/// Context of the Markdown report.
pub struct ReportMeta<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub experiment_file: &'a Path,
    /// Plot every method's paired Δ against this one (a method name or label) over the
    /// training sizes (`<name>_delta.png`); `None`: no such plot.
    pub delta_against: Option<&'a str>,
}

/// Builds every table and file of an experiment's report from its records.
pub fn build(
    records: &[Record],
    results_root: &Path,
    report_path: &Path,
    meta: &ReportMeta,
) -> Result<ReportFiles, ReportError> {
    if records.is_empty() {
        return Err(ReportError::Empty(results_root.to_owned()));
    }
    let metrics = metric_names(records);
    let mut cells = cells_frame(records)?;
    let mut summary = summary_frame(&cells, &metrics)?;
    let components = variance_components(records, &metrics);
    if !components.is_empty() {
        add_components(&mut summary, &metrics, &components)?;
    }
    let mut written = vec![];
    for (name, bytes) in [
        ("cells.parquet", parquet_bytes(&mut cells)?),
        ("cells.csv", csv_bytes(&mut cells)?),
        ("summary.parquet", parquet_bytes(&mut summary)?),
        ("summary.csv", csv_bytes(&mut summary)?),
    ] {
        let path = results_root.join(name);
        write_atomic(&path, &bytes)?;
        written.push(path);
    }
    let comparisons = paired::compare_all(records, &metrics);
    if !comparisons.is_empty() {
        let mut table = paired::comparisons_frame(&comparisons)?;
        for (name, bytes) in [
            ("comparisons.parquet", parquet_bytes(&mut table)?),
            ("comparisons.csv", csv_bytes(&mut table)?),
        ] {
            let path = results_root.join(name);
            write_atomic(&path, &bytes)?;
            written.push(path);
        }
    }
    if let Some(mut steps) = steps::steps_frame(records)? {
        for (name, bytes) in [
            ("steps.parquet", parquet_bytes(&mut steps)?),
            ("steps.csv", csv_bytes(&mut steps)?),
        ] {
            let path = results_root.join(name);
            write_atomic(&path, &bytes)?;
            written.push(path);
        }
    }
    let compute = steps::compute_curves(records);
    let mut compute_plot = None;
    if compute.iter().any(|c| c.points.len() > 1) {
        let name = format!("{}_compute", meta.name);
        written.extend(plot::compute_curve(
            &report_path.with_file_name(&name),
            &format!("{}: dev metric vs. encoder rows", meta.name),
            "dev metric of the kept prompt",
            &compute,
        )?);
        compute_plot = Some(name);
    }
    let main_metric = Metric::main_of(&metrics);
    let curves = main_metric
        .map(|m| curves(&summary, m))
        .transpose()?
        .unwrap_or_default();
    let mut plot_name = None;
    if let (Some(metric), true) = (main_metric, curves.iter().any(|c| c.points.len() > 1)) {
        let stem = report_path.with_file_name(format!("{}_low_resource", meta.name));
        written.extend(plot::low_resource_curve(
            &stem,
            &format!("{}: {metric} vs. training size", meta.name),
            metric.as_str(),
            &curves,
        )?);
        plot_name = Some(format!("{}_low_resource", meta.name));
    }
    let mut delta_plot = None;
    if let (Some(metric), Some(baseline)) = (main_metric, meta.delta_against) {
        let curves = paired::delta_curves(records, baseline, metric)?;
        let name = format!("{}_delta", meta.name);
        written.extend(plot::low_resource_curve(
            &report_path.with_file_name(&name),
            &format!("{}: Δ {metric} against {baseline}", meta.name),
            &format!("Δ {metric} (method − {baseline})"),
            &curves,
        )?);
        delta_plot = Some((name, baseline));
    }
    let plots = Plots {
        low_resource: plot_name.as_deref(),
        compute: compute_plot.as_deref(),
        delta: delta_plot.as_ref().map(|(n, b)| (n.as_str(), *b)),
    };
    let comparisons_md = paired::comparisons_markdown(&comparisons, &metrics);
    let markdown = markdown(
        records,
        &summary,
        &metrics,
        meta,
        &plots,
        comparisons_md.as_deref(),
    )?;
    write_atomic(report_path, markdown.as_bytes())?;
    written.push(report_path.to_owned());
    let failed_cells = records
        .iter()
        .filter(|r| r.status == Status::Failed)
        .map(|r| (r.id.clone(), r.error.clone().unwrap_or_default()))
        .collect();
    Ok(ReportFiles {
        summary,
        comparisons: comparisons_md,
        written,
        failed_cells,
    })
}

fn cell_text(column: &Column, row: usize) -> String {
    match column.get(row) {
        Ok(AnyValue::Null) | Err(_) => "".into(),
        Ok(AnyValue::Float64(v)) => format!("{v:.4}"),
        Ok(AnyValue::String(s)) => s.to_string(),
        Ok(AnyValue::StringOwned(s)) => s.to_string(),
        Ok(v) => v.to_string(),
    }
}

/// The summary as a Markdown table: group keys, n, and `mean ± sd` per metric.
pub fn summary_markdown(summary: &DataFrame, metrics: &[Metric]) -> Result<String, ReportError> {
    let mut header: Vec<String> = GROUP_KEYS
        .iter()
        .filter(|k| **k != "setting")
        .map(|k| k.to_string())
        .collect();
    let options_column = summary
        .column("options")
        .ok()
        .filter(|c| (0..c.len()).any(|row| !cell_text(c, row).is_empty()));
    if options_column.is_some() {
        header.push("search options".into());
    }
    let multi_token_column = summary
        .column("multi_token")
        .ok()
        .filter(|c| (0..c.len()).any(|row| !cell_text(c, row).is_empty()));
    if multi_token_column.is_some() {
        header.push("multi-token answers".into());
    }
    header.push("n".into());
    header.extend(metrics.iter().map(|m| m.to_string()));
    header.push("s / cell".into());
    let rows_column = summary
        .column("encoder_rows_per_cell")
        .ok()
        .filter(|c| c.null_count() < c.len());
    if rows_column.is_some() {
        header.push("encoder rows / cell".into());
    }
    let truncated_column = summary.column("truncated_per_cell").ok().filter(|c| {
        (0..c.len()).any(|row| matches!(c.get(row), Ok(AnyValue::Float64(v)) if v > 0.0))
    });
    if truncated_column.is_some() {
        header.push("truncated / cell".into());
    }
    let unscorable_column = summary.column("unscorable_per_cell").ok().filter(|c| {
        (0..c.len()).any(|row| matches!(c.get(row), Ok(AnyValue::Float64(v)) if v > 0.0))
    });
    if unscorable_column.is_some() {
        header.push("unscorable / cell".into());
    }
    let mut out = format!(
        "| {} |\n|{}|\n",
        header.join(" | "),
        vec!["---"; header.len()].join("|")
    );
    for row in 0..summary.height() {
        let mut cells: Vec<String> = GROUP_KEYS
            .iter()
            .filter(|k| **k != "setting")
            .map(|k| cell_text(summary.column(k).expect("group key"), row))
            .collect();
        if let Some(column) = options_column {
            cells.push(cell_text(column, row).replace('|', "\\|"));
        }
        if let Some(column) = multi_token_column {
            let text = cell_text(column, row);
            cells.push(if text.is_empty() {
                "single token".into()
            } else {
                text
            });
        }
        cells.push(cell_text(summary.column("n_seeds")?, row));
        for m in metrics {
            let mean = summary.column(&m.column(Statistic::Mean))?.get(row)?;
            let sd = summary.column(&m.column(Statistic::Sd))?.get(row)?;
            cells.push(match (mean, sd) {
                (AnyValue::Float64(mean), AnyValue::Float64(sd)) => format!("{mean:.4} ± {sd:.4}"),
                (AnyValue::Float64(mean), _) => format!("{mean:.4}"),
                _ => String::new(),
            });
        }
        let seconds = summary.column("seconds_mean")?.get(row)?;
        cells.push(match seconds {
            AnyValue::Float64(s) => format!("{s:.1}"),
            _ => String::new(),
        });
        if let Some(column) = rows_column {
            cells.push(match column.get(row)? {
                AnyValue::Float64(r) => format!("{r:.0}"),
                _ => String::new(),
            });
        }
        if let Some(column) = truncated_column {
            let strategy = summary
                .column("truncate")
                .map(|c| cell_text(c, row))
                .unwrap_or_default();
            cells.push(match column.get(row)? {
                AnyValue::Float64(n) if n > 0.0 => format!("{n:.1} (at the {strategy})"),
                AnyValue::Float64(_) => "0".into(),
                _ => String::new(),
            });
        }
        if let Some(column) = unscorable_column {
            cells.push(match column.get(row)? {
                AnyValue::Float64(n) => format!("{n:.1}"),
                _ => String::new(),
            });
        }
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    Ok(out)
}

/// One curve per (method, task, relation, variant, model): the metric's mean ± sd by train size.
pub fn curves(summary: &DataFrame, metric: &Metric) -> Result<Vec<plot::Curve>, ReportError> {
    let mut by_key: BTreeMap<String, Vec<plot::Point>> = BTreeMap::new();
    let sizes = summary.column("train_size")?.u64()?.clone();
    let means = summary
        .column(&metric.column(Statistic::Mean))?
        .f64()?
        .clone();
    let sds = summary
        .column(&metric.column(Statistic::Sd))?
        .f64()?
        .clone();
    for row in 0..summary.height() {
        let (Some(size), Some(mean)) = (sizes.get(row), means.get(row)) else {
            continue;
        };
        let parts: Vec<String> = ["method", "task", "relation", "variant", "model"]
            .iter()
            .map(|k| cell_text(summary.column(k).expect("group key"), row))
            .filter(|v| !v.is_empty() && v != "-")
            .collect();
        let points = by_key.entry(parts.join(" · ")).or_default();
        if !points.iter().any(|p| p.x == size as f64) {
            points.push(plot::Point {
                x: size as f64,
                mean,
                sd: sds.get(row).unwrap_or(0.0),
            });
        }
    }
    Ok(by_key
        .into_iter()
        .map(|(label, mut points)| {
            points.sort_by(|a, b| a.x.total_cmp(&b.x));
            plot::Curve { label, points }
        })
        .collect())
}

/// The few-shot protocol in two sentences, when the experiment uses it.
fn few_shot_protocol(records: &[Record]) -> Option<String> {
    let k: BTreeSet<usize> = records
        .iter()
        .filter_map(|r| r.spec.task.per_class().map(|k| k.get()))
        .collect();
    let splits: BTreeSet<u64> = records
        .iter()
        .filter_map(|r| r.spec.task.budget().data_seed)
        .collect();
    let seeds: BTreeSet<u64> = records.iter().map(|r| r.spec.seed).collect();
    if k.is_empty() && splits.is_empty() {
        return None;
    }
    let list = |xs: Vec<String>| xs.join(", ");
    let first = if k.is_empty() {
        "Protocol: every cell draws its training and dev examples with its data seed (`task.data_seed`) and is evaluated on the evaluation split.".to_string()
    } else {
        format!(
            "Protocol: few-shot, as Gao et al. (2021, LM-BFF): every cell trains on K = {} examples per class and selects on a dev set of the same size drawn from the training data, and is evaluated on the evaluation split.",
            list(k.iter().map(usize::to_string).collect())
        )
    };
    let second = if splits.is_empty() {
        String::new()
    } else {
        format!(
            " Each data split (data seeds {}) is crossed with the search seeds ({}): n counts split × seed cells, comparisons pair cells on both, and the spread is separated into a split component (between data splits) and a seed component (within a split) in the table after the summary.",
            list(splits.iter().map(u64::to_string).collect()),
            list(seeds.iter().map(u64::to_string).collect()),
        )
    };
    Some(format!("{first}{second}\n\n"))
}

/// The variance components table (`<metric>_sd_split`, `<metric>_sd_seed`), if any.
fn components_markdown(summary: &DataFrame, metrics: &[Metric]) -> Result<String, ReportError> {
    let present: Vec<&Metric> = metrics
        .iter()
        .filter(|m| {
            summary
                .column(&m.column(Statistic::SdSplit))
                .is_ok_and(|c| c.null_count() < c.len())
        })
        .collect();
    if present.is_empty() {
        return Ok(String::new());
    }
    let mut md = String::from(
        "\n### Variance components (sd between data splits / sd between search seeds within a split)\n\n| task | method | train_size |",
    );
    for m in &present {
        md.push_str(&format!(" {m} split | {m} seed |"));
    }
    md.push_str(&format!(
        "\n|{}|\n",
        vec!["---"; 3 + 2 * present.len()].join("|")
    ));
    for row in 0..summary.height() {
        let mut cells: Vec<String> = ["task", "method", "train_size"]
            .iter()
            .map(|k| cell_text(summary.column(k).expect("group key"), row))
            .collect();
        for m in &present {
            for part in [Statistic::SdSplit, Statistic::SdSeed] {
                cells.push(match summary.column(&m.column(part))?.get(row)? {
                    AnyValue::Float64(v) => format!("{v:.4}"),
                    _ => "–".into(),
                });
            }
        }
        md.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    Ok(md)
}

/// File stems of the plots a report links to.
struct Plots<'a> {
    low_resource: Option<&'a str>,
    compute: Option<&'a str>,
    /// The Δ plot's stem and the method it is against.
    delta: Option<(&'a str, &'a str)>,
}

fn markdown(
    records: &[Record],
    summary: &DataFrame,
    metrics: &[Metric],
    meta: &ReportMeta,
    plots: &Plots,
    comparisons: Option<&str>,
) -> Result<String, ReportError> {
    let mut md = format!("# {}\n\n", meta.name);
    if !meta.description.is_empty() {
        md.push_str(&format!("{}\n\n", meta.description.trim()));
    }
    md.push_str(&format!(
        "Experiment file: `{}`. Cells: {} ({} finished, {} failed).\n\n",
        meta.experiment_file.display(),
        records.len(),
        records
            .iter()
            .filter(|r| r.status == Status::Finished)
            .count(),
        records
            .iter()
            .filter(|r| r.status == Status::Failed)
            .count(),
    ));
    if let Some(protocol) = few_shot_protocol(records) {
        md.push_str(&protocol);
    }
    md.push_str("## Summary (mean ± sd over seeds; evaluation split unless prefixed `dev_`)\n\n");
    md.push_str(&summary_markdown(summary, metrics)?);
    md.push_str(&components_markdown(summary, metrics)?);
    if let Some(plot) = plots.low_resource {
        md.push_str(&format!("\n![low-resource curve]({plot}.png)\n\n(also as [SVG]({plot}.svg); shaded: ±1 sd over seeds)\n"));
    }
    if let Some(comparisons) = comparisons {
        md.push_str(comparisons);
    }
    if let Some((plot, baseline)) = plots.delta {
        md.push_str(&format!(
            "\n![Δ against {baseline}]({plot}.png)\n\n(also as [SVG]({plot}.svg); each method's mean paired difference from {baseline} by training size, shaded: its paired t 95% interval)\n"
        ));
    }
    if let Some(plot) = plots.compute {
        md.push_str(&format!(
            "\n## Search compute\n\n![compute curve]({plot}.png)\n\nThe dev metric of the prompt each search would return if stopped at a step, against the encoder rows (forward + backward) it had run; mean over seeds, shaded ±1 sd (also as [SVG]({plot}.svg)). Every step is in `steps.parquet` / `steps.csv` beside the records.\n"
        ));
    }
    let mut prompts: Vec<&Record> = records.iter().filter(|r| r.prompt.is_some()).collect();
    prompts.sort_by(|a, b| {
        (
            a.spec.method.name(),
            a.spec.task.budget().train_size,
            a.spec.task.relation(),
            a.spec.task.budget().data_seed,
            a.spec.seed,
        )
            .cmp(&(
                b.spec.method.name(),
                b.spec.task.budget().train_size,
                b.spec.task.relation(),
                b.spec.task.budget().data_seed,
                b.spec.seed,
            ))
    });
    if !prompts.is_empty() {
        md.push_str("\n## Prompts\n\n| method | task | train_size | seed | prompt | label tokens | dev |\n|---|---|---|---|---|---|---|\n");
        for r in prompts {
            let p = r.prompt.as_ref().expect("filtered");
            let labels = p.verbalizer.as_ref().map_or(String::new(), |v| {
                v.classes
                    .iter()
                    .map(|c| format!("{}: {}", c.label, c.tokens.join(", ")))
                    .collect::<Vec<_>>()
                    .join("; ")
            });
            let dev = r
                .search
                .as_ref()
                .map_or(String::new(), |s| format!("{:.4}", s.best_dev));
            let task = format!(
                "{}{}",
                task_label(&r.spec.task),
                r.spec
                    .task
                    .relation()
                    .map(|x| format!(" {x}"))
                    .unwrap_or_default()
                    .to_lowercase()
            );
            let options = r
                .spec
                .method
                .search_settings()
                .map(|s| steps::changed_search_options(s).join(", "))
                .filter(|o| !o.is_empty())
                .map_or(String::new(), |o| format!(" ({o})"));
            md.push_str(&format!(
                "| {}{} | {} | {} | {} | `{}` | {} | {} |\n",
                r.spec.method.name(),
                options,
                task,
                r.spec.task.budget().train_size,
                // `data_seed/seed` under the few-shot protocol.
                r.spec
                    .task
                    .budget()
                    .data_seed
                    .map_or(r.spec.seed.to_string(), |d| format!("{d}/{}", r.spec.seed)),
                p.filled.replace('|', "\\|"),
                labels.replace('|', "\\|"),
                dev
            ));
        }
    }
    let failed: Vec<&Record> = records
        .iter()
        .filter(|r| r.status == Status::Failed)
        .collect();
    if !failed.is_empty() {
        md.push_str("\n## Failed cells\n\n");
        for r in failed {
            md.push_str(&format!(
                "- `{}`: {}\n",
                r.id,
                r.error.as_deref().unwrap_or("").replace('\n', " ")
            ));
        }
    }
    md.push_str("\n## Provenance\n\n");
    let versions: BTreeSet<String> = records
        .iter()
        .map(|r| {
            format!(
                "autoprompt {} ({}), backend {}, {} threads",
                r.provenance.package_version,
                r.provenance
                    .git_commit
                    .as_deref()
                    .unwrap_or("no git commit"),
                r.provenance.backend.name(),
                r.provenance.threads
            )
        })
        .collect();
    for v in versions {
        md.push_str(&format!("- {v}\n"));
    }
    let files: BTreeMap<&String, &String> = records
        .iter()
        .flat_map(|r| r.provenance.files.iter())
        .collect();
    for (path, hash) in files {
        md.push_str(&format!("- `{path}`: sha256 `{hash}`\n"));
    }
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(acc: &[Option<f64>]) -> DataFrame {
        let n = acc.len();
        let s = |v: &str| vec![Some(v.to_string()); n];
        df!(
            "task" => s("sst2"),
            "relation" => vec![None::<String>; n],
            "variant" => vec![None::<String>; n],
            "model" => s("m"),
            "method" => s("autoprompt"),
            "train_size" => vec![10u64; n],
            "setting" => s("abcd"),
            "seed" => (0..n as u64).collect::<Vec<_>>(),
            "status" => s("finished"),
            "seconds" => vec![1.0f64; n],
            "seconds_per_iteration" => vec![None::<f64>; n],
            "accuracy" => acc.to_vec(),
        )
        .unwrap()
    }

    #[test]
    fn seed_statistics_by_hand() {
        let summary = summary_frame(
            &cells(&[Some(0.5), Some(0.6), Some(0.7)]),
            &["accuracy".into()],
        )
        .unwrap();
        let get = |c: &str| {
            summary
                .column(c)
                .unwrap()
                .get(0)
                .unwrap()
                .try_extract::<f64>()
                .unwrap()
        };
        assert!((get("accuracy_mean") - 0.6).abs() < 1e-12);
        assert!((get("accuracy_sd") - 0.1).abs() < 1e-12);
        assert_eq!((get("accuracy_min"), get("accuracy_max")), (0.5, 0.7));
        // t(0.975, 2 df) = 4.302652729749462 (scipy.stats.t.ppf); · 0.1 / √3 = 0.24841...
        assert!((get("accuracy_ci95") - 4.302652729749462 * 0.1 / 3f64.sqrt()).abs() < 1e-9);
        assert_eq!(
            summary
                .column("n_seeds")
                .unwrap()
                .get(0)
                .unwrap()
                .try_extract::<u32>()
                .unwrap(),
            3
        );
    }

    #[test]
    fn one_seed_has_no_interval() {
        let summary = summary_frame(&cells(&[Some(0.5)]), &["accuracy".into()]).unwrap();
        assert!(
            summary
                .column("accuracy_ci95")
                .unwrap()
                .get(0)
                .unwrap()
                .is_null()
        );
    }

    #[test]
    fn plot_files_are_valid_png_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        let curve = plot::Curve {
            label: "autoprompt".into(),
            points: vec![
                plot::Point {
                    x: 10.0,
                    mean: 0.55,
                    sd: 0.05,
                },
                plot::Point {
                    x: 100.0,
                    mean: 0.6,
                    sd: 0.03,
                },
            ],
        };
        let files =
            plot::low_resource_curve(&dir.path().join("curve"), "t", "accuracy", &[curve]).unwrap();
        let svg = std::fs::read_to_string(&files[0]).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("autoprompt"));
        let png = std::fs::read(&files[1]).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(png.len() > 5_000);
    }
}
