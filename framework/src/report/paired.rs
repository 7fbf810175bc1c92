//! Paired comparisons between methods: is method A better than method B?
//!
//! Cells that differ only in the method — same task, budget, model and seed, hence the same
//! sampled training and dev examples and the same evaluation split — form pairs. For every
//! pair of methods of a setting and every metric both report, the differences `a - b` over
//! the seeds both ran give the mean Δ, a paired t interval and p-value, and a paired
//! bootstrap interval over seeds ([`super::stats`]). Two methods that share no seed are not
//! paired (the reason is kept); unequal seed sets pair on their intersection, and the
//! comparison says which seeds were left out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use polars::prelude::*;
use sha2::Digest;

use crate::config::{MethodKind, MethodSpec};
use crate::metric::Metric;
use crate::record::{Record, Status};

use super::stats::{self, Interval, McNemar, PairedT};
use super::{steps, task_label, toml_name};

/// Seed of every bootstrap of the comparisons: the same records give the same intervals.
pub const BOOTSTRAP_SEED: u64 = 0;

/// What cells share when they pair: everything in their spec but the method and the seed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Setting {
    /// 8 hex digits: the cell id of the spec with the method and the seed set to defaults.
    pub id: String,
    pub task: String,
    pub relation: Option<String>,
    pub variant: Option<String>,
    pub model: String,
    pub train_size: u64,
}

impl Setting {
    fn of(record: &Record) -> Self {
        let mut spec = record.spec.clone();
        spec.seed = 0;
        spec.task.budget_mut().data_seed = None;
        spec.method = MethodSpec::Majority;
        Self {
            id: crate::plan::cell_id(&spec)[..8].to_string(),
            task: task_label(&record.spec.task),
            relation: record.spec.task.relation().map(str::to_string),
            variant: record.spec.task.variant().map(|v| toml_name(&v)),
            model: record.spec.model.source.clone(),
            train_size: record.spec.task.budget().train_size.get() as u64,
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.task)?;
        for part in [&self.variant, &self.relation].into_iter().flatten() {
            write!(f, " {part}")?;
        }
        write!(
            f,
            " · train_size {} · {} (setting {})",
            self.train_size, self.model, self.id
        )
    }
}

/// Whether a method is a baseline (the reference a searched prompt has to beat) or a
/// method under study.
pub fn is_baseline(kind: MethodKind) -> bool {
    matches!(
        kind,
        MethodKind::Majority | MethodKind::Manual | MethodKind::LinearProbe | MethodKind::Finetune
    )
}

/// Why two methods of a setting were not paired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Their finished cells share no seed, so no cell of one saw the training and dev
    /// examples of a cell of the other.
    NoSharedSeed { a: Vec<Unit>, b: Vec<Unit> },
}

/// What pairs two cells of a setting: their search seed and, under the few-shot protocol,
/// their data split (`task.data_seed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Unit {
    pub data_seed: Option<u64>,
    pub seed: u64,
}

impl Unit {
    fn of(record: &Record) -> Self {
        Self {
            data_seed: record.spec.task.budget().data_seed,
            seed: record.spec.seed,
        }
    }
}

/// `seed`, or `data_seed/seed` under the few-shot protocol.
impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.data_seed {
            Some(d) => write!(f, "{d}/{}", self.seed),
            None => write!(f, "{}", self.seed),
        }
    }
}

