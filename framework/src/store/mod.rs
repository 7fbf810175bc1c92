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

/// Store errors; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
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
        for dir in ["cells", "locks", "prompts"] {
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
        let path = self.root.join("locks").join(format!("{id}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => {
                self.remove_stale_temps(id)?;
                Ok(Some(CellLock { _file: file }))
            }
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(StoreError::Io { path, source: e }),
        }
    }

    /// Removes temp files a killed writer of this cell left behind (call with the lock held).
    fn remove_stale_temps(&self, id: &str) -> Result<(), StoreError> {
        for dir in ["cells", "prompts"] {
            let d = self.root.join(dir);
            let entries = fs::read_dir(&d).map_err(io(&d))?;
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
