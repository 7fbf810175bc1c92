//! Answers of several tokens: label words and fact objects that the model's vocabulary splits
//! ("very good", "Rio de Janeiro"), scored at the masks `[P]` expands to.
//!
//! A prompt whose `[P]` is scored with words of up to `m` tokens is encoded with `m` masks
//! there (so truncation makes room for the longest word once, and every word of an example is
//! scored on the same text). A word of `n ≤ m` tokens is scored on that prompt with `n` masks,
//! in one of three orders ([`FillOrder`]):
//!
//! - `independent`: one input with all `n` masks open; the word's log-probability is the sum
//!   of each mask's log-probability of its token (PET's and OpenPrompt's default).
//! - `left_to_right`: `n` inputs, the `j`-th with the word's first `j` tokens placed and the
//!   rest masked, read at mask `j` (the chain rule in reading order).
//! - `confidence`: `n` steps; each scores the open masks, places the token the model gives
//!   the highest log-probability to, and adds that log-probability (X-FACTR's order, Jiang et
//!   al., EMNLP 2020, applied to a given word).
//!
//! With `normalize = "mean"` a word's score is divided by its length. A class's score is the
//! log-sum-exp of its words' scores, as with single tokens; a fact's candidates are ranked by
//! their words' scores. These scores are normalised log-probabilities; the single-token path's
//! class scores are log-sum-exps of logits (the normaliser is shared by every class there, so
//! they rank the same), which is why stored prediction scores of the two paths differ in scale.
//!
//! **How batches are shaped.** The engines read one position per row, so an input read at
//! several masks is several rows (same tokens, another read position). The rows one example
//! needs are known before any is run, except `confidence`'s later steps, and identical rows are
//! run once: `independent` needs `Σ n` rows over the distinct word lengths `n`;
//! `left_to_right` one row per distinct (length, prefix); `confidence` the `independent` rows
//! plus `n(n−1)/2` per word. Each row scores every token of every word at its mask, with the
//! full-vocabulary normaliser (words of different lengths are scored on different inputs, so
//! only normalised log-probabilities compare). [`WordTarget::scoring_rows`] counts them, and
//! the search's encoder-row counts use it. A target whose words are all single tokens is never
//! a `WordTarget`: it stays [`super::Target::Classes`] / [`super::Target::Vocabulary`], the
//! single-token path with its numbers and speed unchanged.
//!
//! **The gradient.** HotFlip's loss is minus the gold class's score. With one word per class
//! (and `independent` or `left_to_right`) its gradient is that of the sum of the word's token
//! log-likelihoods, one row per token, each row's gold its token. With several words the loss
//! is minus a log-sum-exp, whose gradient weights each word by its share of the class's
//! probability: those shares come from a forward pass first. `confidence` runs its steps
//! forward first to find the order, then takes the gradient of the rows of that order (the
//! order itself, a discrete choice, has no gradient).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::engine::ScoringEngine;
use super::target::{Gold, RowScore, Target};
use crate::prompt::verbalizer::{class_scores, log_sum_exp};
use crate::prompt::{Batch, Encoded};
use crate::tasks::metrics::{pessimistic_rank, rank_in_order};

/// In which order the masks of a word are filled when it is scored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FillOrder {
    /// One input, every mask open: the sum of each mask's log-probability of its token.
    #[default]
    Independent,
    /// One input per token, left to right, each with the tokens before it placed.
    LeftToRight,
    /// One step per token, each placing the token the model is most confident of among the
    /// masks still open.
    Confidence,
}

impl FillOrder {
    pub fn name(self) -> &'static str {
        match self {
            FillOrder::Independent => "independent",
            FillOrder::LeftToRight => "left_to_right",
            FillOrder::Confidence => "confidence",
        }
    }
}

/// How a word's log-probability depends on its length.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LengthNorm {
    /// The sum of its tokens' log-probabilities: the word's log-probability.
    #[default]
    Sum,
    /// The mean over its tokens (longer words are not penalised for their length).
    Mean,
}