fn seed_list(seeds: &[Unit]) -> String {
    seeds
        .iter()
        .map(Unit::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Refusal {
    /// The reason in words, naming the two methods.
    pub fn explain(&self, a: &str, b: &str) -> String {
        match self {
            Refusal::NoSharedSeed { a: sa, b: sb } => format!(
                "not paired: {a} ran seeds {} and {b} seeds {}, none in common (cells pair only on a shared seed, which gives them the same training and dev examples)",
                seed_list(sa),
                seed_list(sb)
            ),
        }
    }
}

/// The paired result of one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Paired {
    /// The seeds the differences rest on.
    pub seeds: Vec<Unit>,
    /// Seeds only `a` (or only `b`) finished, left out of the pairing.
    pub only_a: Vec<Unit>,
    pub only_b: Vec<Unit>,
    /// Means over the paired seeds.
    pub a_mean: f64,
    pub b_mean: f64,
    /// The paired t-test of `a - b`.
    pub t: PairedT,
    /// Paired percentile bootstrap over seeds (`None` for one seed).
    pub bootstrap: Option<Interval>,
    /// Statistics over evaluation examples, for the metric that counts right answers
    /// (`accuracy`, `p_at_1`) where both cells of every paired seed stored predictions.
    pub examples: Option<ExampleLevel>,
}

/// A pair's statistics over evaluation examples.
#[derive(Debug, Clone, PartialEq)]
pub struct ExampleLevel {
    /// Evaluation examples (the same in every cell of the setting).
    pub examples: usize,
    /// Percentile bootstrap of Δ over examples: each example's difference (right = 1,
    /// wrong = 0) averaged over the paired seeds, resampled. Seeds are held fixed: this is
    /// the uncertainty from the finite evaluation split alone.
    pub bootstrap: Option<Interval>,
    /// McNemar's test of each paired seed, in seed order.
    pub mcnemar: Vec<McNemar>,
}

impl ExampleLevel {
    /// The largest McNemar p-value over the seeds: below 0.05, the difference is
    /// significant on every seed.
    pub fn mcnemar_p_max(&self) -> Option<f64> {
        self.mcnemar.iter().map(|m| m.p_value).reduce(f64::max)
    }
}

/// Per-example right / wrong of one cell, when it stored predictions.
fn outcomes(record: &Record) -> Option<Vec<bool>> {
    let p = record.predictions.as_ref()?;
    Some(p.rows.iter().map(|r| r.correct()).collect())
}

/// Example-level statistics of `a` against `b` on `seeds`: `None` unless both sides of every
/// seed stored predictions on the same examples (same count and gold answers).
fn example_level(a: &Arm, b: &Arm, seeds: &[Unit]) -> Option<ExampleLevel> {
    let mut per_seed = vec![];
    for s in seeds {
        let (ra, rb) = (a.cells[s], b.cells[s]);
        let (pa, pb) = (ra.predictions.as_ref()?, rb.predictions.as_ref()?);
        let same_examples = pa.rows.len() == pb.rows.len()
            && pa
                .rows
                .iter()
                .zip(&pb.rows)
                .all(|(x, y)| x.example == y.example && x.gold == y.gold);
        if !same_examples {
            tracing::warn!(a = %ra.id, b = %rb.id, "predictions of paired cells are not on the same examples; no example-level statistics");
            return None;
        }
        per_seed.push((outcomes(ra)?, outcomes(rb)?));
    }
    let n = per_seed.first()?.0.len();
    let value = |right: bool| if right { 1.0 } else { 0.0 };
    let mean_difference: Vec<f64> = (0..n)
        .map(|i| {
            per_seed
                .iter()
                .map(|(x, y)| value(x[i]) - value(y[i]))
                .sum::<f64>()
                / per_seed.len() as f64
        })
        .collect();
    Some(ExampleLevel {
        examples: n,
        bootstrap: stats::bootstrap_mean(
            &mean_difference,
            stats::RESAMPLES,
            BOOTSTRAP_SEED,
            stats::LEVEL,
        ),
        mcnemar: per_seed
            .iter()
            .map(|(x, y)| stats::mcnemar_outcomes(x, y).expect("equal lengths"))
            .collect(),
    })
}

impl Paired {
    /// The mean difference `a - b`.
    pub fn delta(&self) -> f64 {
        self.t.mean
    }

    /// Seeds left out, in words (`None` when both sides ran the same seeds).
    pub fn note(&self, a: &str, b: &str) -> Option<String> {
        let mut parts = vec![];
        if !self.only_a.is_empty() {
            parts.push(format!(
                "{a}'s seed(s) {} have no {b} cell",
                seed_list(&self.only_a)
            ));
        }
        if !self.only_b.is_empty() {
            parts.push(format!(
                "{b}'s seed(s) {} have no {a} cell",
                seed_list(&self.only_b)
            ));
        }
        (!parts.is_empty()).then(|| {
            format!(
                "paired on the {} seed(s) both ran ({}); {}",
                self.seeds.len(),
                seed_list(&self.seeds),
                parts.join("; ")
            )
        })
    }
}

/// A comparison's result: paired numbers, or why there are none.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Paired(Paired),
    Refused(Refusal),
}

/// One metric of one method against another within a setting: Δ = `a - b`.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub setting: Setting,
    pub metric: Metric,
    pub a: String,
    pub b: String,
    pub a_kind: MethodKind,
    pub b_kind: MethodKind,
    /// `b` is the setting's best baseline on the main metric.
    pub b_is_best_baseline: bool,
    pub outcome: Outcome,
}

impl Comparison {
    /// What the comparison rests on, or why it was refused (`None`: all seeds paired).
    pub fn note(&self) -> Option<String> {
        match &self.outcome {
            Outcome::Paired(p) => p.note(&self.a, &self.b),
            Outcome::Refused(r) => Some(r.explain(&self.a, &self.b)),
        }
    }
}

/// One method of a setting: its label in tables and its finished cells by seed.
#[derive(Debug, Clone)]
pub struct Arm<'a> {
    pub label: String,
    pub kind: MethodKind,
    pub cells: BTreeMap<Unit, &'a Record>,
}

impl Arm<'_> {
    fn seeds(&self) -> Vec<Unit> {
        self.cells.keys().copied().collect()
    }

    /// Mean of a metric over the arm's cells that have it.
    fn mean(&self, metric: &Metric) -> Option<f64> {
        let values: Vec<f64> = self
            .cells
            .values()
            .filter_map(|r| r.metrics.get(metric).copied())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    }
}

/// A method as the tables name it: `autoprompt`, `autoprompt (iters=15)` when search options
/// differ from the defaults.
fn base_label(spec: &MethodSpec) -> String {
    let mut options: Vec<String> = spec
        .search_settings()
        .map(steps::changed_search_options)
        .unwrap_or_default();
    options.extend(
        spec.multi_token()
            .map(|m| format!("multi_token {}", m.describe())),
    );
    let options = options.join(", ");
    if options.is_empty() {
        spec.name().to_string()
    } else {
        format!("{} ({options})", spec.name())
    }
}

