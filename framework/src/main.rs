//! The `autoprompt` command line: parses arguments, sets up logging, calls the library and
//! maps errors to exit codes (2: invalid input; 1: anything else failed).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::Parser;

mod cli;
use cli::args::{Cli, Command};
use cli::commands::{bench, fill_mask, load, paper_report, print_plan, report, versus};

use autoprompt::config::{self, ConfigError};
use autoprompt::plan::Cell;
use autoprompt::run::{self, RunOptions};
use autoprompt::store::Store;

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

/// Logs to stderr at the level `-v` / `-q` choose (`RUST_LOG` overrides), coloured only as
/// `autoprompt::colour::use_colour` decides (a log captured to a file has no escape codes),
/// through `bars` when progress bars are drawn.
fn init_tracing(verbose: u8, quiet: bool, colour: bool, bars: Option<indicatif::MultiProgress>) {
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{default},burn=warn,cubecl=warn"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(cli::log_writer::BarSafeStderr { bars })
        .with_ansi(colour)
        .with_target(false)
        .init();
}

/// The error and its causes, skipping a cause whose text its wrapper already shows (our
/// error types print their source in their own message).
fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}

fn main_inner(cli: Cli, bars: Option<indicatif::MultiProgress>) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Plan(args) => {
            let (experiment, cells) = load(&args)?;
            print_plan(&experiment, &cells)?;
        }
        Command::Run {
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
        } => {
            let (mut experiment, cells) = load(&args)?;
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
                print_plan(
                    &experiment,
                    &selected.into_iter().cloned().collect::<Vec<_>>(),
                )?;
                return Ok(ExitCode::SUCCESS);
            }
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
                match run::slurm::submit(&experiment, &chosen, &args.set, &launch)? {
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
        }
        Command::Eval {
            experiment: args,
            prompt,
            split,
            cell,
            predictions,
        } => {
            let (experiment, cells) = load(&args)?;
            let (cell, evaluation) =
                run::evaluate_saved(&experiment, &cells, &prompt, split.into(), cell.as_deref())?;
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
        }
        Command::Status(args) => {
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
        }
        Command::Unlock {
            experiment: args,
            cell: only,
            force,
        } => {
            use run::status::Unlocked;
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
        }
        Command::Report {
            experiment: args,
            delta_against,
        } => {
            let (experiment, _) = load(&args)?;
            if !report(&experiment, delta_against.as_deref())? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::PaperReport {
            experiments,
            tables,
            out,
        } => paper_report(&experiments, &tables, &out)?,
        Command::Bench(command) => println!("{}", bench(command)?),
        Command::Versus {
            experiment: args,
            a,
            b,
            metric,
        } => {
            let (experiment, _) = load(&args)?;
            print!("{}", versus(&experiment, &a, &b, &metric)?);
        }
        Command::Compare {
            experiment: args,
            baseline,
            out,
            sd_factor,
            floor,
            time_ratio,
            update_baseline,
            reason,
        } => {
            use autoprompt::report::nightly;
            let (experiment, _) = load(&args)?;
            let store = Store::open(&experiment.settings.results_dir, &experiment.name)?;
            if update_baseline {
                for path in nightly::update_baseline(&store, &baseline, reason.unwrap_or_default())?
                {
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
        }
        Command::FillMask {
            model,
            top_k,
            backend,
            strict,
            text,
        } => {
            let unused = if strict {
                autoprompt::lm::UnusedTensors::Refuse
            } else {
                autoprompt::lm::UnusedTensors::Skip
            };
            let predictions = fill_mask(&model, &text, top_k, backend.into(), unused)?;
            for (i, preds) in predictions.iter().enumerate() {
                println!("mask {}:", i + 1);
                for p in preds {
                    println!("  {:<16} {:>8.4}  (id {})", p.token, p.probability, p.id);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let colour = autoprompt::colour::use_colour_on_stderr(cli.color.into());
    // Bars on a terminal; elsewhere (a log file, a Slurm output file) progress is logged.
    let bars = std::io::stderr()
        .is_terminal()
        .then(indicatif::MultiProgress::new);
    init_tracing(cli.verbose, cli.quiet, colour, bars.clone());
    match main_inner(cli, bars) {
        Ok(code) => code,
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            let invalid_input = e.downcast_ref::<ConfigError>().is_some()
                || e.downcast_ref::<autoprompt::report::paired::PairError>()
                    .is_some()
                || e.downcast_ref::<autoprompt::report::ReportError>()
                    .is_some_and(|r| matches!(r, autoprompt::report::ReportError::Pair(_)));
            if invalid_input {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
