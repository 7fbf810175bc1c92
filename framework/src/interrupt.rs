//! A request to stop, shared by every thread of a run: the CLI sets it from SIGINT / SIGTERM
//! (Slurm sends SIGTERM before SIGKILL at a time limit); the runner stops taking cells, a
//! search ends its current iteration, fine-tuning and the probe end their current epoch, and
//! an interrupted cell writes no record (its best-so-far prompt file, written atomically at
//! every improvement, stays). The library installs no handler itself.

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

/// Asks every running cell to stop at its next check.
pub fn request_stop() {
    flag().store(true, Ordering::SeqCst);
}

/// Whether a stop was requested.
pub fn stop_requested() -> bool {
    flag().load(Ordering::SeqCst)
}
