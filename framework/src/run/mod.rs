//! Running cells: for each cell not finished in the store, take its lock, load what it needs
//! (task data; the model, cached within the process), execute its method and write its
//! record atomically. Failed cells get a `failed` record (and run again next time). What a
//! cell's method does is [`crate::methods`]' and [`crate::baselines`]' business; the runner
//! schedules.

mod execute;
pub mod progress;
pub mod provenance;
pub mod slurm;
pub mod status;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;

use crate::config::Experiment;
use crate::lm::LmError;
use crate::methods::MethodError;
use crate::plan::Cell;
use crate::record::Status;
use crate::store::{CellState, Store, StoreError};
use crate::tasks::TaskError;

pub use execute::{Models, execute_cell};
pub use progress::ProgressDisplay;

/// Why a cell (or a run) failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error(transparent)]
    Model(#[from] LmError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Method(#[from] MethodError),
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendUnavailable),
    /// A stop was requested ([`crate::interrupt`]) before the cell finished.
    #[error("interrupted before the cell finished")]
    Interrupted,
}

/// Options of `autoprompt run`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run only these cell ids (or id prefixes).
    pub only: Vec<String>,
    /// Run only the cell with this plan index (Slurm array tasks, Kubernetes indexed jobs).
    pub cell_index: Option<usize>,
    /// Run only cells with `index % count == shard` (`--shard I/N`).
    pub shard: Option<(usize, usize)>,
    /// Cells to run in parallel.
    pub jobs: usize,
    /// A failed cell runs again on later runs until it has failed this often; then it is
    /// skipped (and counted) so that a deterministic failure does not cost every resume or
    /// Slurm resubmission its time. `None`: [`DEFAULT_MAX_ATTEMPTS`].
    pub max_attempts: Option<u32>,
    /// Run failed cells again whatever their attempt count.
    pub retry_failed: bool,
    /// Bars on a terminal, or INFO lines every `progress_seconds`.
    pub display: ProgressDisplay,
}

/// Attempts a failed cell gets by default (`run --max-attempts`).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub finished_before: usize,
    pub ran: usize,
    pub failed: usize,
    /// Cells another runner held the lock of.
    pub locked_elsewhere: usize,
    /// Corrupt records that were re-run.
    pub rerun_corrupt: usize,
    /// Failed cells skipped because they failed `max_attempts` times (`--retry-failed`
    /// runs them).
    pub gave_up: Vec<GaveUp>,
    /// Cells stopped on request before they finished (no record written).
    pub interrupted: usize,
    /// Whether a stop was requested during the run (cells after it were not started).
    pub stopped: bool,
}

/// A failed cell left alone after its attempts ran out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GaveUp {
    pub id: String,
    pub attempts: u32,
    pub error: String,
}

/// Selects cells by id prefix (`--only`), plan index (`--cell-index`) and shard.
pub fn select<'a>(cells: &'a [Cell], options: &RunOptions) -> Vec<&'a Cell> {
    cells
        .iter()
        .filter(|c| {
            options.only.is_empty() || options.only.iter().any(|o| c.id.starts_with(o.as_str()))
        })
        .filter(|c| options.cell_index.is_none_or(|i| c.index == i))
        .filter(|c| options.shard.is_none_or(|(i, n)| c.index % n == i))
        .collect()
}

/// The cells `options` select; selecting none is a configuration error naming the flags.
pub fn select_some<'a>(
    experiment: &Experiment,
    cells: &'a [Cell],
    options: &RunOptions,
) -> Result<Vec<&'a Cell>, crate::config::ConfigError> {
    let selected = select(cells, options);
    if selected.is_empty() {
        return Err(crate::config::ConfigError::Invalid {
            file: experiment.file.clone(),
            key: "--only / --cell-index / --shard".into(),
            message: format!("no cell matches (the plan has {} cells)", cells.len()),
            context: None,
        });
    }
    Ok(selected)
}

/// Launcher settings given on the command line, over the experiment's `[launcher]`.
#[derive(Debug, Clone, Default)]
pub struct LaunchOverrides {
    pub kind: Option<crate::config::LauncherKind>,
    /// Extra `sbatch` arguments, after the experiment's.
    pub extra: Vec<String>,
    pub max_parallel: Option<usize>,
}

