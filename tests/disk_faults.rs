//! Faults of the results directory: a full disk, a file where the directory should be, and
//! the directory vanishing mid-run.

mod common;

use std::process::{Command, Stdio};

/// A file-size limit (`ulimit -f`, SIGXFSZ ignored, so writes fail with EFBIG as on a full
/// disk) while records are written: an error naming the record's path and no panic, the
/// earlier record byte-identical, no temp file left; the next run, with space, completes.
#[test]
fn a_full_disk_fails_the_write_cleanly_and_the_next_run_completes() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::experiment(
        dir.path(),
        "full",
        "[task]\nkind = \"sst2\"\ntrain_size = 10\ndev_size = 10\n[method]\nkind = \"majority\"\n[grid]\nseeds = [0, 1, 2]\n",
    );
    common::assert_success(
        &common::run_cmd(&file)
            .args(["--set", "seeds=[0]"])
            .output()
            .unwrap(),
    );
    let before = common::record_files(&dir.path().join("results"), "full");
    assert_eq!(before.len(), 1);
    // Records are a few KiB: a 1 KiB limit fails every new one.
    let out = Command::new("bash")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 1; exec \"$0\" run \"$1\"")
        .arg(common::bin())
        .arg(&file)
        .current_dir(common::repo())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // A cell's predictions are written just before its record: either may be the file named.
    assert!(
        stderr.contains("results/full/cells/") || stderr.contains("results/full/predictions/"),
        "{stderr}"
    );
    assert!(stderr.contains("too large"), "{stderr}");
    assert_eq!(
        common::record_files(&dir.path().join("results"), "full"),
        before,
        "the earlier record changed"
    );
    assert!(
        common::temp_files(dir.path()).is_empty(),
        "{:?}",
        common::temp_files(dir.path())
    );
    common::reliability(
        "file-size limit (`ulimit -f 1`, EFBIG as on a full disk) while writing records",
        "an error naming the path, earlier records intact, no half-written file; the next run completes",
        "exit 1, error names the file (the cell's predictions, written before its record); earlier record byte-identical; 0 temp files; next run wrote 3/3 records",
        "disk_faults::a_full_disk_fails_the_write_cleanly_and_the_next_run_completes",
    );
    common::assert_success(&common::run_cmd(&file).output().unwrap());
    assert_eq!(
        common::record_files(&dir.path().join("results"), "full").len(),
        3
    );
}

/// A results directory that is a file: a clear error before any cell runs, never a panic.
#[test]
fn a_results_directory_that_is_a_file_is_an_error_before_any_cell_runs() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("results");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let file = common::experiment(
        dir.path(),
        "blocked",
        "[task]\nkind = \"sst2\"\ntrain_size = 10\ndev_size = 10\n[method]\nkind = \"majority\"\n",
    );
    let out = common::run_cmd(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("results"), "{stderr}");
    assert!(!stderr.contains("cell finished") && !stderr.contains("panicked"));
    assert_eq!(std::fs::read(&blocker).unwrap(), b"not a directory");
    common::reliability(
        "the results directory is a file",
        "a clear error before any cell runs",
        &format!(
            "exit 1 before any cell: `{}`",
            stderr
                .lines()
                .last()
                .unwrap_or("")
                .replace(&dir.path().display().to_string(), "<tmp>")
                .replace('|', "/")
        ),
        "disk_faults::a_results_directory_that_is_a_file_is_an_error_before_any_cell_runs",
    );
}

/// The results directory deleted in the middle of a sweep: the runner stops at its next write
/// with an error naming the directory (no panic), and writes nothing into a recreated one.
#[test]
fn a_results_directory_that_vanishes_mid_run_stops_the_run_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::experiment(dir.path(), "vanish", common::MANY_CELLS);
    let child = common::run_cmd(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_for_records(dir.path(), "vanish", 3);
    // Renamed away in one step (as a deletion or an unmount looks to the runner); a
    // recursive delete would race with the runner's writes.
    std::fs::rename(dir.path().join("results"), dir.path().join("gone")).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("disappeared during the run") && stderr.contains("vanish"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        common::record_files(&dir.path().join("results"), "vanish").is_empty(),
        "a record was written into a recreated directory"
    );
    common::reliability(
        "the results directory vanishes mid-run",
        "a clear error at the next write, never a panic, nothing written into a recreated directory",
        &format!(
            "moved away after 3 records: exit 1, `{}`",
            stderr
                .lines()
                .last()
                .unwrap_or("")
                .replace(&dir.path().display().to_string(), "<tmp>")
                .replace('|', "/")
        ),
        "disk_faults::a_results_directory_that_vanishes_mid_run_stops_the_run_with_an_error",
    );
}
