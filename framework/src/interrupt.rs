//! A request to stop, shared by every thread of a run: the CLI sets it from SIGINT / SIGTERM
//! (Slurm sends SIGTERM before SIGKILL at a time limit); the runner stops taking cells, a
//! search ends its current iteration, fine-tuning and the probe end their current epoch, and
//! an interrupted cell writes no record (its best-so-far prompt file, written atomically at
//! every improvement, stays). The library installs no handler itself.
//!
//! The loops do not read the process-wide flag themselves: they are handed a [`StopSignal`]
//! (the runner hands down [`StopSignal::process`]; tests and benchmarks make their own), so a
//! loop can be stopped, or run, without touching the rest of the process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

fn flag() -> &'static Arc<AtomicBool> {
    static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    STOP.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// The shared flag, for a signal handler to set (e.g. `signal_hook::flag::register`).
pub fn stop_flag() -> Arc<AtomicBool> {
    Arc::clone(flag())
}

/// A handle on a stop request, checked by a loop between units of work (a search iteration,
/// a fine-tuning or probe epoch).
#[derive(Debug, Clone)]
pub struct StopSignal(Arc<AtomicBool>);

impl StopSignal {
    /// The process-wide request the CLI's signal handlers set.
    pub fn process() -> Self {
        Self(stop_flag())
    }

    /// A request of its own, never set by signals (tests, benchmarks, library callers).
    pub fn new() -> Self {
        Self(Arc::new(AtomicBool::new(false)))
    }

    /// Asks whoever checks this handle to stop.
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was requested.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl Default for StopSignal {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_of_its_own_is_apart_from_the_process() {
        let own = StopSignal::new();
        let copy = own.clone();
        own.request();
        assert!(copy.requested(), "clones share the request");
        // Nothing in this crate's tests requests a stop of the process.
        assert!(
            !StopSignal::process().requested(),
            "the process is not asked to stop"
        );
    }
}
