//! Search trajectories as tables: one row per search step of every cell (`steps.parquet`,
//! `steps.csv`), and the compute curve drawn from them — the dev metric of the prompt each
//! search would return if stopped at a step, against the encoder rows run up to it.

use std::collections::{BTreeMap, BTreeSet};

use polars::prelude::*;
use serde_json::Value;

use super::{ReportError, plot, setting_id};
use crate::record::{Record, Status};
use crate::search::{SearchResult, SearchSettings};

/// A grid value as table text: strings as they are, anything else as JSON.
fn grid_text(value: &Value) -> String {
    crate::config::GridValue(value).to_string()
}

/// Records with a search trajectory, in id order.
fn searched(records: &[Record]) -> Vec<(&Record, &SearchResult)> {
    let mut out: Vec<(&Record, &SearchResult)> = records
        .iter()
        .filter_map(|r| r.search.as_ref().map(|s| (r, s)))
        .collect();
    out.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    out
}

/// One row per search step: the cell (id, setting, method, seed, each grid value as
/// `grid.<key>`), the step's fields, and the cumulative encoder rows (null in records from
/// before they were counted). `None` when no record has a search.
pub fn steps_frame(records: &[Record]) -> Result<Option<DataFrame>, ReportError> {
    let cells = searched(records);
    if cells.is_empty() {
        return Ok(None);
    }
    let rows: Vec<(&Record, &crate::search::SearchStep)> = cells
        .iter()
        .flat_map(|(r, s)| s.steps.iter().map(move |step| (*r, step)))
        .collect();
    let text = |f: &dyn Fn(&Record) -> String| rows.iter().map(|(r, _)| f(r)).collect::<Vec<_>>();
    let mut columns = vec![
        Column::new("id".into(), text(&|r| r.id.clone())),
        Column::new("setting".into(), text(&setting_id)),
        Column::new("method".into(), text(&|r| r.spec.method.name().to_string())),
        Column::new(
            "seed".into(),
            rows.iter().map(|(r, _)| r.spec.seed).collect::<Vec<_>>(),
        ),
    ];
    let keys: BTreeSet<&String> = cells.iter().flat_map(|(r, _)| r.grid.keys()).collect();
    for key in keys {
        let values: Vec<Option<String>> = rows
            .iter()
            .map(|(r, _)| r.grid.get(key).map(grid_text))
            .collect();
        columns.push(Column::new(format!("grid.{key}").as_str().into(), values));
    }
    let step_u64 = |f: &dyn Fn(&crate::search::SearchStep) -> u64| {
        rows.iter().map(|(_, s)| f(s)).collect::<Vec<_>>()
    };
    columns.extend([
        Column::new("restart".into(), step_u64(&|s| s.restart as u64)),
        Column::new("iteration".into(), step_u64(&|s| s.iteration as u64)),
        Column::new("slot".into(), step_u64(&|s| s.slot as u64)),
        Column::new(
            "loss".into(),
            rows.iter().map(|(_, s)| s.loss as f64).collect::<Vec<_>>(),
        ),
        Column::new(
            "current".into(),
            rows.iter().map(|(_, s)| s.current).collect::<Vec<_>>(),
        ),
        Column::new(
            "best_candidate_id".into(),
            rows.iter()
                .map(|(_, s)| s.best_candidate.as_ref().map(|c| c.0))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "best_candidate".into(),
            rows.iter()
                .map(|(_, s)| s.best_candidate.as_ref().map(|c| c.1.clone()))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "best_candidate_metric".into(),
            rows.iter()
                .map(|(_, s)| s.best_candidate.as_ref().map(|c| c.2))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "accepted".into(),
            rows.iter().map(|(_, s)| s.accepted).collect::<Vec<_>>(),
        ),
        Column::new(
            "dev".into(),
            rows.iter().map(|(_, s)| s.dev).collect::<Vec<_>>(),
        ),
        Column::new(
            "seconds".into(),
            rows.iter().map(|(_, s)| s.seconds).collect::<Vec<_>>(),
        ),
        Column::new(
            "forward_rows".into(),
            rows.iter()
                .map(|(_, s)| s.rows.map(|r| r.forward))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "backward_rows".into(),
            rows.iter()
                .map(|(_, s)| s.rows.map(|r| r.backward))
                .collect::<Vec<_>>(),
        ),
    ]);
    Ok(Some(DataFrame::new(columns)?))
}

