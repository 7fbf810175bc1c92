//! The Slurm launcher against a real single-node Slurm (started by `tests/slurm/start.sh`).
//! Ignored by plain `cargo test`; `just test-slurm` (run by CI) starts Slurm and runs them.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use autoprompt::progress::Stage;
use autoprompt::record::{Record, Status};
use autoprompt::run::progress::Heartbeat;

/// Runs the CLI in `dir` (a test's temp dir): Slurm jobs run where they were submitted, and
/// the report job writes `reports/<name>.md` there, not into the repository. The embedded
/// model is found through `AUTOPROMPT_MODELS_DIR`, which sbatch passes on to the jobs.
fn autoprompt(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(common::bin())
        .args(args)
        .current_dir(dir)
        .env("AUTOPROMPT_MODELS_DIR", common::repo().join("models"))
        .output()
        .unwrap()
}

fn jobs(results: &Path, name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(results.join(name).join("slurm/jobs.json")).unwrap())
        .unwrap()
}

/// Waits until none of `ids` is pending or running (asking squeue every 500 ms).
fn wait_for(ids: &[&str], timeout: Duration) {
    common::wait_until_every(
        timeout,
        Duration::from_millis(500),
        &format!("jobs {ids:?} to leave the queue"),
        || {
            let out = Command::new("squeue")
                .args(["-h", "-j", &ids.join(","), "-o", "%T"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().is_empty()
        },
    );
}

/// The experiment's records, sorted by cell id.
fn records(results: &Path, name: &str) -> Vec<Record> {
    common::records(results, name)
        .into_iter()
        .map(|(_, record)| record)
        .collect()
}

fn submit(file: &Path) -> (String, String) {
    let dir = file.parent().expect("an experiment file has a directory");
    let out = autoprompt(dir, &["run", file.to_str().unwrap(), "--launcher", "slurm"]);
    common::assert_success(&out);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.contains("submitted array job"), "{stdout}");
    let dir = file.parent().unwrap().join("results");
    let name = file.file_stem().unwrap().to_str().unwrap();
    let j = jobs(&dir, name);
    (
        j["array_job"].as_str().unwrap().to_string(),
        j["report_job"].as_str().unwrap().to_string(),
    )
}

// The file itself asks for Slurm: array tasks must still run their cell locally.
const SMALL: &str = r#"
[launcher]
kind = "slurm"
max_parallel = 2

[[grid]]
seeds = [0, 1, 2]
task = [{ kind = "sst2", train_size = 10, dev_size = 10, test_size = 40 }]
method = [{ kind = "majority" }]

[[grid]]
seeds = [0]
task = [{ kind = "sst2", train_size = 16, dev_size = 16, test_size = 32 }]
method = [{ kind = "autoprompt", template = "[CLS] {sentence} [T] [P] . [SEP]", labels = { "0" = ["terrible"], "1" = ["great"] }, search = { iters = 2, accumulation_steps = 1, batch_size = 8, num_candidates = 3 } }]
"#;

#[test]
#[ignore = "needs a running Slurm: run `just test-slurm`"]
fn array_records_match_an_in_process_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::experiment(dir.path(), "slurm_small", SMALL);
    let (array, report) = submit(&file);
    wait_for(&[&array, &report], Duration::from_secs(300));
    let from_slurm = records(&dir.path().join("results"), "slurm_small");
    assert_eq!(from_slurm.len(), 4);
    assert!(
        from_slurm.iter().all(|r| r.status == Status::Finished),
        "{from_slurm:?}"
    );
    assert!(
        dir.path().join("results/slurm_small/summary.csv").is_file(),
        "the afterany report job ran"
    );
    let local = dir.path().join("local");
    let out = autoprompt(
        dir.path(),
        &[
            "run",
            file.to_str().unwrap(),
            "--launcher",
            "local",
            "--set",
            &format!("results_dir=\"{}\"", local.display()),
        ],
    );
    common::assert_success(&out);
    let in_process = records(&local, "slurm_small");
    for (a, b) in from_slurm.iter().zip(&in_process) {
        assert_eq!(a.id, b.id);
        assert_eq!(a.metrics, b.metrics, "cell {}", a.id);
        assert_eq!(a.prompt, b.prompt, "cell {}", a.id);
    }
}

