//! The AutoPrompt trigger search (gradient-guided, HotFlip candidates), as small steps —
//! gradient → candidates → evaluate → accept — and one loop that records every step.
//!
//! Reference behaviour (the paper's code, `autoprompt/create_trigger.py` of ucinlp/autoprompt),
//! kept as the defaults: triggers start as the mask token; each iteration accumulates the
//! loss gradient over `accumulation_steps` train batches, picks one slot uniformly at random,
//! takes the top `num_candidates` tokens by `−(E · g)`, evaluates the current prompt and every
//! candidate on `accumulation_steps` fresh train batches (their metric summed), and accepts
//! the best candidate only if it is strictly better; after an accepted change the dev set is
//! evaluated, and the best-on-dev prompt is kept, the best dev metric starting at −∞ (so the
//! first accepted trigger is kept over the all-mask start). Under accuracy selection,
//! candidates are evaluated one prompt and one batch per forward pass, and a candidate that
//! provably cannot be chosen is not scored further (exact pruning, [`super::evaluation`];
//! `prune = false` scores every row): the same decisions for fewer rows. Under
//! log-likelihood selection all prompts on a batch are stacked into one pass, unpruned.
//!
//! Named options depart from it: `eval_batches` (1 scores candidates on one batch, ~10×
//! cheaper and noisier: at 32 rows accuracy moves in steps of 3 points), `keep_initial`
//! (the start competes on dev), `restarts`, `patience`, `balance`, `select_by`, and two
//! the reference has not: `beam_size` (keep the best B prompts; each is expanded with its
//! own gradient's candidates and all are scored on the same evaluation batches) and
//! `positions_per_step` (a candidate changes several slots at once, as GCG's `n_replace`).
//! Both run through the same loop: the greedy step is the beam of one, and
//! [`select_beam`] of one is [`accept`]'s rule. GCG's candidate buffer is not offered: its
//! prompts carry metrics from earlier evaluation batches, which the beam (re-scored every
//! iteration) does without.
//!
//! Every step records the encoder rows run so far ([`EncoderRows`]: forward and backward
//! rows of the gradient, candidate and dev passes), so settings can be compared at equal
//! compute.
//!
//! Where the search still differs from the reference, and why:
//! - **Batches.** The reference starts a new shuffled pass of its train loader for the
//!   gradient batches and another for the evaluation batches of every iteration; here both
//!   draw from one endless stream of shuffled passes (seeded ChaCha8), so an iteration's
//!   batches never repeat an example before the pass is used up. With at most
//!   `accumulation_steps × batch_size` training examples (the paper's low-resource settings)
//!   every pass covers the same examples either way.
//! - **Candidates.** Special tokens (and, with the filters, label tokens, gold objects,
//!   capitalised or non-alphabetic tokens) are never candidates: the reference filters them
//!   only under `--filter`, and can otherwise place `[CLS]` or `[MASK]` in a trigger.
//! - **No acceptance at all.** Both return the starting prompt; its dev metric is reported
//!   here (the reference reports −∞).
//! - **LAMA's masks.** With `--print-lama` the reference treats a trigger that still holds a
//!   `[MASK]` as scoring −∞ (any candidate is accepted until no mask is left); that rule is
//!   not applied here.
//! - **Ties on dev.** Both keep the earlier prompt (strictly better replaces).

use std::time::Instant;

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::candidates::top_k;
use super::evaluation::score_prompts;
use super::scorer::Scorer;
use super::target::{Gold, RowScore};
use super::{Balance, SearchSettings, SelectBy};
use crate::checkpoint::{Checkpoints, NoCheckpoints, RngPosition};
use crate::interrupt::StopSignal;
use crate::progress::{ProgressSink, Stage};
use crate::prompt::{Batch, Encoded};
use crate::tasks::sample::rng;

/// Examples of one split, encoded with placeholder triggers, and their gold answers.
#[derive(Debug, Clone, Copy)]
pub struct Split<'a> {
    pub encoded: &'a [Encoded],
    pub golds: &'a [Gold],
}

