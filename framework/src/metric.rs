//! Metric names as a type: what producers write into a record, what the report aggregates
//! (`<metric>_mean`, `_sd`, ...) and what comparisons and the nightly check read back.
//!
//! A [`Metric`] serialises as its name (`accuracy`, `dev_p_at_1`, ...), the same strings
//! records, tables and reports have always used; names it does not know (records of other
//! versions) load as [`Metric::Other`]. Metrics compare, order and hash as their names, and
//! borrow as `str`, so a record's `metrics` map is ordered by name and can be indexed with
//! `metrics["accuracy"]`.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What is measured on a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Measure {
    /// Classification: share of examples whose gold class scores highest (ties wrong).
    Accuracy,
    /// Fact retrieval: share of facts whose object ranks first.
    PAt1,
    /// Fact retrieval: share of facts whose object ranks in the top 10.
    PAt10,
    /// Fact retrieval: mean reciprocal rank.
    Mrr,
    /// Fact retrieval: mean log-likelihood of the gold object.
    LogLikelihood,
}

impl Measure {
    pub const ALL: [Measure; 5] = [
        Measure::Accuracy,
        Measure::PAt1,
        Measure::PAt10,
        Measure::Mrr,
        Measure::LogLikelihood,
    ];
}

/// The split a measure was taken on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Split {
    /// The evaluation split (unprefixed names).
    Eval,
    /// The dev split (names prefixed `dev_`).
    Dev,
}

/// A metric of a cell.
#[derive(Debug, Clone)]
pub enum Metric {
    /// A measure on a split.
    Of(Measure, Split),
    /// Training accuracy of the label search's probe (`label_probe_train_accuracy`).
    LabelProbeTrainAccuracy,
    /// A name this version does not produce (kept so that older or foreign records load).
    /// Never one of the names above: [`Metric::from_str`] gives those their variant.
    Other(String),
}

/// A statistic of a metric over a setting's cells: a summary column `<metric>_<suffix>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statistic {
    Mean,
    Sd,
    Min,
    Max,
    N,
    Ci95,
    /// Sd between data splits.
    SdSplit,
    /// Sd between search seeds within a split.
    SdSeed,
}

impl Statistic {
    /// The column suffix, without the underscore.
    pub fn suffix(self) -> &'static str {
        match self {
            Statistic::Mean => "mean",
            Statistic::Sd => "sd",
            Statistic::Min => "min",
            Statistic::Max => "max",
            Statistic::N => "n",
            Statistic::Ci95 => "ci95",
            Statistic::SdSplit => "sd_split",
            Statistic::SdSeed => "sd_seed",
        }
    }

    /// The name before `_<suffix>` of a summary column of this statistic, if it is one.
    pub fn strip(self, column: &str) -> Option<&str> {
        column
            .strip_suffix(self.suffix())
            .and_then(|c| c.strip_suffix('_'))
    }
}

/// A summary column `<name>_<statistic>` of any name (metrics, `seconds`, ...).
pub fn column(name: &str, statistic: Statistic) -> String {
    format!("{name}_{}", statistic.suffix())
}

impl Metric {
    /// Evaluation-split accuracy.
    pub const ACCURACY: Metric = Metric::Of(Measure::Accuracy, Split::Eval);
    /// Evaluation-split P@1.
    pub const P_AT_1: Metric = Metric::Of(Measure::PAt1, Split::Eval);
    /// The metrics a report's plots and comparisons are about, in order of preference:
    /// `accuracy`, else `p_at_1`.
    pub const MAIN: [Metric; 2] = [Metric::ACCURACY, Metric::P_AT_1];

    /// The metric's name in records, tables and reports.
    pub fn as_str(&self) -> &str {
        use Measure::*;
        use Split::*;
        match self {
            Metric::Of(Accuracy, Eval) => "accuracy",
            Metric::Of(PAt1, Eval) => "p_at_1",
            Metric::Of(PAt10, Eval) => "p_at_10",
            Metric::Of(Mrr, Eval) => "mrr",
            Metric::Of(LogLikelihood, Eval) => "log_likelihood",
            Metric::Of(Accuracy, Dev) => "dev_accuracy",
            Metric::Of(PAt1, Dev) => "dev_p_at_1",
            Metric::Of(PAt10, Dev) => "dev_p_at_10",
            Metric::Of(Mrr, Dev) => "dev_mrr",
            Metric::Of(LogLikelihood, Dev) => "dev_log_likelihood",
            Metric::LabelProbeTrainAccuracy => "label_probe_train_accuracy",
            Metric::Other(name) => name,
        }
    }

