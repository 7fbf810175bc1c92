//! Where each cell of an experiment stands (`autoprompt status`) and breaking the locks of
//! cells whose runner is gone (`autoprompt unlock`): typed rows the CLI prints.

use std::collections::BTreeMap;

use super::progress::{Heartbeat, unix_now};
use super::slurm;
use crate::config::Experiment;
use crate::plan::Cell;
use crate::progress::short_duration;
use crate::store::{CellState, HeldLock, LockHolder, Store, StoreError};

/// The state of one cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellStatus {
    Finished,
    Failed {
        attempts: u32,
        error: String,
    },
    Corrupt,
    /// Its lock is held (by the holder its lock file names, when it names one).
    Running(Option<LockHolder>),
    /// Its lock is held for a process of this host that no longer exists.
    StaleLock(LockHolder),
    /// Not started here; the scheduler lists its array task in this state (lower case).
    Queued(String),
    Pending,
}

impl CellStatus {
    /// The word the summary line counts it under.
    pub fn bucket(&self) -> String {
        match self {
            CellStatus::Finished => "finished".into(),
            CellStatus::Failed { .. } => "failed".into(),
            CellStatus::Corrupt => "corrupt".into(),
            CellStatus::Running(_) => "running".into(),
            CellStatus::StaleLock(_) => "stale lock".into(),
            CellStatus::Queued(state) => state.clone(),
            CellStatus::Pending => "pending".into(),
        }
    }
}

impl std::fmt::Display for CellStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CellStatus::Failed { attempts, error } => write!(
                f,
                "failed ({attempts} attempt{}): {error}",
                if *attempts == 1 { "" } else { "s" }
            ),
            CellStatus::Running(Some(h)) => write!(f, "running: {h}"),
            CellStatus::StaleLock(h) => {
                write!(f, "stale lock: {h} is gone (`autoprompt unlock` breaks it)")
            }
            other => f.write_str(&other.bucket()),
        }
    }
}

/// One row of `autoprompt status`.
#[derive(Debug, Clone, PartialEq)]
pub struct CellRow {
    pub index: usize,
    pub id: String,
    pub status: CellStatus,
    /// Where a running cell (or a killed attempt of a pending one) last said it stood.
    pub progress: Option<LastProgress>,
}

/// A cell's last heartbeat, as of when `status` read it.
#[derive(Debug, Clone, PartialEq)]
pub struct LastProgress {
    pub heartbeat: Heartbeat,
    /// Seconds since that progress.
    pub age: f64,
    /// Whether its cell is running and may have stalled
    /// ([`Heartbeat::possibly_stalled`]).
    pub possibly_stalled: bool,
}

impl std::fmt::Display for LastProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = &self.heartbeat;
        write!(
            f,
            "{}; last progress {} ago",
            h.stage,
            short_duration(self.age)
        )?;
        if let Some(eta) = h.eta_seconds {
            write!(f, ", then ETA {}", short_duration(eta))?;
        }
        if self.possibly_stalled {
            write!(
                f,
                "; POSSIBLY STALLED (no progress for over {} expected intervals)",
                super::progress::STALL_GAPS
            )?;
        }
        Ok(())
    }
}

/// The heartbeat of `id`, if one can be read (a missing or unreadable one is no progress).
fn last_progress(store: &Store, id: &str, running: bool, now: f64) -> Option<LastProgress> {
    let bytes = std::fs::read(store.heartbeat_path(id)).ok()?;
    let heartbeat: Heartbeat = serde_json::from_slice(&bytes).ok()?;
    Some(LastProgress {
        age: heartbeat.age(now),
        possibly_stalled: running && heartbeat.possibly_stalled(now),
        heartbeat,
    })
}

/// The state of every cell: its record, else its lock, else what the scheduler says of the
/// last Slurm submission (when there was one and `squeue` answers); with the last heartbeat
/// of a running cell, or of a killed attempt of a pending one.
pub fn status(
    experiment: &Experiment,
    cells: &[Cell],
) -> Result<Vec<CellRow>, crate::store::StoreError> {
    let store = Store::open(&experiment.settings.results_dir, &experiment.name)?;
    let queued: BTreeMap<usize, String> = slurm::last_submission(&store)
        .map(|s| slurm::queue_states(&s.array_job).into_iter().collect())
        .unwrap_or_default();
    let now = unix_now();
    cells
        .iter()
        .map(|cell| {
            let status = match store.state(&cell.id) {
                CellState::Finished(_) => CellStatus::Finished,
                CellState::Failed(r) => CellStatus::Failed {
                    attempts: r.attempts,
                    error: r.error.unwrap_or_default(),
                },
                CellState::Corrupt(_) => CellStatus::Corrupt,
                CellState::Pending => match store.held_lock(&cell.id)? {
                    Some(HeldLock::Held(h)) => CellStatus::Running(h),
                    Some(HeldLock::Stale(h)) => CellStatus::StaleLock(h),
                    None => queued.get(&cell.index).map_or(CellStatus::Pending, |s| {
                        CellStatus::Queued(s.to_lowercase())
                    }),
                },
            };
            let progress = match &status {
                CellStatus::Running(_) => last_progress(&store, &cell.id, true, now),
                CellStatus::StaleLock(_) | CellStatus::Pending => {
                    last_progress(&store, &cell.id, false, now)
                }
                _ => None,
            };
            Ok(CellRow {
                index: cell.index,
                id: cell.id.clone(),
                status,
                progress,
            })
        })
        .collect()
}

/// How many cells are in each bucket.
pub fn counts(rows: &[CellRow]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for row in rows {
        *counts.entry(row.status.bucket()).or_default() += 1;
    }
    counts
}

/// What `unlock` did with one held lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unlocked {
    /// Its holder was a dead process of this host: broken.
    Stale { id: String, holder: LockHolder },
    /// Its holder may run (another host, or unknown): broken because `force` was given.
    Forced {
        id: String,
        holder: Option<LockHolder>,
    },
    /// Its holder may run: left alone.
    Refused {
        id: String,
        holder: Option<LockHolder>,
    },
}

/// Breaks the stale locks of the cells whose id starts with one of `only` (all cells when
/// empty), and the others too with `force`.
pub fn unlock(
    experiment: &Experiment,
    cells: &[Cell],
    only: &[String],
    force: bool,
) -> Result<Vec<Unlocked>, StoreError> {
    let store = Store::open(&experiment.settings.results_dir, &experiment.name)?;
    let mut out = vec![];
    for cell in cells
        .iter()
        .filter(|c| only.is_empty() || only.iter().any(|o| c.id.starts_with(o.as_str())))
    {
        let id = cell.id.clone();
        match store.held_lock(&cell.id)? {
            None => {}
            Some(HeldLock::Stale(holder)) => {
                store.break_lock(&cell.id)?;
                out.push(Unlocked::Stale { id, holder });
            }
            Some(HeldLock::Held(holder)) if force => {
                store.break_lock(&cell.id)?;
                out.push(Unlocked::Forced { id, holder });
            }
            Some(HeldLock::Held(holder)) => out.push(Unlocked::Refused { id, holder }),
        }
    }
    Ok(out)
}