/// One iteration of the search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchStep {
    pub restart: usize,
    pub iteration: usize,
    pub slot: usize,
    pub loss: f32,
    /// Selection metric of the current prompt on this step's evaluation batch.
    pub current: f64,
    /// Best candidate (token id and text) and its metric on the same batches; with pruning,
    /// the best of the candidates scored in full (`None` when every one was dropped).
    pub best_candidate: Option<(u32, String, f64)>,
    pub accepted: bool,
    /// Dev metric after an accepted change.
    pub dev: Option<f64>,
    pub seconds: f64,
    /// Encoder rows the search has run so far, this step included (absent in records from
    /// before they were counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<EncoderRows>,
}

/// Encoder work in rows (one example through the encoder once): forward passes of the
/// gradient, candidate-evaluation and dev rows, and backward passes of the gradient rows.
/// Methods compared at equal compute are compared at equal rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncoderRows {
    pub forward: u64,
    pub backward: u64,
    /// Candidate-evaluation rows not run because pruning showed they could not change the
    /// decision ([`super::evaluation`]); not part of [`EncoderRows::total`]. Absent in
    /// records from before pruning.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pruned: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl EncoderRows {
    /// Forward and backward rows together.
    pub fn total(&self) -> u64 {
        self.forward + self.backward
    }
}

/// Why a search stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Every restart ran its `iters`.
    Iterations,
    /// A restart went `patience` iterations without a dev improvement.
    Patience,
    /// A stop was requested ([`crate::interrupt`]); the result is not a finished search.
    Interrupted,
}

/// The outcome of a search: the best-on-dev triggers and the full trajectory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResult {
    pub trigger_ids: Vec<u32>,
    pub trigger_tokens: Vec<String>,
    pub best_dev: f64,
    pub best_restart: usize,
    pub steps: Vec<SearchStep>,
    pub iterations_run: usize,
    /// Mean wall time of one iteration.
    pub seconds_per_iteration: f64,
    /// Why the search stopped.
    pub stopped_by: StopReason,
    /// Dev metric of the starting prompt (absent in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_dev: Option<f64>,
    /// Encoder rows of the whole search (absent in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<EncoderRows>,
}

/// Fills each trigger slot of every row of a padded batch.
pub fn batch_with_triggers(examples: &[&Encoded], triggers: &[u32], pad_id: u32) -> Batch {
    triggers
        .iter()
        .enumerate()
        .fold(Batch::pad(examples, pad_id), |b, (slot, &t)| {
            b.with_trigger(slot, t)
        })
}

/// Endless shuffled passes over the training set (optionally class-balanced).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchStream {
    pools: Vec<Vec<usize>>,
    cursors: Vec<usize>,
    next_pool: usize,
}

impl BatchStream {
    pub fn new(classes: &[usize], balance: bool) -> Self {
        let pools = if balance {
            let n = classes.iter().copied().max().map_or(0, |m| m + 1);
            let mut pools = vec![vec![]; n];
            for (i, &c) in classes.iter().enumerate() {
                pools[c].push(i);
            }
            pools.retain(|p| !p.is_empty());
            pools
        } else {
            vec![(0..classes.len()).collect()]
        };
        let cursors = pools.iter().map(Vec::len).collect();
        Self {
            pools,
            cursors,
            next_pool: 0,
        }
    }

    pub fn next(&mut self, size: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
        let total: usize = self.pools.iter().map(Vec::len).sum();
        let size = size.min(total);
        let mut out = Vec::with_capacity(size);
        while out.len() < size {
            let p = self.next_pool % self.pools.len();
            self.next_pool += 1;
            if self.cursors[p] >= self.pools[p].len() {
                self.pools[p].shuffle(rng);
                self.cursors[p] = 0;
            }
            out.push(self.pools[p][self.cursors[p]]);
            self.cursors[p] += 1;
        }
        out
    }
}

