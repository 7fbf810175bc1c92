//! Log lines on stderr that do not garble progress bars: while bars are drawn, each line is
//! written with the bars cleared (`MultiProgress::suspend`) and the bars are drawn again below
//! it. Without bars (stderr is not a terminal) lines go straight to stderr.

use std::io::Write;

use indicatif::MultiProgress;
use tracing_subscriber::fmt::MakeWriter;

/// Makes one writer per log event (tracing formats the whole line into it).
#[derive(Clone)]
pub struct BarSafeStderr {
    pub bars: Option<MultiProgress>,
}

/// Collects one event's line; writes it out when dropped.
pub struct LineWriter {
    bars: Option<MultiProgress>,
    line: Vec<u8>,
}

impl<'a> MakeWriter<'a> for BarSafeStderr {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            bars: self.bars.clone(),
            line: Vec::with_capacity(256),
        }
    }
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let line = std::mem::take(&mut self.line);
        let write = || {
            // A log line that cannot be written has nowhere else to go.
            let _ = std::io::stderr().lock().write_all(&line);
        };
        match &self.bars {
            Some(bars) => bars.suspend(write),
            None => write(),
        }
    }
}