/// `[method] multi_token = { strategy = "left_to_right", normalize = "mean" }`: label words
/// and fact objects may be several tokens, scored this way. Absent: every answer must be one
/// token (the paper's restriction).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiToken {
    #[serde(default)]
    pub strategy: FillOrder,
    #[serde(default)]
    pub normalize: LengthNorm,
}

impl MultiToken {
    /// `left_to_right/mean`, as reports show it.
    pub fn describe(&self) -> String {
        let norm = match self.normalize {
            LengthNorm::Sum => "sum",
            LengthNorm::Mean => "mean",
        };
        format!("{}/{norm}", self.strategy.name())
    }
}

/// Words scored at the masks of `[P]`: a classification's label words (grouped by class) or a
/// fact's candidate objects.
#[derive(Debug, Clone, PartialEq)]
pub struct WordTarget {
    /// Every word's token ids (each at least one).
    pub words: Vec<Vec<u32>>,
    /// Classification: each class's `(start, len)` range of `words`. `None`: fact retrieval,
    /// every word a candidate.
    pub classes: Option<Vec<(usize, usize)>>,
    pub scoring: MultiToken,
    /// The model's mask token, which open masks hold.
    pub mask_id: u32,
    /// What padded rows hold (attention-masked, so any id would do; the model's pad id).
    pub pad_id: u32,
    /// Every token of every word, sorted and distinct: the columns scored at a mask.
    tokens: Vec<u32>,
}

impl WordTarget {
    pub fn new(
        words: Vec<Vec<u32>>,
        classes: Option<Vec<(usize, usize)>>,
        scoring: MultiToken,
        mask_id: u32,
        pad_id: u32,
    ) -> Self {
        assert!(
            words.iter().all(|w| !w.is_empty()),
            "every word has at least one token"
        );
        let mut tokens: Vec<u32> = words.iter().flatten().copied().collect();
        tokens.sort_unstable();
        tokens.dedup();
        Self {
            words,
            classes,
            scoring,
            mask_id,
            pad_id,
            tokens,
        }
    }

    /// The masks `[P]` expands to when the prompt is encoded: the longest word's length.
    pub fn max_len(&self) -> usize {
        self.words.iter().map(Vec::len).max().unwrap_or(1)
    }

    /// Every token of every word, sorted and distinct.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    fn column(&self, token: u32) -> usize {
        self.tokens
            .binary_search(&token)
            .expect("a word's token is among the scored tokens")
    }

    /// The words a gold answer is scored with: its class's words, or its own word.
    fn gold_words(&self, gold: Gold) -> std::ops::Range<usize> {
        match &self.classes {
            Some(spans) => {
                let (start, len) = spans[gold.index];
                start..start + len
            }
            None => gold.index..gold.index + 1,
        }
    }

    /// Encoder rows (forward passes of one example's prompt) that scoring one example runs.
    pub fn scoring_rows(&self) -> u64 {
        self.rows_for(0..self.words.len())
    }

    /// Encoder rows of one example's gradient for `gold`: the forward rows run first (the
    /// gold class's scores, when several words share it or under `confidence`) and the rows
    /// the gradient flows through (one per gold word's token).
    pub fn gradient_rows(&self, gold: Gold) -> (u64, u64) {
        let words = self.gold_words(gold);
        let backward: u64 = words.clone().map(|w| self.words[w].len() as u64).sum();
        let forward_first = if self.needs_forward_first(words.len()) {
            self.rows_for(words)
        } else {
            0
        };
        (forward_first + backward, backward)
    }

    fn needs_forward_first(&self, gold_words: usize) -> bool {
        gold_words > 1 || self.scoring.strategy == FillOrder::Confidence
    }

    /// Distinct rows one example needs to score `words` (see the module doc).
    fn rows_for(&self, words: std::ops::Range<usize>) -> u64 {
        let first_round: std::collections::HashSet<RowKey> = words
            .clone()
            .flat_map(|w| first_needs(self.scoring.strategy, 0, &self.words[w]))
            .map(|need| need.key)
            .collect();
        let later: u64 = match self.scoring.strategy {
            FillOrder::Confidence => words
                .map(|w| {
                    let n = self.words[w].len() as u64;
                    n * (n - 1) / 2
                })
                .sum(),
            _ => 0,
        };
        first_round.len() as u64 + later
    }

    fn normalized(&self, word: usize, total: f32) -> f32 {
        match self.scoring.normalize {
            LengthNorm::Sum => total,
            LengthNorm::Mean => total / self.words[word].len() as f32,
        }
    }

    fn length_factor(&self, word: usize) -> f32 {
        match self.scoring.normalize {
            LengthNorm::Sum => 1.0,
            LengthNorm::Mean => 1.0 / self.words[word].len() as f32,
        }
    }
}

