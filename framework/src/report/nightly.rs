//! Nightly regression check: a fresh summary against a committed baseline summary.
//!
//! Each metric's mean must not fall below the baseline's by more than a tolerance derived
//! from the baseline's seed spread (`sd_factor · sd`, at least `floor`); time per search
//! iteration must stay within `time_ratio` of the baseline. A setting of the baseline that is
//! missing now is a failure, never ignored. Each metric also says whether its change is beyond
//! seed noise: Welch's 95% interval of now − baseline from both summaries' seed spreads
//! ([`super::stats::welch`]), where both have two or more seeds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::stats::{self, Interval};
use super::{GROUP_KEYS, ReportError, cell_text};
use crate::metric::{Metric, Statistic};

/// Tolerances of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tolerance {
    /// Allowed drop in units of the baseline's seed sd. Default 3.
    pub sd_factor: f64,
    /// Smallest allowed drop (absolute). Default 0.02.
    pub floor: f64,
    /// Largest allowed ratio of time per search iteration, now / baseline. Default 1.5.
    pub time_ratio: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Self {
            sd_factor: 3.0,
            floor: 0.02,
            time_ratio: 1.5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    Improved,
    Regressed,
    Slower,
    Missing,
}

/// Whether a change is beyond the seeds' own noise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SeedNoise {
    /// Welch's 95% interval of now − baseline excludes 0.
    Beyond(Interval),
    /// It holds 0: the change is within seed noise.
    Within(Interval),
    /// A side has fewer than two seeds or no spread (or the number is a time): not judged.
    Unknown,
}

impl SeedNoise {
    fn text(&self) -> String {
        match self {
            SeedNoise::Beyond(i) => format!("beyond ([{:+.4}, {:+.4}])", i.low, i.high),
            SeedNoise::Within(i) => format!("within ([{:+.4}, {:+.4}])", i.low, i.high),
            SeedNoise::Unknown => "–".into(),
        }
    }
}

/// What a nightly comparison checks: a metric's mean (must not fall), or the time per
/// search iteration (must not grow).
#[derive(Debug, Clone, PartialEq)]
pub enum Checked {
    Metric(Metric),
    SecondsPerIteration,
}

impl Checked {
    /// The name before `_mean` in a summary column.
    pub fn as_str(&self) -> &str {
        match self {
            Checked::Metric(m) => m.as_str(),
            Checked::SecondsPerIteration => "seconds_per_iteration",
        }
    }

    /// What a summary's `<name>_mean` column checks (`seconds_mean` is not checked).
    fn of_mean_column(column: &str) -> Option<Checked> {
        match Statistic::Mean.strip(column)? {
            "seconds" => None,
            "seconds_per_iteration" => Some(Checked::SecondsPerIteration),
            metric => Some(Checked::Metric(Metric::from(metric))),
        }
    }

    fn column(&self, statistic: Statistic) -> String {
        crate::metric::column(self.as_str(), statistic)
    }
}

impl std::fmt::Display for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl PartialEq<&str> for Checked {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One compared number.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub setting: String,
    pub metric: Checked,
    pub baseline: f64,
    pub now: Option<f64>,
    pub tolerance: f64,
    pub verdict: Verdict,
    pub noise: SeedNoise,
}

/// A metric of one summary row as a sample: mean, sd and seed count.
fn sample(df: &DataFrame, metric: &Checked, row: usize) -> Option<stats::Sample> {
    let n = df
        .column(&metric.column(Statistic::N))
        .ok()?
        .get(row)
        .ok()?
        .try_extract::<u64>()
        .ok()?;
    Some(stats::Sample {
        mean: float(df, &metric.column(Statistic::Mean), row)?,
        sd: float(df, &metric.column(Statistic::Sd), row)?,
        n,
    })
}

