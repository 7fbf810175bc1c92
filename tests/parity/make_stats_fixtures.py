"""Reference numbers for the paired statistics in `framework/src/report/stats.rs`.

Writes `tests/fixtures/stats/stats.json` (developers run it; the Rust tests only read the
file). Everything is computed by scipy, independently of the Rust code:

- `t_quantiles`: `scipy.stats.t.ppf(0.975, df)` (the two-sided 95% Student-t quantile).
- `paired_t`: `scipy.stats.ttest_rel(a, b)` (statistic, two-sided p) and its
  `confidence_interval(0.95)` for the mean of `a - b`; `mean` and `sd` (ddof 1) of `a - b`.
- `mcnemar`: counts of discordant pairs (`only_a`: a right, b wrong; `only_b`: the reverse).
  Fewer than 25 discordant pairs: the exact two-sided binomial test
  (`scipy.stats.binomtest(min, only_a + only_b, 0.5)`); otherwise the chi-square statistic
  with continuity correction, `(|only_a - only_b| - 1)^2 / (only_a + only_b)`, and
  `scipy.stats.chi2.sf(statistic, 1)`.
- `welch`: `scipy.stats.ttest_ind(a, b, equal_var=False)` (Welch's two-sample t-test of
  mean(a) - mean(b)): its p-value, `df` and `confidence_interval(0.95)`; with each sample's
  mean, sd (ddof 1) and n, which is all the Rust side sees (a nightly summary's columns).
- `bootstrap`: `scipy.stats.bootstrap((x,), np.mean, method="percentile",
  n_resamples=200000, confidence_level=0.95)` on continuous data. scipy's generator is not
  ours, so the Rust test only checks that its own interval (10,000 resamples, ChaCha) lands
  within Monte Carlo error of this one; `se` is the standard error of the mean, for scaling
  that tolerance.

Run: /path/to/python tests/parity/make_stats_fixtures.py  (scipy, numpy)
"""

import json
import pathlib

import numpy as np
import scipy
from scipy import stats

OUT = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "stats" / "stats.json"


def paired_case(name, a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    res = stats.ttest_rel(a, b)
    ci = res.confidence_interval(0.95)
    d = a - b
    return {
        "name": name,
        "a": a.tolist(),
        "b": b.tolist(),
        "n": int(len(d)),
        "mean": float(d.mean()),
        "sd": float(d.std(ddof=1)),
        "t": float(res.statistic),
        "p": float(res.pvalue),
        "low": float(ci.low),
        "high": float(ci.high),
    }


def welch_case(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    res = stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(0.95)
    return {
        "mean_a": float(a.mean()), "sd_a": float(a.std(ddof=1)), "n_a": int(len(a)),
        "mean_b": float(b.mean()), "sd_b": float(b.std(ddof=1)), "n_b": int(len(b)),
        "df": float(res.df), "p": float(res.pvalue), "low": float(ci.low), "high": float(ci.high),
    }


def mcnemar_case(only_a, only_b):
    n = only_a + only_b
    if n < 25:
        p = stats.binomtest(min(only_a, only_b), n, 0.5).pvalue
        method = "exact_binomial"
    else:
        statistic = (abs(only_a - only_b) - 1) ** 2 / n
        p = stats.chi2.sf(statistic, 1)
        method = "chi_square_corrected"
    return {"only_a": only_a, "only_b": only_b, "method": method, "p": float(p)}


def main():
    rng = np.random.default_rng(20201101)
    t_quantiles = [
        {"df": df, "q": float(stats.t.ppf(0.975, df))}
        for df in list(range(1, 41)) + [60, 100, 1000]
    ]
    paired = [
        paired_case("two seeds", [0.71, 0.64], [0.62, 0.60]),
        paired_case("three seeds", [0.5, 0.6, 0.7], [0.45, 0.61, 0.58]),
        paired_case(
            "five seeds, accuracies", [0.8245, 0.7901, 0.8612, 0.7556, 0.8093],
            [0.7711, 0.7803, 0.8027, 0.7634, 0.7544],
        ),
        paired_case("negative difference", [0.1, 0.2, 0.15, 0.12], [0.3, 0.25, 0.4, 0.33]),
    ]
    for n in (10, 30):
        a = rng.normal(0.8, 0.05, n)
        b = a - rng.normal(0.01, 0.03, n)
        paired.append(paired_case(f"{n} seeds, normal", a.round(6), b.round(6)))
    mcnemar = [mcnemar_case(a, b) for a, b in [(3, 7), (0, 5), (10, 12), (1, 20), (12, 12), (30, 15), (40, 60), (100, 103), (13, 12)]]
    welch = [
        welch_case([0.81, 0.79, 0.84], [0.75, 0.77, 0.74]),
        welch_case([0.5, 0.6, 0.7, 0.65, 0.55], [0.52, 0.51]),
        welch_case(rng.normal(0.7, 0.02, 8).round(6), rng.normal(0.71, 0.05, 4).round(6)),
    ]
    bootstrap = []
    for n, loc in ((20, 0.02), (200, -0.01)):
        x = rng.normal(loc, 0.05, n).round(6)
        res = stats.bootstrap(
            (x,), np.mean, method="percentile", n_resamples=200_000,
            confidence_level=0.95, random_state=np.random.default_rng(0),
        )
        bootstrap.append({
            "x": x.tolist(),
            "mean": float(x.mean()),
            "se": float(x.std(ddof=1) / np.sqrt(n)),
            "low": float(res.confidence_interval.low),
            "high": float(res.confidence_interval.high),
        })
    OUT.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "generator": f"tests/parity/make_stats_fixtures.py (scipy {scipy.__version__}, numpy {np.__version__})",
        "t_quantiles": t_quantiles,
        "paired_t": paired,
        "mcnemar": mcnemar,
        "welch": welch,
        "bootstrap": bootstrap,
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
