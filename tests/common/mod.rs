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

/// A task spec with the given budget and every option at its default.
pub fn task_spec(
    kind: autoprompt::tasks::TaskKind,
    train: usize,
    dev: usize,
) -> autoprompt::tasks::TaskSpec {
    use std::num::NonZeroUsize;
    autoprompt::tasks::TaskSpec::new(
        kind,
        NonZeroUsize::new(train).unwrap(),
        NonZeroUsize::new(dev).unwrap(),
    )
}

/// SST-2 from the repository's data with a `train` / `dev` budget.
pub fn sst2(train: usize, dev: usize, seed: u64) -> autoprompt::tasks::TaskData {
    let paths = autoprompt::tasks::DataPaths {
        data_dir: data_dir(),
        lama_dir: "unused".into(),
        lpaqa_dir: "unused".into(),
    };
    let spec = task_spec(autoprompt::tasks::TaskKind::Sst2, train, dev);
    autoprompt::tasks::load(&spec, &paths, seed).unwrap()
}

/// One row of `reports/reliability.md` (`just reliability` collects these lines from the
/// tests' output): the fault, what is promised, what this run observed, and the test.
pub fn reliability(fault: &str, promise: &str, observed: &str, test: &str) {
    eprintln!("reliability | {fault} | {promise} | {observed} | `{test}`");
}

/// Every shipped experiment file (`experiments/**.toml`), sorted.
pub fn shipped_experiments() -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![repo().join("experiments")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Loads and plans an experiment with `--set` overrides; an error as its message.
pub fn load_and_plan(
    file: &Path,
    set: &[String],
) -> Result<(autoprompt::config::Experiment, Vec<autoprompt::plan::Cell>), String> {
    let experiment = autoprompt::config::load(file, set).map_err(|e| e.to_string())?;
    let cells = autoprompt::plan::plan(&experiment).map_err(|e| e.to_string())?;
    Ok((experiment, cells))
}
