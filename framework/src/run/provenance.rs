//! Provenance of a record: package version, git commit, file hashes (cached per process:
//! a model file is hashed once, not once per cell).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};

/// SHA-256 of a file, hex; cached for the life of the process.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(h) = cache.lock().expect("hash cache").get(path) {
        return Ok(h.clone());
    }
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let h = hex::encode(hasher.finalize());
    cache
        .lock()
        .expect("hash cache")
        .insert(path.to_owned(), h.clone());
    Ok(h)
}

/// Hashes of `files`, keyed by display path; unreadable files are recorded as such.
pub fn file_hashes<'a>(files: impl IntoIterator<Item = &'a PathBuf>) -> BTreeMap<String, String> {
    files
        .into_iter()
        .map(|p| {
            let h = sha256_file(p).unwrap_or_else(|e| format!("unreadable: {e}"));
            (p.display().to_string(), h)
        })
        .collect()
}

/// The git commit of the working directory, when it is a git checkout.
pub fn git_commit() -> Option<String> {
    static COMMIT: OnceLock<Option<String>> = OnceLock::new();
    COMMIT
        .get_or_init(|| {
            let out = std::process::Command::new("git")
                .args(["rev-parse", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .clone()
}
