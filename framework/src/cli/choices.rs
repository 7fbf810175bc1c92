//! Command-line spellings of the library's enums and the bench workload: the library
//! derives no clap types (ARCHITECTURE.md), so the CLI keeps these mirrors and converts.
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
    /// Whether logs (on stderr) are coloured.
    Color => autoprompt::colour::ColorChoice {
        /// When stderr is a terminal and NO_COLOR is not set.
        Auto,
        /// Always (even into a file; overrides NO_COLOR).
        Always,
        /// Never.
        Never,
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
    /// The metric that decides between candidates.
    SelectBy => autoprompt::search::SelectBy {
        /// Accuracy / P@1.
        Accuracy,
        /// Mean gold log-likelihood.
        LogLikelihood,
    }
);
mirror!(
    /// How a label word of several tokens is scored.
    FillOrder => autoprompt::search::FillOrder {
        /// One pass, every mask open.
        Independent,
        /// One pass per token, left to right.
        LeftToRight,
        /// Most confident mask first.
        Confidence,
    }
);
mirror!(
    /// A split of a task.
    Split => autoprompt::methods::SplitName { Train, Dev, Test }
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
    /// Score every candidate on every row (turn off the search's exact pruning).
    #[arg(long)]
    pub no_prune: bool,
    /// The metric candidates are compared by.
    #[arg(long, value_enum, default_value = "accuracy")]
    pub select_by: SelectBy,
    /// Label words of two tokens ("very bad" / "very good") scored this way, instead of the
    /// single tokens "terrible" / "great".
    #[arg(long, value_enum)]
    pub multi_token: Option<FillOrder>,
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
            prune: !b.no_prune,
            select_by: b.select_by.into(),
            multi_token: b
                .multi_token
                .map(|strategy| autoprompt::search::MultiToken {
                    strategy: strategy.into(),
                    normalize: Default::default(),
                }),
        }
    }
}
