//! The command line's parts: its arguments ([`args`]), the clap mirrors of the library's
//! enums ([`choices`]) and what subcommands do beyond one library call ([`commands`]).

pub mod args;
pub mod choices;
pub mod commands;