/// Selection metric of a group of rows.
pub fn metric(rows: &[RowScore], select_by: SelectBy) -> f64 {
    let n = rows.len().max(1) as f64;
    match select_by {
        SelectBy::Accuracy => rows.iter().filter(|r| r.rank == 0).count() as f64 / n,
        SelectBy::LogLikelihood => {
            rows.iter()
                .map(|r| r.gold_log_likelihood as f64)
                .sum::<f64>()
                / n
        }
    }
}

/// Everything the loop needs besides the data.
pub struct SearchContext<'a> {
    pub scorer: &'a Scorer,
    pub settings: &'a SearchSettings,
    pub select_by: SelectBy,
    /// `allowed[id]`: may this token become a trigger?
    pub allowed: &'a [bool],
    pub pad_id: u32,
    pub initial_trigger: u32,
    /// Class index of each training example (for balancing); all zero for fact retrieval.
    pub train_classes: &'a [usize],
    pub display: &'a dyn Fn(u32) -> String,
    /// Where the loop says how far it is, after every iteration.
    pub progress: &'a dyn ProgressSink,
    /// Checked before every iteration: a requested stop saves a checkpoint and ends the
    /// search (`StopReason::Interrupted`).
    pub stop: &'a StopSignal,
}

/// Evaluates `triggers` on a whole split.
pub fn evaluate_split(
    scorer: &Scorer,
    pad_id: u32,
    split: Split,
    triggers: &[u32],
    need_ll: bool,
) -> Vec<RowScore> {
    evaluate_split_reporting(scorer, pad_id, split, triggers, need_ll, &mut |_, _| {})
}

/// [`evaluate_split`], calling `scored(rows done, rows)` after every chunk of rows.
pub fn evaluate_split_reporting(
    scorer: &Scorer,
    pad_id: u32,
    split: Split,
    triggers: &[u32],
    need_ll: bool,
    scored: &mut dyn FnMut(usize, usize),
) -> Vec<RowScore> {
    let mut done = 0;
    let mut order: Vec<usize> = (0..split.encoded.len()).collect();
    // Similar lengths together: less padding.
    order.sort_by_key(|&i| split.encoded[i].ids.len());
    let mut scores = vec![None; order.len()];
    for chunk in order.chunks(scorer.eval_rows()) {
        let examples: Vec<&Encoded> = chunk.iter().map(|&i| &split.encoded[i]).collect();
        let golds: Vec<Gold> = chunk.iter().map(|&i| split.golds[i]).collect();
        let batch = batch_with_triggers(&examples, triggers, pad_id);
        for (&i, s) in chunk.iter().zip(scorer.score_rows(&batch, &golds, need_ll)) {
            scores[i] = Some(s);
        }
        done += chunk.len();
        scored(done, order.len());
    }
    scores
        .into_iter()
        .map(|s| s.expect("every row scored"))
        .collect()
}

/// Per-row loss weights for `balance = "loss"`: `n / (classes · count[class])`.
fn class_weights(classes: &[usize]) -> Vec<f32> {
    let n_classes = classes.iter().copied().max().map_or(1, |m| m + 1);
    let mut counts = vec![0usize; n_classes];
    for &c in classes {
        counts[c] += 1;
    }
    let present = counts.iter().filter(|&&c| c > 0).count() as f32;
    classes
        .iter()
        .map(|&c| classes.len() as f32 / (present * counts[c] as f32))
        .collect()
}

/// Index of the best metric (the first on ties).
pub fn best_index(metrics: &[f64]) -> Option<usize> {
    metrics
        .iter()
        .enumerate()
        .fold(None::<(usize, f64)>, |acc, (i, &m)| match acc {
            Some((_, bm)) if bm >= m => acc,
            _ => Some((i, m)),
        })
        .map(|(i, _)| i)
}

/// The next beam: indices of the best `size` distinct prompts of `pool`, best first, ties
/// going to the earlier entry. With the current prompt first in the pool and `size` 1 this is
/// [`accept`]'s rule: a candidate replaces the current prompt only if strictly better.
pub fn select_beam(pool: &[Vec<u32>], metrics: &[f64], size: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..pool.len()).collect();
    // Stable: equal metrics keep pool order.
    order.sort_by(|&a, &b| metrics[b].total_cmp(&metrics[a]));
    let mut kept: Vec<usize> = Vec::with_capacity(size);
    for i in order {
        if kept.len() == size {
            break;
        }
        if !kept.iter().any(|&k| pool[k] == pool[i]) {
            kept.push(i);
        }
    }
    kept
}

