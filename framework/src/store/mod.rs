//! The results store: one directory per experiment, one JSON record per finished cell.
//!
//! - Writes are atomic: temp file in the same directory, fsync, rename, fsync the directory.
//!   A reader never sees half a record; a killed writer leaves at most a temp file, which the
//!   next runner holding that cell's lock removes.
//! - A per-cell lock file (`locks/<id>.lock`, an OS advisory lock released when the process
//!   dies, even by `kill -9`) makes sure two runners never run the same cell.
//! - Resume: a cell whose record exists and parses (and did not fail) is finished.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::record::{Record, Status};

mod checkpoint;
mod predictions;
pub use checkpoint::FileCheckpoints;

/// Store errors; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A directory of the store that existed when the run started is gone (deleted, or its
    /// filesystem unmounted): nothing is written until someone looks.
    #[error("{}: the results directory disappeared during the run (deleted or unmounted?); nothing more is written", path.display())]
    Vanished { path: PathBuf },
    #[error("{}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}", path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: polars::prelude::PolarsError,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// State of a cell in the store.
#[derive(Debug, Clone, PartialEq)]
pub enum CellState {
    Finished(Box<Record>),
    Failed(Box<Record>),
    /// A record exists but does not parse (it will be re-run).
    Corrupt(String),
    Pending,
}

/// Who took a cell's lock, as its lock file says (written when the lock is taken).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    pub host: String,
    pub pid: u32,
    /// Seconds since the Unix epoch.
    pub since: u64,
}

impl LockHolder {
    fn this_process() -> Self {
        Self {
            host: this_host(),
            pid: std::process::id(),
            since: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split_whitespace();
        Some(Self {
            host: parts.next()?.to_string(),
            pid: parts.next()?.parse().ok()?,
            since: parts.next()?.parse().ok()?,
        })
    }
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} on {} since {}", self.pid, self.host, self.since)
    }
}

/// The host name (Linux: `/proc/sys/kernel/hostname`).
pub fn this_host() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// A cell lock another runner holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeldLock {
    /// Held by a live process of this host, or by a process of another host (which this
    /// host cannot check); `None` when the lock file names no holder.
    Held(Option<LockHolder>),
    /// Held, but by a process of this host that no longer exists: the filesystem kept a lock
    /// its owner can no longer release (shared filesystems' lock daemons can). `autoprompt
    /// unlock` breaks it.
    Stale(LockHolder),
}

/// A held cell lock; dropping it releases the lock.
#[derive(Debug)]
pub struct CellLock {
    _file: File,
}

/// The results directory of one experiment.
#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
}

impl Store {
    /// Opens (creating) `results_dir/<experiment>/`.
    pub fn open(results_dir: &Path, experiment: &str) -> Result<Self, StoreError> {
        let root = results_dir.join(experiment);
        for dir in ["cells", "locks", "prompts", "checkpoints", "progress"] {
            let d = root.join(dir);
            fs::create_dir_all(&d).map_err(io(&d))?;
        }
        Ok(Self { root })
    }

    pub fn record_path(&self, id: &str) -> PathBuf {
        self.root.join("cells").join(format!("{id}.json"))
    }

    /// Path of the best-so-far prompt of a running search.
    pub fn prompt_path(&self, id: &str) -> PathBuf {
        self.root.join("prompts").join(format!("{id}.best.json"))
    }

    /// Path of a running cell's checkpoint (see [`FileCheckpoints`]).
    pub fn checkpoint_path(&self, id: &str) -> PathBuf {
        self.root.join("checkpoints").join(format!("{id}.ckpt"))
    }

    /// Removes a cell's checkpoint (once its record is written, the state is of no use).
    pub fn remove_checkpoint(&self, id: &str) -> Result<(), StoreError> {
        remove_if_present(&self.checkpoint_path(id)).map(|_| ())
    }

    /// The heartbeat a running cell rewrites with its progress (`run::progress`).
    pub fn heartbeat_path(&self, id: &str) -> PathBuf {
        self.root.join("progress").join(format!("{id}.json"))
    }

    /// Removes a cell's heartbeat (its record is written, or a new attempt starts).
    pub fn remove_heartbeat(&self, id: &str) -> Result<(), StoreError> {
        remove_if_present(&self.heartbeat_path(id)).map(|_| ())
    }

    pub fn state(&self, id: &str) -> CellState {
        let path = self.record_path(id);
        let Ok(bytes) = fs::read(&path) else {
            return CellState::Pending;
        };
        match serde_json::from_slice::<Record>(&bytes) {
            Ok(r) if r.id == id && r.status == Status::Finished => CellState::Finished(Box::new(r)),
            Ok(r) if r.id == id => CellState::Failed(Box::new(r)),
            Ok(r) => CellState::Corrupt(format!("record holds cell {}", r.id)),
            Err(e) => CellState::Corrupt(e.to_string()),
        }
    }

