//! Scoring the current prompt and its candidates on an iteration's evaluation batches, with
//! exact pruning (branch and bound) where the metric allows it: a candidate stops being
//! scored once it provably cannot be chosen, so the search makes the decisions it would make
//! scoring every row.
//!
//! **What is evaluated.** The reference scores the current prompt and every candidate on
//! `eval_batches` fresh training batches and keeps the best (the current prompt unless a
//! candidate is strictly better; ties go to the earlier prompt). All batches are drawn before
//! anything is scored, in the order the reference draws them, so the stream and the
//! generator are where they would be without pruning.
//!
//! **Accuracy (pruned).** Prompts are scored one after the other, in pool order (beam
//! members first, then candidates), each on one batch per forward pass. A pass therefore
//! always holds the same rows — one prompt on one batch — whether or not anything is pruned,
//! so every row's score is bit-for-bit the same with pruning on and off. (Stacking several
//! prompts into one pass makes a row's last bits depend on the other rows of its pass through
//! the kernels' blocking; at a near tie that could decide differently, so pruning over stacked
//! passes could not be proven exact.) Let `best` be the highest accuracy among the prompts
//! scored in full so far; a later prompt is chosen only if strictly better, so it is dropped
//! as soon as `(right so far + rows left) / rows ≤ best` — the same `f64` division the full
//! metric uses, monotone in the rows scored, so a dropped prompt could not have won.
//! Pruning applies to the greedy step (`beam_size = 1`); a wider beam keeps every
//! candidate's full metric (the B-th best decides there). `prune = false` scores every row
//! in the same passes.
//!
//! **Log-likelihood (not pruned).** Every prompt on a batch is stacked into one pass, as the
//! reference's evaluation, with no pruning. Its only exact bound (a row adds at most 0) drops
//! a candidate only once its partial sum is already below the best total, which on the
//! measured searches saved 0.06% of the rows (LAMA P19, `reports/pruning.md`), while one
//! small pass per prompt and batch recomputes the full-vocabulary normaliser's weights per
//! 16 rows: the nightly sweep's LAMA iterations ran 5× slower that way.
//!
//! What pruning changes in a record: the encoder rows (fewer forward rows, and
//! [`super::trigger::EncoderRows::pruned`] counts the rows skipped), and a step's
//! `best_candidate`, which is the best of the candidates scored in full (a dropped candidate
//! was no better than the current prompt or an earlier candidate).

use rand_chacha::ChaCha8Rng;

use super::SelectBy;
use super::target::{Gold, RowScore};
use super::trigger::{BatchStream, EncoderRows, SearchContext, Split, batch_with_triggers, metric};
use crate::prompt::{Batch, Encoded};

/// One evaluation batch: its examples and their golds.
struct Draw<'a> {
    examples: Vec<&'a Encoded>,
    golds: Vec<Gold>,
}

/// What is known of a prompt partway through its batches.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    rows: usize,
    right: usize,
}

impl Tally {
    fn add(&mut self, scored: &[RowScore]) {
        self.rows += scored.len();
        self.right += scored.iter().filter(|r| r.rank == 0).count();
    }

    /// The highest accuracy the prompt could still reach over `total` rows.
    fn accuracy_bound(&self, total: usize) -> f64 {
        (self.right + total - self.rows) as f64 / total.max(1) as f64
    }
}

/// Selection metric of every prompt of `pool` on `eval_batches` fresh batches (the metric
/// over all their rows); `None` for a candidate dropped because it could not be chosen.
/// The first `members` prompts (the beam) are always scored in full.
pub fn score_prompts(
    ctx: &SearchContext,
    train: Split,
    pool: &[Vec<u32>],
    members: usize,
    stream: &mut BatchStream,
    rng: &mut ChaCha8Rng,
    rows: &mut EncoderRows,
) -> Vec<Option<f64>> {
    let s = ctx.settings;
    let draws: Vec<Draw> = (0..s.eval_batches())
        .map(|_| {
            let idx = stream.next(s.batch_size, rng);
            Draw {
                examples: idx.iter().map(|&i| &train.encoded[i]).collect(),
                golds: idx.iter().map(|&i| train.golds[i]).collect(),
            }
        })
        .collect();
    if ctx.select_by == SelectBy::LogLikelihood {
        return stacked(ctx, &draws, pool, rows);
    }
    let total: usize = draws.iter().map(|d| d.golds.len()).sum();
    let prune = s.prune && s.beam_size <= 1;
    let mut best = f64::NEG_INFINITY;
    let mut out = Vec::with_capacity(pool.len());
    for (p, prompt) in pool.iter().enumerate() {
        let mut tally = Tally::default();
        let mut dropped = false;
        for draw in &draws {
            if prune && p >= members && tally.accuracy_bound(total) <= best {
                dropped = true;
                break;
            }
            let batch = batch_with_triggers(&draw.examples, prompt, ctx.pad_id);
            // Ranks only: accuracy needs no full-vocabulary normaliser.
            let part = ctx.scorer.score_rows(&batch, &draw.golds, false);
            rows.forward += ctx.scorer.scoring_rows(part.len());
            tally.add(&part);
        }
        if dropped {
            rows.pruned += ctx.scorer.scoring_rows(total - tally.rows);
            out.push(None);
            continue;
        }
        // Every row scored: the bound is the accuracy itself, `metric`'s division.
        let m = tally.accuracy_bound(total);
        best = best.max(m);
        out.push(Some(m));
    }
    out
}

/// Every prompt on each batch stacked into one pass (the reference's evaluation); every
/// prompt scored on every row.
fn stacked(
    ctx: &SearchContext,
    draws: &[Draw],
    pool: &[Vec<u32>],
    rows: &mut EncoderRows,
) -> Vec<Option<f64>> {
    let need_ll = ctx.select_by == SelectBy::LogLikelihood;
    let mut per_prompt: Vec<Vec<RowScore>> = vec![vec![]; pool.len()];
    for draw in draws {
        let batches: Vec<Batch> = pool
            .iter()
            .map(|p| batch_with_triggers(&draw.examples, p, ctx.pad_id))
            .collect();
        let golds: Vec<Gold> = std::iter::repeat_n(draw.golds.as_slice(), pool.len())
            .flatten()
            .copied()
            .collect();
        rows.forward += ctx.scorer.scoring_rows(golds.len());
        let scored = ctx
            .scorer
            .score_rows(&Batch::concat(&batches), &golds, need_ll);
        for (collected, part) in per_prompt
            .iter_mut()
            .zip(scored.chunks(draw.golds.len().max(1)))
        {
            collected.extend_from_slice(part);
        }
    }
    per_prompt
        .iter()
        .map(|r| Some(metric(r, ctx.select_by)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(rank: usize, ll: f32) -> RowScore {
        RowScore {
            rank,
            rank_in_order: rank,
            gold_log_likelihood: ll,
            class_scores: vec![],
        }
    }

    #[test]
    fn accuracy_bound_counts_every_row_left_as_right() {
        let mut t = Tally::default();
        t.add(&[row(0, f32::NAN), row(1, f32::NAN), row(0, f32::NAN)]);
        assert_eq!(t.accuracy_bound(10), 0.9);
        // Complete: the bound is the metric itself.
        assert_eq!(
            t.accuracy_bound(3),
            metric(
                &[row(0, f32::NAN), row(1, f32::NAN), row(0, f32::NAN)],
                SelectBy::Accuracy
            )
        );
    }
}
