//! One function per subcommand: what `autoprompt <subcommand>` does with its parsed
//! arguments, and the exit code it ends with (errors go back to `main`, which prints them and
//! maps them to exit codes).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use autoprompt::config::{self, Experiment};
use autoprompt::plan::Cell;
use autoprompt::run::{self, RunOptions};
use autoprompt::store::Store;

use super::args::{
    BenchCommand, CompareArgs, EvalArgs, ExperimentArgs, FillMaskArgs, PaperReportArgs, ReportArgs,
    RunArgs, UnlockArgs, VersusArgs,
};
use super::commands::{self, load, print_plan};

/// SIGINT / SIGTERM: the first asks the run to stop cleanly (`autoprompt::interrupt`: no new
/// cell starts, the running ones stop at their next check and write no record); a second
/// exits at once with the signal's status. Returns where the received signal's number lands.
fn install_signal_handlers() -> std::io::Result<Arc<AtomicUsize>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = autoprompt::interrupt::stop_flag();
    let received = Arc::new(AtomicUsize::new(0));
    for signal in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag as the previous signal left it.
        signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, Arc::clone(&stop))?;
        signal_hook::flag::register_usize(signal, Arc::clone(&received), signal as usize)?;
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    Ok(received)
}

/// `autoprompt plan`: the cells, their status and the table tasks' data.
pub fn plan(args: ExperimentArgs) -> anyhow::Result<ExitCode> {
    let (experiment, cells, tables) = commands::load_with_tables(&args)?;
    print_plan(&experiment, &cells, &tables)?;
    Ok(ExitCode::SUCCESS)
}

