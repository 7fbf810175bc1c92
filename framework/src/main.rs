//! The `autoprompt` command line: parses arguments, sets up logging, calls the library and
//! maps errors to exit codes (2: invalid input; 1: anything else failed).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use autoprompt::config::{self, BackendKind, ConfigError, Experiment};
use autoprompt::plan::{self, Cell};
use autoprompt::report::{self, ReportMeta};
use autoprompt::run::{self, RunOptions};
use autoprompt::store::{CellState, Store};

#[derive(Parser)]
#[command(name = "autoprompt", version, about = "AutoPrompt experiments on masked language models", long_about = None)]
struct Cli {
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ExperimentArgs {
    /// Experiment file (TOML).
    file: PathBuf,
    /// Override a key: `--set task.train_size=100` (value parsed as TOML; bare words are strings).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Print the cells of an experiment: id, status and grid values.
    #[command(
        after_help = "Examples:\n  autoprompt plan experiments/sst2_lowres.toml\n  autoprompt plan experiments/lama.toml --set task.relation=P19"
    )]
    Plan(ExperimentArgs),
    /// Run the cells of an experiment that have no record yet (resumable).
    #[command(
        after_help = "Examples:\n  autoprompt run experiments/sst2_lowres.toml\n  autoprompt run experiments/sst2_lowres.toml --only 3fa2 --set method.search.iters=5\n  autoprompt run experiments/sst2.toml --dry-run\n  AUTOPROMPT_DATA_DIR=../shared/data autoprompt run experiments/lama.toml --jobs 2"
    )]
    Run {
        #[command(flatten)]
        experiment: ExperimentArgs,
        /// Run only cells whose id starts with this (repeatable).
        #[arg(long)]
        only: Vec<String>,
        /// Print what would run, run nothing.
        #[arg(long)]
        dry_run: bool,
        /// Cells to run in parallel.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Backend (overrides the experiment's `backend`).
        #[arg(long, value_enum)]
        backend: Option<choices::Backend>,
        /// Where cells run (overrides `[launcher] kind`).
        #[arg(long, value_enum)]
        launcher: Option<choices::Launcher>,
        /// Extra sbatch argument (repeatable), e.g. `--slurm-arg=--gres=gpu:1`.
        #[arg(long = "slurm-arg", allow_hyphen_values = true)]
        slurm_args: Vec<String>,
        /// Slurm array tasks running at once.
        #[arg(long)]
        max_parallel: Option<usize>,
        /// Run only the cell with this plan index (what each Slurm array task runs).
        #[arg(long)]
        cell_index: Option<usize>,
        /// Run only the cells with index % N == I, as `I/N` (any other scheduler).
        #[arg(long, value_parser = parse_shard)]
        shard: Option<(usize, usize)>,
        /// Skip a failed cell once it has failed this many times.
        #[arg(long, default_value_t = run::DEFAULT_MAX_ATTEMPTS)]
        max_attempts: u32,
        /// Run failed cells again whatever their attempt count.
        #[arg(long)]
        retry_failed: bool,
    },
    /// Re-evaluate a saved prompt (a cell record or a best-so-far prompt) on a split.
    #[command(
        after_help = "Examples:\n  autoprompt eval experiments/sst2_lowres.toml --prompt results/sst2_lowres/cells/3fa2....json --split test\n  autoprompt eval experiments/lama.toml --prompt results/lama/prompts/9b1c....best.json --split dev"
    )]
    Eval {
        #[command(flatten)]
        experiment: ExperimentArgs,
        /// `results/<name>/cells/<id>.json` or `results/<name>/prompts/<id>.best.json`.
        #[arg(long)]
        prompt: PathBuf,
        #[arg(long, value_enum, default_value = "test")]
        split: choices::Split,
        /// The cell to apply the prompt to (default: the record's own cell, the cell a
        /// `prompts/<id>.best.json` is named after, or the experiment's only cell). A prompt
        /// applies to any cell whose model has the vocabulary it was made with.
        #[arg(long)]
        cell: Option<String>,
    },
    /// Finished / failed / pending / running cells (from the store, and squeue when a Slurm job is known).
    #[command(after_help = "Examples:\n  autoprompt status experiments/sst2_lowres.toml")]
    Status(ExperimentArgs),
    /// Break the locks of cells whose runner is gone (shared filesystems can keep a lock after
    /// its process died); a lock held by a live process, or by one on another host, needs --force.
    #[command(
        after_help = "Examples:\n  autoprompt unlock experiments/sst2_lowres.toml\n  autoprompt unlock experiments/sst2_lowres.toml --cell 3fa2c1d0 --force"
    )]
    Unlock {
        #[command(flatten)]
        experiment: ExperimentArgs,
        /// Only these cells (id or id prefix; repeatable). Default: every cell.
        #[arg(long)]
        cell: Vec<String>,
        /// Also break locks whose holder may be alive (another host, or a live process here).
        #[arg(long)]
        force: bool,
    },
    /// Aggregate the records of an experiment into tables (parquet, CSV) and reports/<name>.md.
    #[command(after_help = "Examples:\n  autoprompt report experiments/sst2_lowres.toml")]
    Report(ExperimentArgs),
    /// The paper's tables next to ours: reports/paper/*.toml (published numbers) joined with
    /// the records of the experiments in experiments/paper/, written to reports/paper.md.
    #[command(
        after_help = "Examples:\n  autoprompt paper-report experiments/paper\n  just reproduce --set model.source=splade-tiny"
    )]
    PaperReport {
        /// Directory of the experiments that reproduce the tables.
        #[arg(default_value = "experiments/paper")]
        experiments: PathBuf,
        /// Directory of the transcribed paper tables.
        #[arg(long, default_value = "reports/paper")]
        tables: PathBuf,
        #[arg(long, default_value = "reports/paper.md")]
        out: PathBuf,
    },
    /// Compare an experiment's summary with a stored baseline (nightly regression check).
    #[command(
        after_help = "Examples:\n  autoprompt compare experiments/nightly.toml\n  autoprompt compare experiments/nightly.toml --update-baseline --reason \"new tokenizer handling\""
    )]
    Compare {
        #[command(flatten)]
        experiment: ExperimentArgs,
        /// Baseline directory (summary.csv + environment.json).
        #[arg(long, default_value = "results/baselines/nightly")]
        baseline: PathBuf,
        /// Where the comparison table goes.
        #[arg(long, default_value = "reports/nightly.md")]
        out: PathBuf,
        /// Allowed drop in baseline seed sds.
        #[arg(long, default_value_t = 3.0)]
        sd_factor: f64,
        /// Smallest allowed drop.
        #[arg(long, default_value_t = 0.02)]
        floor: f64,
        /// Largest allowed slow-down of a search iteration.
        #[arg(long, default_value_t = 1.5)]
        time_ratio: f64,
        /// Replace the baseline with the current summary (deliberately; give --reason).
        #[arg(long, requires = "reason")]
        update_baseline: bool,
        /// Why the baseline changes (recorded in its environment.json).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Speed measurements through the project's code path (used by `just bench`); prints JSON.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Predict the masked tokens of a sentence: the quickest check that a model loads right.
    #[command(
        after_help = "Examples:\n  autoprompt fill-mask --model splade-tiny \"paris is the capital of [MASK] .\"\n  autoprompt fill-mask --model roberta-large \"The movie was <mask>.\" --top-k 5"
    )]
    FillMask {
        /// A model directory, a Hugging Face hub id, or `splade-tiny`.
        #[arg(long, default_value = autoprompt::lm::EMBEDDED_MODEL)]
        model: String,
        /// Predictions per mask.
        #[arg(long, default_value_t = 10)]
        top_k: usize,
        #[arg(long, value_enum, default_value = "ndarray")]
        backend: choices::Backend,
        /// Text with one or more `[MASK]` (or the model's own mask token).
        text: String,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Median wall time of one trigger-search iteration (gradient accumulation + candidate
    /// evaluation on `--eval-batches` batches) and its CPU seconds; prints JSON.
    #[command(
        after_help = "Examples:\n  autoprompt bench search --model splade-tiny --candidates 100"
    )]
    Search {
        #[command(flatten)]
        bench: choices::SearchBench,
        #[arg(long, value_enum, default_value = "ndarray")]
        backend: choices::Backend,
    },
    /// Encoder forward GFLOP/s at batch × seq, and a square matmul on the same backend.
    #[command(
        after_help = "Examples:\n  autoprompt bench forward --model /path/to/bert-base-random --batch 32 --seq 64"
    )]
    Forward {
        #[arg(long, default_value = autoprompt::lm::EMBEDDED_MODEL)]
        model: String,
        #[arg(long, default_value_t = 32)]
        batch: usize,
        #[arg(long, default_value_t = 64)]
        seq: usize,
        #[arg(long, default_value_t = 5)]
        iters: usize,
        #[arg(long, value_enum, default_value = "ndarray")]
        backend: choices::Backend,
        /// `auto` and `host` time the host engine (CPU backends), `burn` the backend's ops.
        #[arg(long, value_enum, default_value = "auto")]
        engine: choices::Engine,
    },
}

