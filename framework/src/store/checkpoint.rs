//! Checkpoint files: `checkpoints/<cell id>.ckpt`, one per running cell, the state of its
//! search or fine-tuning loop in MessagePack (binary: fine-tuning states hold weights and
//! optimizer moments), written atomically and deleted once the cell's record is written.
//!
//! A checkpoint belongs to its cell id, so a changed spec never resumes another's state;
//! it also records the package version and a format number, and a checkpoint of another
//! version (whose loop may compute differently) or one that does not decode is ignored with a
//! warning: the cell starts over.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::checkpoint::Checkpoints;

/// Bumped whenever a saved state's meaning changes. 2: the model's layers became an enum
/// (`Layer::PostNorm` / `Layer::PreNorm`), which changes fine-tuning's weight records.
const FORMAT: u32 = 2;

/// Why a checkpoint was not saved (logged; the cell goes on without it).
#[derive(Debug, thiserror::Error)]
enum SaveError {
    #[error("cannot encode the checkpoint")]
    Encode(#[source] rmp_serde::encode::Error),
    #[error(transparent)]
    Write(super::StoreError),
}

#[derive(Serialize, serde::Deserialize)]
struct Envelope<S> {
    format: u32,
    package_version: String,
    state: S,
}

/// Checkpoints of one cell in a file, saved at most every `every`.
#[derive(Debug)]
pub struct FileCheckpoints {
    path: PathBuf,
    every: Duration,
    last: Instant,
}

impl FileCheckpoints {
    /// Checkpoints at `path`, the first save due `every` after now.
    pub fn new(path: PathBuf, every: Duration) -> Self {
        Self {
            path,
            every,
            last: Instant::now(),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl<S: Serialize + DeserializeOwned> Checkpoints<S> for FileCheckpoints {
    fn resume(&mut self) -> Option<S> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "checkpoint unreadable; starting the cell over");
                return None;
            }
        };
        match rmp_serde::from_slice::<Envelope<S>>(&bytes) {
            Ok(e) if e.format == FORMAT && e.package_version == env!("CARGO_PKG_VERSION") => {
                Some(e.state)
            }
            Ok(e) => {
                tracing::warn!(path = %self.path.display(), format = e.format, version = %e.package_version, "checkpoint of another version; starting the cell over");
                None
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "checkpoint does not decode; starting the cell over");
                None
            }
        }
    }

    fn due(&self) -> bool {
        self.last.elapsed() >= self.every
    }

    fn save(&mut self, state: &S) {
        let envelope = Envelope {
            format: FORMAT,
            package_version: env!("CARGO_PKG_VERSION").to_string(),
            state,
        };
        let saved = rmp_serde::to_vec_named(&envelope)
            .map_err(SaveError::Encode)
            .and_then(|bytes| super::write_atomic(&self.path, &bytes).map_err(SaveError::Write));
        match saved {
            Ok(()) => tracing::debug!(path = %self.path.display(), "checkpoint saved"),
            Err(e) => {
                let error = crate::errors::Chain(&e);
                tracing::warn!(path = %self.path.display(), %error, "could not save a checkpoint")
            }
        }
        self.last = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_state_comes_back_and_garbage_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.ckpt");
        let mut c = FileCheckpoints::new(path.clone(), Duration::ZERO);
        assert!(Checkpoints::<Vec<f64>>::due(&c));
        assert_eq!(Checkpoints::<Vec<f64>>::resume(&mut c), None);
        c.save(&vec![1.0, f64::NEG_INFINITY]);
        assert_eq!(
            Checkpoints::<Vec<f64>>::resume(&mut c),
            Some(vec![1.0, f64::NEG_INFINITY])
        );
        std::fs::write(&path, b"\x93not a checkpoint").unwrap();
        assert_eq!(Checkpoints::<Vec<f64>>::resume(&mut c), None);
        let slow = FileCheckpoints::new(path, Duration::from_secs(3600));
        assert!(!Checkpoints::<Vec<f64>>::due(&slow));
    }
}
