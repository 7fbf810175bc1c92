//! Paired comparisons end to end: an experiment whose methods share some seeds and not
//! others is run on the embedded model; its report gains a Comparisons section and a
//! `comparisons.csv`, and `autoprompt versus` answers for two methods, pairing on shared
//! seeds, on their intersection (saying so), or refusing (saying why).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

fn autoprompt(dir: &Path, args: &[&str]) -> Output {
    Command::new(common::bin())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// Accuracy by seed of every method's finished cells.
fn accuracies(dir: &Path, name: &str) -> BTreeMap<String, BTreeMap<u64, f64>> {
    let mut out: BTreeMap<String, BTreeMap<u64, f64>> = BTreeMap::new();
    for entry in std::fs::read_dir(dir.join("results").join(name).join("cells")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let r: autoprompt::record::Record = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            r.status,
            autoprompt::record::Status::Finished,
            "{:?}",
            r.error
        );
        out.entry(r.spec.method.name().to_string())
            .or_default()
            .insert(r.spec.seed, r.metrics["accuracy"]);
    }
    out
}

#[test]
fn methods_pair_on_shared_seeds_and_refuse_without_one() {
    common::splade_tiny();
    let dir = tempfile::tempdir().unwrap();
    let file = common::experiment(
        dir.path(),
        "paired",
        r#"
[task]
kind = "sst2"
train_size = 16
dev_size = 16
test_size = 64

[[grid]]
seeds = [0, 1, 2]
method = [{ kind = "majority" }]

[[grid]]
seeds = [0, 1]
method = [{ kind = "manual", template = "[CLS] {sentence} it was [P] . [SEP]", labels = { "0" = ["terrible"], "1" = ["great"] } }]

[[grid]]
seeds = [5, 6]
method = [{ kind = "linear_probe" }]
"#,
    );
    let file = file.to_str().unwrap();
    // The embedded model is found from the repository root, where `just run` runs.
    common::assert_success(&autoprompt(&common::repo(), &["run", file]));
    let report = || {
        let out = autoprompt(dir.path(), &["report", file]);
        common::assert_success(&out);
        std::fs::read(dir.path().join("results/paired/comparisons.csv")).unwrap()
    };
    let csv = report();
    assert_eq!(
        csv,
        report(),
        "the comparisons are a pure function of the records"
    );
    // The Δ plot against a chosen method.
    let out = autoprompt(dir.path(), &["report", file, "--delta-against", "majority"]);
    common::assert_success(&out);
    let png = std::fs::read(dir.path().join("reports/paired_delta.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let md = std::fs::read_to_string(dir.path().join("reports/paired.md")).unwrap();
    assert!(
        md.contains("![Δ against majority](paired_delta.png)"),
        "{md}"
    );
    let out = autoprompt(dir.path(), &["report", file, "--delta-against", "finetune"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown method is invalid input"
    );
    let csv = String::from_utf8(csv).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    for column in [
        "setting",
        "metric",
        "a",
        "b",
        "n_seeds",
        "delta",
        "t_low",
        "t_high",
        "p_value",
        "bootstrap_low",
        "bootstrap_high",
        "note",
    ] {
        assert!(
            header.contains(&column),
            "comparisons.csv lacks {column}: {header:?}"
        );
    }
    assert!(
        dir.path()
            .join("results/paired/comparisons.parquet")
            .is_file(),
        "no comparisons.parquet"
    );
    let md = std::fs::read_to_string(dir.path().join("reports/paired.md")).unwrap();
    assert!(md.contains("## Comparisons"), "{md}");
    assert!(
        md.contains("paired on the 2 seed(s) both ran (0, 1)"),
        "{md}"
    );
    assert!(md.contains("none in common"), "{md}");

    // Every cell stored its predictions on the evaluation split; their share of right
    // answers is the recorded accuracy.
    let store = autoprompt::store::Store::open(&dir.path().join("results"), "paired").unwrap();
    let records = store.records().unwrap();
    assert_eq!(records.len(), 7);
    for r in &records {
        let p = store
            .predictions(&r.id)
            .unwrap()
            .unwrap_or_else(|| panic!("{} ({}) stored no predictions", r.id, r.spec.method.name()));
        assert_eq!(p.rows.len(), 64);
        let right = p.rows.iter().filter(|x| x.correct()).count() as f64 / 64.0;
        assert_eq!(right, r.metrics["accuracy"], "{}", r.spec.method.name());
    }
    assert!(
        csv.lines().skip(1).any(|l| l.contains(",64,")),
        "example-level statistics (64 examples) in comparisons.csv: {csv}"
    );

    // Shared seeds 0 and 1: Δ is the mean of the per-seed differences.
    let acc = accuracies(dir.path(), "paired");
    let delta = [0, 1]
        .iter()
        .map(|s| acc["manual"][s] - acc["majority"][s])
        .sum::<f64>()
        / 2.0;
    let out = autoprompt(
        dir.path(),
        &[
            "versus", file, "--a", "manual", "--b", "majority", "--metric", "accuracy",
        ],
    );
    common::assert_success(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("accuracy"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains(&format!("{delta:+.4}")),
        "Δ {delta:+.4} in {line}"
    );
    assert!(line.trim_end().ends_with(" 2"), "n = 2 seeds: {line}");
    assert!(
        text.contains("majority's seed(s) 2 have no manual cell"),
        "{text}"
    );

    // No seed in common: refused, with the reason.
    let out = autoprompt(
        dir.path(),
        &["versus", file, "--a", "linear_probe", "--b", "manual"],
    );
    common::assert_success(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("linear_probe ran seeds 5, 6 and manual seeds 0, 1, none in common"),
        "{text}"
    );

    // A method the experiment does not have: invalid input (exit code 2), naming what it has.
    let out = autoprompt(
        dir.path(),
        &["versus", file, "--a", "finetune", "--b", "manual"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("no finished cell of method `finetune`; the experiment's methods: linear_probe, majority, manual"),
        "{err}"
    );
}

#[test]
fn eval_of_a_saved_prompt_reproduces_the_stored_predictions() {
    common::splade_tiny();
    let dir = tempfile::tempdir().unwrap();
    let file = common::experiment(
        dir.path(),
        "again",
        r#"
[task]
kind = "sst2"
train_size = 16
dev_size = 16
test_size = 48
[method]
kind = "autoprompt"
template = "[CLS] {sentence} [T] [T] [P] . [SEP]"
labels = { "0" = ["terrible"], "1" = ["great"] }
search = { iters = 2, batch_size = 8, accumulation_steps = 1, num_candidates = 4 }
"#,
    );
    let file = file.to_str().unwrap();
    common::assert_success(&autoprompt(&common::repo(), &["run", file]));
    let store = autoprompt::store::Store::open(&dir.path().join("results"), "again").unwrap();
    let record = store.records().unwrap().pop().unwrap();
    let stored = store
        .predictions(&record.id)
        .unwrap()
        .expect("stored predictions");
    assert_eq!(stored.classes, ["0", "1"]);
    assert_eq!(stored.rows.len(), 48);
    assert!(
        stored
            .rows
            .iter()
            .all(|r| r.scores.len() == 2 && r.predicted.is_some())
    );
    // A prediction names the class with the highest score, and is right when it is the gold.
    for r in &stored.rows {
        let best = if r.scores[1] > r.scores[0] { "1" } else { "0" };
        assert_eq!(r.predicted.as_deref(), Some(best));
        if r.scores[0] != r.scores[1] {
            assert_eq!(r.correct(), r.gold == best);
        }
    }

    let out = dir.path().join("again.parquet");
    let cell = store.record_path(&record.id);
    let eval = autoprompt(
        &common::repo(),
        &[
            "eval",
            file,
            "--prompt",
            cell.to_str().unwrap(),
            "--split",
            "test",
            "--predictions",
            out.to_str().unwrap(),
        ],
    );
    common::assert_success(&eval);
    // Read the file `eval` wrote through the store, as a cell's own.
    let copy = autoprompt::store::Store::open(dir.path(), "copy").unwrap();
    std::fs::create_dir_all(copy.predictions_path("x").parent().unwrap()).unwrap();
    std::fs::copy(&out, copy.predictions_path("x")).unwrap();
    let again = copy.predictions("x").unwrap().unwrap();
    assert_eq!(again, stored, "eval's predictions differ from the run's");
}

#[test]
fn the_data_seed_draws_the_split_and_the_search_seed_does_not() {
    let paths = autoprompt::tasks::DataPaths {
        data_dir: common::data_dir(),
        lama_dir: "unused".into(),
        lpaqa_dir: "unused".into(),
    };
    let spec = common::task_spec_with(
        autoprompt::tasks::TaskKind::Sst2,
        32,
        32,
        serde_json::json!({ "per_class": 16 }),
    );
    let load = |data_seed: u64, seed: u64| {
        let mut s = spec.clone();
        s.budget_mut().data_seed = Some(data_seed);
        autoprompt::tasks::load(&s, &paths, seed).unwrap()
    };
    let a = load(13, 0);
    // 16 of each class in train and in dev.
    for split in [&a.train, &a.dev] {
        for class in ["0", "1"] {
            assert_eq!(split.iter().filter(|e| e.label == class).count(), 16);
        }
    }
    // Another search seed, the same split; another data seed, another split.
    let same = load(13, 1);
    assert_eq!((&a.train, &a.dev), (&same.train, &same.dev));
    let other = load(21, 0);
    assert_ne!(a.train, other.train);
    // Without a data seed the cell's seed draws the split, as before.
    let plain = autoprompt::tasks::load(&spec, &paths, 13).unwrap();
    assert_eq!(plain.train, a.train);
}

#[test]
fn data_seeds_is_the_grid_shorthand_for_task_data_seed() {
    let file = common::repo().join("experiments/sst2_fewshot.toml");
    let data_seeds = |cells: &[autoprompt::plan::Cell]| {
        cells
            .iter()
            .map(|c| c.spec.task.budget().data_seed.unwrap())
            .collect::<std::collections::BTreeSet<_>>()
    };
    // The shipped file names its data relative to the repository root.
    let data = format!("data_dir={:?}", common::data_dir().display().to_string());
    let plan = |set: &str| {
        let mut args = vec![data.clone()];
        args.extend((!set.is_empty()).then(|| set.to_string()));
        common::load_and_plan(&file, &args).unwrap().1
    };
    let cells = plan("");
    // 5 data splits × 2 search seeds × 5 methods.
    assert_eq!(cells.len(), 50);
    assert_eq!(
        data_seeds(&cells).into_iter().collect::<Vec<_>>(),
        [13, 21, 42, 87, 100]
    );
    assert!(
        cells
            .iter()
            .all(|c| c.spec.task.per_class().map(|k| k.get()) == Some(16))
    );
    // `--set data_seeds=...` narrows the axis, as `--set seeds=...` does.
    let one = plan("data_seeds=[42]");
    assert_eq!(one.len(), 10);
    assert_eq!(data_seeds(&one).into_iter().collect::<Vec<_>>(), [42]);
    // Spelled out, the same cells.
    let spelled = plan("task.data_seed=[42]");
    let ids =
        |cells: &[autoprompt::plan::Cell]| cells.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&one), ids(&spelled));
}
