//! Progress inside running cells: INFO lines at `progress_seconds` when stderr is not a
//! terminal, the heartbeat a running cell rewrites, and what `autoprompt status` makes of it
//! (running, stalled, killed, finished).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use autoprompt::progress::Stage;
use autoprompt::run::progress::{Heartbeat, unix_now};

const TEMPLATE: &str = "[CLS] {sentence} [T] [T] [T] [P] . [SEP]";

/// One autoprompt cell on SST-2 (16 / 16 / 32 rows) searching `iters` iterations.
fn search_experiment(progress_seconds: Option<f64>, iters: u64, extra_method: &str) -> String {
    let progress =
        progress_seconds.map_or(String::new(), |s| format!("progress_seconds = {s:?}\n"));
    format!(
        "{progress}[task]\nkind = \"sst2\"\ntrain_size = 16\ndev_size = 16\ntest_size = 32\n[method]\nkind = \"majority\"\n[grid]\nmethod = [\n  {{ kind = \"autoprompt\", template = \"{TEMPLATE}\", labels = {{ \"0\" = [\"terrible\"], \"1\" = [\"great\"] }}, search = {{ iters = {iters}, batch_size = 8, accumulation_steps = 1, num_candidates = 3 }} }},\n{extra_method}]\n"
    )
}

fn autoprompt_cmd(args: &[&str], file: &Path) -> Command {
    let mut cmd = Command::new(common::bin());
    cmd.args(args).arg(file).current_dir(common::repo());
    cmd
}

fn progress_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("progress: "))
        .collect()
}

fn heartbeat_dir(dir: &Path, name: &str) -> PathBuf {
    dir.join("results").join(name).join("progress")
}

fn heartbeats(dir: &Path, name: &str) -> Vec<PathBuf> {
    std::fs::read_dir(heartbeat_dir(dir, name))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect()
        })
        .unwrap_or_default()
}

/// With stderr captured (not a terminal) a search and a fine-tuning log their progress at most
/// every `progress_seconds`: with an interval shorter than an iteration, after every
/// iteration, training step and chunk of rows scored, with the fields the bar shows; with 0
/// or the default 60 s on a cell of a few seconds, never. A finished cell leaves no heartbeat.
#[test]
fn progress_is_logged_at_its_interval_when_stderr_is_not_a_terminal() {
    common::splade_tiny();
    let dir = tempfile::tempdir().unwrap();
    let finetune = "  { kind = \"finetune\", finetune = { epochs = 2, batch_size = 8 } },\n";
    let every_unit = common::experiment(
        dir.path(),
        "lines",
        &search_experiment(Some(1e-6), 5, finetune),
    );
    let out = autoprompt_cmd(&["run"], &every_unit)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    common::assert_success(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = progress_lines(&stderr);
    for iteration in 0..=5 {
        let wanted = format!("progress: search restart 1/1, iteration {iteration}/5, accepted ");
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&wanted) && l.contains("encoder rows")),
            "no line for iteration {iteration}:\n{stderr}"
        );
    }
    for wanted in [
        "progress: score test: 32/32 rows",
        "progress: score dev: 16/16 rows",
        // 16 examples in batches of 8: 2 steps an epoch.
        "progress: train epoch 1/2, step 1/4, best dev -",
        "progress: train epoch 2/2, step 4/4, best dev ",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(wanted)),
            "no `{wanted}`:\n{stderr}"
        );
    }
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("epoch 2/2, step 4/4, best dev -")),
        "the first epoch's dev accuracy is known in the second:\n{stderr}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l.contains("INFO") && l.contains("eta=")),
        "{stderr}"
    );
    assert!(
        heartbeats(dir.path(), "lines").is_empty(),
        "finished cells keep no heartbeat"
    );

    for (name, seconds) in [("off", Some(0.0)), ("default", None)] {
        let file = common::experiment(dir.path(), name, &search_experiment(seconds, 5, ""));
        let out = autoprompt_cmd(&["run"], &file)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        common::assert_success(&out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(progress_lines(&stderr).is_empty(), "{name}:\n{stderr}");
        assert!(stderr.contains("cell finished"), "{stderr}");
    }
}