/// Welch's interval of now − baseline, where both have seeds.
fn seed_noise(baseline: Option<stats::Sample>, now: Option<stats::Sample>) -> SeedNoise {
    match (baseline, now) {
        (Some(b), Some(n)) => match stats::welch(n, b) {
            Some(w) if w.interval.excludes_zero() => SeedNoise::Beyond(w.interval),
            Some(w) => SeedNoise::Within(w.interval),
            None => SeedNoise::Unknown,
        },
        _ => SeedNoise::Unknown,
    }
}

impl Comparison {
    pub fn failed(&self) -> bool {
        matches!(
            self.verdict,
            Verdict::Regressed | Verdict::Slower | Verdict::Missing
        )
    }
}

fn key(df: &DataFrame, row: usize) -> String {
    GROUP_KEYS
        .iter()
        .filter(|k| **k != "setting")
        .filter_map(|k| {
            df.column(k)
                .ok()
                .map(|c| format!("{k}={}", cell_text(c, row)))
        })
        .filter(|s| !s.ends_with('='))
        .collect::<Vec<_>>()
        .join(" ")
}

fn float(df: &DataFrame, column: &str, row: usize) -> Option<f64> {
    df.column(column)
        .ok()?
        .get(row)
        .ok()?
        .try_extract::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

/// Compares every `<metric>_mean` of the baseline (and `seconds_per_iteration_mean`).
pub fn compare(baseline: &DataFrame, now: &DataFrame, tol: &Tolerance) -> Vec<Comparison> {
    let now_rows: BTreeMap<String, usize> = (0..now.height()).map(|r| (key(now, r), r)).collect();
    let metrics: Vec<Checked> = baseline
        .get_column_names()
        .iter()
        .filter_map(|c| Checked::of_mean_column(c))
        .collect();
    let mut out = vec![];
    for row in 0..baseline.height() {
        let setting = key(baseline, row);
        let current = now_rows.get(&setting).copied();
        for metric in &metrics {
            let Some(base) = float(baseline, &metric.column(Statistic::Mean), row) else {
                continue;
            };
            let value = current.and_then(|r| float(now, &metric.column(Statistic::Mean), r));
            let noise = if *metric == Checked::SecondsPerIteration {
                SeedNoise::Unknown
            } else {
                seed_noise(
                    sample(baseline, metric, row),
                    current.and_then(|r| sample(now, metric, r)),
                )
            };
            let (tolerance, verdict) = if *metric == Checked::SecondsPerIteration {
                let limit = base * tol.time_ratio;
                (
                    limit - base,
                    match value {
                        None => Verdict::Missing,
                        Some(v) if v > limit => Verdict::Slower,
                        Some(_) => Verdict::Ok,
                    },
                )
            } else {
                let sd = float(baseline, &metric.column(Statistic::Sd), row).unwrap_or(0.0);
                let t = (tol.sd_factor * sd).max(tol.floor);
                (
                    t,
                    match value {
                        None => Verdict::Missing,
                        Some(v) if v < base - t => Verdict::Regressed,
                        Some(v) if v > base + t => Verdict::Improved,
                        Some(_) => Verdict::Ok,
                    },
                )
            };
            out.push(Comparison {
                setting: setting.clone(),
                metric: metric.clone(),
                baseline: base,
                now: value,
                tolerance,
                verdict,
                noise,
            });
        }
    }
    out
}

/// The comparison as Markdown.
pub fn markdown(comparisons: &[Comparison], baseline_dir: &Path) -> String {
    let failed = comparisons.iter().filter(|c| c.failed()).count();
    let mut md = format!(
        "# Nightly regression check\n\nBaseline: `{}`. {} numbers compared, {} failed. Seed noise: whether Welch's 95% interval of now − baseline (from both runs' seed spreads) excludes 0.\n\n| setting | metric | baseline | now | delta | tolerance | verdict | seed noise |\n|---|---|---|---|---|---|---|---|\n",
        baseline_dir.display(),
        comparisons.len(),
        failed
    );
    for c in comparisons {
        let (now, delta) = match c.now {
            Some(v) => (format!("{v:.4}"), format!("{:+.4}", v - c.baseline)),
            None => ("missing".into(), String::new()),
        };
        md.push_str(&format!(
            "| {} | {} | {:.4} | {} | {} | {:.4} | {:?} | {} |\n",
            c.setting,
            c.metric,
            c.baseline,
            now,
            delta,
            c.tolerance,
            c.verdict,
            c.noise.text()
        ));
    }
    md
}

/// Where a baseline lives and why it was last written.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BaselineMeta {
    pub reason: String,
    pub git_commit: Option<String>,
    pub package_version: String,
    pub threads: usize,
    pub backend: String,
}