/// The manual cell fails when it runs: its label names are not the task's classes (label
/// words themselves are checked before any cell runs, which would stop the submission).
#[test]
#[ignore = "needs a running Slurm: run `just test-slurm`"]
fn failed_cell_is_recorded_and_resubmitted_alone() {
    let dir = tempfile::tempdir().unwrap();
    let body = r#"
[task]
kind = "sst2"
train_size = 10
dev_size = 10
test_size = 20
[grid]
method = [
  { kind = "majority" },
  { kind = "manual", template = "[CLS] {sentence} it was [P] . [SEP]", labels = { "0" = ["terrible"], "xqzvwy" = ["great"] } },
]
"#;
    let file = common::experiment(dir.path(), "slurm_fail", body);
    let (array, report) = submit(&file);
    wait_for(&[&array, &report], Duration::from_secs(300));
    let recs = records(&dir.path().join("results"), "slurm_fail");
    assert_eq!(recs.len(), 2);
    let failed: Vec<&Record> = recs.iter().filter(|r| r.status == Status::Failed).collect();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].error.as_deref().unwrap().contains("xqzvwy"),
        "{:?}",
        failed[0].error
    );
    let status = autoprompt(dir.path(), &["status", file.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("1 failed"),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    let (array2, report2) = submit(&file);
    let j = jobs(&dir.path().join("results"), "slurm_fail");
    assert_eq!(
        j["cells"].as_array().unwrap().len(),
        1,
        "only the failed cell is resubmitted: {j}"
    );
    assert_eq!(j["cells"][0].as_u64().unwrap() as usize, failed[0].index);
    wait_for(&[&array2, &report2], Duration::from_secs(300));
}

#[test]
#[ignore = "needs a running Slurm: run `just test-slurm`"]
fn scancel_leaves_no_partial_records() {
    let dir = tempfile::tempdir().unwrap();
    let body = r#"
[task]
kind = "sst2"
train_size = 200
dev_size = 100
[method]
kind = "autoprompt"
template = "[CLS] {sentence} [T] [T] [P] . [SEP]"
labels = { "0" = ["terrible"], "1" = ["great"] }
search = { iters = 1000 }
[grid]
seeds = [0, 1]
"#;
    let file = common::experiment(dir.path(), "slurm_cancel", body);
    let (array, report) = submit(&file);
    common::wait_until_every(
        Duration::from_secs(120),
        Duration::from_millis(300),
        "the array to start",
        || {
            let out = Command::new("squeue")
                .args(["-h", "-j", &array, "-t", "RUNNING", "-o", "%i"])
                .output()
                .unwrap();
            !String::from_utf8_lossy(&out.stdout).trim().is_empty()
        },
    );
    // Cancelled mid-search: once a cell's heartbeat says its search loop is running.
    let progress = dir.path().join("results/slurm_cancel/progress");
    common::wait_until(Duration::from_secs(120), "a running search", || {
        std::fs::read_dir(&progress).is_ok_and(|d| {
            d.flatten().any(|e| {
                std::fs::read(e.path())
                    .ok()
                    .and_then(|bytes| serde_json::from_slice::<Heartbeat>(&bytes).ok())
                    .is_some_and(|h| matches!(h.stage, Stage::Search { .. }))
            })
        })
    });
    assert!(
        Command::new("scancel")
            .arg(&array)
            .status()
            .unwrap()
            .success()
    );
    wait_for(&[&array, &report], Duration::from_secs(120));
    let cells = dir.path().join("results/slurm_cancel/cells");
    let leftovers: Vec<_> = std::fs::read_dir(&cells)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        leftovers.is_empty(),
        "cancelled cells left files: {leftovers:?}"
    );
    assert!(records(&dir.path().join("results"), "slurm_cancel").is_empty());
}