/// A prompt to score: the slots it changes and its triggers.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub slots: Vec<usize>,
    pub triggers: Vec<u32>,
}

/// The rows of one gradient batch: examples, golds and (under `balance = "loss"`) weights.
struct Draw<'a> {
    examples: Vec<&'a Encoded>,
    golds: Vec<Gold>,
    weights: Option<Vec<f32>>,
}

/// Mean loss and summed trigger-slot gradients of each prompt over `accumulation_steps`
/// batches, drawn once from the stream for all prompts; their gradients are computed side by
/// side and summed in draw order (the same sum as one after the other).
pub fn accumulate_gradients(
    ctx: &SearchContext,
    train: Split,
    prompts: &[Vec<u32>],
    stream: &mut BatchStream,
    rng: &mut ChaCha8Rng,
    weights: Option<&[f32]>,
    rows: &mut EncoderRows,
) -> Vec<(f32, Vec<Vec<f32>>)> {
    let s = ctx.settings;
    let steps = s.accumulation_steps.max(1);
    let draws: Vec<Vec<usize>> = (0..steps).map(|_| stream.next(s.batch_size, rng)).collect();
    let hidden = ctx.scorer.embedding_size();
    // Each draw's rows, gathered once for every prompt.
    let gathered: Vec<Draw> = draws
        .iter()
        .map(|idx| Draw {
            examples: idx.iter().map(|&i| &train.encoded[i]).collect(),
            golds: idx.iter().map(|&i| train.golds[i]).collect(),
            weights: weights.map(|w| idx.iter().map(|&i| w[i]).collect()),
        })
        .collect();
    let (forward, backward) = gathered.iter().fold((0, 0), |(f, b), d| {
        let (df, db) = ctx.scorer.gradient_rows(&d.golds);
        (f + df, b + db)
    });
    prompts
        .iter()
        .map(|triggers| {
            let batches: Vec<(Batch, &Draw)> = gathered
                .iter()
                .map(|d| (batch_with_triggers(&d.examples, triggers, ctx.pad_id), d))
                .collect();
            rows.forward += forward;
            rows.backward += backward;
            let gradients = super::parallel::map_ordered(&batches, |(batch, d)| {
                ctx.scorer
                    .trigger_gradient(batch, &d.golds, d.weights.as_deref())
            });
            let mut grad = vec![vec![0f32; hidden]; triggers.len()];
            let mut loss = 0.0;
            for (l, g) in gradients {
                loss += l / steps as f32;
                for (acc, slot) in grad.iter_mut().zip(g) {
                    acc.iter_mut().zip(slot).for_each(|(a, b)| *a += b);
                }
            }
            (loss, grad)
        })
        .collect()
}

/// The candidates of one beam member from its gradient. One position per step (the
/// reference): a slot drawn uniformly, its top `num_candidates` HotFlip tokens. More: each
/// of `num_candidates` candidates changes `positions` distinct random slots, each to a token
/// drawn uniformly from that slot's top `num_candidates`.
pub fn expand(
    ctx: &SearchContext,
    triggers: &[u32],
    gradient: &[Vec<f32>],
    positions: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<Candidate> {
    let k = ctx.settings.num_candidates;
    let slots = triggers.len();
    let top = |slot: usize| top_k(&ctx.scorer.hotflip_scores(&gradient[slot]), ctx.allowed, k);
    let with = |changes: &[(usize, u32)]| {
        let mut t = triggers.to_vec();
        for &(slot, token) in changes {
            t[slot] = token;
        }
        t
    };
    if positions <= 1 {
        let slot = rng.random_range(0..slots);
        return top(slot)
            .into_iter()
            .map(|token| Candidate {
                slots: vec![slot],
                triggers: with(&[(slot, token)]),
            })
            .collect();
    }
    let tops: Vec<Vec<u32>> = (0..slots).map(top).collect();
    (0..k)
        .filter_map(|_| {
            let mut chosen = rand::seq::index::sample(rng, slots, positions.min(slots)).into_vec();
            chosen.sort_unstable();
            let changes: Vec<(usize, u32)> = chosen
                .iter()
                .filter(|&&slot| !tops[slot].is_empty())
                .map(|&slot| (slot, tops[slot][rng.random_range(0..tops[slot].len())]))
                .collect();
            (!changes.is_empty()).then(|| Candidate {
                slots: changes.iter().map(|c| c.0).collect(),
                triggers: with(&changes),
            })
        })
        .collect()
}

/// The prompt a search would return if it stopped now, and its dev metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Kept {
    triggers: Vec<u32>,
    dev: f64,
    restart: usize,
}

