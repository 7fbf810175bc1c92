//! The command line's arguments (clap derive types); the library knows none of them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use autoprompt::run;

use super::choices;

#[derive(Parser)]
#[command(name = "autoprompt", version, about = "AutoPrompt experiments on masked language models", long_about = None)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Colour in the logs: `auto` (only when stderr is a terminal and NO_COLOR is unset),
    /// `always` or `never`.
    #[arg(long, value_enum, default_value = "auto", global = true)]
    pub color: choices::Color,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone)]
pub struct ExperimentArgs {
    /// Experiment file (TOML).
    pub file: PathBuf,
    /// Override a key: `--set task.train_size=100` (value parsed as TOML; bare words are strings).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Print the cells of an experiment: id, status and grid values.
    #[command(
        after_help = "Examples:\n  autoprompt plan experiments/sst2_lowres.toml\n  autoprompt plan experiments/lama.toml --set task.relation=P19"
    )]
    Plan(ExperimentArgs),
    /// Run the cells of an experiment that have no record yet (resumable).
    #[command(
        after_help = "Examples:\n  autoprompt run experiments/sst2_lowres.toml\n  autoprompt run experiments/sst2_lowres.toml --only 3fa2 --set method.search.iters=5\n  autoprompt run experiments/sst2.toml --dry-run\n  AUTOPROMPT_DATA_DIR=../shared/data autoprompt run experiments/lama.toml --jobs 2"
    )]
    Run(RunArgs),
    /// Re-evaluate a saved prompt (a cell record or a best-so-far prompt) on a split.
    #[command(
        after_help = "Examples:\n  autoprompt eval experiments/sst2_lowres.toml --prompt results/sst2_lowres/cells/3fa2....json --split test\n  autoprompt eval experiments/lama.toml --prompt results/lama/prompts/9b1c....best.json --split dev"
    )]
    Eval(EvalArgs),
    /// Finished / failed / pending / running cells (from the store, and squeue when a Slurm job is known).
    #[command(after_help = "Examples:\n  autoprompt status experiments/sst2_lowres.toml")]
    Status(ExperimentArgs),
    /// Break the locks of cells whose runner is gone (shared filesystems can keep a lock after
    /// its process died); a lock held by a live process, or by one on another host, needs --force.
    #[command(
        after_help = "Examples:\n  autoprompt unlock experiments/sst2_lowres.toml\n  autoprompt unlock experiments/sst2_lowres.toml --cell 3fa2c1d0 --force"
    )]
    Unlock(UnlockArgs),
    /// Aggregate the records of an experiment into tables (parquet, CSV) and reports/<name>.md.
    #[command(after_help = "Examples:\n  autoprompt report experiments/sst2_lowres.toml")]
    Report(ReportArgs),
    /// The paper's tables next to ours: reports/paper/*.toml (published numbers) joined with
    /// the records of the experiments in experiments/paper/, written to reports/paper.md.
    #[command(
        after_help = "Examples:\n  autoprompt paper-report experiments/paper\n  just reproduce --set model.source=splade-tiny"
    )]
    PaperReport(PaperReportArgs),
    /// Compare an experiment's summary with a stored baseline (nightly regression check).
    #[command(
        after_help = "Examples:\n  autoprompt compare experiments/nightly.toml\n  autoprompt compare experiments/nightly.toml --update-baseline --reason \"new tokenizer handling\""
    )]
    Compare(CompareArgs),
    /// Is method A better than method B? Paired differences over the seeds both ran, per
    /// setting (task, budget, model), from the experiment's records.
    #[command(
        after_help = "Examples:\n  autoprompt versus experiments/sst2_lowres.toml --a autoprompt --b manual\n  autoprompt versus experiments/sst2_lowres.toml --a finetune --b linear_probe --metric accuracy --metric dev_accuracy"
    )]
    Versus(VersusArgs),
    /// Speed measurements through the project's code path (used by `just bench`); prints JSON.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Predict the masked tokens of a sentence: the quickest check that a model loads right.
    #[command(
        after_help = "Examples:\n  autoprompt fill-mask --model splade-tiny \"paris is the capital of [MASK] .\"\n  autoprompt fill-mask --model roberta-large \"The movie was <mask>.\" --top-k 5"
    )]
    FillMask(FillMaskArgs),
}