    /// Tries to take the lock of a cell; `None` when another runner holds it.
    pub fn try_lock(&self, id: &str) -> Result<Option<CellLock>, StoreError> {
        self.still_there("locks")?;
        let path = self.lock_path(id);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| self.vanished_or(source, "locks", &path))?;
        match file.try_lock() {
            Ok(()) => {
                self.remove_stale_temps(id)?;
                // Who holds it, for `autoprompt status` and `unlock` (best effort: the lock
                // itself is the flock, not this text).
                let mut file = file;
                let holder = LockHolder::this_process();
                let _ = file.set_len(0).and_then(|()| {
                    writeln!(file, "{} {} {}", holder.host, holder.pid, holder.since)
                });
                Ok(Some(CellLock { _file: file }))
            }
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(StoreError::Io { path, source: e }),
        }
    }

    /// `source` (an error at `path`, in the store's directory `dir`) as
    /// [`StoreError::Vanished`] when that directory is gone, else as an I/O error naming `path`.
    fn vanished_or(&self, source: std::io::Error, dir: &str, path: &Path) -> StoreError {
        match self.still_there(dir) {
            Err(vanished) if source.kind() == std::io::ErrorKind::NotFound => vanished,
            _ => StoreError::Io {
                path: path.to_owned(),
                source,
            },
        }
    }

    /// An error when a directory [`Store::open`] made is gone.
    fn still_there(&self, dir: &str) -> Result<(), StoreError> {
        let path = self.root.join(dir);
        if path.is_dir() {
            Ok(())
        } else {
            Err(StoreError::Vanished { path })
        }
    }

    fn lock_path(&self, id: &str) -> PathBuf {
        self.root.join("locks").join(format!("{id}.lock"))
    }

    /// Whether another runner holds the cell's lock, and who (`None`: nobody does).
    ///
    /// The lock is an OS file lock (`flock`): the OS releases it when its process dies, so
    /// on a local filesystem a killed runner never leaves a lock behind. On a shared
    /// filesystem (NFS, as Slurm clusters use) lock semantics depend on the server: a lock
    /// can outlive its holder. A holder on this host that no longer runs is reported as
    /// [`HeldLock::Stale`]; one on another host is reported with its host and pid, for the
    /// user to check.
    pub fn held_lock(&self, id: &str) -> Result<Option<HeldLock>, StoreError> {
        let path = self.lock_path(id);
        let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) else {
            return Ok(None);
        };
        match file.try_lock() {
            Ok(()) => Ok(None),
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| LockHolder::parse(&t));
                Ok(Some(match holder {
                    Some(h)
                        if h.host == this_host()
                            && !Path::new(&format!("/proc/{}", h.pid)).exists() =>
                    {
                        HeldLock::Stale(h)
                    }
                    other => HeldLock::Held(other),
                }))
            }
            Err(fs::TryLockError::Error(e)) => Err(StoreError::Io { path, source: e }),
        }
    }

    /// Breaks a cell's lock by removing its lock file, so that the next runner locks a new
    /// one. The old holder, if it still runs, is not stopped and could write the record too:
    /// only for a lock whose holder is gone. Returns whether there was a lock file.
    pub fn break_lock(&self, id: &str) -> Result<bool, StoreError> {
        remove_if_present(&self.lock_path(id))
    }

    /// Removes temp files a killed writer of this cell left behind (call with the lock held).
    fn remove_stale_temps(&self, id: &str) -> Result<(), StoreError> {
        for dir in ["cells", "prompts", "checkpoints", "progress"] {
            let d = self.root.join(dir);
            let entries = fs::read_dir(&d).map_err(|source| self.vanished_or(source, dir, &d))?;
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(&format!(".{id}.")) && name.ends_with(".tmp") {
                    let p = entry.path();
                    fs::remove_file(&p).map_err(io(&p))?;
                }
            }
        }
        Ok(())
    }

    /// Writes a record atomically (the caller holds the cell's lock).
    pub fn write_record(&self, record: &Record) -> Result<PathBuf, StoreError> {
        // `write_atomic` would create a missing directory: a record written into a recreated
        // `cells/` beside nothing else would hide that the rest are gone.
        self.still_there("cells")?;
        // Predictions first: a record that exists has its predictions beside it.
        if let Some(predictions) = &record.predictions {
            Self::write_predictions_to(&self.predictions_path(&record.id), predictions)?;
        }
        let path = self.record_path(&record.id);
        let json = serde_json::to_vec_pretty(record).map_err(|source| StoreError::Json {
            path: path.clone(),
            source,
        })?;
        write_atomic(&path, &json)?;
        Ok(path)
    }

    /// All parseable records, sorted by id.
    pub fn records(&self) -> Result<Vec<Record>, StoreError> {
        let dir = self.root.join("cells");
        let mut out = vec![];
        let mut entries: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(io(&dir))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == "json")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        entries.sort();
        for path in entries {
            let bytes = fs::read(&path).map_err(io(&path))?;
            match serde_json::from_slice::<Record>(&bytes) {
                Ok(r) => out.push(r),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping unreadable record")
                }
            }
        }
        Ok(out)
    }
}

/// Removes a file; whether it was there (a missing file is not an error).
fn remove_if_present(path: &Path) -> Result<bool, StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StoreError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes `bytes` to `path` atomically: `.<name>.<pid>.tmp` beside it, fsync, rename, fsync dir.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io(dir))?;
    let name = path.file_name().expect("a file path").to_string_lossy();
    let stem = name.strip_suffix(".json").unwrap_or(&name);
    let tmp = dir.join(format!(".{stem}.{}.tmp", std::process::id()));
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    // A full disk or a file-size limit: no half-written temp file stays behind, and the
    // error names the file that could not be written (the target is untouched).
    if let Err(source) = written.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(StoreError::Io {
            path: path.to_owned(),
            source,
        });
    }
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_leaves_no_temp_and_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn second_lock_on_a_cell_is_refused_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "exp").unwrap();
        let first = store.try_lock("abc").unwrap();
        assert!(first.is_some());
        assert!(store.try_lock("abc").unwrap().is_none());
        drop(first);
        assert!(store.try_lock("abc").unwrap().is_some());
    }

    #[test]
    fn corrupt_record_is_reported_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "exp").unwrap();
        fs::write(store.record_path("abc"), b"{ not json").unwrap();
        assert!(matches!(store.state("abc"), CellState::Corrupt(_)));
        assert_eq!(store.state("def"), CellState::Pending);
    }
}