/// What a search runs on: its context, splits and (under `balance = "loss"`) the training
/// rows' loss weights. Fixed for the whole search.
pub struct SearchInputs<'a> {
    pub ctx: &'a SearchContext<'a>,
    pub train: Split<'a>,
    pub dev: Split<'a>,
    weights: Option<Vec<f32>>,
}

impl<'a> SearchInputs<'a> {
    pub fn new(ctx: &'a SearchContext<'a>, train: Split<'a>, dev: Split<'a>) -> Self {
        let weights =
            (ctx.settings.balance == Balance::Loss).then(|| class_weights(ctx.train_classes));
        Self {
            ctx,
            train,
            dev,
            weights,
        }
    }

    /// Trigger slots of the template.
    fn slots(&self) -> usize {
        self.train
            .encoded
            .first()
            .map_or(0, |e| e.trigger_positions.len())
    }

    /// The selection metric of `triggers` on the dev split (its rows counted in `rows`).
    fn dev_metric(&self, triggers: &[u32], rows: &mut EncoderRows) -> f64 {
        rows.forward += self.ctx.scorer.scoring_rows(self.dev.encoded.len());
        let need_ll = self.ctx.select_by == SelectBy::LogLikelihood;
        metric(
            &evaluate_split(
                self.ctx.scorer,
                self.ctx.pad_id,
                self.dev,
                triggers,
                need_ll,
            ),
            self.ctx.select_by,
        )
    }
}

/// The search loop's state, carried from one iteration to the next: at an iteration boundary
/// it is what a checkpoint holds ([`crate::checkpoint`]). Resumed from it, the search
/// computes what it would have computed uninterrupted, apart from wall times.
/// [`SearchState::step`] is one iteration; the loop ([`search_resumable`]), the benchmark and
/// the tests all run iterations through it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchState {
    restart: usize,
    /// The iteration of `restart` to run next.
    next_iteration: usize,
    /// Position of the restart's generator (seeded from the cell's seed and the restart),
    /// as of the last checkpoint.
    rng: RngPosition,
    stream: BatchStream,
    beam: Vec<Vec<u32>>,
    /// Best dev metric of this restart (−∞ before the first acceptance).
    restart_best: f64,
    since_improvement: usize,
    best: Option<Kept>,
    initial: Option<Kept>,
    steps: Vec<SearchStep>,
    iterations_run: usize,
    rows: EncoderRows,
    /// Wall time of the attempts before this one.
    seconds: f64,
}

impl SearchState {
    /// The iteration this state resumes at (restart, iteration).
    pub fn position(&self) -> (usize, usize) {
        (self.restart, self.next_iteration)
    }

    /// The steps run so far, over all restarts.
    pub fn steps(&self) -> &[SearchStep] {
        &self.steps
    }

    /// The current prompt (the best of the beam).
    pub fn triggers(&self) -> &[u32] {
        &self.beam[0]
    }

    /// Encoder rows run so far.
    pub fn rows(&self) -> EncoderRows {
        self.rows
    }