/// One encoder row: an example's prompt with `[P]` as `filled.len()` masks, some holding a
/// word's token, read at mask `read`. `word` is set for `confidence`'s later steps, whose rows
/// are not shared between words (so that row counts do not depend on the model's choices).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RowKey {
    example: usize,
    filled: Vec<Option<u32>>,
    read: usize,
    word: Option<usize>,
}

/// A log-probability a word's score needs: of `token` at the row `key`.
#[derive(Debug, Clone)]
struct Need {
    key: RowKey,
    token: u32,
}

/// The needs of a word's first step: every position of `word` for `independent` and
/// `confidence` (all masks open), its prefixes for `left_to_right`.
fn first_needs(strategy: FillOrder, example: usize, word: &[u32]) -> Vec<Need> {
    let n = word.len();
    (0..n)
        .map(|j| {
            let filled = match strategy {
                FillOrder::LeftToRight => (0..n).map(|i| (i < j).then_some(word[i])).collect(),
                FillOrder::Independent | FillOrder::Confidence => vec![None; n],
            };
            Need {
                key: RowKey {
                    example,
                    filled,
                    read: j,
                    word: None,
                },
                token: word[j],
            }
        })
        .collect()
}

/// One word of one example being scored.
#[derive(Debug, Clone)]
struct Cursor {
    example: usize,
    word: usize,
    /// Tokens placed so far (`confidence`).
    filled: Vec<Option<u32>>,
    /// Sum of the log-probabilities taken.
    total: f32,
    /// The needs whose log-probabilities make `total`: what the gradient flows through.
    trace: Vec<Need>,
    done: bool,
}

/// The needs of a cursor's next step.
fn next_needs(target: &WordTarget, cursor: &Cursor, first: bool) -> Vec<Need> {
    let word = &target.words[cursor.word];
    if first {
        return first_needs(target.scoring.strategy, cursor.example, word);
    }
    (0..word.len())
        .filter(|&j| cursor.filled[j].is_none())
        .map(|j| Need {
            key: RowKey {
                example: cursor.example,
                filled: cursor.filled.clone(),
                read: j,
                word: Some(cursor.word),
            },
            token: word[j],
        })
        .collect()
}

/// Takes a step's log-probabilities into a cursor.
fn advance(target: &WordTarget, cursor: &mut Cursor, needs: Vec<Need>, values: &[f32]) {
    match target.scoring.strategy {
        FillOrder::Independent | FillOrder::LeftToRight => {
            cursor.total = values.iter().sum();
            cursor.trace = needs;
            cursor.done = true;
        }
        FillOrder::Confidence => {
            // The most confident open mask; the first on ties.
            let best = (0..values.len()).fold(0, |b, i| if values[i] > values[b] { i } else { b });
            let need = needs.into_iter().nth(best).expect("an open mask");
            cursor.total += values[best];
            cursor.filled[need.key.read] = Some(need.token);
            cursor.done = cursor.filled.iter().all(Option::is_some);
            cursor.trace.push(need);
        }
    }
}