/// The launcher a run uses: the experiment's `[launcher]` with the overrides, except that a
/// scheduler's task (`--cell-index`, `--shard`) always runs its cells here and never
/// resubmits them.
pub fn resolve_launcher(
    experiment: &Experiment,
    options: &RunOptions,
    overrides: LaunchOverrides,
) -> crate::config::LauncherOptions {
    let mut launch = experiment.launcher.clone();
    launch.kind = overrides.kind.unwrap_or(launch.kind);
    if options.cell_index.is_some() || options.shard.is_some() {
        launch.kind = crate::config::LauncherKind::Local;
    }
    launch.extra.extend(overrides.extra);
    launch.max_parallel = overrides.max_parallel.or(launch.max_parallel);
    launch
}

/// Runs the selected cells of an experiment on its backend.
pub fn run(
    experiment: &Experiment,
    cells: &[Cell],
    options: &RunOptions,
) -> Result<RunSummary, RunError> {
    crate::with_backend!(
        experiment.settings.backend,
        B,
        device,
        Err(crate::backend::no_cuda().into()),
        run_on::<B>(experiment, cells, options, device)
    )
}

/// The bar over the run's cells (hidden unless the run shows bars).
fn cells_bar(display: &ProgressDisplay, len: usize) -> indicatif::ProgressBar {
    let ProgressDisplay::Bars(multi) = display else {
        return indicatif::ProgressBar::hidden();
    };
    let bar = multi.add(indicatif::ProgressBar::new(len as u64));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} cells, ETA {eta} {msg}",
        )
        .expect("valid template"),
    );
    // Drawn from the start (and its spinner and clock kept moving) while cells run.
    bar.enable_steady_tick(std::time::Duration::from_secs(1));
    bar
}

fn run_on<B: AutodiffBackend>(
    experiment: &Experiment,
    cells: &[Cell],
    options: &RunOptions,
    device: B::Device,
) -> Result<RunSummary, RunError> {
    let store = Store::open(&experiment.settings.results_dir, &experiment.name)?;
    let mut summary = RunSummary::default();
    let mut pending = vec![];
    for cell in select(cells, options) {
        match store.state(&cell.id) {
            CellState::Finished(_) => summary.finished_before += 1,
            CellState::Corrupt(why) => {
                tracing::warn!(cell = %cell.id, %why, "record is corrupt; running the cell again");
                summary.rerun_corrupt += 1;
                pending.push(cell);
            }
            CellState::Failed(r)
                if !options.retry_failed
                    && r.attempts >= options.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS) =>
            {
                let error = r.error.clone().unwrap_or_default();
                tracing::warn!(cell = %cell.id, attempts = r.attempts, %error, "failed every attempt; skipped (--retry-failed runs it)");
                summary.gave_up.push(GaveUp {
                    id: cell.id.clone(),
                    attempts: r.attempts,
                    error,
                });
            }
            CellState::Failed(_) | CellState::Pending => pending.push(cell),
        }
    }
    tracing::info!(
        experiment = %experiment.name,
        pending = pending.len(),
        finished = summary.finished_before,
        results = %store.root.display(),
        "starting run"
    );
    let bar = cells_bar(&options.display, pending.len());
    let models = Models::<B>::default();
    // The process's stop request (the CLI's signal handlers set it), handed to every cell.
    let stop = crate::interrupt::StopSignal::process();
    let next = AtomicUsize::new(0);
    let summary = Arc::new(Mutex::new(summary));
    let first_error: Mutex<Option<RunError>> = Mutex::new(None);
    let worker = || {
        loop {
            let i = next.fetch_add(1, Ordering::SeqCst);
            let Some(cell) = pending.get(i) else { break };
            if stop.requested() {
                break;
            }
            let outcome = run_one(
                experiment,
                cell,
                &store,
                &models,
                &device,
                (&options.display, &stop),
            );
            let mut s = summary.lock().expect("summary lock");
            match outcome {
                Ok(Some(CellOutcome::Finished)) => s.ran += 1,
                Ok(Some(CellOutcome::Failed)) => s.failed += 1,
                Ok(Some(CellOutcome::Interrupted)) => s.interrupted += 1,
                Ok(None) => s.locked_elsewhere += 1,
                Err(e) => {
                    s.failed += 1;
                    first_error.lock().expect("error lock").get_or_insert(e);
                }
            }
            bar.inc(1);
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.max(1) {
            scope.spawn(worker);
        }
    });
    bar.finish_and_clear();
    if let Some(e) = first_error.into_inner().expect("error lock") {
        return Err(e);
    }
    let mut summary = summary.lock().expect("summary lock").clone();
    summary.stopped = stop.requested();
    Ok(summary)
}

