//! The experiment pipeline end to end through the CLI: stable cell ids, resume after
//! `kill -9`, two concurrent runners, deterministic reports, and a real (short) AutoPrompt
//! cell on the embedded model.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use autoprompt::{config, plan};

fn cells_of(text: &str) -> Vec<plan::Cell> {
    let dir = tempfile::tempdir().unwrap();
    let path = common::experiment(dir.path(), "ids", text);
    plan::plan(&config::load(&path, &[]).unwrap()).unwrap()
}

#[test]
fn cell_ids_are_stable_and_independent_of_key_order() {
    let a = cells_of(
        "[task]\nkind = \"sst2\"\ntrain_size = 10\ndev_size = 20\n[method]\nkind = \"majority\"\n[grid]\nseeds = [0, 1]\n",
    );
    let b = cells_of(
        "[method]\nkind = \"majority\"\n[grid]\nseeds = [0, 1]\n[task]\ndev_size = 20\ntrain_size = 10\nkind = \"sst2\"\n",
    );
    let ids: Vec<&str> = a.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, b.iter().map(|c| c.id.as_str()).collect::<Vec<_>>());
    // Golden values: a change here changes every stored result's id. Only update them
    // deliberately (and say so), never to make a test pass.
    assert_eq!(ids, ["db29cdfbbc0f2e21", "5102f9bc3dce3cf2"]);
    let c = cells_of(
        "[task]\nkind = \"sst2\"\ntrain_size = 11\ndev_size = 20\n[method]\nkind = \"majority\"\n[grid]\nseeds = [0, 1]\n",
    );
    assert_ne!(c[0].id, a[0].id);
}

fn cells_with(text: &str, overrides: &[&str]) -> Vec<plan::Cell> {
    let dir = tempfile::tempdir().unwrap();
    let path = common::experiment(dir.path(), "sets", text);
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    plan::plan(&config::load(&path, &overrides).unwrap()).unwrap()
}

/// `--set` wins over the grid: a single value fixes a grid axis, a list replaces its
/// values, `seeds` replaces the seed axis; keys the grid does not vary set the base.
#[test]
fn set_overrides_grid_axes() {
    let file = "[task]\nkind = \"sick_e\"\ntrain_size = 10\ndev_size = 10\n[model]\nsource = \"bert-base-cased\"\n[method]\nkind = \"majority\"\n[grid]\n\"model.source\" = [\"bert-base-cased\", \"roberta-large\"]\n\"task.variant\" = [\"standard\", \"balanced3\", \"two_way\"]\nseeds = [0, 1]\n";
    assert_eq!(cells_with(file, &[]).len(), 12);
    let fixed = cells_with(file, &["model.source=splade-tiny"]);
    assert_eq!(fixed.len(), 6);
    assert!(fixed.iter().all(|c| c.spec.model.source == "splade-tiny"));
    let narrowed = cells_with(
        file,
        &[
            "model.source=splade-tiny",
            "task.variant=[\"two_way\"]",
            "seeds=[7]",
            "task.train_size=30",
        ],
    );
    assert_eq!(narrowed.len(), 1);
    let spec = &narrowed[0].spec;
    assert_eq!(spec.seed, 7);
    assert_eq!(spec.task.train_size.get(), 30);
    assert_eq!(
        serde_json::to_value(spec.task.variant).unwrap(),
        serde_json::json!("two_way")
    );
}

const MANY_CELLS: &str = "[task]\nkind = \"sick_e\"\ntrain_size = 10\ndev_size = 10\n[method]\nkind = \"majority\"\n[grid]\n\"task.train_size\" = [10, 20, 30, 40, 50, 60, 70, 80]\nseeds = [0, 1, 2, 3, 4]\n";