/// The dev metric of the prompt a search would return after each of its steps: the best
/// accepted prompt's (and the start's under `keep_initial`), the start's until a prompt is
/// accepted.
pub fn kept_dev_by_step(search: &SearchResult, keep_initial: bool) -> Vec<f64> {
    let initial = search.initial_dev.unwrap_or(f64::NEG_INFINITY);
    let mut best = keep_initial.then_some(initial);
    search
        .steps
        .iter()
        .map(|step| {
            if let Some(d) = step.dev {
                best = Some(best.map_or(d, |b| b.max(d)));
            }
            best.unwrap_or(initial)
        })
        .collect()
}

/// The search options of a cell that differ from the defaults, as `key=value`.
pub(crate) fn changed_search_options(settings: &SearchSettings) -> Vec<String> {
    let ours = serde_json::to_value(settings).expect("settings serialise");
    let defaults = serde_json::to_value(SearchSettings::default()).expect("settings serialise");
    let (Value::Object(ours), Value::Object(defaults)) = (ours, defaults) else {
        return vec![];
    };
    ours.into_iter()
        .filter(|(k, v)| defaults.get(k) != Some(v))
        .map(|(k, v)| format!("{k}={}", grid_text(&v)))
        .collect()
}

/// A curve's name: the method, its changed search options, and the non-seed grid values
/// that are not the method itself.
fn curve_label(record: &Record) -> String {
    let mut parts: Vec<String> = record
        .spec
        .method
        .search_settings()
        .map(changed_search_options)
        .unwrap_or_default();
    parts.extend(
        record
            .grid
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "method" | "seed" | "seeds"))
            .map(|(k, v)| format!("{}={}", k.rsplit('.').next().unwrap_or(k), grid_text(v))),
    );
    if parts.is_empty() {
        record.spec.method.name().to_string()
    } else {
        format!("{} ({})", record.spec.method.name(), parts.join(", "))
    }
}

/// One curve per setting: at step k, x is the mean over seeds of the encoder rows run and y
/// the mean ± sd of the kept prompt's dev metric (over the seeds that reached step k).
/// Finished cells whose steps carry encoder rows only.
pub fn compute_curves(records: &[Record]) -> Vec<plot::Curve> {
    let mut by_label: BTreeMap<String, Vec<Vec<(f64, f64)>>> = BTreeMap::new();
    for (record, search) in searched(records) {
        if record.status != Status::Finished {
            continue;
        }
        let keep_initial = record
            .spec
            .method
            .search_settings()
            .is_some_and(|s| s.keep_initial);
        let series: Option<Vec<(f64, f64)>> = search
            .steps
            .iter()
            .zip(kept_dev_by_step(search, keep_initial))
            .map(|(step, dev)| step.rows.map(|r| (r.total() as f64, dev)))
            .collect();
        if let Some(series) = series.filter(|s| !s.is_empty()) {
            by_label
                .entry(curve_label(record))
                .or_default()
                .push(series);
        }
    }
    by_label
        .into_iter()
        .map(|(label, seeds)| {
            let longest = seeds.iter().map(Vec::len).max().unwrap_or(0);
            let points = (0..longest)
                .filter_map(|k| {
                    let at: Vec<(f64, f64)> =
                        seeds.iter().filter_map(|s| s.get(k)).copied().collect();
                    let n = at.len() as f64;
                    let x = at.iter().map(|p| p.0).sum::<f64>() / n;
                    let mean = at.iter().map(|p| p.1).sum::<f64>() / n;
                    let var =
                        at.iter().map(|p| (p.1 - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
                    mean.is_finite().then_some(plot::Point {
                        x,
                        mean,
                        sd: var.sqrt(),
                    })
                })
                .collect();
            plot::Curve { label, points }
        })
        .collect()
}