/// Finished cells grouped by setting and method. Two different method specs that would get
/// the same label in a setting (two manual templates, say) are told apart by a short hash
/// of their spec.
pub fn arms(records: &[Record]) -> BTreeMap<Setting, Vec<Arm<'_>>> {
    let mut by_setting: BTreeMap<Setting, Vec<&Record>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.status == Status::Finished) {
        by_setting.entry(Setting::of(r)).or_default().push(r);
    }
    let method_json = |r: &Record| serde_json::to_string(&r.spec.method).expect("specs serialise");
    by_setting
        .into_iter()
        .map(|(setting, records)| {
            let mut specs_by_label: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for r in &records {
                specs_by_label
                    .entry(base_label(&r.spec.method))
                    .or_default()
                    .insert(method_json(r));
            }
            let mut arms: BTreeMap<String, Arm> = BTreeMap::new();
            for r in records {
                let mut label = base_label(&r.spec.method);
                if specs_by_label[&label].len() > 1 {
                    let hash = sha2::Sha256::digest(method_json(r).as_bytes());
                    label = format!("{label} #{}", &hex::encode(hash)[..6]);
                }
                arms.entry(label.clone())
                    .or_insert_with(|| Arm {
                        label,
                        kind: r.spec.method.kind(),
                        cells: BTreeMap::new(),
                    })
                    .cells
                    .insert(Unit::of(r), r);
            }
            (setting, arms.into_values().collect())
        })
        .collect()
}

/// Pairs two arms on one metric (`None` when not both report it on a shared seed).
pub fn pair(a: &Arm, b: &Arm, metric: &Metric) -> Option<Outcome> {
    let (sa, sb) = (a.seeds(), b.seeds());
    let shared: Vec<Unit> = sa.iter().filter(|s| sb.contains(s)).copied().collect();
    if shared.is_empty() {
        return Some(Outcome::Refused(Refusal::NoSharedSeed { a: sa, b: sb }));
    }
    let mut seeds = vec![];
    let (mut xa, mut xb) = (vec![], vec![]);
    for s in &shared {
        if let (Some(x), Some(y)) = (
            a.cells[s].metrics.get(metric),
            b.cells[s].metrics.get(metric),
        ) && x.is_finite()
            && y.is_finite()
        {
            seeds.push(*s);
            xa.push(*x);
            xb.push(*y);
        }
    }
    if seeds.is_empty() {
        return None;
    }
    let t = stats::paired_t(&xa, &xb).expect("equal, non-empty, finite");
    let bootstrap =
        stats::paired_bootstrap(&xa, &xb, BOOTSTRAP_SEED).expect("equal, non-empty, finite");
    let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
    let examples = metric
        .counts_right_answers()
        .then(|| example_level(a, b, &seeds))
        .flatten();
    Some(Outcome::Paired(Paired {
        examples,
        only_a: sa.iter().filter(|s| !seeds.contains(s)).copied().collect(),
        only_b: sb.iter().filter(|s| !seeds.contains(s)).copied().collect(),
        a_mean: mean(&xa),
        b_mean: mean(&xb),
        seeds,
        t,
        bootstrap,
    }))
}

/// The metric a setting's best baseline is chosen by: `accuracy`, else `p_at_1`, else the
/// first metric in name order.
pub fn main_metric(metrics: &[Metric]) -> Option<&Metric> {
    Metric::main_of(metrics).or(metrics.first())
}

/// The baseline with the highest mean of `metric` (ties: the first in label order).
pub fn best_baseline<'r>(arms: &'r [Arm<'r>], metric: &Metric) -> Option<&'r Arm<'r>> {
    arms.iter()
        .filter(|a| is_baseline(a.kind))
        .filter_map(|a| a.mean(metric).map(|m| (a, m)))
        .fold(None, |best: Option<(&Arm, f64)>, (a, m)| match best {
            Some((_, bm)) if bm >= m => best,
            _ => Some((a, m)),
        })
        .map(|(a, _)| a)
}

/// Orders the two arms of a pair: a method under study before a baseline, else label order.
fn oriented<'r>(x: &'r Arm<'r>, y: &'r Arm<'r>) -> (&'r Arm<'r>, &'r Arm<'r>) {
    match (is_baseline(x.kind), is_baseline(y.kind)) {
        (true, false) => (y, x),
        _ => (x, y),
    }
}

/// Every pair of methods of every setting, on every metric both report: the table
/// `comparisons.parquet` holds. Each unordered pair appears once, a method under study
/// before a baseline (Δ = method − baseline), otherwise in label order.
pub fn compare_all(records: &[Record], metrics: &[Metric]) -> Vec<Comparison> {
    let main = main_metric(metrics);
    let mut out = vec![];
    for (setting, arms) in arms(records) {
        let best = main
            .and_then(|m| best_baseline(&arms, m))
            .map(|a| a.label.clone());
        for (i, x) in arms.iter().enumerate() {
            for y in &arms[i + 1..] {
                let (a, b) = oriented(x, y);
                out.extend(compare_arms(&setting, a, b, metrics, best.as_deref()));
            }
        }
    }
    out
}

fn compare_arms(
    setting: &Setting,
    a: &Arm,
    b: &Arm,
    metrics: &[Metric],
    best: Option<&str>,
) -> Vec<Comparison> {
    let mut out = vec![];
    for metric in metrics {
        let Some(outcome) = pair(a, b, metric) else {
            continue;
        };
        let refused = matches!(outcome, Outcome::Refused(_));
        out.push(Comparison {
            setting: setting.clone(),
            metric: metric.clone(),
            a: a.label.clone(),
            b: b.label.clone(),
            a_kind: a.kind,
            b_kind: b.kind,
            b_is_best_baseline: best == Some(b.label.as_str()),
            outcome,
        });
        // A refusal is about the seeds, the same for every metric: say it once.
        if refused {
            break;
        }
    }
    out
}