/// Runs one cell under its lock. `Ok(None)`: another runner holds it or finished it.
fn run_one<B: AutodiffBackend>(
    experiment: &Experiment,
    cell: &Cell,
    store: &Store,
    models: &Models<B>,
    device: &B::Device,
    (display, stop): (&ProgressDisplay, &crate::interrupt::StopSignal),
) -> Result<Option<CellOutcome>, RunError> {
    let Some(_lock) = store.try_lock(&cell.id)? else {
        tracing::info!(cell = %cell.id, "held by another runner; skipping");
        return Ok(None);
    };
    let earlier_attempts = match store.state(&cell.id) {
        CellState::Finished(_) => return Ok(None),
        CellState::Failed(r) => r.attempts,
        CellState::Corrupt(_) | CellState::Pending => 0,
    };
    let span = tracing::info_span!("cell", id = %cell.id, index = cell.index);
    let _enter = span.enter();
    let started = Instant::now();
    // A killed attempt's heartbeat says nothing of this one.
    store.remove_heartbeat(&cell.id)?;
    let reporter = progress::CellReporter::new(
        &cell.id,
        display,
        experiment.settings.progress_every,
        store.heartbeat_path(&cell.id),
    );
    let executed = execute_cell::<B>(experiment, cell, store, models, device, (&reporter, stop));
    drop(reporter);
    if let Err(e) = store.remove_heartbeat(&cell.id) {
        tracing::warn!(error = %crate::errors::Chain(&e), "could not remove the cell's heartbeat");
    }
    let Some(mut record) = executed else {
        tracing::warn!(cell = %cell.id, "interrupted; no record written (the next run starts the cell again)");
        return Ok(Some(CellOutcome::Interrupted));
    };
    record.attempts = earlier_attempts + 1;
    let status = record.status;
    match status {
        Status::Finished => tracing::info!(
            seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
            metrics = ?record.metrics,
            "cell finished"
        ),
        Status::Failed => {
            // The id in the event itself: under `-q` the cell's info-level span is filtered out.
            tracing::error!(cell = %cell.id, error = record.error.as_deref().unwrap_or(""), "cell failed")
        }
    }
    store.write_record(&record)?;
    if let Err(e) = store.remove_checkpoint(&cell.id) {
        tracing::warn!(error = %crate::errors::Chain(&e), "could not remove the cell's checkpoint (its record is written)");
    }
    Ok(Some(match status {
        Status::Finished => CellOutcome::Finished,
        Status::Failed => CellOutcome::Failed,
    }))
}

/// How one cell of a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CellOutcome {
    Finished,
    Failed,
    /// Stopped on request; no record.
    Interrupted,
}

#[cfg(test)]
mod launch_tests {
    use super::*;
    use crate::config::LauncherKind;

    fn experiment() -> Experiment {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.toml");
        std::fs::write(
            &path,
            "[task]\nkind = \"sst2\"\ntrain_size = 10\ndev_size = 10\n[method]\nkind = \"majority\"\n[launcher]\nkind = \"slurm\"\nextra = [\"--qos=low\"]\nmax_parallel = 4\n",
        )
        .unwrap();
        crate::config::load(&path, &[]).unwrap()
    }

    #[test]
    fn a_schedulers_task_runs_here_and_flags_extend_the_experiments_launcher() {
        let e = experiment();
        let overrides = || LaunchOverrides {
            kind: None,
            extra: vec!["--account=x".into()],
            max_parallel: Some(2),
        };
        let launch = resolve_launcher(&e, &RunOptions::default(), overrides());
        assert_eq!(launch.kind, LauncherKind::Slurm);
        assert_eq!(launch.extra, vec!["--qos=low", "--account=x"]);
        assert_eq!(launch.max_parallel, Some(2));
        for options in [
            RunOptions {
                cell_index: Some(0),
                ..Default::default()
            },
            RunOptions {
                shard: Some((0, 2)),
                ..Default::default()
            },
        ] {
            let launch = resolve_launcher(&e, &options, overrides());
            assert_eq!(launch.kind, LauncherKind::Local, "{options:?}");
        }
    }
}
