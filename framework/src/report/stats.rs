//! Statistics of paired comparisons: the paired t-test, percentile bootstraps and
//! McNemar's test. Plain functions over slices; the distributions come from `statrs`.
//!
//! Every number here is checked against scipy (`tests/parity/make_stats_fixtures.py` writes
//! `tests/fixtures/stats/stats.json`): the t quantiles, the t-test and McNemar's test to
//! 1e-9; the bootstrap, whose generator is ours (ChaCha8, seeded, so the same input gives
//! the same interval on every machine), within Monte Carlo error of scipy's interval.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use statrs::distribution::{Binomial, ChiSquared, ContinuousCDF, DiscreteCDF, StudentsT};

/// Confidence level of every interval the reports show.
pub const LEVEL: f64 = 0.95;

/// Resamples of every bootstrap the reports run.
pub const RESAMPLES: usize = 10_000;

/// Below this many discordant pairs McNemar's test is the exact binomial test; from it on,
/// the chi-square test with continuity correction (the usual rule of thumb, e.g. statsmodels').
pub const MCNEMAR_EXACT_BELOW: u64 = 25;

/// Why a statistic cannot be computed from its input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    #[error("paired values of unequal length: {a} against {b}")]
    Unequal { a: usize, b: usize },
    #[error("no pairs")]
    Empty,
    #[error("value {index} is not a finite number")]
    NotFinite { index: usize },
}

/// A two-sided interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl Interval {
    /// Whether zero lies outside the interval (the difference is "significant" at its level).
    pub fn excludes_zero(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

/// The two-sided Student-t quantile at `level` (0.95: the 97.5th percentile) with `df`
/// degrees of freedom; `None` for `df` < 1.
pub fn t_quantile(df: u64, level: f64) -> Option<f64> {
    if df == 0 {
        return None;
    }
    let t = StudentsT::new(0.0, 1.0, df as f64).ok()?;
    Some(t.inverse_cdf(0.5 + level / 2.0))
}

/// A sample as a summary keeps it: mean, sample standard deviation (n - 1) and size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub mean: f64,
    pub sd: f64,
    pub n: u64,
}

/// Welch's two-sample t-test of `mean(a) - mean(b)` (unequal variances).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Welch {
    pub delta: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    pub interval: Interval,
    /// Two-sided p-value of "no difference"; `None` when both samples have no spread.
    pub p_value: Option<f64>,
}

/// Welch's t-test from two samples' summaries, as scipy's `ttest_ind(equal_var=False)`;
/// `None` unless both have two or more values and some spread.
pub fn welch(a: Sample, b: Sample) -> Option<Welch> {
    if a.n < 2 || b.n < 2 || !(a.sd.is_finite() && b.sd.is_finite()) {
        return None;
    }
    let (va, vb) = (a.sd * a.sd / a.n as f64, b.sd * b.sd / b.n as f64);
    let se2 = va + vb;
    if se2 <= 0.0 {
        return None;
    }
    let df = se2 * se2 / (va * va / (a.n - 1) as f64 + vb * vb / (b.n - 1) as f64);
    let t = StudentsT::new(0.0, 1.0, df).ok()?;
    let (delta, se) = (a.mean - b.mean, se2.sqrt());
    let q = t.inverse_cdf(0.5 + LEVEL / 2.0);
    Some(Welch {
        delta,
        df,
        interval: Interval {
            low: delta - q * se,
            high: delta + q * se,
        },
        p_value: Some(2.0 * t.cdf(-(delta / se).abs())),
    })
}

/// The paired t-test of `a - b`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedT {
    /// Pairs.
    pub n: usize,
    /// Mean of `a - b`.
    pub mean: f64,
    /// Sample standard deviation of `a - b` (n - 1); `None` for one pair.
    pub sd: Option<f64>,
    /// The 95% interval of the mean difference; `None` for one pair. Every difference equal:
    /// the interval is that one value.
    pub interval: Option<Interval>,
    /// Two-sided p-value of "no difference"; `None` for one pair, or when every difference is
    /// zero (0 / 0). Every difference equal and not zero: 0.
    pub p_value: Option<f64>,
}

