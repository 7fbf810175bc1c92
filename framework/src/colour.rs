//! Whether output gets ANSI colour: one decision, made once by the CLI for its logs (and
//! for anything else it draws on stderr, such as progress bars), from `--color`, whether the
//! stream is a terminal, and `NO_COLOR` (<https://no-color.org>).

use std::ffi::OsStr;

/// The `--color` setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ColorChoice {
    /// Colour when the stream is a terminal and `NO_COLOR` is unset or empty (default).
    #[default]
    Auto,
    /// Always colour (overrides `NO_COLOR`, as a per-invocation flag should).
    Always,
    /// Never colour.
    Never,
}

/// Whether to colour a stream: `is_terminal` says whether it is one, `no_color` is the
/// value of `NO_COLOR` (any non-empty value turns colour off under `Auto`).
///
/// ```
/// use autoprompt::colour::{ColorChoice, use_colour};
/// assert!(!use_colour(ColorChoice::Auto, false, None)); // a log file, a pipe
/// assert!(use_colour(ColorChoice::Auto, true, None));
/// assert!(!use_colour(ColorChoice::Auto, true, Some("1".as_ref())));
/// assert!(use_colour(ColorChoice::Always, false, Some("1".as_ref())));
/// ```
pub fn use_colour(choice: ColorChoice, is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => is_terminal && no_color.is_none_or(OsStr::is_empty),
    }
}

/// [`use_colour`] for this process's stderr and environment.
pub fn use_colour_on_stderr(choice: ColorChoice) -> bool {
    use std::io::IsTerminal;
    use_colour(
        choice,
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color_unless_forced() {
        let set = Some(OsStr::new("1"));
        let empty = Some(OsStr::new(""));
        for (choice, terminal, no_color, expected) in [
            (ColorChoice::Auto, true, None, true),
            (ColorChoice::Auto, true, empty, true),
            (ColorChoice::Auto, true, set, false),
            (ColorChoice::Auto, false, None, false),
            (ColorChoice::Auto, false, set, false),
            (ColorChoice::Always, false, None, true),
            (ColorChoice::Always, true, set, true),
            (ColorChoice::Never, true, None, false),
            (ColorChoice::Never, false, None, false),
        ] {
            assert_eq!(
                use_colour(choice, terminal, no_color),
                expected,
                "{choice:?}, terminal {terminal}, NO_COLOR {no_color:?}"
            );
        }
    }
}
