//! The scoring vocabulary shared by both engines ([`super::engine`]): what is predicted at
//! `[P]` ([`Target`]), an example's gold answer ([`Gold`]), and what an evaluation yields per
//! row ([`RowScore`], from the scored tokens' logits by [`row_scores`]).

use super::words::{MultiToken, WordTarget};
use crate::prompt::Verbalizer;
use crate::prompt::verbalizer::class_scores;
use crate::tasks::metrics::{pessimistic_rank, rank_in_order};

/// What is predicted at `[P]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Classification: label tokens of all classes, class after class, and each class's
    /// `(start, len)` columns. A class's score is the log-sum-exp of its tokens.
    Classes {
        label_ids: Vec<u32>,
        spans: Vec<(usize, usize)>,
    },
    /// Fact retrieval: the gold token is ranked among `candidate_ids`.
    Vocabulary { candidate_ids: Vec<u32> },
    /// Label words or candidate objects of several tokens, scored at the masks `[P]` expands
    /// to ([`super::words`]). Only when some word is longer than one token: single tokens are
    /// the two variants above.
    Words(WordTarget),
}

impl Target {
    /// A verbalizer's classes as scored at `[P]`: their label tokens at one mask, or, when
    /// some word is several tokens, their words at the masks `[P]` expands to, scored as
    /// `scoring` says.
    pub fn of_classes(
        verbalizer: &Verbalizer,
        scoring: MultiToken,
        mask_id: u32,
        pad_id: u32,
    ) -> Self {
        if verbalizer.has_multi_token_words() {
            let (words, spans) = verbalizer.words();
            return Target::Words(WordTarget::new(
                words,
                Some(spans),
                scoring,
                mask_id,
                pad_id,
            ));
        }
        Target::Classes {
            label_ids: verbalizer.all_token_ids(),
            spans: verbalizer.class_spans(),
        }
    }

    pub(crate) fn scored_ids(&self) -> &[u32] {
        match self {
            Target::Classes { label_ids, .. } => label_ids,
            Target::Vocabulary { candidate_ids } => candidate_ids,
            Target::Words(words) => words.tokens(),
        }
    }

    /// How many masks `[P]` is encoded as: the longest answer's tokens (1 for single tokens).
    pub fn predict_masks(&self) -> usize {
        match self {
            Target::Words(words) => words.max_len(),
            _ => 1,
        }
    }

    /// Whether the scores are of classes (else of candidate answers).
    pub fn is_classification(&self) -> bool {
        match self {
            Target::Classes { .. } => true,
            Target::Vocabulary { .. } => false,
            Target::Words(words) => words.classes.is_some(),
        }
    }

    /// Encoder rows one example's evaluation runs (one for single tokens).
    pub fn scoring_rows(&self) -> u64 {
        match self {
            Target::Words(words) => words.scoring_rows(),
            _ => 1,
        }
    }

    /// Forward and backward encoder rows of one example's gradient for `gold` (one and one
    /// for single tokens).
    pub fn gradient_rows(&self, gold: Gold) -> (u64, u64) {
        match self {
            Target::Words(words) => words.gradient_rows(gold),
            _ => (1, 1),
        }
    }
}

/// The gold answer of one example: class index (classification) or token id plus its
/// column in the candidate list (fact retrieval).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gold {
    pub index: usize,
    pub token: u32,
}

/// Per-example result of an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct RowScore {
    /// 0-based pessimistic rank of the gold answer (0 = correct): candidates scoring the
    /// same as the gold count as above it.
    pub rank: usize,
    /// 0-based rank with ties broken by candidate order, as a sort of the scores orders them
    /// (LAMA's evaluation ranks by `topk`); equals `rank` when nothing ties the gold.
    pub rank_in_order: usize,
    /// Log-likelihood of the gold answer (class: log of its marginal probability); NaN when
    /// not requested.
    pub gold_log_likelihood: f32,
    /// Classification: every class's score (the log-sum-exp of its label tokens' logits), in
    /// class order — what a cell's stored predictions keep. Empty for fact retrieval.
    pub class_scores: Vec<f32>,
}

/// Per-row ranks and gold log-likelihoods from the scored tokens' logits `[rows, k]` and,
/// when computed, the full-vocabulary log-normaliser `[rows]`.
pub fn row_scores(
    target: &Target,
    scores: &[f32],
    log_z: Option<&[f32]>,
    golds: &[Gold],
) -> Vec<RowScore> {
    let k = target.scored_ids().len();
    scores
        .chunks(k)
        .zip(golds)
        .enumerate()
        .map(|(row, (logits, gold))| {
            let z = log_z.map_or(f32::NAN, |z| z[row]);
            match target {
                Target::Classes { spans, .. } => {
                    let classes = class_scores(logits, spans);
                    let rank = pessimistic_rank(&classes, gold.index);
                    RowScore {
                        rank,
                        rank_in_order: rank,
                        gold_log_likelihood: classes[gold.index] - z,
                        class_scores: classes,
                    }
                }
                Target::Vocabulary { .. } => RowScore {
                    rank: pessimistic_rank(logits, gold.index),
                    rank_in_order: rank_in_order(logits, gold.index),
                    gold_log_likelihood: logits[gold.index] - z,
                    class_scores: vec![],
                },
                Target::Words(_) => unreachable!("word targets are scored by `words::score_rows`"),
            }
        })
        .collect()
}
