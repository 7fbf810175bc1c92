//! What the CLI writes and prints: deterministic reports, the paper report, the search-step
//! table and compute curve, every subcommand's `--help`, and logs without colour escapes in
//! a file.

mod common;

use std::process::Command;

#[test]
fn report_is_a_pure_function_of_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::experiment(
        dir.path(),
        "report_det",
        "[task]\nkind = \"sst2\"\ntrain_size = 10\ndev_size = 10\n[method]\nkind = \"majority\"\n[grid]\n\"task.train_size\" = [10, 100]\nseeds = [0, 1, 2]\n",
    );
    assert!(common::run_cmd(&file).output().unwrap().status.success());
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
    let out = common::run_cmd(&file)
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

/// `report` writes every search step of every cell as a table (cell, grid values, step
/// fields, cumulative encoder rows) and the compute curve, and the summary gains the
/// encoder rows per cell.
#[test]
fn search_steps_become_a_table_and_a_compute_curve() {
    common::splade_tiny();
    let dir = tempfile::tempdir().unwrap();
    let body = "[task]\nkind = \"sst2\"\ntrain_size = 16\ndev_size = 16\ntest_size = 32\n[method]\nkind = \"autoprompt\"\ntemplate = \"[CLS] {sentence} [T] [T] [P] . [SEP]\"\nlabels = { \"0\" = [\"terrible\"], \"1\" = [\"great\"] }\nsearch = { iters = 3, batch_size = 8, accumulation_steps = 2, num_candidates = 3 }\n[grid]\nseeds = [0, 1]\n\"method.search.beam_size\" = [1, 2]\n";
    let file = common::experiment(dir.path(), "steps", body);
    common::assert_success(&common::run_cmd(&file).output().unwrap());
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

/// `bench forward --gradient` times the trigger-gradient pass and says so: its record counts
/// twice the forward's work and names what it counted; asked of burn's ops it refuses, naming
/// the flag (the pass exists on the host engine only). Nothing here asserts a time.
#[test]
fn bench_forward_gradient_times_the_gradient_pass_on_the_host_engine_only() {
    let model = common::splade_tiny();
    let bench = |extra: &[&str]| {
        Command::new(common::bin())
            .args([
                "-q", "bench", "forward", "--batch", "2", "--seq", "8", "--iters", "1",
            ])
            .arg("--model")
            .arg(&model)
            .args(extra)
            .output()
            .unwrap()
    };
    let json = |out: &std::process::Output| -> serde_json::Value {
        common::assert_success(out);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let forward = json(&bench(&[]));
    let gradient = json(&bench(&["--gradient"]));
    assert_eq!(gradient["implementation"], "rust-host");
    let counted = gradient["flops_of"].as_str().unwrap();
    assert!(counted.starts_with("trigger-gradient pass"), "{counted}");
    assert_ne!(forward["flops_of"], gradient["flops_of"]);
    let (f, g) = (
        forward["gflop"].as_f64().unwrap(),
        gradient["gflop"].as_f64().unwrap(),
    );
    assert!(f > 0.0 && (g - 2.0 * f).abs() < 1e-9 * g, "{f} {g}");
    let refused = bench(&["--gradient", "--engine", "burn"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--gradient") && stderr.contains("host engine"),
        "{stderr}"
    );
}
