//! Progress inside a cell: where a running search, fine-tuning or evaluation stands.
//!
//! At research size one search iteration takes a minute on a CPU and a cell hours, so the
//! loops say where they are after every unit of work (an iteration, a training step, a chunk of
//! rows scored) through a [`ProgressSink`]. The loops know only that trait (as they know only
//! [`crate::checkpoint::Checkpoints`]); how often it is shown and where (a terminal bar, an INFO
//! line every `progress_seconds`, the heartbeat file `autoprompt status` reads) is the runner's
//! business (`run::progress`). A sink is called often and must be cheap: it throttles itself.
//!
//! [`Stage`] is plain data: the same value feeds the bar, the log line and the heartbeat.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What a cell is doing, and how far it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Stage {
    /// The trigger search, after `iteration` of `iterations` iterations of restart
    /// `restart` (both counted from 0; `iteration` iterations of this restart are done).
    Search {
        restart: usize,
        restarts: usize,
        iteration: usize,
        iterations: usize,
        /// Candidates accepted so far, over all restarts.
        accepted: usize,
        /// The current prompt's metric on the last iteration's evaluation batches.
        current: Option<f64>,
        /// The best dev metric so far.
        best_dev: Option<f64>,
        /// Encoder rows (forward + backward) spent so far.
        rows: u64,
    },
    /// Training a baseline (fine-tuning, the linear probe's classifier): `step` of `steps`
    /// optimiser steps done, in epoch `epoch` (from 0) of `epochs`.
    Train {
        epoch: usize,
        epochs: usize,
        step: usize,
        steps: usize,
        /// The best dev accuracy of a finished epoch.
        best_dev: Option<f64>,
    },
    /// Scoring a split: `rows` of `of` examples done.
    Score {
        split: String,
        rows: usize,
        of: usize,
    },
}

impl Stage {
    /// The stage's name, as the heartbeat and the bar show it.
    pub fn name(&self) -> &'static str {
        match self {
            Stage::Search { .. } => "search",
            Stage::Train { .. } => "train",
            Stage::Score { .. } => "score",
        }
    }

    /// Units done and the total, for the bar and the ETA: iterations over all restarts,
    /// optimiser steps, rows. A search may end before its total (patience).
    pub fn done_of_total(&self) -> (u64, u64) {
        match self {
            Stage::Search {
                restart,
                restarts,
                iteration,
                iterations,
                ..
            } => (
                (restart * iterations + iteration) as u64,
                (restarts * iterations) as u64,
            ),
            Stage::Train { step, steps, .. } => (*step as u64, *steps as u64),
            Stage::Score { rows, of, .. } => (*rows as u64, *of as u64),
        }
    }

    /// Whether `other` is the same kind of work (the ETA's rate carries over).
    fn same_kind(&self, other: &Stage) -> bool {
        match (self, other) {
            (Stage::Score { split: a, .. }, Stage::Score { split: b, .. }) => a == b,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let metric = |v: &Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
        match self {
            Stage::Search {
                restart,
                restarts,
                iteration,
                iterations,
                accepted,
                current,
                best_dev,
                rows,
            } => write!(
                f,
                "search restart {}/{restarts}, iteration {iteration}/{iterations}, accepted {accepted}, current {}, best dev {}, {rows} encoder rows",
                restart + 1,
                metric(current),
                metric(best_dev),
            ),
            Stage::Train {
                epoch,
                epochs,
                step,
                steps,
                best_dev,
            } => write!(
                f,
                "train epoch {}/{epochs}, step {step}/{steps}, best dev {}",
                epoch + 1,
                metric(best_dev)
            ),
            Stage::Score { split, rows, of } => write!(f, "score {split}: {rows}/{of} rows"),
        }
    }
}

/// Where the loops report their progress.
pub trait ProgressSink: Sync {
    /// Called after every unit of work; cheap, and throttled by the sink.
    fn report(&self, stage: Stage);
}

/// No progress shown (benchmarks, tests, `eval`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn report(&self, _stage: Stage) {}
}

/// "At most every `every`": whether a throttled action is due at `now`. The first call is
/// due only once `every` has passed since `start`, so short cells say nothing; a zero
/// interval means never (the setting's "0 turns it off").
#[derive(Debug, Clone)]
pub struct Cadence {
    every: Duration,
    last: Instant,
}