/// Scores `cursors` to completion on `batch` (the prompts, `[P]` as `max_len` masks).
/// `parallel`: rows in chunks of `chunk` side by side on the worker threads.
fn run_cursors(
    engine: &dyn ScoringEngine,
    target: &WordTarget,
    batch: &Batch,
    cursors: &mut [Cursor],
    chunk: usize,
    parallel: bool,
) {
    let mut first = true;
    while cursors.iter().any(|c| !c.done) {
        let active: Vec<usize> = (0..cursors.len()).filter(|&i| !cursors[i].done).collect();
        let needs: Vec<Vec<Need>> = active
            .iter()
            .map(|&i| next_needs(target, &cursors[i], first))
            .collect();
        let values = log_probs(
            engine,
            target,
            batch,
            needs.iter().flatten(),
            chunk,
            parallel,
        );
        let mut at = 0;
        for (&i, needs) in active.iter().zip(needs) {
            let n = needs.len();
            advance(target, &mut cursors[i], needs, &values[at..at + n]);
            at += n;
        }
        first = false;
    }
}

/// The log-probability of each need, each distinct row run once.
fn log_probs<'a>(
    engine: &dyn ScoringEngine,
    target: &WordTarget,
    batch: &Batch,
    needs: impl Iterator<Item = &'a Need>,
    chunk: usize,
    parallel: bool,
) -> Vec<f32> {
    let mut rows: Vec<RowKey> = vec![];
    let mut index: HashMap<RowKey, usize> = HashMap::new();
    // For each need: its row and its column.
    let mut lookups: Vec<(usize, usize)> = vec![];
    for need in needs {
        let row = *index.entry(need.key.clone()).or_insert_with(|| {
            rows.push(need.key.clone());
            rows.len() - 1
        });
        lookups.push((row, target.column(need.token)));
    }
    let ranges = super::scorer::row_chunks(rows.len(), chunk);
    let k = target.tokens.len();
    let run = |&(start, end): &(usize, usize)| {
        let encoded: Vec<Encoded> = rows[start..end]
            .iter()
            .map(|key| expanded_row(batch, target, key))
            .collect();
        let refs: Vec<&Encoded> = encoded.iter().collect();
        engine.token_log_probs(&Batch::pad(&refs, target.pad_id), &target.tokens)
    };
    let scored: Vec<f32> = if parallel {
        super::parallel::map_ordered(&ranges, run).concat()
    } else {
        ranges.iter().map(run).collect::<Vec<_>>().concat()
    };
    lookups
        .into_iter()
        .map(|(row, col)| scored[row * k + col])
        .collect()
}

/// Row `key.example` of `batch` with its `max_len` masks at `[P]` replaced by `key.filled`
/// (open masks, or placed tokens), read at mask `key.read`.
fn expanded_row(batch: &Batch, target: &WordTarget, key: &RowKey) -> Encoded {
    let s = batch.seq_len;
    let r = key.example;
    let len = batch.attention_mask[r * s..(r + 1) * s]
        .iter()
        .take_while(|&&m| m > 0.5)
        .count();
    let ids = &batch.ids[r * s..r * s + len];
    let segments = &batch.segment_ids[r * s..r * s + len];
    let p = batch.predict_positions[r];
    let m = target.max_len();
    let n = key.filled.len();
    let shift = m - n;
    let masks = key.filled.iter().map(|t| t.unwrap_or(target.mask_id));
    let t = batch.num_triggers;
    Encoded {
        ids: ids[..p]
            .iter()
            .copied()
            .chain(masks)
            .chain(ids[p + m..].iter().copied())
            .collect(),
        segment_ids: segments[..p]
            .iter()
            .copied()
            .chain(std::iter::repeat_n(segments[p], n))
            .chain(segments[p + m..].iter().copied())
            .collect(),
        trigger_positions: batch.trigger_positions[r * t..(r + 1) * t]
            .iter()
            .map(|&pos| if pos < p { pos } else { pos - shift })
            .collect(),
        predict_position: p + key.read,
        cut_tokens: 0,
    }
}

fn cursors_for(target: &WordTarget, example: usize, words: std::ops::Range<usize>) -> Vec<Cursor> {
    words
        .map(|word| Cursor {
            example,
            word,
            filled: vec![None; target.words[word].len()],
            total: 0.0,
            trace: vec![],
            done: false,
        })
        .collect()
}

/// Words of examples scored at once (see [`score_rows`]).
const MAX_CURSORS: usize = 100_000;