pub fn read_summary(path: &Path) -> Result<DataFrame, ReportError> {
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(None)
        .try_into_reader_with_file_path(Some(path.to_path_buf()))?
        .finish()?;
    Ok(df)
}

/// The experiment's current summary (`results/<exp>/summary.csv`, written by `report`).
fn current_summary(store: &crate::store::Store) -> Result<PathBuf, ReportError> {
    let path = store.root.join("summary.csv");
    if path.is_file() {
        Ok(path)
    } else {
        Err(ReportError::NoSummary(path))
    }
}

/// Compares the experiment's current summary with the baseline in `baseline_dir`.
pub fn check(
    store: &crate::store::Store,
    baseline_dir: &Path,
    tolerance: &Tolerance,
) -> Result<Vec<Comparison>, ReportError> {
    let current = current_summary(store)?;
    let base =
        read_summary(&baseline_dir.join("summary.csv")).map_err(|e| ReportError::Baseline {
            path: baseline_dir.to_owned(),
            source: Box::new(e),
        })?;
    let now = read_summary(&current)?;
    Ok(compare(&base, &now, tolerance))
}

/// Rewrites the baseline from the experiment's current summary, saying why and recording
/// what produced it (version, commit, threads and backend of its first record).
pub fn update_baseline(
    store: &crate::store::Store,
    baseline_dir: &Path,
    reason: String,
) -> Result<Vec<PathBuf>, ReportError> {
    let current = current_summary(store)?;
    let records = store.records()?;
    let first = records
        .first()
        .ok_or_else(|| ReportError::Empty(store.root.clone()))?;
    let meta = BaselineMeta {
        reason,
        git_commit: first.provenance.git_commit.clone(),
        package_version: first.provenance.package_version.clone(),
        threads: first.provenance.threads,
        backend: first.provenance.backend.name().to_string(),
    };
    write_baseline(&current, baseline_dir, &meta)
}