fn records(dir: &Path, name: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let cells = dir.join("results").join(name).join("cells");
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

fn temp_files(dir: &Path) -> Vec<PathBuf> {
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

/// Waits (up to two minutes) until the experiment has at least `n` records.
fn wait_for_records(dir: &Path, name: &str, n: usize) {
    let start = Instant::now();
    while records(dir, name).len() < n {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no records appeared"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn run_cmd(file: &Path) -> Command {
    let mut cmd = Command::new(common::bin());
    cmd.arg("run").arg(file).current_dir(common::repo());
    cmd
}

#[test]
fn kill_dash_nine_then_resume_keeps_finished_records() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::experiment(dir.path(), "resume", MANY_CELLS);
    let mut child = run_cmd(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_records(dir.path(), "resume", 3);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = records(dir.path(), "resume");
    assert!(
        before.len() < 40,
        "the run finished before it could be killed ({} records)",
        before.len()
    );
    let out = run_cmd(&file).output().unwrap();
    common::assert_success(&out);
    let after = records(dir.path(), "resume");
    assert_eq!(after.len(), 40);
    for (path, bytes) in &before {
        let now = after.iter().find(|(p, _)| p == path).expect("record kept");
        assert_eq!(&now.1, bytes, "{} changed on resume", path.display());
    }
    assert!(
        temp_files(dir.path()).is_empty(),
        "temp files left: {:?}",
        temp_files(dir.path())
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
        "pipeline::kill_dash_nine_then_resume_keeps_finished_records",
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
    assert!(run_cmd(&file).output().unwrap().status.success());
    let recs = records(dir.path(), "corrupt");
    std::fs::write(&recs[0].0, b"{\"truncated").unwrap();
    let out = run_cmd(&file).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("corrupt re-run 1"));
    // The re-run reproduces the record (timings aside).
    let parse = |bytes: &[u8]| {
        let mut r: autoprompt::record::Record = serde_json::from_slice(bytes).unwrap();
        r.timings = Default::default();
        r
    };
    let again = records(dir.path(), "corrupt");
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
        "pipeline::corrupt_record_is_rerun",
    );
}

#[test]
fn two_runners_run_each_cell_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::experiment(dir.path(), "concurrent", MANY_CELLS);
    let spawn = || {
        run_cmd(&file)
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
    assert_eq!(records(dir.path(), "concurrent").len(), 40);
    common::reliability(
        "two runners on one results directory",
        "each cell runs exactly once",
        "40 cells, 40 `cell finished` events over both runners, 40 records",
        "pipeline::two_runners_run_each_cell_exactly_once",
    );
}

#[test]
fn report_is_a_pure_function_of_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::experiment(
        dir.path(),
        "report_det",
        "[task]\nkind = \"sst2\"\ntrain_size = 10\ndev_size = 10\n[method]\nkind = \"majority\"\n[grid]\n\"task.train_size\" = [10, 100]\nseeds = [0, 1, 2]\n",
    );
    assert!(run_cmd(&file).output().unwrap().status.success());
    let report = |_: ()| {
        let out = Command::new(common::bin())
            .arg("report")
            .arg(&file)
            .current_dir(dir.path())
            .output()
            .unwrap();
        common::assert_success(&out);
        let root = dir.path().join("results/report_det");
        [
            "summary.parquet",
            "summary.csv",
            "cells.parquet",
            "cells.csv",
        ]
        .iter()
        .map(|f| std::fs::read(root.join(f)).unwrap())
        .chain([std::fs::read(dir.path().join("reports/report_det.md")).unwrap()])
        .collect::<Vec<_>>()
    };
    let first = report(());
    assert_eq!(first, report(()));
    let csv = String::from_utf8(first[1].clone()).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    for col in [
        "task",
        "method",
        "train_size",
        "n_seeds",
        "accuracy_mean",
        "accuracy_sd",
        "accuracy_ci95",
        "accuracy_min",
        "accuracy_max",
    ] {
        assert!(header.contains(&col), "summary lacks {col}: {header:?}");
    }
    // Majority accuracy on GLUE SST-2 dev: positive is the training majority, 444 / 872.
    let row = csv.lines().nth(1).unwrap();
    assert!(row.contains("0.5091743119266054"), "{row}");
}

#[test]
fn autoprompt_cell_end_to_end_on_the_embedded_model() {
    common::splade_tiny();
    let dir = tempfile::tempdir().unwrap();
    let body = "[task]\nkind = \"sst2\"\ntrain_size = 16\ndev_size = 16\ntest_size = 64\n[method]\nkind = \"autoprompt\"\ntemplate = \"[CLS] {sentence} [T] [T] [P] . [SEP]\"\nlabels = { \"0\" = [\"terrible\"], \"1\" = [\"great\"] }\nsearch = { iters = 3, batch_size = 8, accumulation_steps = 2, num_candidates = 5 }\n";
    let file = common::experiment(dir.path(), "e2e", body);
    let out = run_cmd(&file).output().unwrap();
    common::assert_success(&out);
    let (path, bytes) = records(dir.path(), "e2e").pop().unwrap();
    let record: autoprompt::record::Record = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        record.status,
        autoprompt::record::Status::Finished,
        "{:?}",
        record.error
    );
    let prompt = record.prompt.unwrap();
    assert_eq!(prompt.trigger_ids.len(), 2);
    assert!(!prompt.filled.contains("[T]"), "{}", prompt.filled);
    let search = record.search.unwrap();
    assert_eq!(search.steps.len(), 3);
    let acc = record.metrics["accuracy"];
    assert!(
        (0.0..=1.0).contains(&acc) && (acc * 64.0).fract() == 0.0,
        "{acc}"
    );
    assert!(
        record
            .provenance
            .files
            .keys()
            .any(|f| f.ends_with("model.safetensors"))
    );
    assert!(
        record
            .provenance
            .files
            .keys()
            .any(|f| f.ends_with("sst2/train.tsv"))
    );
    let id = path.file_stem().unwrap().to_string_lossy().to_string();
    assert!(
        dir.path()
            .join(format!("results/e2e/prompts/{id}.best.json"))
            .is_file()
    );
}