/// Every row of `batch` scored: class scores (log-sum-exp of the class's words' scores) or
/// the candidates' scores, ranks and the gold's score.
pub(crate) fn score_rows(
    engine: &dyn ScoringEngine,
    target: &WordTarget,
    batch: &Batch,
    golds: &[Gold],
    chunk: usize,
) -> Vec<RowScore> {
    let w = target.words.len();
    // Examples a few at a time when the candidates are many (a fact's candidate list): the
    // bookkeeping of one word of one example stays within `MAX_CURSORS` at once.
    let group = (MAX_CURSORS / w.max(1)).max(1);
    let mut totals: Vec<Cursor> = Vec::with_capacity(batch.rows * w);
    for start in (0..batch.rows).step_by(group) {
        let end = (start + group).min(batch.rows);
        let mut cursors: Vec<Cursor> = (start..end)
            .flat_map(|e| cursors_for(target, e, 0..w))
            .collect();
        run_cursors(engine, target, batch, &mut cursors, chunk, true);
        totals.extend(cursors.into_iter().map(|c| Cursor {
            trace: vec![],
            filled: vec![],
            ..c
        }));
    }
    totals
        .chunks(w)
        .zip(golds)
        .map(|(row, gold)| {
            let scores: Vec<f32> = row
                .iter()
                .map(|c| target.normalized(c.word, c.total))
                .collect();
            match &target.classes {
                Some(spans) => {
                    let classes = class_scores(&scores, spans);
                    let rank = pessimistic_rank(&classes, gold.index);
                    RowScore {
                        rank,
                        rank_in_order: rank,
                        gold_log_likelihood: classes[gold.index],
                        class_scores: classes,
                    }
                }
                None => RowScore {
                    rank: pessimistic_rank(&scores, gold.index),
                    rank_in_order: rank_in_order(&scores, gold.index),
                    gold_log_likelihood: scores[gold.index],
                    class_scores: vec![],
                },
            }
        })
        .collect()
}

/// Loss (weighted mean over examples of minus the gold's score) and its gradient w.r.t. the
/// trigger slots' input embeddings, summed over the batch: what
/// [`ScoringEngine::trigger_gradient`] gives for single tokens.
pub(crate) fn trigger_gradient(
    engine: &dyn ScoringEngine,
    target: &WordTarget,
    batch: &Batch,
    golds: &[Gold],
    weights: Option<&[f32]>,
    chunk: usize,
) -> (f32, Vec<Vec<f32>>) {
    let examples = batch.rows;
    let mut cursors: Vec<Cursor> = vec![];
    let mut forward_first = false;
    for (e, &gold) in golds.iter().enumerate() {
        let words = target.gold_words(gold);
        forward_first |= target.needs_forward_first(words.len());
        cursors.extend(cursors_for(target, e, words));
    }
    if forward_first {
        run_cursors(engine, target, batch, &mut cursors, chunk, false);
    } else {
        for c in &mut cursors {
            c.trace = next_needs(target, c, true);
        }
    }
    // Each word's share of its class's probability (1 for a class of one word).
    let mut shares = vec![1.0f32; cursors.len()];
    let mut losses = vec![0.0f32; examples];
    for group in group_by_example(&cursors) {
        let scores: Vec<f32> = group
            .clone()
            .map(|i| target.normalized(cursors[i].word, cursors[i].total))
            .collect();
        let lse = log_sum_exp(&scores);
        for (i, s) in group.clone().zip(&scores) {
            if group.len() > 1 {
                shares[i] = (s - lse).exp();
            }
        }
        losses[cursors[group.start].example] = -lse;
    }
    let rows: usize = cursors.iter().map(|c| c.trace.len()).sum();
    let scale = rows as f32 / examples as f32;
    let mut encoded = Vec::with_capacity(rows);
    let mut row_golds = Vec::with_capacity(rows);
    let mut row_weights = Vec::with_capacity(rows);
    for (c, share) in cursors.iter().zip(&shares) {
        let example_weight = weights.map_or(1.0, |w| w[c.example]);
        for need in &c.trace {
            encoded.push(expanded_row(batch, target, &need.key));
            row_golds.push(Gold {
                index: 0,
                token: need.token,
            });
            row_weights.push(example_weight * share * target.length_factor(c.word) * scale);
        }
    }
    let refs: Vec<&Encoded> = encoded.iter().collect();
    let (engine_loss, gradient) = engine.trigger_gradient(
        &Target::Vocabulary {
            candidate_ids: vec![],
        },
        &Batch::pad(&refs, target.pad_id),
        &row_golds,
        Some(&row_weights),
    );
    let loss = if forward_first {
        let weighted: f32 = losses
            .iter()
            .enumerate()
            .map(|(e, l)| weights.map_or(1.0, |w| w[e]) * l)
            .sum();
        weighted / examples as f32
    } else {
        engine_loss
    };
    (loss, gradient)
}

