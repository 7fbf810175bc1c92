//! Baselines that share the data budget and seeds of the search.

pub mod finetune;
pub mod linear_probe;
pub mod majority;

use std::collections::BTreeMap;

use crate::metric::Metric;
use crate::record::{Prediction, Predictions, first_max};
use crate::tasks::Example;
use crate::tasks::metrics::pessimistic_rank;

/// What a trained baseline produced: its metrics and its predictions on the evaluation split.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineOutcome {
    pub metrics: BTreeMap<Metric, f64>,
    /// Examples (train, dev and evaluation) whose fields were cut to fit the length limit.
    pub truncated: usize,
    pub predictions: Predictions,
}

/// What a baseline cell learns from: the task's classes, its train / dev / evaluation
/// examples, the length limit of its inputs, and the cell's seed.
#[derive(Debug, Clone, Copy)]
pub struct BaselineData<'a> {
    pub classes: &'a [String],
    pub splits: [&'a [Example]; 3],
    pub limit: crate::prompt::LengthLimit,
    pub seed: u64,
}

/// Predictions from a classifier head's row-major logits `[examples, classes]`: the class
/// with the highest logit, and the gold's pessimistic rank (ties wrong, as
/// [`crate::tasks::metrics::accuracy_of_logits`] counts them).
pub fn logit_predictions(examples: &[Example], classes: &[String], logits: &[f32]) -> Predictions {
    let width = classes.len().max(1);
    let rows = examples
        .iter()
        .zip(logits.chunks(width))
        .enumerate()
        .map(|(i, (example, row))| {
            let gold = classes.iter().position(|c| *c == example.label);
            Prediction {
                example: i as u32,
                gold: example.label.clone(),
                predicted: first_max(row).and_then(|c| classes.get(c).cloned()),
                rank: gold.map(|g| pessimistic_rank(row, g) as u32),
                scores: row.to_vec(),
            }
        })
        .collect();
    Predictions {
        classes: classes.to_vec(),
        rows,
    }
}
