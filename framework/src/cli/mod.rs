//! The command line's parts: its arguments ([`args`]), the clap mirrors of the library's
//! enums ([`choices`]), one function per subcommand ([`subcommands`]), what subcommands do
//! beyond one library call ([`commands`]) and log lines that leave progress bars whole
//! ([`log_writer`]).

pub mod args;
pub mod choices;
pub mod commands;
pub mod log_writer;
pub mod subcommands;