fn differences(a: &[f64], b: &[f64]) -> Result<Vec<f64>, StatsError> {
    if a.len() != b.len() {
        return Err(StatsError::Unequal {
            a: a.len(),
            b: b.len(),
        });
    }
    if a.is_empty() {
        return Err(StatsError::Empty);
    }
    a.iter()
        .zip(b)
        .enumerate()
        .map(|(index, (x, y))| {
            let d = x - y;
            if d.is_finite() {
                Ok(d)
            } else {
                Err(StatsError::NotFinite { index })
            }
        })
        .collect()
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// The paired t-test of `a` against `b` (pair `i` is `a[i]`, `b[i]`), as scipy's `ttest_rel`.
pub fn paired_t(a: &[f64], b: &[f64]) -> Result<PairedT, StatsError> {
    let d = differences(a, b)?;
    let n = d.len();
    let m = mean(&d);
    if n < 2 {
        return Ok(PairedT {
            n,
            mean: m,
            sd: None,
            interval: None,
            p_value: None,
        });
    }
    let sd = (d.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    let se = sd / (n as f64).sqrt();
    let df = (n - 1) as f64;
    let q = t_quantile(n as u64 - 1, LEVEL).expect("n >= 2");
    let p_value = if se > 0.0 {
        let t = StudentsT::new(0.0, 1.0, df).expect("df >= 1");
        Some(2.0 * t.cdf(-(m / se).abs()))
    } else if m != 0.0 {
        Some(0.0)
    } else {
        None
    };
    Ok(PairedT {
        n,
        mean: m,
        sd: Some(sd),
        interval: Some(Interval {
            low: m - q * se,
            high: m + q * se,
        }),
        p_value,
    })
}

/// The `q`-quantile of sorted values, linearly interpolated (numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos - pos.floor());
    match sorted.get(i + 1) {
        Some(next) => sorted[i] + frac * (next - sorted[i]),
        None => sorted[i],
    }
}

/// Percentile bootstrap interval of the mean of `values`: `resamples` resamples with
/// replacement drawn by ChaCha8 seeded with `seed`, the interval between the
/// `(1 - level) / 2` and `(1 + level) / 2` quantiles of their means. Paired data is
/// bootstrapped through its differences: resampling pairs resamples their differences.
/// `None` for fewer than two values (one value resamples only to itself).
pub fn bootstrap_mean(values: &[f64], resamples: usize, seed: u64, level: f64) -> Option<Interval> {
    let n = values.len();
    if n < 2 || resamples == 0 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| values[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    Some(Interval {
        low: quantile(&means, (1.0 - level) / 2.0),
        high: quantile(&means, (1.0 + level) / 2.0),
    })
}

/// The paired bootstrap of `a - b` with the reports' settings ([`RESAMPLES`], [`LEVEL`]).
pub fn paired_bootstrap(a: &[f64], b: &[f64], seed: u64) -> Result<Option<Interval>, StatsError> {
    Ok(bootstrap_mean(&differences(a, b)?, RESAMPLES, seed, LEVEL))
}

/// The spread of a metric over data splits crossed with search seeds, in two parts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Components {
    /// Standard deviation between splits (data seeds), beyond what the search seeds explain.
    pub split_sd: f64,
    /// Standard deviation between search seeds within a split.
    pub seed_sd: f64,
    pub splits: usize,
    pub values: usize,
}

/// One-way random-effects variance components (the ANOVA estimator, unbalanced groups
/// allowed): `groups[d]` holds one split's values, one per search seed. Within-split
/// variance is the seed component; the split component is `(MS_between - MS_within) / n0`,
/// clamped at 0. `None` without two splits and a split with two or more seeds.
pub fn variance_components(groups: &[Vec<f64>]) -> Option<Components> {
    let groups: Vec<&Vec<f64>> = groups.iter().filter(|g| !g.is_empty()).collect();
    let d = groups.len();
    let n: usize = groups.iter().map(|g| g.len()).sum();
    if d < 2 || n <= d {
        return None;
    }
    let grand = groups.iter().flat_map(|g| g.iter()).sum::<f64>() / n as f64;
    let means: Vec<f64> = groups.iter().map(|g| mean(g)).collect();
    let within: f64 = groups
        .iter()
        .zip(&means)
        .map(|(g, m)| g.iter().map(|x| (x - m).powi(2)).sum::<f64>())
        .sum::<f64>()
        / (n - d) as f64;
    let between: f64 = groups
        .iter()
        .zip(&means)
        .map(|(g, m)| g.len() as f64 * (m - grand).powi(2))
        .sum::<f64>()
        / (d - 1) as f64;
    let n0 = (n as f64
        - groups
            .iter()
            .map(|g| (g.len() * g.len()) as f64)
            .sum::<f64>()
            / n as f64)
        / (d - 1) as f64;
    Some(Components {
        split_sd: ((between - within) / n0).max(0.0).sqrt(),
        seed_sd: within.sqrt(),
        splits: d,
        values: n,
    })
}

/// How a McNemar p-value was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum McNemarMethod {
    /// Two-sided exact binomial test of the discordant pairs against 1/2 (fewer than
    /// [`MCNEMAR_EXACT_BELOW`] of them).
    ExactBinomial,
    /// Chi-square (1 df) of `(|b - c| - 1)^2 / (b + c)`: Edwards' continuity correction.
    ChiSquareCorrected,
}