impl Cadence {
    pub fn new(every: Duration, start: Instant) -> Self {
        Self { every, last: start }
    }

    /// Whether the action is due at `now`; if so, the next one is `every` later.
    pub fn due(&mut self, now: Instant) -> bool {
        if self.every.is_zero() || now.duration_since(self.last) < self.every {
            return false;
        }
        self.last = now;
        true
    }
}

/// Seconds per unit and time left, from the units done since the stage (of this kind) was
/// first seen in this process: a resumed search is timed from where it resumed.
#[derive(Debug, Clone, Default)]
pub struct Eta {
    first: Option<(Stage, Instant, u64)>,
}

impl Eta {
    /// Updates with `stage` seen at `now`; returns (seconds per unit, seconds left) once a
    /// unit has been timed.
    pub fn update(&mut self, stage: &Stage, now: Instant) -> Option<(f64, f64)> {
        let (done, total) = stage.done_of_total();
        match &self.first {
            Some((kind, _, first_done)) if kind.same_kind(stage) && done >= *first_done => {}
            _ => self.first = Some((stage.clone(), now, done)),
        }
        let (_, since, first_done) = self.first.as_ref().expect("set above");
        let units = done - first_done;
        (units > 0).then(|| {
            let per_unit = now.duration_since(*since).as_secs_f64() / units as f64;
            (per_unit, per_unit * total.saturating_sub(done) as f64)
        })
    }
}

/// `1h 02m`, `3m 12s`, `45s`: durations as the bar, the log line and `status` show them.
pub fn short_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s:02}s"),
        (h, m, _) => format!("{h}h {m:02}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(restart: usize, iteration: usize) -> Stage {
        Stage::Search {
            restart,
            restarts: 2,
            iteration,
            iterations: 10,
            accepted: 1,
            current: Some(-0.5),
            best_dev: None,
            rows: 100,
        }
    }

    #[test]
    fn cadence_fires_at_most_once_per_interval_and_never_when_zero() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut c = Cadence::new(Duration::from_secs(60), t0);
        let fired: Vec<u64> = [1_000, 59_999, 60_000, 61_000, 119_999, 120_000, 200_000]
            .into_iter()
            .filter(|&ms| c.due(at(ms)))
            .collect();
        assert_eq!(fired, vec![60_000, 120_000, 200_000]);
        let mut off = Cadence::new(Duration::ZERO, t0);
        assert!(!(0..100).any(|s| off.due(at(s * 1_000))));
    }

    #[test]
    fn eta_times_units_since_the_stage_was_first_seen() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut eta = Eta::default();
        // Resumed at restart 0, iteration 4: nothing timed yet.
        assert_eq!(eta.update(&search(0, 4), at(0)), None);
        // Two iterations in 10 s: 5 s each, 14 of 20 left.
        assert_eq!(eta.update(&search(0, 6), at(10)), Some((5.0, 70.0)));
        assert_eq!(eta.update(&search(1, 0), at(30)), Some((5.0, 50.0)));
        // Another kind of work starts its own clock.
        let score = |rows| Stage::Score {
            split: "test".into(),
            rows,
            of: 100,
        };
        assert_eq!(eta.update(&score(0), at(40)), None);
        let (per_row, left) = eta.update(&score(25), at(42)).unwrap();
        assert!((per_row - 0.08).abs() < 1e-12 && (left - 6.0).abs() < 1e-9);
    }

    #[test]
    fn stages_say_where_they_are() {
        assert_eq!(
            search(1, 3).to_string(),
            "search restart 2/2, iteration 3/10, accepted 1, current -0.5000, best dev -, 100 encoder rows"
        );
        assert_eq!(search(1, 3).done_of_total(), (13, 20));
        let json = serde_json::to_string(&search(0, 1)).unwrap();
        assert!(json.starts_with(r#"{"stage":"search","#), "{json}");
        assert_eq!(serde_json::from_str::<Stage>(&json).unwrap(), search(0, 1));
        assert_eq!(short_duration(59.6), "1m 00s");
        assert_eq!(short_duration(3_725.0), "1h 02m");
    }
}
