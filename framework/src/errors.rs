//! How an error is shown: its message, then each of its causes (`source()`), joined by
//! ": ". The crate's error types keep their causes as `#[source]` and never repeat a
//! cause's text in their own message, so the chain shows every message once.

use std::error::Error;
use std::fmt;

/// Marks a nested key path inside a serde error message: `\u{1}path\u{1}message`. A spec
/// deserialised by hand (`config::MethodSpec`, `tasks::TaskSpec`) reports a key inside it
/// this way; the planner splits it off and appends it to the key it reports.
pub const NESTED_PATH: char = '\u{1}';

/// An error and its causes, displayed as `message: cause: cause's cause`.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// The text of [`Chain`]: what the CLI prints after `error: `, and what a failed cell's
/// record keeps.
pub fn chain_text(e: &(dyn Error + 'static)) -> String {
    Chain(e).to_string()
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::path::PathBuf;

    use super::*;
    use crate::report::ReportError;
    use crate::report::plot::PlotError;

    #[test]
    fn the_source_is_reachable_and_each_message_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "read-only disk");
        let plot = PlotError::Io {
            path: PathBuf::from("/r/curve.png"),
            source: io,
        };
        // ReportError shows a plot error transparently: its source is the plot's source.
        let err = ReportError::from(plot);
        let cause = err.source().expect("the io error is the source");
        assert_eq!(
            cause.downcast_ref::<std::io::Error>().map(|e| e.kind()),
            Some(std::io::ErrorKind::PermissionDenied)
        );
        let text = chain_text(&err);
        assert_eq!(text, "plot /r/curve.png: read-only disk");
        for part in ["plot /r/curve.png", "read-only disk"] {
            assert_eq!(text.matches(part).count(), 1, "{text}");
        }
        // Through anyhow, as the CLI prints it.
        let any = anyhow::Error::from(err).context("report");
        assert_eq!(
            chain_text(any.as_ref()),
            "report: plot /r/curve.png: read-only disk"
        );
    }
}