/// McNemar's test of two classifiers on the same examples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct McNemar {
    /// Examples `a` got right and `b` wrong.
    pub only_a: u64,
    /// Examples `b` got right and `a` wrong.
    pub only_b: u64,
    pub p_value: f64,
    pub method: McNemarMethod,
}

/// McNemar's test from the discordant counts; no discordant pair at all gives p = 1.
pub fn mcnemar(only_a: u64, only_b: u64) -> McNemar {
    let n = only_a + only_b;
    let (p_value, method) = if n < MCNEMAR_EXACT_BELOW {
        let p = if n == 0 {
            1.0
        } else {
            let binomial = Binomial::new(0.5, n).expect("p = 0.5 is valid");
            (2.0 * binomial.cdf(only_a.min(only_b))).min(1.0)
        };
        (p, McNemarMethod::ExactBinomial)
    } else {
        let diff = (only_a as f64 - only_b as f64).abs() - 1.0;
        let statistic = diff.max(0.0).powi(2) / n as f64;
        let chi2 = ChiSquared::new(1.0).expect("1 df is valid");
        (chi2.sf(statistic), McNemarMethod::ChiSquareCorrected)
    };
    McNemar {
        only_a,
        only_b,
        p_value,
        method,
    }
}

/// McNemar's test of two sets of per-example outcomes (`true`: right) on the same examples.
pub fn mcnemar_outcomes(a: &[bool], b: &[bool]) -> Result<McNemar, StatsError> {
    if a.len() != b.len() {
        return Err(StatsError::Unequal {
            a: a.len(),
            b: b.len(),
        });
    }
    let only_a = a.iter().zip(b).filter(|(x, y)| **x && !**y).count() as u64;
    let only_b = a.iter().zip(b).filter(|(x, y)| !**x && **y).count() as u64;
    Ok(mcnemar(only_a, only_b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Fixtures {
        t_quantiles: Vec<TQuantile>,
        paired_t: Vec<PairedCase>,
        mcnemar: Vec<McNemarCase>,
        welch: Vec<WelchCase>,
        bootstrap: Vec<BootstrapCase>,
    }
    #[derive(Deserialize)]
    struct WelchCase {
        mean_a: f64,
        sd_a: f64,
        n_a: u64,
        mean_b: f64,
        sd_b: f64,
        n_b: u64,
        df: f64,
        p: f64,
        low: f64,
        high: f64,
    }
    #[derive(Deserialize)]
    struct TQuantile {
        df: u64,
        q: f64,
    }
    #[derive(Deserialize)]
    struct PairedCase {
        name: String,
        a: Vec<f64>,
        b: Vec<f64>,
        n: usize,
        mean: f64,
        sd: f64,
        p: f64,
        low: f64,
        high: f64,
    }
    #[derive(Deserialize)]
    struct McNemarCase {
        only_a: u64,
        only_b: u64,
        method: McNemarMethod,
        p: f64,
    }
    #[derive(Deserialize)]
    struct BootstrapCase {
        x: Vec<f64>,
        mean: f64,
        se: f64,
        low: f64,
        high: f64,
    }

    fn fixtures() -> Fixtures {
        serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/stats/stats.json"
        )))
        .expect("stats fixtures parse")
    }

    fn close(got: f64, want: f64, tol: f64, what: &str) {
        assert!(
            (got - want).abs() <= tol * want.abs().max(1.0),
            "{what}: got {got}, scipy {want}"
        );
    }

    #[test]
    fn t_quantiles_match_scipy() {
        let f = fixtures();
        assert!(f.t_quantiles.len() > 40);
        for case in &f.t_quantiles {
            let q = t_quantile(case.df, LEVEL).unwrap();
            close(q, case.q, 1e-9, &format!("t(0.975, {} df)", case.df));
        }
        assert_eq!(t_quantile(0, LEVEL), None);
    }

    #[test]
    fn paired_t_matches_scipy() {
        for case in fixtures().paired_t {
            let r = paired_t(&case.a, &case.b).unwrap();
            let what = |x: &str| format!("{} ({x})", case.name);
            assert_eq!(r.n, case.n);
            close(r.mean, case.mean, 1e-9, &what("mean"));
            close(r.sd.unwrap(), case.sd, 1e-9, &what("sd"));
            close(r.p_value.unwrap(), case.p, 1e-9, &what("p"));
            let i = r.interval.unwrap();
            close(i.low, case.low, 1e-9, &what("low"));
            close(i.high, case.high, 1e-9, &what("high"));
        }
    }

    #[test]
    fn paired_t_edge_cases() {
        let one = paired_t(&[0.7], &[0.6]).unwrap();
        assert_eq!(
            (one.n, one.sd, one.interval, one.p_value),
            (1, None, None, None)
        );
        assert!((one.mean - 0.1).abs() < 1e-12);
        // Constant non-zero differences (exact in binary): a degenerate interval that
        // excludes 0, p = 0.
        let constant = paired_t(&[0.75, 0.875, 1.0], &[0.5, 0.625, 0.75]).unwrap();
        let i = constant.interval.unwrap();
        assert_eq!((i.low, i.high), (0.25, 0.25));
        assert!(i.excludes_zero());
        assert_eq!(constant.p_value, Some(0.0));
        // No difference at all: no p-value (0 / 0), an interval [0, 0] that does not exclude 0.
        let same = paired_t(&[0.5, 0.6], &[0.5, 0.6]).unwrap();
        assert_eq!(same.p_value, None);
        assert!(!same.interval.unwrap().excludes_zero());
        assert_eq!(
            paired_t(&[0.5, 0.6], &[0.5]).unwrap_err(),
            StatsError::Unequal { a: 2, b: 1 }
        );
        assert_eq!(paired_t(&[], &[]).unwrap_err(), StatsError::Empty);
        assert_eq!(
            paired_t(&[0.5, f64::NAN], &[0.5, 0.1]).unwrap_err(),
            StatsError::NotFinite { index: 1 }
        );
    }

    #[test]
    fn mcnemar_matches_scipy() {
        let f = fixtures();
        assert!(
            f.mcnemar
                .iter()
                .any(|c| c.method == McNemarMethod::ExactBinomial)
        );
        assert!(
            f.mcnemar
                .iter()
                .any(|c| c.method == McNemarMethod::ChiSquareCorrected)
        );
        for case in f.mcnemar {
            let r = mcnemar(case.only_a, case.only_b);
            let what = format!("McNemar {} / {}", case.only_a, case.only_b);
            assert_eq!(r.method, case.method, "{what}");
            close(r.p_value, case.p, 1e-9, &what);
        }
        assert_eq!(mcnemar(0, 0).p_value, 1.0);
    }

    #[test]
    fn welch_matches_scipy() {
        for case in fixtures().welch {
            let a = Sample {
                mean: case.mean_a,
                sd: case.sd_a,
                n: case.n_a,
            };
            let b = Sample {
                mean: case.mean_b,
                sd: case.sd_b,
                n: case.n_b,
            };
            let w = welch(a, b).unwrap();
            close(w.delta, case.mean_a - case.mean_b, 1e-12, "delta");
            close(w.df, case.df, 1e-9, "df");
            close(w.p_value.unwrap(), case.p, 1e-9, "p");
            close(w.interval.low, case.low, 1e-9, "low");
            close(w.interval.high, case.high, 1e-9, "high");
        }
        let one = Sample {
            mean: 0.5,
            sd: f64::NAN,
            n: 1,
        };
        assert_eq!(welch(one, one), None);
    }

    #[test]
    fn variance_components_by_hand() {
        // Split means 1.5 and 3.5, grand mean 2.5: MS_within = (4 · 0.25) / 2 = 0.5,
        // MS_between = 2 · (1 + 1) / 1 = 4, n0 = 2, so the split variance is (4 - 0.5) / 2.
        let c = variance_components(&[vec![1.0, 2.0], vec![3.0, 4.0]]).unwrap();
        assert!((c.seed_sd - 0.5f64.sqrt()).abs() < 1e-12);
        assert!((c.split_sd - 1.75f64.sqrt()).abs() < 1e-12);
        assert_eq!((c.splits, c.values), (2, 4));
        // Splits that agree more than their seeds do: no split component.
        let c = variance_components(&[vec![1.0, 3.0], vec![1.5, 2.5]]).unwrap();
        assert_eq!(c.split_sd, 0.0);
        // One seed per split cannot tell the parts apart; one split has no split part.
        assert_eq!(variance_components(&[vec![1.0], vec![2.0]]), None);
        assert_eq!(variance_components(&[vec![1.0, 2.0]]), None);
    }

    #[test]
    fn mcnemar_counts_discordant_outcomes() {
        let a = [true, true, false, false, true, true];
        let b = [true, false, true, false, false, false];
        let r = mcnemar_outcomes(&a, &b).unwrap();
        assert_eq!((r.only_a, r.only_b), (3, 1));
        assert_eq!(r.p_value, mcnemar(3, 1).p_value);
        assert!(mcnemar_outcomes(&a, &b[..5]).is_err());
    }

    #[test]
    fn bootstrap_is_within_monte_carlo_error_of_scipy() {
        for case in fixtures().bootstrap {
            let i = bootstrap_mean(&case.x, RESAMPLES, 0, LEVEL).unwrap();
            // The 2.5% quantile of 10,000 resampled means has a Monte Carlo sd of about
            // 0.03 standard errors; 0.12 is four of them (scipy's own, at 200,000, is smaller).
            let tol = 0.12 * case.se;
            assert!(
                (i.low - case.low).abs() < tol,
                "low {} vs scipy {}",
                i.low,
                case.low
            );
            assert!(
                (i.high - case.high).abs() < tol,
                "high {} vs scipy {}",
                i.high,
                case.high
            );
            assert!(i.low < case.mean && case.mean < i.high);
        }
    }

    #[test]
    fn bootstrap_is_deterministic_and_seeded() {
        let x: Vec<f64> = (0..30).map(|i| ((i * 7) % 11) as f64 / 10.0).collect();
        let a = bootstrap_mean(&x, 2_000, 3, LEVEL).unwrap();
        assert_eq!(a, bootstrap_mean(&x, 2_000, 3, LEVEL).unwrap());
        assert_ne!(a, bootstrap_mean(&x, 2_000, 4, LEVEL).unwrap());
        // Resampled means never leave the data's range; a wider level gives a wider interval.
        let wide = bootstrap_mean(&x, 2_000, 3, 0.99).unwrap();
        assert!(wide.low <= a.low && a.high <= wide.high);
        assert!(a.low >= 0.0 && a.high <= 1.0);
        // Constant data resamples to itself; one value has no interval.
        let c = bootstrap_mean(&[0.25; 5], 100, 0, LEVEL).unwrap();
        assert_eq!((c.low, c.high), (0.25, 0.25));
        assert_eq!(bootstrap_mean(&[0.25], 100, 0, LEVEL), None);
    }

    #[test]
    fn paired_bootstrap_resamples_differences() {
        let a = [0.8, 0.7, 0.9, 0.85];
        let b = [0.6, 0.65, 0.7, 0.6];
        let d: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
        assert_eq!(
            paired_bootstrap(&a, &b, 9).unwrap(),
            bootstrap_mean(&d, RESAMPLES, 9, LEVEL)
        );
        assert!(
            paired_bootstrap(&a, &b, 9)
                .unwrap()
                .unwrap()
                .excludes_zero()
        );
    }
}