/// `paper-report` pairs each published number with ours for the same method, setting and
/// metric, prints the model ours came from, and never fills a setting the paper table maps
/// to `none`.
#[test]
fn paper_report_pairs_numbers_and_names_our_model() {
    let dir = tempfile::tempdir().unwrap();
    let experiments = dir.path().join("experiments");
    let tables = dir.path().join("tables");
    std::fs::create_dir_all(&experiments).unwrap();
    std::fs::create_dir_all(&tables).unwrap();
    let file = common::experiment(
        &experiments,
        "paper_sick",
        "name = \"paper_sick\"\n[task]\nkind = \"sick_e\"\ntrain_size = 20\ndev_size = 10\n[model]\nsource = \"bert-base-cased\"\n[method]\nkind = \"majority\"\n[grid]\n\"task.variant\" = [\"balanced3\", \"two_way\"]\n\"model.source\" = [\"bert-base-cased\", \"roberta-large\"]\n",
    );
    let out = run_cmd(&file)
        .args(["--set", "model.source=splade-tiny"])
        .output()
        .unwrap();
    common::assert_success(&out);
    let row = |paper_row: &str, variant: &str, value: f64| {
        format!(
            "[[row]]\npaper_row = \"{paper_row}\"\nmethod = \"majority\"\nmodel = \"Majority\"\nvariant = \"{variant}\"\nmetric = \"accuracy\"\nvalue = {value}\n"
        )
    };
    let table = format!(
        "table = \"Table 2\"\ntitle = \"SICK-E\"\nsource = \"test\"\nexperiment = \"paper_sick\"\n[variants]\nstandard = \"none\"\n{}{}{}[[row]]\npaper_row = \"LSTM\"\nmethod = \"other\"\nmodel = \"LSTM\"\nmetric = \"accuracy\"\nvalue = 70.1\n",
        row("Majority", "balanced3", 33.3),
        row("Majority", "two_way", 50.0),
        row("Majority", "standard", 56.7),
    );
    std::fs::write(tables.join("table2.toml"), table).unwrap();
    let report = dir.path().join("paper.md");
    let out = Command::new(common::bin())
        .arg("paper-report")
        .arg(&experiments)
        .arg("--tables")
        .arg(&tables)
        .arg("--out")
        .arg(&report)
        .current_dir(common::repo())
        .output()
        .unwrap();
    common::assert_success(&out);
    let text = std::fs::read_to_string(&report).unwrap();
    // Balanced test sets: the majority baseline is exactly chance, in percent.
    assert!(
        text.contains(
            "| Majority | balanced3 | accuracy | Majority | 33.3 | — | 33.3 | 1 | train 20 |"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "| Majority | two_way | accuracy | Majority | 50.0 | — | 50.0 | 1 | train 20 |"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "| Majority | standard | accuracy | Majority | 56.7 | — | not measured here |"
        ),
        "{text}"
    );
    assert!(
        text.contains("no counterpart in this project: LSTM (accuracy) 70.1"),
        "{text}"
    );
}

