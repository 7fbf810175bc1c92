//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The repository's own data directory (SST-2, SICK).
pub fn data_dir() -> PathBuf {
    repo().join("data")
}

/// The staged shared data (LAMA, LPAQA): `AUTOPROMPT_SHARED_DATA`, else `../shared/data`.
/// Tests that need it fail (not skip) when it is absent.
pub fn shared_data() -> PathBuf {
    let dir = std::env::var_os("AUTOPROMPT_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/data"));
    assert!(
        dir.join("lama/relations.jsonl").is_file(),
        "LAMA data not found at {} (set AUTOPROMPT_SHARED_DATA)",
        dir.display()
    );
    dir
}

/// The embedded model directory (fetched by `just setup`).
pub fn splade_tiny() -> PathBuf {
    let dir = repo().join("models/splade-tiny");
    assert!(
        dir.join("model.safetensors").is_file(),
        "SPLADE-tiny missing at {}: run `just setup`",
        dir.display()
    );
    dir
}

/// The `autoprompt` binary built for these tests.
/// Asserts that a command exited 0, showing its stderr when it did not.
pub fn assert_success(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_autoprompt"))
}

/// Writes `body` as an experiment file in `dir`, with data paths pointing at real data.
pub fn experiment(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let header = format!(
        "data_dir = {:?}\nresults_dir = {:?}\n",
        data_dir().display().to_string(),
        dir.join("results").display().to_string()
    );
    std::fs::write(&path, format!("{header}{body}")).unwrap();
    path
}