/// `autoprompt run`: the selected cells here, or submitted to Slurm; 128 + the signal when a
/// signal stopped the run, 1 when a cell failed or was skipped.
pub fn run(run_args: RunArgs, bars: Option<indicatif::MultiProgress>) -> anyhow::Result<ExitCode> {
    let RunArgs {
        experiment: args,
        only,
        dry_run,
        jobs,
        backend,
        launcher,
        slurm_args,
        max_parallel,
        cell_index,
        shard,
        max_attempts,
        retry_failed,
    } = run_args;
    let (mut experiment, cells, tables) = commands::load_with_tables(&args)?;
    if let Some(b) = backend {
        experiment.settings.backend = b.into();
    }
    let options = RunOptions {
        only: only.clone(),
        jobs,
        cell_index,
        shard,
        max_attempts: Some(max_attempts),
        retry_failed,
        display: bars.map_or(run::ProgressDisplay::Lines, run::ProgressDisplay::Bars),
    };
    let selected = run::select_some(&experiment, &cells, &options)?;
    if dry_run {
        let selected: Vec<Cell> = selected.into_iter().cloned().collect();
        let tables = autoprompt::plan::tables_for(&experiment, &tables, &selected)?;
        print_plan(&experiment, &selected, &tables)?;
        return Ok(ExitCode::SUCCESS);
    }
    autoprompt::methods::label_words::check_label_words(&selected)?;
    let launch = run::resolve_launcher(
        &experiment,
        &options,
        run::LaunchOverrides {
            kind: launcher.map(Into::into),
            extra: slurm_args,
            max_parallel,
        },
    );
    if launch.kind == config::LauncherKind::Slurm {
        let chosen: Vec<Cell> = selected.into_iter().cloned().collect();
        submit_to_slurm(&experiment, &chosen, &args, &launch)?;
        return Ok(ExitCode::SUCCESS);
    }
    let received = install_signal_handlers()?;
    let summary = run::run(&experiment, &cells, &options)?;
    println!(
        "{}: ran {}, failed {}, already finished {}, held by another runner {}, corrupt re-run {}",
        experiment.name,
        summary.ran,
        summary.failed,
        summary.finished_before,
        summary.locked_elsewhere,
        summary.rerun_corrupt
    );
    if summary.stopped {
        let signal = received.load(Ordering::SeqCst);
        eprintln!(
            "{}: stopped by signal {signal} ({} cell(s) interrupted, no partial records); run again to resume",
            experiment.name, summary.interrupted
        );
        return Ok(ExitCode::from((128 + signal.min(127)) as u8));
    }
    for g in &summary.gave_up {
        eprintln!(
            "skipped cell {} after {} failed attempts (--retry-failed runs it): {}",
            g.id, g.attempts, g.error
        );
    }
    if summary.failed > 0 || !summary.gave_up.is_empty() {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `run` with the Slurm launcher: submits the chosen cells as an array job (and the report
/// job after it) and says how to watch them.
fn submit_to_slurm(
    experiment: &Experiment,
    chosen: &[Cell],
    args: &ExperimentArgs,
    launch: &config::LauncherOptions,
) -> anyhow::Result<()> {
    match run::slurm::submit(experiment, chosen, &args.set, launch)? {
        None => println!(
            "{}: every selected cell is finished; nothing submitted",
            experiment.name
        ),
        Some(s) => {
            println!(
                "submitted array job {} ({} cells) and report job {} (afterany)",
                s.array_job,
                s.cells.len(),
                s.report_job
            );
            println!(
                "watch: squeue -j {},{}   |   autoprompt status {}",
                s.array_job,
                s.report_job,
                args.file.display()
            );
        }
    }
    Ok(())
}

/// `autoprompt eval`: a saved prompt's metrics on a split (and its predictions).
pub fn eval(eval_args: EvalArgs) -> anyhow::Result<ExitCode> {
    let EvalArgs {
        experiment: args,
        prompt,
        split,
        cell,
        predictions,
    } = eval_args;
    let (experiment, cells) = load(&args)?;
    let (cell, evaluation) = autoprompt::methods::evaluate_saved(
        &experiment,
        &cells,
        &prompt,
        split.into(),
        cell.as_deref(),
    )?;
    if let Some(path) = &predictions {
        Store::write_predictions_to(path, &evaluation.predictions)?;
        eprintln!("wrote {}", path.display());
    }
    let metrics = evaluation.metrics;
    println!(
        "cell {} ({}), {split:?} split:",
        cell.id,
        cell.spec.method.name()
    );
    for (name, value) in metrics {
        println!("  {name:<16} {value:.4}");
    }
    if evaluation.truncated > 0 {
        println!(
            "  ({} examples cut to fit model.max_length = {}, truncate = \"{}\")",
            evaluation.truncated, cell.spec.model.max_length, cell.spec.model.truncate
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `autoprompt status`: each cell's state and progress, then the counts.
pub fn status(args: ExperimentArgs) -> anyhow::Result<ExitCode> {
    let (experiment, cells) = load(&args)?;
    let rows = run::status::status(&experiment, &cells)?;
    for row in &rows {
        println!("{:<5} {:<16} {}", row.index, row.id, row.status);
        match (&row.progress, &row.status) {
            (Some(p), run::status::CellStatus::Running(_)) => println!("      {p}"),
            (Some(p), _) => println!("      an earlier attempt stopped at: {p}"),
            (None, _) => {}
        }
    }
    let counts = run::status::counts(&rows);
    let counts: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!("{}: {}", experiment.name, counts.join(", "));
    Ok(ExitCode::SUCCESS)
}

/// `autoprompt unlock`: breaks stale locks (others with `--force`); 1 when one was refused.
pub fn unlock(unlock_args: UnlockArgs) -> anyhow::Result<ExitCode> {
    use run::status::Unlocked;
    let UnlockArgs {
        experiment: args,
        cell: only,
        force,
    } = unlock_args;
    let (experiment, cells) = load(&args)?;
    let who = |h: &Option<autoprompt::store::LockHolder>| {
        h.as_ref()
            .map_or("an unknown holder".to_string(), |h| h.to_string())
    };
    let mut refused = false;
    for outcome in run::status::unlock(&experiment, &cells, &only, force)? {
        match outcome {
            Unlocked::Stale { id, holder } => {
                println!("{id}: broke the stale lock of {holder}")
            }
            Unlocked::Forced { id, holder } => {
                println!("{id}: broke the lock of {} (--force)", who(&holder))
            }
            Unlocked::Refused { id, holder } => {
                refused = true;
                eprintln!(
                    "{id}: held by {}, which may be running; check it, then --force",
                    who(&holder)
                );
            }
        }
    }
    if refused {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `autoprompt report`: tables and `reports/<name>.md`; 1 when a cell failed.
pub fn report(report_args: ReportArgs) -> anyhow::Result<ExitCode> {
    let ReportArgs {
        experiment: args,
        delta_against,
    } = report_args;
    let (experiment, _) = load(&args)?;
    if !commands::report(&experiment, delta_against.as_deref())? {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `autoprompt paper-report`: the paper's tables next to ours.
pub fn paper_report(paper_report_args: PaperReportArgs) -> anyhow::Result<ExitCode> {
    let PaperReportArgs {
        experiments,
        tables,
        out,
    } = paper_report_args;
    commands::paper_report(&experiments, &tables, &out)?;
    Ok(ExitCode::SUCCESS)
}

/// `autoprompt compare`: the summary against the stored baseline (or `--update-baseline`);
/// 1 on a regression.
pub fn compare(compare_args: CompareArgs) -> anyhow::Result<ExitCode> {
    use autoprompt::report::nightly;
    let CompareArgs {
        experiment: args,
        baseline,
        out,
        sd_factor,
        floor,
        time_ratio,
        update_baseline,
        reason,
    } = compare_args;
    let (experiment, _) = load(&args)?;
    let store = Store::open(&experiment.settings.results_dir, &experiment.name)?;
    if update_baseline {
        for path in nightly::update_baseline(&store, &baseline, reason.unwrap_or_default())? {
            println!("wrote {}", path.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let tolerance = nightly::Tolerance {
        sd_factor,
        floor,
        time_ratio,
    };
    let comparisons = nightly::check(&store, &baseline, &tolerance)?;
    let md = nightly::markdown(&comparisons, &baseline);
    autoprompt::store::write_atomic(&out, md.as_bytes())?;
    println!("{md}");
    let failed: Vec<_> = comparisons.iter().filter(|c| c.failed()).collect();
    for c in &failed {
        let now = c
            .now
            .map_or_else(|| "missing".to_string(), |v| format!("{v:.4}"));
        eprintln!(
            "regression: {} {}: baseline {:.4}, now {now} ({:?})",
            c.setting, c.metric, c.baseline, c.verdict
        );
    }
    if !failed.is_empty() {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `autoprompt versus`: method `a` against method `b`, paired over seeds.
pub fn versus(versus_args: VersusArgs) -> anyhow::Result<ExitCode> {
    let VersusArgs {
        experiment: args,
        a,
        b,
        metric,
    } = versus_args;
    let (experiment, _) = load(&args)?;
    print!("{}", commands::versus(&experiment, &a, &b, &metric)?);
    Ok(ExitCode::SUCCESS)
}

/// `autoprompt bench`: one measurement, printed as JSON.
pub fn bench(command: BenchCommand) -> anyhow::Result<ExitCode> {
    println!("{}", commands::bench(command)?);
    Ok(ExitCode::SUCCESS)
}

/// `autoprompt fill-mask`: the model's top predictions at every mask.
pub fn fill_mask(fill_mask_args: FillMaskArgs) -> anyhow::Result<ExitCode> {
    let FillMaskArgs {
        model,
        top_k,
        backend,
        strict,
        text,
    } = fill_mask_args;
    let unused = if strict {
        autoprompt::lm::UnusedTensors::Refuse
    } else {
        autoprompt::lm::UnusedTensors::Skip
    };
    let predictions = commands::fill_mask(&model, &text, top_k, backend.into(), unused)?;
    for (i, preds) in predictions.iter().enumerate() {
        println!("mask {}:", i + 1);
        for p in preds {
            println!("  {:<16} {:>8.4}  (id {})", p.token, p.probability, p.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}