/// The host engine and burn's own ops find the same prompt and the same test accuracy for
/// the same cell (they agree to float rounding, so the search takes the same steps), and
/// each record says which engine ran its search.
#[test]
fn host_engine_and_burn_agree_end_to_end() {
    common::splade_tiny();
    let body = "[task]\nkind = \"sst2\"\ntrain_size = 16\ndev_size = 16\ntest_size = 64\n[method]\nkind = \"autoprompt\"\ntemplate = \"[CLS] {sentence} [T] [T] [P] . [SEP]\"\nlabels = { \"0\" = [\"terrible\"], \"1\" = [\"great\"] }\nsearch = { iters = 3, batch_size = 8, accumulation_steps = 2, num_candidates = 5 }\n";
    let run = |engine: &str| {
        let dir = tempfile::tempdir().unwrap();
        let file = common::experiment(dir.path(), "engines", body);
        let out = run_cmd(&file)
            .args(["--set", &format!("engine={engine}")])
            .output()
            .unwrap();
        common::assert_success(&out);
        let (_, bytes) = records(dir.path(), "engines").pop().unwrap();
        serde_json::from_slice::<autoprompt::record::Record>(&bytes).unwrap()
    };
    let host = run("host");
    let burn = run("burn");
    assert_eq!(
        host.provenance.engine,
        Some(autoprompt::search::EngineKind::Host)
    );
    assert_eq!(
        burn.provenance.engine,
        Some(autoprompt::search::EngineKind::Burn)
    );
    let triggers = |r: &autoprompt::record::Record| r.prompt.as_ref().unwrap().trigger_ids.clone();
    assert_eq!(triggers(&host), triggers(&burn));
    assert_eq!(host.metrics["accuracy"], burn.metrics["accuracy"]);
    assert_eq!(host.metrics["dev_accuracy"], burn.metrics["dev_accuracy"]);
}

/// Every subcommand's `--help` starts with its own summary (a doc comment on the wrong
/// variant once gave `compare` fill-mask's text and `fill-mask` none).
#[test]
fn every_subcommand_help_starts_with_its_own_summary() {
    let cases = [
        (vec!["plan"], "Print the cells of an experiment"),
        (vec!["run"], "Run the cells of an experiment"),
        (vec!["eval"], "Re-evaluate a saved prompt"),
        (
            vec!["status"],
            "Finished / failed / pending / running cells",
        ),
        (vec!["report"], "Aggregate the records of an experiment"),
        (vec!["paper-report"], "The paper's tables next to ours"),
        (
            vec!["compare"],
            "Compare an experiment's summary with a stored baseline",
        ),
        (vec!["fill-mask"], "Predict the masked tokens of a sentence"),
        (
            vec!["bench", "search"],
            "Median wall time of one trigger-search iteration",
        ),
    ];
    let mut firsts = std::collections::BTreeSet::new();
    for (args, expected) in cases {
        let out = Command::new(common::bin())
            .args(&args)
            .arg("--help")
            .output()
            .unwrap();
        common::assert_success(&out);
        let text = String::from_utf8_lossy(&out.stdout);
        let first = text.lines().next().unwrap_or("").to_string();
        assert!(
            first.to_lowercase().contains(&expected.to_lowercase()),
            "{args:?}: first line `{first}`, expected `{expected}`"
        );
        assert!(firsts.insert(first.clone()), "{args:?} repeats `{first}`");
    }
}