/// Why a requested pair of methods cannot be compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairError {
    #[error("no finished cell of method `{method}`; the experiment's methods: {}", .known.join(", "))]
    UnknownMethod { method: String, known: Vec<String> },
    #[error("`{a}` and `{b}` never share a setting (task, budget and model)")]
    NoSharedSetting { a: String, b: String },
}

/// Whether `query` names `arm`: its label, or its method's name when that is unambiguous in
/// the setting.
fn names(query: &str, arm: &Arm, arms: &[Arm]) -> bool {
    arm.label == query
        || (arm.label.split(' ').next() == Some(query)
            && arms
                .iter()
                .filter(|x| x.label.split(' ').next() == Some(query))
                .count()
                == 1)
}

/// `a` against `b` in every setting that has both (Δ = `a - b`), on `metrics`.
pub fn compare_two(
    records: &[Record],
    a: &str,
    b: &str,
    metrics: &[Metric],
) -> Result<Vec<Comparison>, PairError> {
    let all = arms(records);
    let known: BTreeSet<String> = all.values().flatten().map(|x| x.label.clone()).collect();
    for method in [a, b] {
        if !all
            .values()
            .any(|arms| arms.iter().any(|x| names(method, x, arms)))
        {
            return Err(PairError::UnknownMethod {
                method: method.to_string(),
                known: known.into_iter().collect(),
            });
        }
    }
    let main = main_metric(metrics);
    let mut out = vec![];
    let mut shared = false;
    for (setting, arms) in &all {
        let find = |q: &str| arms.iter().find(|x| names(q, x, arms));
        if let (Some(x), Some(y)) = (find(a), find(b)) {
            shared = true;
            let best = main
                .and_then(|m| best_baseline(arms, m))
                .map(|x| x.label.clone());
            out.extend(compare_arms(setting, x, y, metrics, best.as_deref()));
        }
    }
    if !shared {
        return Err(PairError::NoSharedSetting {
            a: a.to_string(),
            b: b.to_string(),
        });
    }
    Ok(out)
}

