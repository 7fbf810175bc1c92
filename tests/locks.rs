//! Cell locks: two concurrent runners on one results directory, and locks whose holder
//! cannot release them.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use autoprompt::{config, plan};

#[test]
fn two_runners_run_each_cell_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::experiment(dir.path(), "concurrent", common::MANY_CELLS);
    let spawn = || {
        common::run_cmd(&file)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    let finished = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stderr)
            .matches("cell finished")
            .count()
    };
    assert_eq!(
        finished(&a) + finished(&b),
        40,
        "each cell must run exactly once"
    );
    assert_eq!(
        common::record_files(&dir.path().join("results"), "concurrent").len(),
        40
    );
    common::reliability(
        "two runners on one results directory",
        "each cell runs exactly once",
        "40 cells, 40 `cell finished` events over both runners, 40 records",
        "locks::two_runners_run_each_cell_exactly_once",
    );
}

/// A lock whose holder cannot release it (a shared filesystem can keep one after its process
/// died; here an outside `flock` holds it, with a holder line naming another host or a dead
/// process): `status` shows it, `unlock` breaks a stale one and refuses a possibly live one
/// without `--force`, and the cell then runs.
#[test]
fn stale_and_foreign_locks_are_shown_and_can_be_broken() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::experiment(
        dir.path(),
        "locked",
        "[task]\nkind = \"sst2\"\ntrain_size = 10\ndev_size = 10\n[method]\nkind = \"majority\"\n",
    );
    let experiment = config::load(&file, &[]).unwrap();
    let id = plan::plan(&experiment).unwrap()[0].id.clone();
    let locks = dir.path().join("results/locked/locks");
    std::fs::create_dir_all(&locks).unwrap();
    let lock = locks.join(format!("{id}.lock"));
    let cli = |args: &[&str]| {
        Command::new(common::bin())
            .args(args)
            .arg(&file)
            .current_dir(common::repo())
            .output()
            .unwrap()
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let dead_pid = {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    for (holder, stale) in [
        ("gpu-node-17 4242 1700000000".to_string(), false),
        (format!("{host} {dead_pid} 1700000000"), true),
    ] {
        std::fs::write(&lock, format!("{holder}\n")).unwrap();
        let mut flock = Command::new("flock")
            .arg(&lock)
            .args(["sleep", "60"])
            .spawn()
            .unwrap();
        // Held once a non-blocking `flock` of the same file fails.
        common::wait_until(Duration::from_secs(60), "flock to take the lock", || {
            !Command::new("flock")
                .args(["-n"])
                .arg(&lock)
                .arg("true")
                .status()
                .unwrap()
                .success()
        });
        let status = String::from_utf8_lossy(&cli(&["status"]).stdout).into_owned();
        let out = cli(&["run"]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("held by another runner 1"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        if stale {
            assert!(
                status.contains("stale lock") && status.contains(&format!("pid {dead_pid}")),
                "{status}"
            );
            let out = cli(&["unlock"]);
            common::assert_success(&out);
            assert!(String::from_utf8_lossy(&out.stdout).contains("broke the stale lock"));
        } else {
            assert!(
                status.contains("running: pid 4242 on gpu-node-17"),
                "{status}"
            );
            let out = cli(&["unlock"]);
            assert_eq!(out.status.code(), Some(1));
            assert!(String::from_utf8_lossy(&out.stderr).contains("may be running"));
            common::assert_success(&cli(&["unlock", "--force"]));
        }
        assert!(!lock.exists(), "the lock file is gone");
        let out = cli(&["run"]);
        common::assert_success(&out);
        assert!(String::from_utf8_lossy(&out.stdout).contains("ran 1"));
        flock.kill().unwrap();
        flock.wait().unwrap();
        common::reliability(
            if stale {
                "a stale lock: held, its holder a dead process of this host"
            } else {
                "a lock held for a process on another host (shared filesystem)"
            },
            "`status` shows the holder; `unlock` breaks a stale lock, and a possibly live one only with --force; the cell then runs",
            if stale {
                "status: `stale lock: pid N on this host ... is gone`; run skipped the cell; `unlock` broke it; the next run ran it"
            } else {
                "status: `running: pid 4242 on gpu-node-17`; run skipped the cell; `unlock` refused (exit 1); `--force` broke it; the next run ran it"
            },
            "locks::stale_and_foreign_locks_are_shown_and_can_be_broken",
        );
        std::fs::remove_dir_all(dir.path().join("results/locked/cells")).unwrap();
    }
}