/// `report` writes every search step of every cell as a table (cell, grid values, step
/// fields, cumulative encoder rows) and the compute curve, and the summary gains the
/// encoder rows per cell.
#[test]
fn search_steps_become_a_table_and_a_compute_curve() {
    common::splade_tiny();
    let dir = tempfile::tempdir().unwrap();
    let body = "[task]\nkind = \"sst2\"\ntrain_size = 16\ndev_size = 16\ntest_size = 32\n[method]\nkind = \"autoprompt\"\ntemplate = \"[CLS] {sentence} [T] [T] [P] . [SEP]\"\nlabels = { \"0\" = [\"terrible\"], \"1\" = [\"great\"] }\nsearch = { iters = 3, batch_size = 8, accumulation_steps = 2, num_candidates = 3 }\n[grid]\nseeds = [0, 1]\n\"method.search.beam_size\" = [1, 2]\n";
    let file = common::experiment(dir.path(), "steps", body);
    common::assert_success(&run_cmd(&file).output().unwrap());
    let out = Command::new(common::bin())
        .arg("report")
        .arg(&file)
        .current_dir(dir.path())
        .output()
        .unwrap();
    common::assert_success(&out);
    let root = dir.path().join("results/steps");
    let csv = std::fs::read_to_string(root.join("steps.csv")).unwrap();
    assert!(root.join("steps.parquet").is_file());
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("steps.csv lacks {name}: {header:?}"))
    };
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 4 * 3, "2 seeds × 2 beam sizes × 3 iterations");
    let (id, beam, iteration) = (
        col("id"),
        col("grid.method.search.beam_size"),
        col("iteration"),
    );
    let (forward, backward) = (col("forward_rows"), col("backward_rows"));
    for name in [
        "loss",
        "current",
        "best_candidate",
        "accepted",
        "dev",
        "seconds",
    ] {
        col(name);
    }
    for cell in rows.chunks(3) {
        let num = |r: &[&str], c: usize| r[c].parse::<u64>().unwrap();
        assert!(
            cell.iter()
                .all(|r| r[id] == cell[0][id] && r[beam] == cell[0][beam])
        );
        assert_eq!(
            cell.iter().map(|r| num(r, iteration)).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        // Forward rows only grow; backward rows grow by the beam's gradient rows (16 each).
        assert!(
            cell.windows(2)
                .all(|w| num(&w[1], forward) > num(&w[0], forward))
        );
        let first_backward = num(&cell[0], backward);
        assert_eq!(first_backward, 16);
        let last_backward = num(&cell[2], backward);
        match cell[0][beam] {
            "1" => assert_eq!(last_backward, 48),
            "2" => assert_eq!(last_backward, 16 + 32 + 32),
            other => panic!("beam {other}"),
        }
    }
    let summary = std::fs::read_to_string(root.join("summary.csv")).unwrap();
    assert!(
        summary
            .lines()
            .next()
            .unwrap()
            .contains("encoder_rows_per_cell"),
        "{summary}"
    );
    let report = std::fs::read_to_string(dir.path().join("reports/steps.md")).unwrap();
    assert!(
        report.contains("![compute curve](steps_compute.png)"),
        "{report}"
    );
    assert!(report.contains("encoder rows / cell"), "{report}");
    let png = std::fs::read(dir.path().join("reports/steps_compute.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

/// A saved prompt is portable: copied under any name it applies to the cell chosen with
/// `--cell` (and gives that cell's dev metric again), and a prompt whose token ids do not
/// name the same tokens in the model's vocabulary is refused with the file and the id —
/// never a panic.
#[test]
fn saved_prompts_are_portable_and_checked_against_the_vocabulary() {
    common::splade_tiny();
    let dir = tempfile::tempdir().unwrap();
    let body = "[task]\nkind = \"sst2\"\ntrain_size = 16\ndev_size = 16\ntest_size = 32\n[method]\nkind = \"autoprompt\"\ntemplate = \"[CLS] {sentence} [T] [T] [P] . [SEP]\"\nlabels = { \"0\" = [\"terrible\"], \"1\" = [\"great\"] }\nsearch = { iters = 2, batch_size = 8, accumulation_steps = 2, num_candidates = 3 }\n[grid]\nseeds = [0, 1]\n";
    let file = common::experiment(dir.path(), "portable", body);
    common::assert_success(&run_cmd(&file).output().unwrap());
    let (_, bytes) = records(dir.path(), "portable").pop().unwrap();
    let record: autoprompt::record::Record = serde_json::from_slice(&bytes).unwrap();
    let prompt = record.prompt.clone().unwrap();
    let model = prompt.model.as_ref().expect("the prompt names its model");
    assert_eq!(
        (model.source.as_str(), model.vocab_size),
        ("splade-tiny", 30522)
    );
    let eval = |prompt: &autoprompt::record::PromptArtifact, cell: Option<&str>| {
        let path = dir.path().join("my prompt.json");
        std::fs::write(&path, serde_json::to_vec(prompt).unwrap()).unwrap();
        let mut cmd = Command::new(common::bin());
        cmd.args(["eval", file.to_str().unwrap(), "--prompt"])
            .arg(&path)
            .args(["--split", "dev"])
            .current_dir(common::repo());
        if let Some(id) = cell {
            cmd.args(["--cell", id]);
        }
        cmd.output().unwrap()
    };
    let out = eval(&prompt, Some(&record.id));
    common::assert_success(&out);
    let expected = format!("accuracy         {:.4}", record.metrics["dev_accuracy"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&expected));

    let stderr = |out: &std::process::Output| {
        assert!(!out.status.success());
        assert_ne!(out.status.code(), Some(101), "a panic");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let message = stderr(&eval(&prompt, None));
    assert!(
        message.contains("--cell") && message.contains("my prompt.json"),
        "{message}"
    );

    let mut outside = prompt.clone();
    outside.trigger_ids[1] = 4_000_000;
    let message = stderr(&eval(&outside, Some(&record.id)));
    assert!(
        message.contains("my prompt.json")
            && message.contains("4000000")
            && message.contains("outside this model's vocabulary"),
        "{message}"
    );
    let mut renamed = prompt.clone();
    renamed.trigger_tokens[0] = "not-the-same-token".into();
    let message = stderr(&eval(&renamed, Some(&record.id)));
    assert!(message.contains("another vocabulary"), "{message}");
    let mut other_model = prompt;
    other_model.model.as_mut().unwrap().vocab_size = 50265;
    let message = stderr(&eval(&other_model, Some(&record.id)));
    assert!(
        message.contains("50265") && message.contains("30522"),
        "{message}"
    );
    common::reliability(
        "a saved prompt with a trigger id outside the vocabulary, another token, another vocabulary size",
        "an error naming the prompt file and the id, never a panic",
        "each refused with exit 1 naming `my prompt.json` (and the id, token or sizes)",
        "pipeline::saved_prompts_are_portable_and_checked_against_the_vocabulary",
    );
}

/// Fine-tuning and the linear probe draw initialisation and dropout from burn's generator;
/// with `--jobs 2` cells run side by side, and their records must equal `--jobs 1`'s.
#[test]
fn parallel_cells_give_the_records_of_serial_ones() {
    common::splade_tiny();
    let body = "[task]\nkind = \"sst2\"\ntrain_size = 24\ndev_size = 16\ntest_size = 300\n[method]\nkind = \"majority\"\n[grid]\nseeds = [0, 1]\nmethod = [\n  { kind = \"finetune\", finetune = { epochs = 2, batch_size = 8 } },\n  { kind = \"linear_probe\", probe = { epochs = 3, batch_size = 8 } },\n]\n";
    let metrics = |jobs: &str| {
        let dir = tempfile::tempdir().unwrap();
        let file = common::experiment(dir.path(), "jobs", body);
        common::assert_success(&run_cmd(&file).args(["--jobs", jobs]).output().unwrap());
        let mut out: Vec<(String, std::collections::BTreeMap<String, f64>)> =
            records(dir.path(), "jobs")
                .into_iter()
                .map(|(_, bytes)| {
                    let r: autoprompt::record::Record = serde_json::from_slice(&bytes).unwrap();
                    assert_eq!(
                        r.status,
                        autoprompt::record::Status::Finished,
                        "{:?}",
                        r.error
                    );
                    (r.id, r.metrics)
                })
                .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    };
    let serial = metrics("1");
    assert_eq!(serial.len(), 4);
    assert_eq!(serial, metrics("2"));
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
        let (_, bytes) = records(dir.path(), "attempts").pop().unwrap();
        let r: autoprompt::record::Record = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(r.status, autoprompt::record::Status::Failed);
        assert!(r.error.unwrap().contains("only 71"));
        r.attempts
    };
    for expected in 1..=2 {
        let out = run_cmd(&file)
            .args(["--max-attempts", "2"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(attempts(), expected);
    }
    let out = run_cmd(&file)
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
    let out = run_cmd(&file)
        .args(["--max-attempts", "2", "--retry-failed"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(attempts(), 3);
    common::reliability(
        "a cell that fails every time",
        "retried up to `--max-attempts` (default 3), then skipped and reported; `--retry-failed` runs it",
        "attempts 1, 2 recorded; third run skipped it (ran 0, reported with its error); --retry-failed ran it (attempts 3)",
        "pipeline::a_cell_that_always_fails_is_skipped_after_max_attempts",
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
        let child = run_cmd(&file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // `keep_initial`: the starting prompt is the first best, written before iteration 0.
        let waited = Instant::now();
        while best_prompts(dir.path(), "signals").is_empty() {
            assert!(
                waited.elapsed() < Duration::from_secs(120),
                "the search never started"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
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
        let kept = records(dir.path(), "signals");
        assert_eq!(kept.len(), 1, "only the finished cell has a record");
        let record: autoprompt::record::Record = serde_json::from_slice(&kept[0].1).unwrap();
        assert_eq!(record.spec.method.name(), "majority");
        for p in best_prompts(dir.path(), "signals") {
            let prompt: autoprompt::record::PromptArtifact =
                serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            assert_eq!(prompt.trigger_ids.len(), 3);
        }
        let temps = temp_files(dir.path());
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
            "pipeline::sigterm_and_sigint_stop_a_search_cleanly_and_the_next_run_resumes",
        );
    }
}

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
        &run_cmd(&file)
            .args(["--set", "seeds=[0]"])
            .output()
            .unwrap(),
    );
    let before = records(dir.path(), "full");
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
        records(dir.path(), "full"),
        before,
        "the earlier record changed"
    );
    assert!(
        temp_files(dir.path()).is_empty(),
        "{:?}",
        temp_files(dir.path())
    );
    common::reliability(
        "file-size limit (`ulimit -f 1`, EFBIG as on a full disk) while writing records",
        "an error naming the path, earlier records intact, no half-written file; the next run completes",
        "exit 1, error names the file (the cell's predictions, written before its record); earlier record byte-identical; 0 temp files; next run wrote 3/3 records",
        "pipeline::a_full_disk_fails_the_write_cleanly_and_the_next_run_completes",
    );
    common::assert_success(&run_cmd(&file).output().unwrap());
    assert_eq!(records(dir.path(), "full").len(), 3);
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
    let out = run_cmd(&file).output().unwrap();
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
        "pipeline::a_results_directory_that_is_a_file_is_an_error_before_any_cell_runs",
    );
}

/// The results directory deleted in the middle of a sweep: the runner stops at its next write
/// with an error naming the directory (no panic), and writes nothing into a recreated one.
#[test]
fn a_results_directory_that_vanishes_mid_run_stops_the_run_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::experiment(dir.path(), "vanish", MANY_CELLS);
    let child = run_cmd(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_records(dir.path(), "vanish", 3);
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
        records(dir.path(), "vanish").is_empty(),
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
        "pipeline::a_results_directory_that_vanishes_mid_run_stops_the_run_with_an_error",
    );
}

/// Every library source file under `framework/src` with its text: all `.rs` files but the
/// binary's own modules, `main.rs` and `cli/` (declared by `main.rs` only).
fn library_sources() -> Vec<(std::path::PathBuf, String)> {
    let src = common::repo().join("framework/src");
    let mut stack = vec![src.clone()];
    let mut files = vec![];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path == src.join("main.rs") || path == src.join("cli") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                files.push((path, text));
            }
        }
    }
    assert!(
        !files.is_empty(),
        "no library sources under {}",
        src.display()
    );
    files
}

/// The library knows nothing of clap (ARCHITECTURE.md): no file under `framework/src` but
/// `main.rs` names it; the CLI keeps mirrors of the library's enums.
#[test]
fn the_library_derives_no_clap_types() {
    let offenders: Vec<_> = library_sources()
        .into_iter()
        .filter(|(_, text)| {
            ["clap::", "#[arg(", "#[command("]
                .iter()
                .any(|p| text.contains(p))
        })
        .map(|(path, _)| path)
        .collect();
    assert!(offenders.is_empty(), "clap in the library: {offenders:?}");
    let lib = std::fs::read_to_string(common::repo().join("framework/src/lib.rs")).unwrap();
    assert!(
        !lib.contains("mod cli"),
        "the library must not declare the CLI's modules"
    );
}

/// The CLI prints; the library logs through `tracing` only (ARCHITECTURE.md): no library
/// file writes to stdout or stderr itself.
#[test]
fn the_library_prints_nothing() {
    let offenders: Vec<_> = library_sources()
        .into_iter()
        .filter(|(_, text)| {
            let code: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            ["println!(", "eprintln!(", "print!(", "eprint!(", "dbg!("]
                .iter()
                .any(|p| code.contains(p))
        })
        .map(|(path, _)| path)
        .collect();
    assert!(offenders.is_empty(), "the library prints: {offenders:?}");
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
        std::thread::sleep(Duration::from_millis(300));
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
            "pipeline::stale_and_foreign_locks_are_shown_and_can_be_broken",
        );
        std::fs::remove_dir_all(dir.path().join("results/locked/cells")).unwrap();
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
/// moments four times (every kill after the attempt has saved a checkpoint of its own), then
/// run to the end: the run resumes from the checkpoint (not from zero), the record equals an
/// uninterrupted run's in everything but wall times, and the checkpoint is gone.
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
        common::assert_success(&run_cmd(&file).arg("-q").output().unwrap());
        let uninterrupted_seconds = started.elapsed().as_secs_f64();
        let expected = records(clean.path(), name);
        assert_eq!(expected.len(), 1);

        let dir = tempfile::tempdir().unwrap();
        let file = common::experiment(dir.path(), name, &body);
        let mut delays = vec![];
        for _ in 0..4 {
            let mut child = run_cmd(&file)
                .arg("-q")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let spawned = std::time::SystemTime::now();
            let waited = Instant::now();
            // Wait for this attempt's own first save, then a random moment more.
            while checkpoint_mtime(dir.path(), name).is_none_or(|t| t < spawned) {
                assert!(
                    waited.elapsed() < Duration::from_secs(120),
                    "{name}: no checkpoint was saved"
                );
                assert!(
                    child.try_wait().unwrap().is_none(),
                    "{name}: the cell finished before it could be killed"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            let delay = random.u64(0..=800);
            delays.push(delay);
            std::thread::sleep(Duration::from_millis(delay));
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            assert!(
                records(dir.path(), name).is_empty(),
                "{name}: finished too early"
            );
        }
        let out = run_cmd(&file).output().unwrap();
        common::assert_success(&out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(resumed_line), "{name}: {stderr}");
        let got = records(dir.path(), name);
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
            temp_files(dir.path()).is_empty(),
            "{:?}",
            temp_files(dir.path())
        );
        common::reliability(
            &format!("kill -9 of a long {name} cell, four times"),
            "the cell resumes from its last checkpoint, and the final record equals an uninterrupted run's (wall times aside); the checkpoint is deleted with the record",
            &format!(
                "kills {delays:?} ms after each attempt's first checkpoint (the uninterrupted cell took {uninterrupted_seconds:.1} s); the final run resumed; record equal; 0 checkpoints and temp files left"
            ),
            "pipeline::cells_killed_repeatedly_resume_from_checkpoints_and_equal_an_uninterrupted_run",
        );
    }
}