    /// A search at the start of restart 0 (its starting prompt's dev metric computed).
    pub fn start(inputs: &SearchInputs, on_improve: &mut dyn FnMut(&[u32], f64)) -> Self {
        let mut state = Self {
            restart: 0,
            next_iteration: 0,
            rng: RngPosition::default(),
            stream: BatchStream::new(&[], false),
            beam: vec![],
            restart_best: f64::NEG_INFINITY,
            since_improvement: 0,
            best: None,
            initial: None,
            steps: vec![],
            iterations_run: 0,
            rows: EncoderRows::default(),
            seconds: 0.0,
        };
        state.start_restart(inputs, 0, on_improve);
        state
    }

    /// Begins restart `restart`: a fresh stream, the starting prompt as the beam, its dev
    /// metric (the result when nothing is ever accepted; with `keep_initial` it competes).
    fn start_restart(
        &mut self,
        inputs: &SearchInputs,
        restart: usize,
        on_improve: &mut dyn FnMut(&[u32], f64),
    ) {
        let ctx = inputs.ctx;
        let s = ctx.settings;
        self.restart = restart;
        self.next_iteration = 0;
        self.rng = RngPosition::default();
        self.stream = BatchStream::new(ctx.train_classes, s.balance == Balance::Sample);
        self.beam = vec![vec![ctx.initial_trigger; inputs.slots()]];
        let initial_dev = inputs.dev_metric(&self.beam[0], &mut self.rows);
        let start = Kept {
            triggers: self.beam[0].clone(),
            dev: initial_dev,
            restart,
        };
        self.initial.get_or_insert_with(|| start.clone());
        self.restart_best = if s.keep_initial {
            if self.best.as_ref().is_none_or(|b| initial_dev > b.dev) {
                on_improve(&start.triggers, initial_dev);
                self.best = Some(start);
            }
            initial_dev
        } else {
            f64::NEG_INFINITY
        };
        self.since_improvement = 0;
    }

    /// One iteration: the gradient of every beam member over `accumulation_steps` batches,
    /// their candidates, the members and candidates scored on `eval_batches` fresh batches,
    /// the next beam (a candidate replaces the current prompt only if strictly better), the
    /// dev metric of an accepted prompt and the best-on-dev prompt kept (`on_improve` hears of
    /// a new one). Appends the iteration's [`SearchStep`] and returns it.
    pub fn step(
        &mut self,
        inputs: &SearchInputs,
        rng: &mut ChaCha8Rng,
        on_improve: &mut dyn FnMut(&[u32], f64),
    ) -> &SearchStep {
        let ctx = inputs.ctx;
        let s = ctx.settings;
        let t0 = Instant::now();
        self.iterations_run += 1;
        let gradients = accumulate_gradients(
            ctx,
            inputs.train,
            &self.beam,
            &mut self.stream,
            rng,
            inputs.weights.as_deref(),
            &mut self.rows,
        );
        let candidates: Vec<Candidate> = self
            .beam
            .iter()
            .zip(&gradients)
            .flat_map(|(member, (_, grad))| expand(ctx, member, grad, s.positions_per_step, rng))
            .collect();
        let pool: Vec<Vec<u32>> = self
            .beam
            .iter()
            .cloned()
            .chain(candidates.iter().map(|c| c.triggers.clone()))
            .collect();
        let scored = score_prompts(
            ctx,
            inputs.train,
            &pool,
            self.beam.len(),
            &mut self.stream,
            rng,
            &mut self.rows,
        );
        // A dropped candidate could not be chosen: it ranks below every prompt scored.
        let metrics: Vec<f64> = scored
            .iter()
            .map(|m| m.unwrap_or(f64::NEG_INFINITY))
            .collect();
        let (member_metrics, candidate_metrics) = metrics.split_at(self.beam.len());
        let best_candidate = best_index(candidate_metrics)
            .filter(|&i| scored[self.beam.len() + i].is_some())
            .map(|i| {
                let c = &candidates[i];
                let token = c.triggers[c.slots[0]];
                (
                    c.slots[0],
                    (token, (ctx.display)(token), candidate_metrics[i]),
                )
            });
        let next: Vec<Vec<u32>> = select_beam(&pool, &metrics, s.beam_size.max(1))
            .into_iter()
            .map(|i| pool[i].clone())
            .collect();
        let accepted = next[0] != self.beam[0];
        let current = member_metrics[0];
        self.beam = next;
        let dev = accepted.then(|| self.keep_if_best(inputs, on_improve));
        if !accepted {
            self.since_improvement += 1;
        }
        self.steps.push(SearchStep {
            restart: self.restart,
            iteration: self.next_iteration,
            // The best candidate's slot; when pruning dropped every candidate, the slot they
            // changed (one slot for all under the reference's one position per step).
            slot: best_candidate
                .as_ref()
                .map(|b| b.0)
                .or_else(|| candidates.first().map(|c| c.slots[0]))
                .unwrap_or(0),
            loss: gradients[0].0,
            current,
            best_candidate: best_candidate.map(|b| b.1),
            accepted,
            dev,
            seconds: t0.elapsed().as_secs_f64(),
            rows: Some(self.rows),
        });
        self.next_iteration += 1;
        let step = self.steps.last().expect("just pushed");
        tracing::debug!(restart = step.restart, iteration = step.iteration, slot = step.slot, loss = step.loss, current, accepted, dev = ?dev, "search step");
        step
    }

