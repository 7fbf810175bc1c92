//! How a run shows the progress inside its cells ([`crate::progress`]): a bar per running cell
//! under the cells bar on a terminal, an INFO line per cell at most every `progress_seconds`
//! elsewhere (log files, Slurm output), and always a heartbeat file, `progress/<id>.json`,
//! rewritten atomically, from which `autoprompt status` tells how far a running cell is and
//! whether it may have stalled.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::progress::{Cadence, Eta, ProgressSink, Stage, short_duration};
use crate::store::{StoreError, write_atomic};

/// Why a heartbeat was not written (warned about once; the cell goes on).
#[derive(Debug, thiserror::Error)]
enum HeartbeatError {
    #[error("its directory is gone")]
    DirectoryGone,
    #[error(transparent)]
    Write(StoreError),
}

/// How a run shows progress; the CLI decides from whether stderr is a terminal.
#[derive(Debug, Clone, Default)]
pub enum ProgressDisplay {
    /// Bars under this `MultiProgress` (whoever prints log lines meanwhile routes them
    /// through it: `MultiProgress::suspend`, so the bars do not garble them).
    Bars(indicatif::MultiProgress),
    /// An INFO line per cell at most every `progress_seconds` (0: none).
    #[default]
    Lines,
}

/// The heartbeat is rewritten at most this often (or every `progress_seconds`, if shorter).
pub const HEARTBEAT_SECONDS: f64 = 10.0;

/// A running cell whose last progress is older than this many expected gaps (the heartbeat
/// interval or the measured time per unit, whichever is longer) may have stalled.
pub const STALL_GAPS: f64 = 4.0;

/// ... and never before this many seconds without progress.
pub const STALL_MIN_SECONDS: f64 = 120.0;

/// What a running cell last said of itself (`progress/<id>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub host: String,
    pub pid: u32,
    /// Unix seconds when this attempt of the cell started.
    pub started: f64,
    /// Unix seconds of the progress below.
    pub updated: f64,
    #[serde(flatten)]
    pub stage: Stage,
    /// Measured seconds per unit (iteration, step, row) of this stage, once one is timed.
    pub seconds_per_unit: Option<f64>,
    /// Time left in this stage at that rate.
    pub eta_seconds: Option<f64>,
    /// How often the runner rewrites the heartbeat while the cell makes progress.
    pub heartbeat_seconds: f64,
}

impl Heartbeat {
    /// Seconds since its last progress, at Unix time `now`.
    pub fn age(&self, now: f64) -> f64 {
        (now - self.updated).max(0.0)
    }

    /// Whether its cell may have stalled: no progress for [`STALL_GAPS`] expected gaps.
    pub fn possibly_stalled(&self, now: f64) -> bool {
        let gap = self
            .heartbeat_seconds
            .max(self.seconds_per_unit.unwrap_or(0.0));
        self.age(now) > (STALL_GAPS * gap).max(STALL_MIN_SECONDS)
    }
}

/// Unix time in seconds.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The progress sink of one running cell.
pub struct CellReporter {
    /// The id's first characters, as the bar and the log line name the cell.
    label: String,
    bar: Option<indicatif::ProgressBar>,
    heartbeat_path: PathBuf,
    heartbeat_seconds: f64,
    started_unix: f64,
    host: String,
    state: Mutex<ReporterState>,
}

struct ReporterState {
    eta: Eta,
    lines: Cadence,
    heartbeat: Cadence,
    /// The stage name of the last heartbeat written (`None`: none yet).
    written_stage: Option<&'static str>,
    /// Whether a failed heartbeat write was already logged.
    warned: bool,
}

impl CellReporter {
    /// A reporter for cell `id`, showing `display`, with log lines every `every` (0: none)
    /// and its heartbeat at `heartbeat_path`.
    pub fn new(
        id: &str,
        display: &ProgressDisplay,
        every: Duration,
        heartbeat_path: PathBuf,
    ) -> Self {
        let now = Instant::now();
        let label: String = id.chars().take(12).collect();
        let (bar, every) = match display {
            ProgressDisplay::Bars(multi) => (Some(cell_bar(multi, &label)), Duration::ZERO),
            ProgressDisplay::Lines => (None, every),
        };
        let heartbeat_seconds = if every.is_zero() {
            HEARTBEAT_SECONDS
        } else {
            every.as_secs_f64().min(HEARTBEAT_SECONDS)
        };
        Self {
            label,
            bar,
            heartbeat_path,
            heartbeat_seconds,
            started_unix: unix_now(),
            host: crate::store::this_host(),
            state: Mutex::new(ReporterState {
                eta: Eta::default(),
                lines: Cadence::new(every, now),
                heartbeat: Cadence::new(Duration::from_secs_f64(heartbeat_seconds), now),
                written_stage: None,
                warned: false,
            }),
        }
    }

    fn write_heartbeat(&self, heartbeat: &Heartbeat, state: &mut ReporterState) {
        // Never into a recreated directory: a results directory that vanished is the
        // runner's error to report (at the record), not something to paper over here.
        let written = match self.heartbeat_path.parent().filter(|d| d.is_dir()) {
            None => Err(HeartbeatError::DirectoryGone),
            Some(_) => {
                let json = serde_json::to_vec_pretty(heartbeat).expect("heartbeats serialise");
                write_atomic(&self.heartbeat_path, &json).map_err(HeartbeatError::Write)
            }
        };
        if let Err(e) = written
            && !std::mem::replace(&mut state.warned, true)
        {
            tracing::warn!(error = %crate::errors::Chain(&e), path = %self.heartbeat_path.display(), "could not write the cell's heartbeat (`status` will not show its progress)");
        }
    }
}

impl Drop for CellReporter {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn cell_bar(multi: &indicatif::MultiProgress, label: &str) -> indicatif::ProgressBar {
    let bar = multi.add(indicatif::ProgressBar::new(0));
    bar.set_style(
        indicatif::ProgressStyle::with_template("  {prefix} {bar:24} {wide_msg}")
            .expect("valid template"),
    );
    bar.set_prefix(label.to_string());
    bar
}

impl ProgressSink for CellReporter {
    fn report(&self, stage: Stage) {
        let now = Instant::now();
        let mut state = self.state.lock().expect("progress lock");
        let timing = state.eta.update(&stage, now);
        let eta = timing.map(|(_, left)| short_duration(left));
        if let Some(bar) = &self.bar {
            let (done, total) = stage.done_of_total();
            bar.set_length(total);
            bar.set_position(done);
            bar.set_message(match &eta {
                Some(eta) => format!("{stage}, ETA {eta}"),
                None => stage.to_string(),
            });
        }
        if state.lines.due(now) {
            tracing::info!(
                cell = %self.label,
                eta = %eta.as_deref().unwrap_or("-"),
                "progress: {stage}"
            );
        }
        let new_stage = state.written_stage != Some(stage.name());
        if state.heartbeat.due(now) || new_stage {
            state.written_stage = Some(stage.name());
            let heartbeat = Heartbeat {
                host: self.host.clone(),
                pid: std::process::id(),
                started: self.started_unix,
                updated: unix_now(),
                stage,
                seconds_per_unit: timing.map(|(per_unit, _)| per_unit),
                eta_seconds: timing.map(|(_, left)| left),
                heartbeat_seconds: self.heartbeat_seconds,
            };
            self.write_heartbeat(&heartbeat, &mut state);
        }
    }
}