fn bench(command: BenchCommand) -> anyhow::Result<String> {
    use autoprompt::bench;
    Ok(match command {
        BenchCommand::Search { bench: b, backend } => {
            let (b, backend): (bench::SearchBench, BackendKind) = (b.into(), backend.into());
            let name = implementation_name(backend, b.engine);
            let result = autoprompt::with_backend!(
                backend,
                B,
                device,
                Err(autoprompt::run::no_cuda()),
                bench::search_iteration::<B>(&b, &name, &device)
            )?;
            serde_json::to_string(&result)?
        }
        BenchCommand::Forward {
            model,
            batch,
            seq,
            iters,
            backend,
            engine,
        } => {
            let (backend, engine): (BackendKind, autoprompt::search::Engine) =
                (backend.into(), engine.into());
            let name = implementation_name(backend, engine);
            if engine.resolve(backend) == autoprompt::search::EngineKind::Host {
                let result = bench::host_encoder_forward(&model, batch, seq, iters, &name)?;
                return Ok(serde_json::to_string(&result)?);
            }
            let result = autoprompt::with_backend!(
                backend,
                B,
                device,
                Err(autoprompt::run::no_cuda()),
                bench::encoder_forward::<<B as burn::tensor::backend::AutodiffBackend>::InnerBackend>(
                    &model, batch, seq, iters, &name, &device
                )
            )?;
            serde_json::to_string(&result)?
        }
    })
}