    /// The dev metric of the newly accepted prompt; it becomes the restart's best (and the
    /// search's, announced to `on_improve`) only if strictly better.
    fn keep_if_best(
        &mut self,
        inputs: &SearchInputs,
        on_improve: &mut dyn FnMut(&[u32], f64),
    ) -> f64 {
        let d = inputs.dev_metric(&self.beam[0], &mut self.rows);
        if d > self.restart_best {
            self.restart_best = d;
            self.since_improvement = 0;
            if self.best.as_ref().is_none_or(|b| d > b.dev) {
                self.best = Some(Kept {
                    triggers: self.beam[0].clone(),
                    dev: d,
                    restart: self.restart,
                });
                on_improve(&self.beam[0], d);
            }
        } else {
            self.since_improvement += 1;
        }
        d
    }

    /// Where the search stands, for a [`ProgressSink`].
    fn stage(&self, restarts: usize, iterations: usize) -> Stage {
        Stage::Search {
            restart: self.restart,
            restarts,
            iteration: self.next_iteration,
            iterations,
            accepted: self.steps.iter().filter(|step| step.accepted).count(),
            current: self
                .steps
                .last()
                .filter(|step| step.restart == self.restart)
                .map(|step| step.current),
            best_dev: self.best.as_ref().map(|b| b.dev),
            rows: self.rows.total(),
        }
    }

    /// The search's result (`seconds`: its wall time over every attempt).
    fn finish(self, inputs: &SearchInputs, stopped_by: StopReason, seconds: f64) -> SearchResult {
        let initial = self.initial.expect("at least one restart");
        let kept = self.best.unwrap_or_else(|| initial.clone());
        SearchResult {
            trigger_tokens: kept
                .triggers
                .iter()
                .map(|&t| (inputs.ctx.display)(t))
                .collect(),
            trigger_ids: kept.triggers,
            best_dev: kept.dev,
            best_restart: kept.restart,
            initial_dev: Some(initial.dev),
            steps: self.steps,
            iterations_run: self.iterations_run,
            seconds_per_iteration: seconds / self.iterations_run.max(1) as f64,
            stopped_by,
            rows: Some(self.rows),
        }
    }
}

/// Runs the search; `on_improve` is called with every new best-on-dev prompt (so an
/// interrupted search still leaves its best prompt behind).
pub fn search(
    ctx: &SearchContext,
    train: Split,
    dev: Split,
    seed: u64,
    on_improve: impl FnMut(&[u32], f64),
) -> SearchResult {
    search_resumable(ctx, train, dev, seed, on_improve, &mut NoCheckpoints)
}

