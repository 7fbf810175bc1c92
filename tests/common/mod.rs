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
    task_spec_with(kind, train, dev, serde_json::json!({}))
}

/// A task spec with the given budget and `keys` (as a `[task]` table writes them), read as
/// an experiment's task is.
pub fn task_spec_with(
    kind: autoprompt::tasks::TaskKind,
    train: usize,
    dev: usize,
    keys: serde_json::Value,
) -> autoprompt::tasks::TaskSpec {
    let mut task = serde_json::json!({ "kind": kind, "train_size": train, "dev_size": dev });
    let task_keys = task.as_object_mut().unwrap();
    task_keys.extend(keys.as_object().expect("keys are a table").clone());
    serde_json::from_value(task.clone()).unwrap_or_else(|e| panic!("{task}: {e}"))
}

/// `spec` with `keys` set, read again.
pub fn task_with(
    spec: &autoprompt::tasks::TaskSpec,
    keys: serde_json::Value,
) -> autoprompt::tasks::TaskSpec {
    let mut task = serde_json::to_value(spec).unwrap();
    let task_keys = task.as_object_mut().unwrap();
    task_keys.extend(keys.as_object().expect("keys are a table").clone());
    serde_json::from_value(task.clone()).unwrap_or_else(|e| panic!("{task}: {e}"))
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
    let text = |e: autoprompt::config::ConfigError| autoprompt::errors::chain_text(&e);
    let experiment = autoprompt::config::load(file, set).map_err(text)?;
    let cells = autoprompt::plan::plan(&experiment).map_err(text)?;
    Ok((experiment, cells))
}

/// The binary, run from the repository root (a test's own paths are absolute).
pub fn cli() -> std::process::Command {
    let mut cmd = std::process::Command::new(bin());
    cmd.current_dir(repo());
    cmd
}

/// `autoprompt run <file>` from the repository root.
pub fn run_cmd(file: &Path) -> std::process::Command {
    let mut cmd = cli();
    cmd.arg("run").arg(file);
    cmd
}

/// Asserts that `err` contains every one of `parts`.
pub fn assert_has(err: &str, parts: &[&str]) {
    for p in parts {
        assert!(err.contains(p), "expected `{p}` in: {err}");
    }
}

/// The `parts` that `err` does not contain (empty: it has them all).
pub fn missing_parts<'a>(err: &str, parts: &[&'a str]) -> Vec<&'a str> {
    parts.iter().copied().filter(|p| !err.contains(p)).collect()
}

/// Polls `condition` every 10 ms until it holds; panics with `what` after `timeout`.
pub fn wait_until(timeout: std::time::Duration, what: &str, condition: impl FnMut() -> bool) {
    wait_until_every(
        timeout,
        std::time::Duration::from_millis(10),
        what,
        condition,
    );
}

/// [`wait_until`] polling every `every` (for a condition that is costly to check, such as
/// a call to `squeue`).
pub fn wait_until_every(
    timeout: std::time::Duration,
    every: std::time::Duration,
    what: &str,
    mut condition: impl FnMut() -> bool,
) {
    let start = std::time::Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(every);
    }
}

/// Forty quick majority cells (8 train sizes × 5 seeds) on SICK-E.
pub const MANY_CELLS: &str = "[task]\nkind = \"sick_e\"\ntrain_size = 10\ndev_size = 10\n[method]\nkind = \"majority\"\n[grid]\n\"task.train_size\" = [10, 20, 30, 40, 50, 60, 70, 80]\nseeds = [0, 1, 2, 3, 4]\n";

/// The record files of experiment `name` under the results directory `results` with their
/// bytes, sorted by path (so by cell id); none when the directory does not exist.
pub fn record_files(results: &Path, name: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let cells = results.join(name).join("cells");
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&cells)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .map(|p| {
                    let bytes = std::fs::read(&p).unwrap();
                    (p, bytes)
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// [`record_files`] parsed: every record of the experiment with its path, sorted by path
/// (so by cell id); a file that does not parse panics naming it.
pub fn records(results: &Path, name: &str) -> Vec<(PathBuf, autoprompt::record::Record)> {
    record_files(results, name)
        .into_iter()
        .map(|(p, bytes)| {
            let record =
                serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, record)
        })
        .collect()
}

/// Every `*.tmp` file under `dir`, at any depth.
pub fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else if e.file_name().to_string_lossy().ends_with(".tmp") {
                out.push(e.path());
            }
        }
    }
    out
}

/// Waits (up to two minutes) until the experiment, its results under `dir/results`, has at
/// least `n` records.
pub fn wait_for_records(dir: &Path, name: &str, n: usize) {
    let results = dir.join("results");
    wait_until_every(
        std::time::Duration::from_secs(120),
        std::time::Duration::from_millis(2),
        "records to appear",
        || record_files(&results, name).len() >= n,
    );
}

/// The largest absolute difference between two equally long vectors.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