/// `fill-mask` on the tiny RoBERTa, its stderr written to a file (as `cmd > log 2>&1`
/// does), with extra arguments and environment; returns what landed in the file.
fn stderr_in_a_file(args: &[&str], env: &[(&str, &str)]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let model = common::repo().join("tests/fixtures/tiny-roberta");
    let mut cmd = Command::new(common::bin());
    cmd.env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .args(args)
        .args(["fill-mask", "--model"])
        .arg(&model)
        .arg("the movie was <mask> .")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    assert!(cmd.status().unwrap().success());
    let bytes = std::fs::read(&log).unwrap();
    assert!(
        String::from_utf8_lossy(&bytes).contains("model loaded"),
        "the info line is logged: {}",
        String::from_utf8_lossy(&bytes)
    );
    bytes
}

#[test]
fn logs_written_to_a_file_carry_no_colour_escapes() {
    const ESC: u8 = 0x1b;
    for (args, env) in [
        (&[][..], &[][..]),
        (&["--color", "auto"][..], &[][..]),
        (&["--color", "never"][..], &[][..]),
        (&[][..], &[("NO_COLOR", "1")][..]),
    ] {
        let bytes = stderr_in_a_file(args, env);
        assert!(
            !bytes.contains(&ESC),
            "{args:?} {env:?}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    // Forced colour reaches the file: the check above can fail.
    assert!(stderr_in_a_file(&["--color", "always"], &[("NO_COLOR", "1")]).contains(&ESC));
}
