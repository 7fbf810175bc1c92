//! A prompt method's splits encoded with their golds, and a prompt scored on one of them into
//! metrics (accuracy, or P@1, P@10, MRR and log-likelihood) and per-example predictions.

use std::collections::BTreeMap;

use burn::tensor::backend::Backend;

use super::MethodError;
use super::answers::Answers;
use crate::lm::LoadedModel;
use crate::metric::{Measure, Metric, Split as MetricSplit};
use crate::progress::ProgressSink;
use crate::prompt::{Encoded, LengthLimit, Template};
use crate::record::{Prediction, Predictions};
use crate::search::trigger::{Split, evaluate_split_reporting};
use crate::search::{Gold, RowScore, Scorer};
use crate::tasks::metrics::{LAMA_MRR_DEPTH, accuracy, retrieval_within};
use crate::tasks::{Example, Ranking, TaskData};

/// Examples of one split that can be scored, with their golds, plus the count that cannot.
pub(super) struct Prepared {
    pub(super) encoded: Vec<Encoded>,
    pub(super) golds: Vec<Gold>,
    /// Position in the split of each encoded example.
    pub(super) indices: Vec<usize>,
    pub(super) unscorable: usize,
    /// Encoded examples whose fields were cut to fit the length limit.
    pub(super) truncated: usize,
}

/// The examples of one split encoded (`[P]` as `masks` masks: room for the longest answer)
/// with their golds.
pub(super) fn prepare(
    examples: &[Example],
    template: &Template,
    answers: &Answers,
    lm: &LoadedModel<impl burn::tensor::backend::Backend>,
    triggers: &[u32],
    (limit, masks): (LengthLimit, usize),
) -> Result<Prepared, MethodError> {
    let mut out = Prepared {
        encoded: vec![],
        golds: vec![],
        indices: vec![],
        unscorable: 0,
        truncated: 0,
    };
    for (index, example) in examples.iter().enumerate() {
        let Some(gold) = answers.gold(example, &lm.tokenizer) else {
            out.unscorable += 1;
            continue;
        };
        let encoded = template.encode_with_masks(
            |f| example.field(f),
            &lm.tokenizer,
            triggers,
            limit,
            false,
            masks,
        )?;
        out.truncated += usize::from(encoded.cut_tokens > 0);
        out.encoded.push(encoded);
        out.golds.push(gold);
        out.indices.push(index);
    }
    Ok(out)
}

/// Classification metrics (`accuracy`) or fact-retrieval metrics (`p_at_1`, `p_at_10`,
/// `mrr`, `log_likelihood`) on `split`, with unscorable examples counted as misses.
fn metrics_of(
    rows: &[RowScore],
    unscorable: usize,
    classification: bool,
    ranking: Ranking,
    split: MetricSplit,
) -> BTreeMap<Metric, f64> {
    let mut m = BTreeMap::new();
    let on = |measure| Metric::Of(measure, split);
    if classification {
        let mut ranks: Vec<usize> = rows.iter().map(|r| r.rank).collect();
        ranks.extend(std::iter::repeat_n(usize::MAX, unscorable));
        m.insert(on(Measure::Accuracy), accuracy(&ranks));
    } else {
        let (rank, depth): (fn(&RowScore) -> usize, _) = match ranking {
            Ranking::Lama => (|r| r.rank_in_order, Some(LAMA_MRR_DEPTH)),
            Ranking::Strict => (|r| r.rank, None),
        };
        let mut ranks: Vec<Option<usize>> = rows.iter().map(|r| Some(rank(r))).collect();
        ranks.extend(std::iter::repeat_n(None, unscorable));
        let r = retrieval_within(&ranks, depth);
        m.insert(on(Measure::PAt1), r.p_at_1);
        m.insert(on(Measure::PAt10), r.p_at_10);
        m.insert(on(Measure::Mrr), r.mrr);
        if !rows.is_empty() {
            let ll = rows
                .iter()
                .map(|r| r.gold_log_likelihood as f64)
                .sum::<f64>()
                / rows.len() as f64;
            m.insert(on(Measure::LogLikelihood), ll);
        }
    }
    m
}

/// The three splits, encoded with placeholder triggers.
pub(super) struct Splits {
    pub(super) train: Prepared,
    pub(super) dev: Prepared,
    pub(super) test: Prepared,
}

impl Splits {
    pub(super) fn prepare(
        data: &TaskData,
        template: &Template,
        answers: &Answers,
        lm: &LoadedModel<impl Backend>,
        placeholder: &[u32],
        limit: (LengthLimit, usize),
    ) -> Result<Self, MethodError> {
        let prepare = |examples| prepare(examples, template, answers, lm, placeholder, limit);
        let splits = Self {
            train: prepare(&data.train)?,
            dev: prepare(&data.dev)?,
            test: prepare(&data.test)?,
        };
        if splits.train.encoded.is_empty() || splits.dev.encoded.is_empty() {
            return Err(MethodError::NothingToScore);
        }
        Ok(splits)
    }
}

impl Prepared {
    pub(super) fn split(&self) -> Split<'_> {
        Split {
            encoded: &self.encoded,
            golds: &self.golds,
        }
    }
}

/// Metrics of `triggers` on one prepared split (named as metrics of `metric_split`) and the
/// split's predictions; the rows scored are reported to `progress` as split `split`.
pub(super) fn evaluate_prepared(
    scorer: &Scorer,
    pad_id: u32,
    (examples, prepared): (&[Example], &Prepared),
    triggers: &[u32],
    (classes, ranking): (&[String], Ranking),
    (metric_split, split): (MetricSplit, &str),
    progress: &dyn ProgressSink,
) -> (BTreeMap<Metric, f64>, Predictions) {
    let classification = scorer.target.is_classification();
    let rows = evaluate_split_reporting(
        scorer,
        pad_id,
        prepared.split(),
        triggers,
        !classification,
        &mut |rows, of| {
            progress.report(crate::progress::Stage::Score {
                split: split.to_string(),
                rows,
                of,
            })
        },
    );
    (
        metrics_of(
            &rows,
            prepared.unscorable,
            classification,
            ranking,
            metric_split,
        ),
        predictions_of(examples, prepared, &rows, classes, ranking),
    )
}

/// A split's predictions from its scored rows: every example in split order, those that
/// could not be scored without a rank (the metrics count them as wrong). `classes`: the
/// class names of a classification target, else empty.
fn predictions_of(
    examples: &[Example],
    prepared: &Prepared,
    rows: &[RowScore],
    classes: &[String],
    ranking: Ranking,
) -> Predictions {
    let mut scored: Vec<Option<&RowScore>> = vec![None; examples.len()];
    for (&i, row) in prepared.indices.iter().zip(rows) {
        scored[i] = Some(row);
    }
    // The rank the metrics count (`metrics_of`): classification ranks are pessimistic.
    let rank = |r: &RowScore| match (classes.is_empty(), ranking) {
        (true, Ranking::Lama) => r.rank_in_order,
        _ => r.rank,
    };
    let rows = examples
        .iter()
        .zip(scored)
        .enumerate()
        .map(|(i, (example, row))| Prediction {
            example: i as u32,
            gold: example.label.clone(),
            predicted: row
                .and_then(|r| crate::record::first_max(&r.class_scores))
                .and_then(|c| classes.get(c).cloned()),
            rank: row.map(|r| u32::try_from(rank(r)).unwrap_or(u32::MAX)),
            scores: row.map_or_else(Vec::new, |r| r.class_scores.clone()),
        })
        .collect();
    Predictions {
        classes: classes.to_vec(),
        rows,
    }
}