    /// Every metric this version produces.
    pub fn known() -> impl Iterator<Item = Metric> {
        [Split::Eval, Split::Dev]
            .into_iter()
            .flat_map(|s| Measure::ALL.into_iter().map(move |m| Metric::Of(m, s)))
            .chain([Metric::LabelProbeTrainAccuracy])
    }

    /// Whether the value is the share of evaluation examples a cell got right (so that
    /// its per-example predictions can be compared example by example).
    pub fn counts_right_answers(&self) -> bool {
        matches!(
            self,
            Metric::Of(Measure::Accuracy | Measure::PAt1, Split::Eval)
        )
    }

    /// The first of [`Metric::MAIN`] among `metrics`.
    pub fn main_of(metrics: &[Metric]) -> Option<&Metric> {
        Metric::MAIN
            .iter()
            .find_map(|m| metrics.iter().find(|x| *x == m))
    }

    /// The summary column of `statistic` of this metric (`accuracy_mean`, ...).
    pub fn column(&self, statistic: Statistic) -> String {
        column(self.as_str(), statistic)
    }
}

impl FromStr for Metric {
    type Err = std::convert::Infallible;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Ok(Metric::from(name))
    }
}

impl From<&str> for Metric {
    fn from(name: &str) -> Self {
        Metric::known()
            .find(|m| m.as_str() == name)
            .unwrap_or_else(|| Metric::Other(name.to_string()))
    }
}

impl From<String> for Metric {
    fn from(name: String) -> Self {
        Metric::from(name.as_str())
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl PartialEq for Metric {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Metric {}

impl PartialEq<str> for Metric {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Metric {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialOrd for Metric {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// By name, so that maps of metrics keep the order (and JSON) of maps of names.
impl Ord for Metric {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Metric {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl Borrow<str> for Metric {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl Serialize for Metric {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Metric::from(String::deserialize(deserializer)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_kept() {
        for m in Metric::known() {
            assert_eq!(Metric::from(m.as_str()), m);
            assert!(!matches!(Metric::from(m.as_str()), Metric::Other(_)));
        }
        assert_eq!(Metric::known().count(), 11);
        let other = Metric::from("bleu");
        assert!(matches!(&other, Metric::Other(n) if n == "bleu"));
        let json = serde_json::to_string(&other).unwrap();
        assert_eq!(json, "\"bleu\"");
        assert_eq!(
            serde_json::from_str::<Metric>("\"dev_mrr\"").unwrap(),
            "dev_mrr"
        );
    }

    #[test]
    fn maps_of_metrics_serialise_as_maps_of_names() {
        let names: std::collections::BTreeMap<String, f64> = [
            ("p_at_10", 0.5),
            ("dev_p_at_1", 0.25),
            ("mrr", 0.3),
            ("log_likelihood", -2.0),
            ("zzz", 1.0),
            ("label_probe_train_accuracy", 0.9),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let metrics: std::collections::BTreeMap<Metric, f64> = names
            .iter()
            .map(|(k, v)| (Metric::from(k.as_str()), *v))
            .collect();
        let json = serde_json::to_string(&names).unwrap();
        assert_eq!(serde_json::to_string(&metrics).unwrap(), json);
        assert_eq!(
            serde_json::from_str::<std::collections::BTreeMap<Metric, f64>>(&json).unwrap(),
            metrics
        );
        assert_eq!(metrics["mrr"], 0.3);
    }

    #[test]
    fn columns_and_main_metrics() {
        assert_eq!(Metric::ACCURACY.column(Statistic::Mean), "accuracy_mean");
        assert_eq!(Metric::P_AT_1.column(Statistic::SdSplit), "p_at_1_sd_split");
        assert_eq!(Statistic::Mean.strip("p_at_1_mean"), Some("p_at_1"));
        assert_eq!(Statistic::Mean.strip("p_at_1mean"), None);
        assert_eq!(format!("{:<8}|", Metric::P_AT_1), "p_at_1  |");
        assert!(Metric::P_AT_1.counts_right_answers());
        assert!(!Metric::from("dev_accuracy").counts_right_answers());
        let ms = [Metric::from("mrr"), Metric::P_AT_1];
        assert_eq!(Metric::main_of(&ms), Some(&Metric::P_AT_1));
    }
}