/// Consecutive runs of cursors of one example.
fn group_by_example(cursors: &[Cursor]) -> Vec<std::ops::Range<usize>> {
    let mut groups = vec![];
    let mut start = 0;
    for i in 1..=cursors.len() {
        if i == cursors.len() || cursors[i].example != cursors[start].example {
            groups.push(start..i);
            start = i;
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(words: Vec<Vec<u32>>, strategy: FillOrder) -> WordTarget {
        WordTarget::new(
            words,
            None,
            MultiToken {
                strategy,
                normalize: LengthNorm::Sum,
            },
            103,
            0,
        )
    }

    #[test]
    fn row_counts_follow_the_strategy() {
        // Words of lengths 1, 2, 2 and 3; two share their first token.
        let words = vec![vec![5], vec![6, 7], vec![6, 8], vec![9, 10, 11]];
        // Independent: one row per mask of each distinct length: 1 + 2 + 3.
        assert_eq!(
            target(words.clone(), FillOrder::Independent).scoring_rows(),
            6
        );
        // Left to right: distinct (length, prefix): [5]; (2, -), (2, 6); (3, -), (3, 9), (3, 9 10).
        assert_eq!(
            target(words.clone(), FillOrder::LeftToRight).scoring_rows(),
            6
        );
        // Confidence: the independent rows plus n(n−1)/2 per word: 6 + 0 + 1 + 1 + 3.
        let t = target(words, FillOrder::Confidence);
        assert_eq!(t.scoring_rows(), 11);
        // Its gradient for word 3: forward 3 + 3, backward 3.
        assert_eq!(t.gradient_rows(Gold { index: 3, token: 9 }), (9, 3));
    }

    #[test]
    fn expanded_rows_keep_the_text_and_move_later_triggers() {
        // [CLS] a [T] [M] [M] [M] [T] . [SEP] with [P] as three masks at 3.
        let e = Encoded {
            ids: vec![1, 20, 30, 103, 103, 103, 31, 40, 2],
            segment_ids: vec![0; 9],
            trigger_positions: vec![2, 6],
            predict_position: 3,
            cut_tokens: 0,
        };
        let batch = Batch::pad(&[&e], 0);
        let t = target(vec![vec![5, 6], vec![7, 8, 9]], FillOrder::LeftToRight);
        let key = RowKey {
            example: 0,
            filled: vec![Some(5), None],
            read: 1,
            word: None,
        };
        let row = expanded_row(&batch, &t, &key);
        assert_eq!(row.ids, vec![1, 20, 30, 5, 103, 31, 40, 2]);
        assert_eq!(row.trigger_positions, vec![2, 5]);
        assert_eq!(row.predict_position, 4);
    }

    #[test]
    fn confidence_places_the_most_confident_mask_first() {
        let t = target(vec![vec![5, 6]], FillOrder::Confidence);
        let mut c = cursors_for(&t, 0, 0..1).remove(0);
        let needs = next_needs(&t, &c, true);
        advance(&t, &mut c, needs, &[-2.0, -0.5]);
        assert_eq!(c.filled, vec![None, Some(6)]);
        assert!(!c.done);
        let needs = next_needs(&t, &c, false);
        assert_eq!(needs.len(), 1);
        assert_eq!(needs[0].key.read, 0);
        advance(&t, &mut c, needs, &[-1.0]);
        assert!(c.done);
        assert_eq!(c.total, -1.5);
    }
}