/// One curve per method and (task, variant, relation, model): its mean paired Δ of `metric`
/// against `baseline` at each training size, the band its paired t 95% interval (`sd` holds
/// the half-width; 0 where one seed gives no interval). Settings without `baseline`, and
/// refused pairs, have no point.
pub fn delta_curves(
    records: &[Record],
    baseline: &str,
    metric: &Metric,
) -> Result<Vec<super::plot::Curve>, PairError> {
    let all = arms(records);
    let mut by_label: BTreeMap<String, Vec<super::plot::Point>> = BTreeMap::new();
    let mut found = false;
    for (setting, arms) in &all {
        let Some(base) = arms.iter().find(|x| names(baseline, x, arms)) else {
            continue;
        };
        found = true;
        for arm in arms.iter().filter(|x| x.label != base.label) {
            let Some(Outcome::Paired(p)) = pair(arm, base, metric) else {
                continue;
            };
            let mut place = vec![setting.task.clone()];
            place.extend(setting.variant.clone());
            place.extend(setting.relation.clone());
            place.push(setting.model.clone());
            by_label
                .entry(format!("{} · {}", arm.label, place.join(" ")))
                .or_default()
                .push(super::plot::Point {
                    x: setting.train_size as f64,
                    mean: p.delta(),
                    sd: p.t.interval.map_or(0.0, |i| (i.high - i.low) / 2.0),
                });
        }
    }
    if !found {
        return Err(PairError::UnknownMethod {
            method: baseline.to_string(),
            known: all
                .values()
                .flatten()
                .map(|x| x.label.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        });
    }
    Ok(by_label
        .into_iter()
        .map(|(label, mut points)| {
            points.sort_by(|a, b| a.x.total_cmp(&b.x));
            super::plot::Curve { label, points }
        })
        .collect())
}

/// The comparisons as a table, one row per comparison (`comparisons.parquet` / `.csv`):
/// the setting's columns, `metric`, `a`, `b`, `n_seeds`, `seeds`, the means, `delta`
/// (= a − b), its `sd`, the t interval and p, the bootstrap interval, and a `note` (seeds
/// left out, or why the pair was refused, then the numbers are null).
pub fn comparisons_frame(comparisons: &[Comparison]) -> PolarsResult<DataFrame> {
    let text =
        |f: &dyn Fn(&Comparison) -> Option<String>| comparisons.iter().map(f).collect::<Vec<_>>();
    let paired = |c: &Comparison| match &c.outcome {
        Outcome::Paired(p) => Some(p.clone()),
        Outcome::Refused(_) => None,
    };
    let number = |f: &dyn Fn(&Paired) -> Option<f64>| {
        comparisons
            .iter()
            .map(|c| paired(c).and_then(|p| f(&p)))
            .collect::<Vec<_>>()
    };
    DataFrame::new(vec![
        Column::new("task".into(), text(&|c| Some(c.setting.task.clone()))),
        Column::new("relation".into(), text(&|c| c.setting.relation.clone())),
        Column::new("variant".into(), text(&|c| c.setting.variant.clone())),
        Column::new("model".into(), text(&|c| Some(c.setting.model.clone()))),
        Column::new(
            "train_size".into(),
            comparisons
                .iter()
                .map(|c| c.setting.train_size)
                .collect::<Vec<_>>(),
        ),
        Column::new("setting".into(), text(&|c| Some(c.setting.id.clone()))),
        Column::new("metric".into(), text(&|c| Some(c.metric.to_string()))),
        Column::new("a".into(), text(&|c| Some(c.a.clone()))),
        Column::new("b".into(), text(&|c| Some(c.b.clone()))),
        Column::new(
            "b_is_best_baseline".into(),
            comparisons
                .iter()
                .map(|c| c.b_is_best_baseline)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "n_seeds".into(),
            comparisons
                .iter()
                .map(|c| paired(c).map_or(0, |p| p.seeds.len() as u32))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "seeds".into(),
            text(&|c| paired(c).map(|p| seed_list(&p.seeds))),
        ),
        Column::new("a_mean".into(), number(&|p| Some(p.a_mean))),
        Column::new("b_mean".into(), number(&|p| Some(p.b_mean))),
        Column::new("delta".into(), number(&|p| Some(p.delta()))),
        Column::new("sd".into(), number(&|p| p.t.sd)),
        Column::new("t_low".into(), number(&|p| p.t.interval.map(|i| i.low))),
        Column::new("t_high".into(), number(&|p| p.t.interval.map(|i| i.high))),
        Column::new("p_value".into(), number(&|p| p.t.p_value)),
        Column::new(
            "bootstrap_low".into(),
            number(&|p| p.bootstrap.map(|i| i.low)),
        ),
        Column::new(
            "bootstrap_high".into(),
            number(&|p| p.bootstrap.map(|i| i.high)),
        ),
        Column::new(
            "examples".into(),
            comparisons
                .iter()
                .map(|c| {
                    paired(c)
                        .and_then(|p| p.examples)
                        .map(|e| e.examples as u32)
                })
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "example_bootstrap_low".into(),
            number(&|p| p.examples.as_ref().and_then(|e| e.bootstrap).map(|i| i.low)),
        ),
        Column::new(
            "example_bootstrap_high".into(),
            number(&|p| {
                p.examples
                    .as_ref()
                    .and_then(|e| e.bootstrap)
                    .map(|i| i.high)
            }),
        ),
        Column::new(
            "mcnemar_p_max".into(),
            number(&|p| p.examples.as_ref().and_then(ExampleLevel::mcnemar_p_max)),
        ),
        Column::new(
            "mcnemar_only_a".into(),
            comparisons
                .iter()
                .map(|c| {
                    paired(c)
                        .and_then(|p| p.examples)
                        .map(|e| e.mcnemar.iter().map(|m| m.only_a).sum::<u64>())
                })
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "mcnemar_only_b".into(),
            comparisons
                .iter()
                .map(|c| {
                    paired(c)
                        .and_then(|p| p.examples)
                        .map(|e| e.mcnemar.iter().map(|m| m.only_b).sum::<u64>())
                })
                .collect::<Vec<_>>(),
        ),
        Column::new("note".into(), text(&|c| c.note())),
    ])
}

fn interval_text(interval: Option<Interval>) -> String {
    match interval {
        Some(i) => format!(
            "[{:+.4}, {:+.4}]{}",
            i.low,
            i.high,
            if i.excludes_zero() { " *" } else { "" }
        ),
        None => "–".into(),
    }
}

/// The "Comparisons" section of a report: per setting, on the main metric, each method under
/// study against the best baseline first, then against every other method (a setting
/// without one: its baselines against each other). `None` when nothing pairs.
pub fn comparisons_markdown(comparisons: &[Comparison], metrics: &[Metric]) -> Option<String> {
    let metric = main_metric(metrics)?;
    let mut by_setting: BTreeMap<&Setting, Vec<&Comparison>> = BTreeMap::new();
    for c in comparisons.iter().filter(|c| &c.metric == metric) {
        by_setting.entry(&c.setting).or_default().push(c);
    }
    if by_setting.is_empty() {
        return None;
    }
    let mut md = format!(
        "\n## Comparisons (paired: Δ = first − second, {metric} on the evaluation split)\n\n\
         Cells that differ only in the method (same task, budget, model and seed, hence the same training and dev examples) are paired. \
         Δ is the mean of the per-seed differences; its 95% intervals: the paired t-test over seeds (with its two-sided p), \
         a paired bootstrap over seeds, and, where the cells stored their predictions, a bootstrap over evaluation examples \
         (seeds held fixed: the uncertainty of the finite evaluation split), each with {} percentile resamples. \
         McNemar's test runs on each seed's predictions (exact binomial below {} discordant examples, else chi-square with continuity correction); \
         the largest p over the seeds is shown. `*` marks an interval that excludes 0; n is the number of seeds the difference rests on. \
         Every pair and metric is in `comparisons.parquet` / `comparisons.csv`.\n",
        stats::RESAMPLES,
        stats::MCNEMAR_EXACT_BELOW
    );
    let p_text = |p: Option<f64>| match p {
        Some(p) if p < 0.001 => "<0.001".to_string(),
        Some(p) => format!("{p:.3}"),
        None => "–".into(),
    };
    for (setting, rows) in by_setting {
        let studied = rows.iter().any(|c| !is_baseline(c.a_kind));
        let mut rows: Vec<&Comparison> = rows
            .into_iter()
            .filter(|c| !studied || !is_baseline(c.a_kind))
            .collect();
        rows.sort_by_key(|c| (c.a.clone(), !c.b_is_best_baseline, c.b.clone()));
        md.push_str(&format!(
            "\n### {setting}\n\n| comparison | Δ {metric} | means | t 95% | p | bootstrap 95% (seeds) | bootstrap 95% (examples) | McNemar p | n | note |\n|---|---|---|---|---|---|---|---|---|---|\n"
        ));
        for c in rows {
            let b = if c.b_is_best_baseline {
                format!("{} (best baseline)", c.b)
            } else {
                c.b.clone()
            };
            let note = c.note().unwrap_or_default().replace('|', "\\|");
            let line = match &c.outcome {
                Outcome::Paired(p) => format!(
                    "| {} − {b} | {:+.4} | {:.4} vs {:.4} | {} | {} | {} | {} | {} | {} | {note} |\n",
                    c.a,
                    p.delta(),
                    p.a_mean,
                    p.b_mean,
                    interval_text(p.t.interval),
                    p_text(p.t.p_value),
                    interval_text(p.bootstrap),
                    interval_text(p.examples.as_ref().and_then(|e| e.bootstrap)),
                    p_text(p.examples.as_ref().and_then(ExampleLevel::mcnemar_p_max)),
                    p.seeds.len()
                ),
                Outcome::Refused(_) => format!(
                    "| {} − {b} | – | – | – | – | – | – | – | 0 | {note} |\n",
                    c.a
                ),
            };
            md.push_str(&line);
        }
    }
    Some(md)
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use super::*;
    use crate::config::{CellSpec, ModelSpec};
    use crate::tasks::{Budget, Sst2Task, TaskSpec};

    fn manual(template: &str) -> MethodSpec {
        MethodSpec::Manual {
            template: Some(template.into()),
            labels: None,
            multi_token: None,
        }
    }

    fn record(method: MethodSpec, train_size: usize, seed: u64, accuracy: f64) -> Record {
        let size = |n| NonZeroUsize::new(n).unwrap();
        let spec = CellSpec {
            task: TaskSpec::Sst2(Sst2Task {
                budget: Budget::new(size(train_size), size(20)),
                per_class: None,
            }),
            model: ModelSpec::default(),
            method,
            seed,
        };
        Record {
            id: crate::plan::cell_id(&spec),
            experiment: "t".into(),
            index: 0,
            grid: BTreeMap::new(),
            spec,
            status: Status::Finished,
            error: None,
            attempts: 1,
            metrics: BTreeMap::from([
                ("accuracy".into(), accuracy),
                ("dev_accuracy".into(), accuracy - 0.01),
            ]),
            counts: Default::default(),
            prompt: None,
            search: None,
            label_search: None,
            timings: Default::default(),
            provenance: Default::default(),
            predictions: None,
        }
    }

    fn probe() -> MethodSpec {
        MethodSpec::LinearProbe {
            probe: Default::default(),
        }
    }

    fn metrics() -> Vec<Metric> {
        vec!["accuracy".into(), "dev_accuracy".into()]
    }

    fn seeds(units: &[Unit]) -> Vec<u64> {
        units.iter().map(|u| u.seed).collect()
    }

    fn units(seeds: &[u64]) -> Vec<Unit> {
        seeds
            .iter()
            .map(|&seed| Unit {
                data_seed: None,
                seed,
            })
            .collect()
    }

    fn paired(c: &Comparison) -> &Paired {
        match &c.outcome {
            Outcome::Paired(p) => p,
            Outcome::Refused(r) => panic!("refused: {r:?}"),
        }
    }

    fn autoprompt() -> MethodSpec {
        MethodSpec::Autoprompt {
            template: "[CLS] {sentence} [T] [P] . [SEP]".into(),
            labels: None,
            multi_token: None,
            search: Default::default(),
            label_search: Default::default(),
        }
    }

    #[test]
    fn methods_sharing_seeds_pair_seed_by_seed() {
        let tpl = "[CLS] {sentence} it was [P] . [SEP]";
        let (searched, manual_acc) = ([0.8, 0.7, 0.9], [0.6, 0.65, 0.7]);
        let mut records = vec![];
        for seed in 0..3 {
            records.push(record(autoprompt(), 10, seed, searched[seed as usize]));
            records.push(record(manual(tpl), 10, seed, manual_acc[seed as usize]));
            records.push(record(MethodSpec::Majority, 10, seed, 0.5));
            // Another budget is another setting: it never pairs with the cells above.
            records.push(record(MethodSpec::Majority, 100, seed, 0.1));
        }
        let all = compare_all(&records, &metrics());
        // One setting with three methods: three pairs, two metrics each; the other setting
        // has one method and no pair.
        assert_eq!(all.len(), 6, "{all:#?}");
        assert!(all.iter().all(|c| c.setting.train_size == 10));
        let c = all
            .iter()
            .find(|c| c.metric == "accuracy" && c.a == "autoprompt" && c.b == "manual")
            .unwrap();
        let p = paired(c);
        let want = stats::paired_t(&searched, &manual_acc).unwrap();
        assert_eq!(p.t, want);
        assert_eq!(seeds(&p.seeds), [0, 1, 2]);
        assert!((p.delta() - 0.15).abs() < 1e-12);
        assert!((p.a_mean - 0.8).abs() < 1e-12 && (p.b_mean - 0.65).abs() < 1e-12);
        assert_eq!(
            p.bootstrap,
            stats::paired_bootstrap(&searched, &manual_acc, BOOTSTRAP_SEED).unwrap()
        );
        assert_eq!(c.note(), None);
        // The method under study comes first; the best baseline by mean accuracy is manual
        // (0.65 > 0.5), and majority - manual is a pair of baselines in label order.
        assert!(c.b_is_best_baseline);
        let pairs: Vec<(&str, &str, bool)> = all
            .iter()
            .filter(|c| c.metric == "accuracy")
            .map(|c| (c.a.as_str(), c.b.as_str(), c.b_is_best_baseline))
            .collect();
        assert_eq!(
            pairs,
            [
                ("autoprompt", "majority", false),
                ("autoprompt", "manual", true),
                ("majority", "manual", true)
            ]
        );
        // The report's section: the method against the best baseline first, then the others;
        // the pair of baselines is left to the table.
        let md = comparisons_markdown(&all, &metrics()).unwrap();
        let first = md
            .find("| autoprompt − manual (best baseline) | +0.1500 |")
            .unwrap();
        let second = md.find("| autoprompt − majority | +0.3000 |").unwrap();
        assert!(first < second, "{md}");
        assert!(!md.contains("| majority − manual"), "{md}");
        assert!(
            md.contains("### sst2 · train_size 10 · splade-tiny (setting "),
            "{md}"
        );
    }

    #[test]
    fn methods_without_a_shared_seed_are_refused_with_the_reason() {
        let mut records = vec![];
        for seed in [0, 1] {
            records.push(record(probe(), 10, seed, 0.7));
        }
        for seed in [5, 6] {
            records.push(record(MethodSpec::Majority, 10, seed, 0.5));
        }
        let all = compare_all(&records, &metrics());
        // Refused once, not once per metric.
        assert_eq!(all.len(), 1, "{all:#?}");
        assert_eq!(
            all[0].outcome,
            Outcome::Refused(Refusal::NoSharedSeed {
                a: units(&[0, 1]),
                b: units(&[5, 6])
            })
        );
        let note = all[0].note().unwrap();
        assert!(
            note.contains("linear_probe ran seeds 0, 1 and majority seeds 5, 6, none in common"),
            "{note}"
        );
        let md = comparisons_markdown(&all, &metrics()).unwrap();
        assert!(
            md.contains("none in common") && md.contains("| 0 |"),
            "{md}"
        );
        let table = comparisons_frame(&all).unwrap();
        assert_eq!(table.height(), 1);
        assert!(table.column("delta").unwrap().get(0).unwrap().is_null());
    }

    #[test]
    fn unequal_seed_counts_pair_on_the_intersection_and_say_so() {
        let mut records = vec![];
        for seed in [0, 1, 2] {
            records.push(record(probe(), 10, seed, 0.7 + seed as f64 / 100.0));
        }
        for seed in [1, 2, 3] {
            records.push(record(MethodSpec::Majority, 10, seed, 0.5));
        }
        let all = compare_all(&records, &["accuracy".into()]);
        let p = paired(&all[0]);
        assert_eq!(
            (seeds(&p.seeds), seeds(&p.only_a), seeds(&p.only_b)),
            (vec![1, 2], vec![0], vec![3])
        );
        assert_eq!(p.t, stats::paired_t(&[0.71, 0.72], &[0.5, 0.5]).unwrap());
        let note = all[0].note().unwrap();
        assert!(
            note.contains("paired on the 2 seed(s) both ran (1, 2)")
                && note.contains("linear_probe's seed(s) 0 have no majority cell")
                && note.contains("majority's seed(s) 3 have no linear_probe cell"),
            "{note}"
        );
    }

    #[test]
    fn a_failed_cell_leaves_its_seed_out() {
        let mut records = vec![];
        for seed in [0, 1] {
            records.push(record(probe(), 10, seed, 0.7));
            records.push(record(MethodSpec::Majority, 10, seed, 0.5));
        }
        records[2].status = Status::Failed;
        let p = paired(&compare_all(&records, &["accuracy".into()])[0]).clone();
        assert_eq!((seeds(&p.seeds), seeds(&p.only_b)), (vec![0], vec![1]));
        // One pair: a difference, no interval, no p-value.
        assert_eq!((p.t.interval, p.t.p_value, p.bootstrap), (None, None, None));
    }

    #[test]
    fn two_variants_of_one_method_get_distinct_labels() {
        let records = vec![
            record(manual("[CLS] {sentence} it was [P] . [SEP]"), 10, 0, 0.6),
            record(manual("[CLS] {sentence} so [P] . [SEP]"), 10, 0, 0.55),
        ];
        let all = compare_all(&records, &["accuracy".into()]);
        assert_eq!(all.len(), 1);
        assert!(all[0].a.starts_with("manual #") && all[0].b.starts_with("manual #"));
        assert_ne!(all[0].a, all[0].b);
    }

    #[test]
    fn compare_two_orients_as_asked_and_names_unknown_methods() {
        let mut records = vec![];
        for seed in 0..3 {
            records.push(record(probe(), 10, seed, 0.7 + seed as f64 / 50.0));
            records.push(record(MethodSpec::Majority, 10, seed, 0.5));
        }
        let metric = [Metric::from("accuracy")];
        let ab = compare_two(&records, "linear_probe", "majority", &metric).unwrap();
        let ba = compare_two(&records, "majority", "linear_probe", &metric).unwrap();
        assert!((paired(&ab[0]).delta() + paired(&ba[0]).delta()).abs() < 1e-12);
        assert!(paired(&ab[0]).delta() > 0.0);
        let t = paired(&ab[0]).t.interval.unwrap();
        assert!(t.excludes_zero());
        let err = compare_two(&records, "autoprompt", "majority", &metric).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no finished cell of method `autoprompt`; the experiment's methods: linear_probe, majority"
        );
        let md = comparisons_markdown(&ab, &metric).unwrap();
        // Two baselines: the section shows them against each other.
        assert!(md.contains("| linear_probe − majority | +0.2200 |"), "{md}");
        assert!(
            md.contains("] * |"),
            "an interval excluding 0 is marked: {md}"
        );
    }

    fn predictions(right: &[bool]) -> crate::record::Predictions {
        crate::record::Predictions {
            classes: vec!["0".into(), "1".into()],
            rows: right
                .iter()
                .enumerate()
                .map(|(i, &r)| crate::record::Prediction {
                    example: i as u32,
                    gold: "1".into(),
                    predicted: Some(if r { "1" } else { "0" }.into()),
                    rank: Some(u32::from(!r)),
                    scores: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn stored_predictions_give_example_level_statistics() {
        // 40 examples; seed 0: a right on 30, b on 20 (a alone right on 18, b alone on 8);
        // seed 1: a right on 28, b on 22 (8 and 2). Δ = (10 / 40 + 6 / 40) / 2 = 0.2.
        let right = |n: usize, from: usize| -> Vec<bool> {
            (0..40).map(|i| i >= from && i < from + n).collect()
        };
        let (a0, b0) = (right(30, 0), right(20, 18));
        let (a1, b1) = (right(28, 2), right(22, 10));
        let mut records = vec![];
        for (seed, (a, b)) in [(0u64, (&a0, &b0)), (1, (&a1, &b1))] {
            let share = |x: &[bool]| x.iter().filter(|&&r| r).count() as f64 / 40.0;
            let mut ra = record(autoprompt(), 10, seed, share(a));
            ra.predictions = Some(predictions(a));
            let mut rb = record(MethodSpec::Majority, 10, seed, share(b));
            rb.predictions = Some(predictions(b));
            records.extend([ra, rb]);
        }
        let all = compare_all(&records, &metrics());
        let accuracy = all.iter().find(|c| c.metric == "accuracy").unwrap();
        let p = paired(accuracy);
        let e = p.examples.as_ref().expect("both sides stored predictions");
        assert_eq!(e.examples, 40);
        let counts: Vec<(u64, u64)> = e.mcnemar.iter().map(|m| (m.only_a, m.only_b)).collect();
        assert_eq!(counts, [(18, 8), (8, 2)]);
        assert_eq!(e.mcnemar[0], stats::mcnemar(18, 8));
        let (p0, p1) = (stats::mcnemar(18, 8).p_value, stats::mcnemar(8, 2).p_value);
        assert_eq!(e.mcnemar_p_max(), Some(p0.max(p1)));
        // Δ from the records is the mean of the per-example differences; the interval holds it.
        assert!((p.delta() - 0.2).abs() < 1e-12, "{}", p.delta());
        let i = e.bootstrap.unwrap();
        assert!(i.low < 0.2 && 0.2 < i.high && i.excludes_zero(), "{i:?}");
        // Only the metric that counts right answers has them.
        let dev = all.iter().find(|c| c.metric == "dev_accuracy").unwrap();
        assert_eq!(paired(dev).examples, None);
        // One side without predictions: none.
        records[3].predictions = None;
        let all = compare_all(&records, &metrics());
        assert_eq!(paired(&all[0]).examples, None);
    }

    #[test]
    fn delta_curves_follow_the_training_size_with_t_interval_bands() {
        let mut records = vec![];
        for (size, gain) in [(10, 0.1), (100, 0.2)] {
            for seed in 0..3 {
                let acc = 0.5 + gain + seed as f64 / 100.0;
                records.push(record(autoprompt(), size, seed, acc));
                records.push(record(MethodSpec::Majority, size, seed, 0.5));
            }
        }
        let curves = delta_curves(&records, "majority", &"accuracy".into()).unwrap();
        assert_eq!(curves.len(), 1);
        assert_eq!(curves[0].label, "autoprompt · sst2 splade-tiny");
        let xs: Vec<f64> = curves[0].points.iter().map(|p| p.x).collect();
        assert_eq!(xs, [10.0, 100.0]);
        let first = curves[0].points[0];
        assert!((first.mean - 0.11).abs() < 1e-12);
        let t = stats::paired_t(&[0.6, 0.61, 0.62], &[0.5; 3])
            .unwrap()
            .interval
            .unwrap();
        assert!((first.sd - (t.high - t.low) / 2.0).abs() < 1e-12);
        assert!(matches!(
            delta_curves(&records, "manual", &"accuracy".into()),
            Err(PairError::UnknownMethod { .. })
        ));
    }

    #[test]
    fn data_splits_and_search_seeds_pair_as_units_of_one_setting() {
        let mut records = vec![];
        for (i, split) in [13u64, 21].into_iter().enumerate() {
            for seed in [0, 1] {
                let mut a = record(autoprompt(), 10, seed, 0.7 + i as f64 / 10.0);
                let mut b = record(MethodSpec::Majority, 10, seed, 0.5);
                for r in [&mut a, &mut b] {
                    r.spec.task.budget_mut().data_seed = Some(split);
                    r.id = crate::plan::cell_id(&r.spec);
                }
                records.extend([a, b]);
            }
        }
        let all = compare_all(&records, &["accuracy".into()]);
        assert_eq!(all.len(), 1, "one setting over both splits: {all:#?}");
        let p = paired(&all[0]);
        assert_eq!(seed_list(&p.seeds), "13/0, 13/1, 21/0, 21/1");
        assert!((p.delta() - 0.25).abs() < 1e-12);
    }
}