fn parse_shard(text: &str) -> Result<(usize, usize), String> {
    let (i, n) = text.split_once('/').ok_or("expected I/N, e.g. 0/4")?;
    let (i, n): (usize, usize) = (
        i.parse().map_err(|_| "I is not a number")?,
        n.parse().map_err(|_| "N is not a number")?,
    );
    if n == 0 || i >= n {
        return Err(format!("need 0 <= I < N, got {i}/{n}"));
    }
    Ok((i, n))
}

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

/// Command-line spellings of the library's enums and the bench workload: the library
/// derives no clap types (ARCHITECTURE.md), so the CLI keeps these mirrors and converts.
mod choices {
    use std::path::PathBuf;

    use clap::ValueEnum;

    macro_rules! mirror {
        ($(#[$doc:meta])* $cli:ident => $lib:path { $($(#[$vdoc:meta])* $variant:ident),* $(,)? }) => {
            $(#[$doc])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
            pub enum $cli { $($(#[$vdoc])* $variant),* }

            impl From<$cli> for $lib {
                fn from(choice: $cli) -> Self {
                    match choice { $($cli::$variant => <$lib>::$variant),* }
                }
            }
        };
    }

    mirror!(
        /// Which burn backend runs the cells.
        Backend => autoprompt::config::BackendKind {
            /// burn-ndarray on the CPU.
            Ndarray,
            /// burn-flex on the CPU.
            Flex,
            /// burn-cuda (the `cuda` feature and an NVIDIA GPU).
            Cuda,
        }
    );
    mirror!(
        /// Where cells run.
        Launcher => autoprompt::config::LauncherKind {
            /// In this process.
            Local,
            /// As a Slurm job array.
            Slurm,
        }
    );
    mirror!(
        /// Who runs the scorer's gradients and evaluations.
        Engine => autoprompt::search::Engine {
            /// The host engine on CPU backends, else burn.
            Auto,
            /// The host engine whatever the backend.
            Host,
            /// burn's own ops on the chosen backend.
            Burn,
        }
    );
    mirror!(
        /// A split of a task.
        Split => autoprompt::run::prompting::SplitName { Train, Dev, Test }
    );

    /// The flags of `autoprompt bench search`.
    #[derive(Debug, Clone, clap::Args)]
    pub struct SearchBench {
        /// A model directory, hub id, or `splade-tiny`.
        #[arg(long, default_value = autoprompt::lm::EMBEDDED_MODEL)]
        pub model: String,
        /// SST-2 TSV whose first 512 rows are the workload.
        #[arg(long, default_value = "data/sst2/train.tsv")]
        pub data: PathBuf,
        #[arg(long, default_value_t = 32)]
        pub batch_size: usize,
        /// Batches whose gradients are summed per iteration.
        #[arg(long, default_value_t = 10)]
        pub accumulation: usize,
        /// Fresh batches the current trigger and every candidate are scored on per iteration
        /// (default: `--accumulation`, as in the paper's code and the search's default).
        #[arg(long)]
        pub eval_batches: Option<usize>,
        #[arg(long, default_value_t = 10)]
        pub candidates: usize,
        #[arg(long, default_value_t = 3)]
        pub triggers: usize,
        /// Timed iterations (the median is reported).
        #[arg(long, default_value_t = 5)]
        pub iters: usize,
        /// Untimed iterations first.
        #[arg(long, default_value_t = 1)]
        pub warmup: usize,
        /// Rows per evaluation forward pass.
        #[arg(long, default_value_t = 256)]
        pub eval_rows: usize,
        /// Who runs the gradients and evaluations (`auto`: the host engine on CPU backends).
        #[arg(long, value_enum, default_value = "auto")]
        pub engine: Engine,
    }

    impl From<SearchBench> for autoprompt::bench::SearchBench {
        fn from(b: SearchBench) -> Self {
            Self {
                model: b.model,
                data: b.data,
                batch_size: b.batch_size,
                accumulation: b.accumulation,
                eval_batches: b.eval_batches,
                candidates: b.candidates,
                triggers: b.triggers,
                iters: b.iters,
                warmup: b.warmup,
                eval_rows: b.eval_rows,
                engine: b.engine.into(),
            }
        }
    }
}

fn init_tracing(verbose: u8, quiet: bool) {
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
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn load(args: &ExperimentArgs) -> Result<(Experiment, Vec<Cell>), ConfigError> {
    let experiment = config::load(&args.file, &args.set)?;
    let cells = plan::plan(&experiment)?;
    Ok((experiment, cells))
}

fn grid_text(cell: &Cell) -> String {
    cell.grid
        .iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::Object(m) => m
                    .get("kind")
                    .and_then(|k| k.as_str())
                    .unwrap_or("{..}")
                    .to_string(),
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("  ")
}

fn print_plan(experiment: &Experiment, cells: &[Cell]) -> anyhow::Result<()> {
    use std::io::Write;
    let store = Store::open(&experiment.settings.results_dir, &experiment.name)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} — {} cells (results in {})",
        experiment.name,
        cells.len(),
        store.root.display()
    )?;
    writeln!(
        out,
        "{:<5} {:<16} {:<9} {:<12} grid",
        "#", "id", "status", "method"
    )?;
    for cell in cells {
        let status = match store.state(&cell.id) {
            CellState::Finished(_) => "finished",
            CellState::Failed(_) => "failed",
            CellState::Corrupt(_) => "corrupt",
            CellState::Pending => "pending",
        };
        writeln!(
            out,
            "{:<5} {:<16} {:<9} {:<12} {}",
            cell.index,
            cell.id,
            status,
            cell.spec.method.name(),
            grid_text(cell)
        )?;
    }
    Ok(())
}

fn report(experiment: &Experiment) -> anyhow::Result<bool> {
    let store = Store::open(&experiment.settings.results_dir, &experiment.name)?;
    let records = store.records()?;
    let report_path = Path::new("reports").join(format!("{}.md", experiment.name));
    let meta = ReportMeta {
        name: &experiment.name,
        description: &experiment.description,
        experiment_file: &experiment.file,
    };
    let files = report::build(&records, &store.root, &report_path, &meta)?;
    let metrics = report::metric_names(&records);
    println!("{}", report::summary_markdown(&files.summary, &metrics)?);
    for path in &files.written {
        println!("wrote {}", path.display());
    }
    for (id, error) in &files.failed_cells {
        eprintln!("failed cell {id}: {error}");
    }
    Ok(files.failed_cells.is_empty())
}

/// `rust-host` where the host engine runs, else `rust-<backend>`, with `+openblas` where the
/// ndarray backend's matmuls go to OpenBLAS.
fn implementation_name(backend: BackendKind, engine: autoprompt::search::Engine) -> String {
    if engine.resolve(backend) == autoprompt::search::EngineKind::Host {
        return "rust-host".to_string();
    }
    let blas = cfg!(feature = "openblas") && backend == BackendKind::Ndarray;
    format!(
        "rust-{}{}",
        backend.name(),
        if blas { "+openblas" } else { "" }
    )
}

/// Joins the paper's numbers with the records of every experiment in `experiments_dir`.
fn paper_report(experiments_dir: &Path, tables_dir: &Path, out: &Path) -> anyhow::Result<()> {
    let markdown = report::paper::build(experiments_dir, tables_dir)?;
    autoprompt::store::write_atomic(out, markdown.as_bytes())?;
    println!("{markdown}");
    eprintln!("wrote {}", out.display());
    Ok(())
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

fn main_inner(cli: Cli) -> anyhow::Result<ExitCode> {
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
        } => {
            let (experiment, cells) = load(&args)?;
            let (cell, metrics) =
                run::evaluate_saved(&experiment, &cells, &prompt, split.into(), cell.as_deref())?;
            println!(
                "cell {} ({}), {split:?} split:",
                cell.id,
                cell.spec.method.name()
            );
            for (name, value) in metrics {
                println!("  {name:<16} {value:.4}");
            }
        }
        Command::Status(args) => {
            let (experiment, cells) = load(&args)?;
            let rows = run::status::status(&experiment, &cells)?;
            for row in &rows {
                println!("{:<5} {:<16} {}", row.index, row.id, row.status);
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
        Command::Report(args) => {
            let (experiment, _) = load(&args)?;
            if !report(&experiment)? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::PaperReport {
            experiments,
            tables,
            out,
        } => paper_report(&experiments, &tables, &out)?,
        Command::Bench(command) => println!("{}", bench(command)?),
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
            text,
        } => {
            let predictions = fill_mask(&model, &text, top_k, backend.into())?;
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

fn fill_mask(
    model: &str,
    text: &str,
    k: usize,
    backend: BackendKind,
) -> anyhow::Result<Vec<Vec<autoprompt::lm::Prediction>>> {
    fn on<B: burn::tensor::backend::Backend>(
        model: &str,
        text: &str,
        k: usize,
        device: B::Device,
    ) -> anyhow::Result<Vec<Vec<autoprompt::lm::Prediction>>> {
        let lm = autoprompt::lm::load::<B>(model, &device)
            .with_context(|| format!("loading {model}"))?;
        Ok(autoprompt::lm::fill_mask(&lm, text, k, &device)?)
    }
    autoprompt::with_backend!(
        backend,
        B,
        device,
        Err(autoprompt::run::no_cuda().into()),
        on::<<B as burn::tensor::backend::AutodiffBackend>::InnerBackend>(model, text, k, device)
    )
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose, cli.quiet);
    match main_inner(cli) {
        Ok(code) => code,
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            if e.downcast_ref::<ConfigError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
