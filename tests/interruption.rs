//! Runs that stop before they finish and the run after them: `kill -9` of a sweep and of
//! long cells (resumed from checkpoints), SIGTERM / SIGINT, a corrupt record, a cell that
//! always fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use autoprompt::progress::Stage;
use autoprompt::run::progress::Heartbeat;

#[test]
fn kill_dash_nine_then_resume_keeps_finished_records() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::experiment(dir.path(), "resume", common::MANY_CELLS);
    let mut child = common::run_cmd(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_for_records(dir.path(), "resume", 3);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = common::record_files(&dir.path().join("results"), "resume");
    assert!(
        before.len() < 40,
        "the run finished before it could be killed ({} records)",
        before.len()
    );
    let out = common::run_cmd(&file).output().unwrap();
    common::assert_success(&out);
    let after = common::record_files(&dir.path().join("results"), "resume");
    assert_eq!(after.len(), 40);
    for (path, bytes) in &before {
        let now = after.iter().find(|(p, _)| p == path).expect("record kept");
        assert_eq!(&now.1, bytes, "{} changed on resume", path.display());
    }
    assert!(
        common::temp_files(dir.path()).is_empty(),
        "temp files left: {:?}",
        common::temp_files(dir.path())
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("already finished {}", before.len())),
        "{stdout}"
    );
    common::reliability(
        "kill -9 in the middle of a sweep",
        "finished records kept byte-identical, no temp file, the next run completes the rest",
        &format!(
            "{} records before the kill kept byte-identical; resume wrote the other {}; 0 temp files",
            before.len(),
            40 - before.len()
        ),
        "interruption::kill_dash_nine_then_resume_keeps_finished_records",
    );
}

#[test]
fn corrupt_record_is_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::experiment(
        dir.path(),
        "corrupt",
        "[task]\nkind = \"sst2\"\ntrain_size = 10\ndev_size = 10\n[method]\nkind = \"majority\"\n[grid]\nseeds = [0, 1]\n",
    );
    assert!(common::run_cmd(&file).output().unwrap().status.success());
    let recs = common::record_files(&dir.path().join("results"), "corrupt");
    std::fs::write(&recs[0].0, b"{\"truncated").unwrap();
    let out = common::run_cmd(&file).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("corrupt re-run 1"));
    // The re-run reproduces the record (timings aside).
    let parse = |bytes: &[u8]| {
        let mut r: autoprompt::record::Record = serde_json::from_slice(bytes).unwrap();
        r.timings = Default::default();
        r
    };
    let again = common::record_files(&dir.path().join("results"), "corrupt");
    assert_eq!(again.len(), 2);
    assert!(
        parse(&again[0].1) == parse(&recs[0].1),
        "re-run record differs"
    );
    assert!(again[1] == recs[1], "the intact record was rewritten");
    common::reliability(
        "a truncated record file",
        "detected as corrupt and the cell run again; intact records untouched",
        "re-run reproduced the record (timings aside); the intact record byte-identical",
        "interruption::corrupt_record_is_rerun",
    );
}

