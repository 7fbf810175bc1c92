//! The floor row of every table: always predict the most frequent training label
//! (fact retrieval: rank objects by training frequency).

use std::collections::BTreeMap;

use crate::metric::{Measure, Metric, Split};
use crate::record::{Prediction, Predictions};
use crate::tasks::metrics::{accuracy, retrieval};
use crate::tasks::{Example, labels_by_frequency};

/// Metrics of the majority predictor on `eval` (classification: `accuracy`; fact
/// retrieval: `p_at_1`, `p_at_10`, `mrr`). Training-label ties break by label order.
pub fn evaluate(
    train: &[Example],
    eval: &[Example],
    classification: bool,
) -> BTreeMap<Metric, f64> {
    let ranking = labels_by_frequency(train);
    let rank_of = |label: &str| ranking.iter().position(|l| l == label);
    let mut metrics = BTreeMap::new();
    if classification {
        let ranks: Vec<usize> = eval
            .iter()
            .map(|e| rank_of(&e.label).unwrap_or(usize::MAX))
            .collect();
        metrics.insert(Metric::ACCURACY, accuracy(&ranks));
    } else {
        let ranks: Vec<Option<usize>> = eval.iter().map(|e| rank_of(&e.label)).collect();
        let m = retrieval(&ranks);
        let eval = |measure| Metric::Of(measure, Split::Eval);
        metrics.insert(eval(Measure::PAt1), m.p_at_1);
        metrics.insert(eval(Measure::PAt10), m.p_at_10);
        metrics.insert(eval(Measure::Mrr), m.mrr);
    }
    metrics
}

/// The majority predictor's predictions on `eval`: the most frequent training label for
/// every example (fact retrieval: no predicted class, the object's rank by training
/// frequency), no scores. `classes`: the task's class names (empty for fact retrieval).
pub fn predictions(train: &[Example], eval: &[Example], classes: &[String]) -> Predictions {
    let ranking = labels_by_frequency(train);
    let classification = !classes.is_empty();
    let rows = eval
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let rank = ranking.iter().position(|l| *l == e.label);
            Prediction {
                example: i as u32,
                gold: e.label.clone(),
                predicted: ranking.first().filter(|_| classification).cloned(),
                // Classification counts an unseen label as wrong: a rank past every class.
                rank: match (rank, classification) {
                    (Some(r), _) => Some(r as u32),
                    (None, true) => Some(ranking.len() as u32),
                    (None, false) => None,
                },
                scores: vec![],
            }
        })
        .collect();
    Predictions {
        classes: classes.to_vec(),
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(label: &str) -> Example {
        Example {
            fields: vec![],
            label: label.into(),
        }
    }

    #[test]
    fn predicts_most_frequent_training_label() {
        let train = [ex("1"), ex("1"), ex("0")];
        let eval = [ex("1"), ex("0"), ex("1"), ex("1")];
        assert_eq!(evaluate(&train, &eval, true)["accuracy"], 0.75);
        let classes = ["0".to_string(), "1".to_string()];
        let p = predictions(&train, &eval, &classes);
        assert!(p.rows.iter().all(|r| r.predicted.as_deref() == Some("1")));
        let right = p.rows.iter().filter(|r| r.correct()).count();
        assert_eq!(right as f64 / eval.len() as f64, 0.75);
    }

    #[test]
    fn ranks_objects_for_fact_retrieval() {
        let train = [ex("Paris"), ex("Paris"), ex("Rome")];
        let eval = [ex("Rome"), ex("Oslo")];
        let m = evaluate(&train, &eval, false);
        assert_eq!(m["p_at_1"], 0.0);
        assert_eq!(m["p_at_10"], 0.5);
        assert_eq!(m["mrr"], 0.25);
    }
}
