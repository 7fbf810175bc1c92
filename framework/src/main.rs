//! The `autoprompt` command line: parses arguments, sets up logging, calls the library and
//! maps errors to exit codes (2: invalid input; 1: anything else failed).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

mod cli;
use cli::args::{Cli, Command};
use cli::subcommands;

use autoprompt::config::ConfigError;

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

/// The error and its causes, each once, joined by ": " ([`autoprompt::errors::Chain`]).
fn error_text(e: &anyhow::Error) -> String {
    autoprompt::errors::chain_text(e.as_ref())
}

/// Runs the subcommand; its errors are `main`'s to print and map to exit codes.
fn main_inner(cli: Cli, bars: Option<indicatif::MultiProgress>) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Plan(args) => subcommands::plan(args),
        Command::Run(args) => subcommands::run(args, bars),
        Command::Eval(args) => subcommands::eval(args),
        Command::Status(args) => subcommands::status(args),
        Command::Unlock(args) => subcommands::unlock(args),
        Command::Report(args) => subcommands::report(args),
        Command::PaperReport(args) => subcommands::paper_report(args),
        Command::Bench(command) => subcommands::bench(command),
        Command::Versus(args) => subcommands::versus(args),
        Command::Compare(args) => subcommands::compare(args),
        Command::FillMask(args) => subcommands::fill_mask(args),
    }
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
                || e.downcast_ref::<autoprompt::methods::label_words::LabelWordError>()
                    .is_some()
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