/// A cell that fails every time runs `max_attempts` times (its record counts them), then is
/// skipped and reported on later runs; `--retry-failed` runs it again.
#[test]
fn a_cell_that_always_fails_is_skipped_after_max_attempts() {
    let dir = tempfile::tempdir().unwrap();
    // SICK's TRIAL split holds 71 contradictions: a balanced dev of 200 cannot be drawn.
    let file = common::experiment(
        dir.path(),
        "attempts",
        "[task]\nkind = \"sick_e\"\nvariant = \"two_way\"\ntrain_size = 10\ndev_size = 200\n[method]\nkind = \"majority\"\n",
    );
    let attempts = || {
        let (_, bytes) = common::record_files(&dir.path().join("results"), "attempts")
            .pop()
            .unwrap();
        let r: autoprompt::record::Record = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(r.status, autoprompt::record::Status::Failed);
        assert!(r.error.unwrap().contains("only 71"));
        r.attempts
    };
    for expected in 1..=2 {
        let out = common::run_cmd(&file)
            .args(["--max-attempts", "2"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(attempts(), expected);
    }
    let out = common::run_cmd(&file)
        .args(["--max-attempts", "2"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "skipped failures still fail the run"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("after 2 failed attempts") && stderr.contains("only 71"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ran 0"));
    assert_eq!(attempts(), 2, "a skipped cell is not run");
    let out = common::run_cmd(&file)
        .args(["--max-attempts", "2", "--retry-failed"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(attempts(), 3);
    common::reliability(
        "a cell that fails every time",
        "retried up to `--max-attempts` (default 3), then skipped and reported; `--retry-failed` runs it",
        "attempts 1, 2 recorded; third run skipped it (ran 0, reported with its error); --retry-failed ran it (attempts 3)",
        "interruption::a_cell_that_always_fails_is_skipped_after_max_attempts",
    );
}

/// The best-so-far prompt files of an experiment.
fn best_prompts(dir: &Path, name: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("results").join(name).join("prompts"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(".best.json"))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a cell of the experiment has a heartbeat in the search stage.
fn search_is_running(dir: &Path, name: &str) -> bool {
    let progress = dir.join("results").join(name).join("progress");
    std::fs::read_dir(progress).is_ok_and(|d| {
        d.flatten().any(|e| {
            std::fs::read(e.path())
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Heartbeat>(&bytes).ok())
                .is_some_and(|h| matches!(h.stage, Stage::Search { .. }))
        })
    })
}

/// SIGTERM (Slurm's warning before SIGKILL) and SIGINT in the middle of a search: the
/// runner stops within seconds with 128 + the signal, the finished cell's record is kept, the
/// interrupted cell writes no record, its best-so-far prompt file is complete, no temp file
/// is left; the next run resumes (skips the finished cell, starts the other again). A second
/// signal while stopping exits at once: that may cut a checkpoint write short and leave its
/// temp file (never a partial record or prompt: those are renamed into place), which the next
/// runner to lock the cell removes; the final single-signal run checks that.
#[test]
fn sigterm_and_sigint_stop_a_search_cleanly_and_the_next_run_resumes() {
    common::splade_tiny();
    let dir = tempfile::tempdir().unwrap();
    let body = "[task]\nkind = \"sst2\"\ntrain_size = 16\ndev_size = 16\ntest_size = 32\n[method]\nkind = \"majority\"\n[grid]\nmethod = [\n  { kind = \"majority\" },\n  { kind = \"autoprompt\", template = \"[CLS] {sentence} [T] [T] [T] [P] . [SEP]\", labels = { \"0\" = [\"terrible\"], \"1\" = [\"great\"] }, search = { iters = 1000000, batch_size = 8, accumulation_steps = 2, num_candidates = 3, keep_initial = true } },\n]\n";
    let file = common::experiment(dir.path(), "signals", body);
    let kill = |pid: u32, signal: &str| {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success());
    };
    let mut forced_exit_temps = None;
    for (signals, code) in [
        (&["TERM"][..], 143),
        (&["INT"][..], 130),
        (&["TERM", "TERM"][..], 143),
        (&["TERM"][..], 143),
    ] {
        let after_forced_exit = forced_exit_temps.is_some();
        for p in best_prompts(dir.path(), "signals") {
            std::fs::remove_file(p).unwrap();
        }
        let child = common::run_cmd(&file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // `keep_initial`: the starting prompt is the first best, written before iteration 0.
        common::wait_until(
            Duration::from_secs(120),
            "the search to start (its first best prompt)",
            || !best_prompts(dir.path(), "signals").is_empty(),
        );
        // The signal lands mid-search: the heartbeat says the search loop is running.
        common::wait_until(
            Duration::from_secs(120),
            "the heartbeat of the running search",
            || search_is_running(dir.path(), "signals"),
        );
        let sent = Instant::now();
        for signal in signals {
            kill(child.id(), signal);
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "took {:?}",
            sent.elapsed()
        );
        assert_eq!(out.status.code(), Some(code), "{signals:?}: {stderr}");
        if signals.len() == 1 {
            assert!(stderr.contains("stopped by signal"), "{stderr}");
        }
        let kept = common::record_files(&dir.path().join("results"), "signals");
        assert_eq!(kept.len(), 1, "only the finished cell has a record");
        let record: autoprompt::record::Record = serde_json::from_slice(&kept[0].1).unwrap();
        assert_eq!(record.spec.method.name(), "majority");
        for p in best_prompts(dir.path(), "signals") {
            let prompt: autoprompt::record::PromptArtifact =
                serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            assert_eq!(prompt.trigger_ids.len(), 3);
        }
        let temps = common::temp_files(dir.path());
        if signals.len() == 1 {
            assert!(temps.is_empty(), "{temps:?}");
        } else {
            // Only a checkpoint or the heartbeat of the interrupted cell can be cut short.
            assert!(
                temps.iter().all(|t| t
                    .parent()
                    .is_some_and(|d| d.ends_with("checkpoints") || d.ends_with("progress"))),
                "{temps:?}"
            );
            forced_exit_temps = Some(temps.len());
        }
        if code == 130 {
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(stdout.contains("already finished 1"), "{stdout}");
        }
        let temp_note = match (signals.len(), forced_exit_temps) {
            (1, Some(0)) if after_forced_exit => {
                "0 temp files (the forced exit before had left none this time)".to_string()
            }
            (1, Some(left)) if after_forced_exit => {
                format!("0 temp files (the forced exit before left {left}; this run removed them)")
            }
            (1, _) => "0 temp files".to_string(),
            (_, left) => format!(
                "{} checkpoint temp file(s) left, for the next run to remove",
                left.unwrap_or(0)
            ),
        };
        common::reliability(
            &format!(
                "SIG{} mid-search{}",
                signals.join(" + SIG"),
                if after_forced_exit {
                    ", after a forced exit"
                } else {
                    ""
                }
            ),
            "stop within seconds, exit 128 + signal, no partial record, valid best-so-far prompt, no temp file (after a forced exit: none once the next run has locked the cell), the next run resumes",
            &format!(
                "exit {code} after {:.2} s; 1 finished record kept, the interrupted cell has none; best prompt file parses; {temp_note}",
                sent.elapsed().as_secs_f64(),
            ),
            "interruption::sigterm_and_sigint_stop_a_search_cleanly_and_the_next_run_resumes",
        );
    }
}

/// A record with what differs between runs of the same cell taken out: wall times,
/// provenance (commit, threads) and attempt counts.
fn without_run_details(bytes: &[u8]) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                for key in [
                    "timings",
                    "provenance",
                    "attempts",
                    "seconds",
                    "seconds_per_iteration",
                ] {
                    map.remove(key);
                }
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    strip(&mut v);
    v
}

/// The modification time of a cell's checkpoint, if it has one.
fn checkpoint_mtime(dir: &Path, name: &str) -> Option<std::time::SystemTime> {
    std::fs::read_dir(dir.join("results").join(name).join("checkpoints"))
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".ckpt"))
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .max()
}

/// Preemption: a search cell and a fine-tuning cell, each killed with SIGKILL at random
/// moments four times (every kill after the attempt has saved a checkpoint of its own, within
/// a tenth of the uninterrupted run's time), then run to the end: the run resumes from the
/// checkpoint (not from zero), the record equals an uninterrupted run's in everything but
/// wall times, and the checkpoint is gone.
#[test]
fn cells_killed_repeatedly_resume_from_checkpoints_and_equal_an_uninterrupted_run() {
    common::splade_tiny();
    let cells = [
        (
            "search",
            "[method]\nkind = \"autoprompt\"\ntemplate = \"[CLS] {sentence} [T] [T] [T] [P] . [SEP]\"\nlabels = { \"0\" = [\"terrible\"], \"1\" = [\"great\"] }\nsearch = { iters = 40, batch_size = 8, accumulation_steps = 2, num_candidates = 10, restarts = 2 }\n",
            "resuming the search from its checkpoint",
        ),
        (
            "finetune",
            "[method]\nkind = \"finetune\"\nfinetune = { epochs = 8, batch_size = 8 }\n",
            "resuming fine-tuning from its checkpoint",
        ),
    ];
    let mut random = fastrand::Rng::with_seed(17);
    for (name, method, resumed_line) in cells {
        let body = format!(
            "checkpoint_seconds = 0\n[task]\nkind = \"sst2\"\ntrain_size = 32\ndev_size = 32\ntest_size = 64\n{method}"
        );
        let clean = tempfile::tempdir().unwrap();
        let file = common::experiment(clean.path(), name, &body);
        let started = Instant::now();
        common::assert_success(&common::run_cmd(&file).arg("-q").output().unwrap());
        let uninterrupted_seconds = started.elapsed().as_secs_f64();
        let expected = common::record_files(&clean.path().join("results"), name);
        assert_eq!(expected.len(), 1);

        let dir = tempfile::tempdir().unwrap();
        let file = common::experiment(dir.path(), name, &body);
        let mut delays = vec![];
        for _ in 0..4 {
            let mut child = common::run_cmd(&file)
                .arg("-q")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let spawned = std::time::SystemTime::now();
            // Wait for this attempt's own first save, then a random moment more.
            common::wait_until_every(
                Duration::from_secs(120),
                Duration::from_millis(5),
                &format!("{name}: this attempt's first checkpoint"),
                || {
                    assert!(
                        child.try_wait().unwrap().is_none(),
                        "{name}: the cell finished before it could be killed"
                    );
                    checkpoint_mtime(dir.path(), name).is_some_and(|t| t >= spawned)
                },
            );
            // At most a tenth of the uninterrupted run: four kills then stop well before the
            // end even on a machine fast enough to run the whole search in a few seconds.
            let longest = ((uninterrupted_seconds * 100.0) as u64).clamp(1, 800);
            let delay = random.u64(0..=longest);
            delays.push(delay);
            std::thread::sleep(Duration::from_millis(delay));
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            assert!(
                common::record_files(&dir.path().join("results"), name).is_empty(),
                "{name}: finished too early"
            );
        }
        let out = common::run_cmd(&file).output().unwrap();
        common::assert_success(&out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(resumed_line), "{name}: {stderr}");
        let got = common::record_files(&dir.path().join("results"), name);
        assert_eq!(got.len(), 1);
        assert_eq!(
            without_run_details(&got[0].1),
            without_run_details(&expected[0].1),
            "{name}: the resumed record differs from the uninterrupted one"
        );
        assert!(
            checkpoint_mtime(dir.path(), name).is_none(),
            "{name}: checkpoint left"
        );
        assert!(
            common::temp_files(dir.path()).is_empty(),
            "{:?}",
            common::temp_files(dir.path())
        );
        common::reliability(
            &format!("kill -9 of a long {name} cell, four times"),
            "the cell resumes from its last checkpoint, and the final record equals an uninterrupted run's (wall times aside); the checkpoint is deleted with the record",
            &format!(
                "kills {delays:?} ms after each attempt's first checkpoint (the uninterrupted cell took {uninterrupted_seconds:.1} s); the final run resumed; record equal; 0 checkpoints and temp files left"
            ),
            "interruption::cells_killed_repeatedly_resume_from_checkpoints_and_equal_an_uninterrupted_run",
        );
    }
}