// Each subcommand's arguments. No `///` on these structs: clap would take it for the
// subcommand's summary, which is the doc comment on its `Command` variant.

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub experiment: ExperimentArgs,
    /// Run only cells whose id starts with this (repeatable).
    #[arg(long)]
    pub only: Vec<String>,
    /// Print what would run, run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Cells to run in parallel.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Backend (overrides the experiment's `backend`).
    #[arg(long, value_enum)]
    pub backend: Option<choices::Backend>,
    /// Where cells run (overrides `[launcher] kind`).
    #[arg(long, value_enum)]
    pub launcher: Option<choices::Launcher>,
    /// Extra sbatch argument (repeatable), e.g. `--slurm-arg=--gres=gpu:1`.
    #[arg(long = "slurm-arg", allow_hyphen_values = true)]
    pub slurm_args: Vec<String>,
    /// Slurm array tasks running at once.
    #[arg(long)]
    pub max_parallel: Option<usize>,
    /// Run only the cell with this plan index (what each Slurm array task runs).
    #[arg(long)]
    pub cell_index: Option<usize>,
    /// Run only the cells with index % N == I, as `I/N` (any other scheduler).
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// Skip a failed cell once it has failed this many times.
    #[arg(long, default_value_t = run::DEFAULT_MAX_ATTEMPTS)]
    pub max_attempts: u32,
    /// Run failed cells again whatever their attempt count.
    #[arg(long)]
    pub retry_failed: bool,
}

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub experiment: ExperimentArgs,
    /// `results/<name>/cells/<id>.json` or `results/<name>/prompts/<id>.best.json`.
    #[arg(long)]
    pub prompt: PathBuf,
    #[arg(long, value_enum, default_value = "test")]
    pub split: choices::Split,
    /// The cell to apply the prompt to (default: the record's own cell, the cell a
    /// `prompts/<id>.best.json` is named after, or the experiment's only cell). A prompt
    /// applies to any cell whose model has the vocabulary it was made with.
    #[arg(long)]
    pub cell: Option<String>,
    /// Also write the predictions on the split (Parquet, as `results/<name>/predictions/<id>.parquet`).
    #[arg(long, value_name = "FILE")]
    pub predictions: Option<PathBuf>,
}

#[derive(Args)]
pub struct UnlockArgs {
    #[command(flatten)]
    pub experiment: ExperimentArgs,
    /// Only these cells (id or id prefix; repeatable). Default: every cell.
    #[arg(long)]
    pub cell: Vec<String>,
    /// Also break locks whose holder may be alive (another host, or a live process here).
    #[arg(long)]
    pub force: bool,
}

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub experiment: ExperimentArgs,
    /// Also plot each method's paired Δ against this method over the training sizes, shaded
    /// with its t 95% interval (reports/<name>_delta.png).
    #[arg(long, value_name = "METHOD")]
    pub delta_against: Option<String>,
}

#[derive(Args)]
pub struct PaperReportArgs {
    /// Directory of the experiments that reproduce the tables.
    #[arg(default_value = "experiments/paper")]
    pub experiments: PathBuf,
    /// Directory of the transcribed paper tables.
    #[arg(long, default_value = "reports/paper")]
    pub tables: PathBuf,
    #[arg(long, default_value = "reports/paper.md")]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct CompareArgs {
    #[command(flatten)]
    pub experiment: ExperimentArgs,
    /// Baseline directory (summary.csv + environment.json).
    #[arg(long, default_value = "results/baselines/nightly")]
    pub baseline: PathBuf,
    /// Where the comparison table goes.
    #[arg(long, default_value = "reports/nightly.md")]
    pub out: PathBuf,
    /// Allowed drop in baseline seed sds.
    #[arg(long, default_value_t = 3.0)]
    pub sd_factor: f64,
    /// Smallest allowed drop.
    #[arg(long, default_value_t = 0.02)]
    pub floor: f64,
    /// Largest allowed slow-down of a search iteration.
    #[arg(long, default_value_t = 1.5)]
    pub time_ratio: f64,
    /// Replace the baseline with the current summary (deliberately; give --reason).
    #[arg(long, requires = "reason")]
    pub update_baseline: bool,
    /// Why the baseline changes (recorded in its environment.json).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Args)]
pub struct VersusArgs {
    #[command(flatten)]
    pub experiment: ExperimentArgs,
    /// The first method (Δ = a − b): a method name (`autoprompt`) or its label in the
    /// report's tables (`autoprompt (iters=15)`).
    #[arg(long)]
    pub a: String,
    /// The second method.
    #[arg(long)]
    pub b: String,
    /// Metrics to compare (repeatable; default: every metric both report).
    #[arg(long)]
    pub metric: Vec<autoprompt::metric::Metric>,
}

#[derive(Args)]
pub struct FillMaskArgs {
    /// A model directory, a Hugging Face hub id, or `splade-tiny`.
    #[arg(long, default_value = autoprompt::lm::EMBEDDED_MODEL)]
    pub model: String,
    /// Predictions per mask.
    #[arg(long, default_value_t = 10)]
    pub top_k: usize,
    #[arg(long, value_enum, default_value = "ndarray")]
    pub backend: choices::Backend,
    /// Refuse a checkpoint with tensors the model does not use (extra task heads)
    /// instead of skipping them with a warning.
    #[arg(long)]
    pub strict: bool,
    /// Text with one or more `[MASK]` (or the model's own mask token).
    pub text: String,
}

#[derive(Subcommand)]
pub enum BenchCommand {
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
        /// Time the trigger-gradient pass instead (forward, head at the last token, backward
        /// to the input embeddings; host engine only).
        #[arg(long)]
        gradient: bool,
    },
}

pub fn parse_shard(text: &str) -> Result<(usize, usize), String> {
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