fn read_heartbeat(path: &Path) -> Option<Heartbeat> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// A running search's heartbeat names its process and says where the search is; `status`
/// shows it under the running cell. After `kill -9` the heartbeat stays, and `status` shows the
/// pending cell with where its killed attempt stopped.
#[test]
fn the_heartbeat_of_a_running_search_feeds_status_and_outlives_a_kill() {
    common::splade_tiny();
    let dir = tempfile::tempdir().unwrap();
    let file = common::experiment(
        dir.path(),
        "beat",
        &search_experiment(Some(0.2), 1_000_000, ""),
    );
    let mut child = autoprompt_cmd(&["run"], &file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let heartbeat = loop {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no heartbeat past iteration 2"
        );
        if let Some(h) = heartbeats(dir.path(), "beat")
            .first()
            .and_then(|p| read_heartbeat(p))
            && matches!(h.stage, Stage::Search { iteration, .. } if iteration >= 2)
        {
            break h;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(heartbeat.pid, child.id());
    assert_eq!(heartbeat.heartbeat_seconds, 0.2);
    assert!(heartbeat.seconds_per_unit.is_some_and(|s| s > 0.0));
    assert!(heartbeat.updated >= heartbeat.started && heartbeat.updated <= unix_now());
    let Stage::Search {
        restart,
        restarts,
        iterations,
        rows,
        ..
    } = heartbeat.stage
    else {
        unreachable!()
    };
    assert_eq!((restart, restarts, iterations), (0, 1, 1_000_000));
    assert!(rows > 0);

    let status = autoprompt_cmd(&["status"], &file).output().unwrap();
    common::assert_success(&status);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains(&format!("running: pid {}", child.id())),
        "{text}"
    );
    assert!(
        text.contains("search restart 1/1, iteration ") && text.contains("; last progress "),
        "{text}"
    );
    assert!(!text.contains("STALLED"), "{text}");

    child.kill().unwrap();
    child.wait().unwrap();
    let left = heartbeats(dir.path(), "beat");
    assert_eq!(left.len(), 1, "the killed cell's heartbeat stays");
    let last = read_heartbeat(&left[0]).expect("a complete heartbeat (written atomically)");
    assert_eq!(last.pid, heartbeat.pid);
    let status = autoprompt_cmd(&["status"], &file).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains(" pending\n"), "{text}");
    assert!(
        text.contains("an earlier attempt stopped at: search restart 1/1, iteration "),
        "{text}"
    );
}

/// A cell whose lock is held by a live process but whose last progress is an hour old is
/// marked as possibly stalled; one with a fresh heartbeat is not; a finished cell shows no
/// progress.
#[test]
fn status_marks_a_running_cell_without_recent_progress_as_possibly_stalled() {
    common::splade_tiny();
    let dir = tempfile::tempdir().unwrap();
    let finished = "  { kind = \"majority\" },\n";
    let file = common::experiment(dir.path(), "stall", &search_experiment(None, 2, finished));
    // Run only the majority cell.
    let (experiment, cells) = common::load_and_plan(&file, &[]).unwrap();
    let majority = cells
        .iter()
        .find(|c| c.spec.method.name() == "majority")
        .unwrap();
    let search = cells
        .iter()
        .find(|c| c.spec.method.name() == "autoprompt")
        .unwrap();
    let out = autoprompt_cmd(&["run", "--only", &majority.id], &file)
        .output()
        .unwrap();
    common::assert_success(&out);

    // This test process plays a runner that holds the search cell.
    let store =
        autoprompt::store::Store::open(&experiment.settings.results_dir, &experiment.name).unwrap();
    let _lock = store.try_lock(&search.id).unwrap().expect("free");
    let beat = |age: f64| Heartbeat {
        host: "test-host".into(),
        pid: std::process::id(),
        started: unix_now() - 7_200.0,
        updated: unix_now() - age,
        stage: Stage::Search {
            restart: 0,
            restarts: 1,
            iteration: 37,
            iterations: 100,
            accepted: 4,
            current: Some(0.5),
            best_dev: Some(0.625),
            rows: 12_345,
        },
        seconds_per_unit: Some(30.0),
        eta_seconds: Some(63.0 * 30.0),
        heartbeat_seconds: 10.0,
    };
    let status_of = |heartbeat: &Heartbeat| {
        autoprompt::store::write_atomic(
            &store.heartbeat_path(&search.id),
            &serde_json::to_vec(heartbeat).unwrap(),
        )
        .unwrap();
        let rows = autoprompt::run::status::status(&experiment, &cells).unwrap();
        let out = autoprompt_cmd(&["status"], &file).output().unwrap();
        common::assert_success(&out);
        (rows, String::from_utf8_lossy(&out.stdout).into_owned())
    };

    let (rows, text) = status_of(&beat(3_600.0));
    let row = rows.iter().find(|r| r.id == search.id).unwrap();
    assert!(matches!(
        row.status,
        autoprompt::run::status::CellStatus::Running(_)
    ));
    let progress = row.progress.as_ref().expect("its heartbeat");
    assert!(progress.possibly_stalled);
    assert!((progress.age - 3_600.0).abs() < 60.0);
    assert!(
        text.contains("search restart 1/1, iteration 37/100, accepted 4, current 0.5000, best dev 0.6250, 12345 encoder rows; last progress 1h 00m ago, then ETA 31m 30s; POSSIBLY STALLED"),
        "{text}"
    );
    let majority_row = rows.iter().find(|r| r.id == majority.id).unwrap();
    assert_eq!(
        majority_row.status,
        autoprompt::run::status::CellStatus::Finished
    );
    assert!(majority_row.progress.is_none());

    // Four measured 30-second iterations (and the two-minute floor): 100 s is within them.
    let (rows, text) = status_of(&beat(100.0));
    let row = rows.iter().find(|r| r.id == search.id).unwrap();
    assert!(!row.progress.as_ref().unwrap().possibly_stalled, "{text}");
    assert!(!text.contains("STALLED"), "{text}");
    // 4 × 30 s is the limit: 130 s is past it.
    let (rows, _) = status_of(&beat(130.0));
    let row = rows.iter().find(|r| r.id == search.id).unwrap();
    assert!(row.progress.as_ref().unwrap().possibly_stalled);
}