/// [`search`] that resumes from `checkpoints`' saved state, if any, and saves its state when
/// a save is due and when a stop is requested.
pub fn search_resumable(
    ctx: &SearchContext,
    train: Split,
    dev: Split,
    seed: u64,
    mut on_improve: impl FnMut(&[u32], f64),
    checkpoints: &mut dyn Checkpoints<SearchState>,
) -> SearchResult {
    let s = ctx.settings;
    let inputs = SearchInputs::new(ctx, train, dev);
    let slots = inputs.slots();
    let restarts = s.restarts.max(1);
    let resumed = checkpoints.resume().filter(|state| {
        let fits = state.restart < restarts
            && state.next_iteration <= s.iters
            && state.beam.iter().all(|m| m.len() == slots);
        if !fits {
            tracing::warn!("checkpoint does not fit this search; starting over");
        }
        fits
    });
    if let Some(state) = &resumed {
        tracing::info!(
            restart = state.restart,
            iteration = state.next_iteration,
            "resuming the search from its checkpoint"
        );
        // The best-so-far prompt is announced again: whoever keeps it (a file) has it even
        // if what the earlier attempt left is gone.
        if let Some(best) = &state.best {
            on_improve(&best.triggers, best.dev);
        }
    }
    let started = Instant::now();
    let mut state = resumed.unwrap_or_else(|| SearchState::start(&inputs, &mut on_improve));
    let seconds_before = state.seconds;
    let mut stopped_by = StopReason::Iterations;
    'restarts: for restart in state.restart..restarts {
        if restart != state.restart {
            state.start_restart(&inputs, restart, &mut on_improve);
        }
        let mut rng = rng(seed, &format!("search-{restart}"));
        state.rng.restore(&mut rng);
        ctx.progress.report(state.stage(restarts, s.iters));
        while slots > 0 && state.next_iteration < s.iters {
            let stop = ctx.stop.requested();
            if stop || checkpoints.due() {
                state.rng = RngPosition::of(&rng);
                state.seconds = seconds_before + started.elapsed().as_secs_f64();
                checkpoints.save(&state);
            }
            if stop {
                stopped_by = StopReason::Interrupted;
                break 'restarts;
            }
            state.step(&inputs, &mut rng, &mut on_improve);
            ctx.progress.report(state.stage(restarts, s.iters));
            if s.patience.is_some_and(|p| state.since_improvement >= p) {
                stopped_by = StopReason::Patience;
                break;
            }
        }
    }
    let seconds = seconds_before + started.elapsed().as_secs_f64();
    state.finish(&inputs, stopped_by, seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_stream_alternates_classes() {
        let mut stream = BatchStream::new(&[0, 0, 0, 0, 1], true);
        let batch = stream.next(4, &mut rng(0, "t"));
        let ones = batch.iter().filter(|&&i| i == 4).count();
        assert_eq!(ones, 2);
    }

    #[test]
    fn class_weights_equalise_class_mass() {
        let w = class_weights(&[0, 0, 0, 1]);
        let mass0: f32 = w[..3].iter().sum();
        assert!((mass0 - w[3]).abs() < 1e-6);
    }

    #[test]
    fn metric_counts_rank_zero_or_averages_likelihood() {
        let rows = [
            RowScore {
                rank: 0,
                rank_in_order: 0,
                gold_log_likelihood: -1.0,
                class_scores: vec![],
            },
            RowScore {
                rank: 2,
                rank_in_order: 2,
                gold_log_likelihood: -3.0,
                class_scores: vec![],
            },
        ];
        assert_eq!(metric(&rows, SelectBy::Accuracy), 0.5);
        assert_eq!(metric(&rows, SelectBy::LogLikelihood), -2.0);
    }
}

#[cfg(test)]
mod acceptance {
    use super::*;

    #[test]
    fn a_beam_of_one_accepts_only_strict_improvements() {
        let pool = |n: u32| (0..n).map(|t| vec![t]).collect::<Vec<_>>();
        // The current prompt first; a tie keeps it, the first of equal better ones wins.
        assert_eq!(select_beam(&pool(3), &[0.5, 0.4, 0.5], 1), vec![0]);
        assert_eq!(select_beam(&pool(4), &[0.5, 0.4, 0.6, 0.6], 1), vec![2]);
        assert_eq!(select_beam(&pool(1), &[0.5], 1), vec![0]);
    }
}