/// Copies a summary CSV into the baseline directory with its metadata.
pub fn write_baseline(
    summary_csv: &Path,
    dir: &Path,
    meta: &BaselineMeta,
) -> Result<Vec<PathBuf>, ReportError> {
    let bytes = std::fs::read(summary_csv).map_err(|source| crate::store::StoreError::Io {
        path: summary_csv.to_owned(),
        source,
    })?;
    let csv = dir.join("summary.csv");
    crate::store::write_atomic(&csv, &bytes)?;
    let meta_path = dir.join("environment.json");
    crate::store::write_atomic(
        &meta_path,
        serde_json::to_string_pretty(meta)
            .expect("serialises")
            .as_bytes(),
    )?;
    Ok(vec![csv, meta_path])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(acc: f64, sd: f64, spi: f64, relations: &[&str]) -> DataFrame {
        let n = relations.len();
        let s = |v: &str| vec![Some(v.to_string()); n];
        df!(
            "task" => s("lama"),
            "relation" => relations.iter().map(|r| Some(r.to_string())).collect::<Vec<_>>(),
            "variant" => vec![None::<String>; n],
            "model" => s("splade-tiny"),
            "method" => s("autoprompt"),
            "train_size" => vec![10u64; n],
            "setting" => s("x"),
            "p_at_1_mean" => vec![acc; n],
            "p_at_1_sd" => vec![sd; n],
            "seconds_per_iteration_mean" => vec![spi; n],
        )
        .unwrap()
    }

    #[test]
    fn identical_summary_passes() {
        let base = summary(0.30, 0.01, 1.0, &["P19", "P20"]);
        let result = compare(&base, &base, &Tolerance::default());
        assert_eq!(result.len(), 4);
        assert!(
            result.iter().all(|c| c.verdict == Verdict::Ok),
            "{result:?}"
        );
    }

    #[test]
    fn worse_metric_fails_and_is_named() {
        let base = summary(0.30, 0.01, 1.0, &["P19"]);
        // Tolerance max(3 · 0.01, 0.02) = 0.03: 0.26 is a regression, 0.28 is not.
        let result = compare(
            &base,
            &summary(0.26, 0.01, 1.0, &["P19"]),
            &Tolerance::default(),
        );
        let bad: Vec<_> = result.iter().filter(|c| c.failed()).collect();
        assert_eq!(bad.len(), 1);
        assert_eq!(
            (bad[0].metric.as_str(), bad[0].verdict),
            ("p_at_1", Verdict::Regressed)
        );
        assert!(
            markdown(&result, Path::new("b")).contains("| p_at_1 | 0.3000 | 0.2600 | -0.0400 |")
        );
        assert!(
            compare(
                &base,
                &summary(0.28, 0.01, 1.0, &["P19"]),
                &Tolerance::default()
            )
            .iter()
            .all(|c| !c.failed())
        );
    }

    #[test]
    fn slower_search_fails() {
        let base = summary(0.30, 0.01, 1.0, &["P19"]);
        let result = compare(
            &base,
            &summary(0.30, 0.01, 1.6, &["P19"]),
            &Tolerance::default(),
        );
        assert!(result.iter().any(|c| c.verdict == Verdict::Slower));
    }

    #[test]
    fn each_number_says_whether_it_moved_beyond_seed_noise() {
        let with_n = |acc: f64, sd: f64, n: u32| {
            let mut df = summary(acc, sd, 1.0, &["P19"]);
            df.with_column(Column::new("p_at_1_n".into(), vec![n]))
                .unwrap();
            df
        };
        let base = with_n(0.30, 0.01, 3);
        let noise = |now: &DataFrame| {
            compare(&base, now, &Tolerance::default())
                .into_iter()
                .find(|c| c.metric == "p_at_1")
                .unwrap()
                .noise
        };
        let a = stats::Sample {
            mean: 0.26,
            sd: 0.01,
            n: 3,
        };
        let b = stats::Sample {
            mean: 0.30,
            sd: 0.01,
            n: 3,
        };
        let want = stats::welch(a, b).unwrap().interval;
        assert_eq!(noise(&with_n(0.26, 0.01, 3)), SeedNoise::Beyond(want));
        assert!(matches!(
            noise(&with_n(0.295, 0.01, 3)),
            SeedNoise::Within(_)
        ));
        // One seed now: no spread to judge by.
        assert_eq!(noise(&with_n(0.26, 0.01, 1)), SeedNoise::Unknown);
        let md = markdown(
            &compare(&base, &with_n(0.26, 0.01, 3), &Tolerance::default()),
            Path::new("b"),
        );
        assert!(md.contains("| Regressed | beyond ([-0.0"), "{md}");
    }

    #[test]
    fn missing_setting_is_a_failure() {
        let base = summary(0.30, 0.01, 1.0, &["P19", "P20"]);
        let result = compare(
            &base,
            &summary(0.30, 0.01, 1.0, &["P19"]),
            &Tolerance::default(),
        );
        let missing: Vec<_> = result
            .iter()
            .filter(|c| c.verdict == Verdict::Missing)
            .collect();
        assert_eq!(missing.len(), 2);
        assert!(missing[0].setting.contains("relation=P20"));
    }
}
