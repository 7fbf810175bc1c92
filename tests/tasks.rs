//! Task loaders on the real files: counts, splits, variants, budgets, malformed rows.

mod common;

use autoprompt::tasks::{self, DataPaths, TaskKind, TaskSpec};
use serde_json::json;

fn spec(kind: TaskKind, train: usize, dev: usize) -> TaskSpec {
    common::task_spec(kind, train, dev)
}

fn paths() -> DataPaths {
    DataPaths {
        data_dir: common::data_dir(),
        lama_dir: common::shared_data().join("lama"),
        lpaqa_dir: common::shared_data().join("lpaqa"),
    }
}

fn count(examples: &[tasks::Example], label: &str) -> usize {
    examples.iter().filter(|e| e.label == label).count()
}

#[test]
fn sst2_budget_is_stratified_disjoint_and_reproducible() {
    let s = spec(TaskKind::Sst2, 100, 50);
    let a = tasks::load(&s, &paths(), 7).unwrap();
    assert_eq!((a.train.len(), a.dev.len(), a.test.len()), (100, 50, 872));
    // 37,569 of 67,349 training sentences are positive: 55.78% → 56 of 100.
    assert_eq!(count(&a.train, "1"), 56);
    assert_eq!((count(&a.test, "0"), count(&a.test, "1")), (428, 444));
    assert!(a.train.iter().all(|e| !a.dev.contains(e)));
    assert_eq!(a.train, tasks::load(&s, &paths(), 7).unwrap().train);
    assert_ne!(a.train, tasks::load(&s, &paths(), 8).unwrap().train);
    assert_eq!(
        a.train[0].field("sentence").map(|s| s.ends_with(' ')),
        Some(false)
    );
}

#[test]
fn sst2_balanced_sampling() {
    let s = common::task_spec_with(TaskKind::Sst2, 10, 10, json!({ "balance": true }));
    let a = tasks::load(&s, &paths(), 0).unwrap();
    assert_eq!(count(&a.train, "0"), 5);
}

#[test]
fn sick_variants_are_built_from_the_file() {
    let mut s = spec(TaskKind::SickE, 100, 50);
    let standard = tasks::load(&s, &paths(), 0).unwrap();
    assert_eq!(standard.test.len(), 4906);
    assert_eq!(standard.classes, ["CONTRADICTION", "ENTAILMENT", "NEUTRAL"]);
    assert_eq!(count(&standard.test, "CONTRADICTION"), 712);
    assert!(
        standard.train[0].field("sentence_A").is_some()
            && standard.train[0].field("sentence_B").is_some()
    );

    s = common::task_with(&s, json!({ "variant": "two_way" }));
    let two = tasks::load(&s, &paths(), 0).unwrap();
    assert_eq!(two.classes, ["CONTRADICTION", "ENTAILMENT"]);
    assert_eq!(count(&two.test, "CONTRADICTION"), 712);
    assert_eq!(count(&two.test, "ENTAILMENT"), 712);
    assert_eq!(count(&two.test, "NEUTRAL"), 0);
    assert_eq!(count(&two.train, "CONTRADICTION"), 50);
    assert_eq!(count(&two.train, "ENTAILMENT"), 50);

    s = common::task_with(&s, json!({ "variant": "balanced3" }));
    let balanced = tasks::load(&s, &paths(), 0).unwrap();
    assert_eq!(balanced.test.len(), 3 * 712);
    assert_eq!(
        (
            count(&balanced.train, "CONTRADICTION"),
            count(&balanced.train, "NEUTRAL")
        ),
        (34, 33)
    );
}

#[test]
fn lama_test_facts_are_filtered_and_train_excludes_them() {
    let s = common::task_spec_with(TaskKind::Lama, 200, 50, json!({ "relation": "P19" }));
    let a = tasks::load(&s, &paths(), 0).unwrap();
    assert_eq!(
        a.manual_template.as_deref(),
        Some("[CLS] {sub_label} was born in [P] . [SEP]")
    );
    assert_eq!(a.test.len() + a.filtered_examples, 944);
    let Some(tasks::Candidates::Words(vocab)) = a.candidates.as_ref() else {
        panic!("LAMA ranks its common vocabulary");
    };
    assert_eq!(vocab.len(), 21018);
    assert!(a.test.iter().all(|e| vocab.contains(&e.label)));
    let test_facts: Vec<(&str, &str)> = a
        .test
        .iter()
        .map(|e| (e.field("sub_label").unwrap(), e.label.as_str()))
        .collect();
    assert!(
        a.train
            .iter()
            .all(|e| !test_facts.contains(&(e.field("sub_label").unwrap(), e.label.as_str())))
    );
}

/// P108's LPAQA pool, minus its LAMA test facts, holds 18 facts: an exact budget of 150
/// is an error naming the numbers; `at_most` splits the 18 in the asked 3:1 proportion.
#[test]
fn lama_budget_at_most_takes_what_a_small_relation_has() {
    let mut s = common::task_spec_with(TaskKind::Lama, 150, 50, json!({ "relation": "P108" }));
    let err = tasks::load(&s, &paths(), 0).unwrap_err().to_string();
    assert!(
        err.contains("asked for 150") && err.contains("only 18"),
        "{err}"
    );
    s = common::task_with(&s, json!({ "at_most": true }));
    let data = tasks::load(&s, &paths(), 0).unwrap();
    assert_eq!((data.train.len(), data.dev.len()), (13, 5));
    let wide = common::task_spec_with(
        TaskKind::Lama,
        150,
        50,
        json!({ "relation": "P19", "at_most": true }),
    );
    let p19 = tasks::load(&wide, &paths(), 0).unwrap();
    assert_eq!((p19.train.len(), p19.dev.len()), (150, 50));
}

#[test]
fn relation_extraction_contexts_and_perturbation() {
    let mut s = common::task_spec_with(
        TaskKind::RelationExtraction,
        100,
        30,
        json!({ "relation": "P19" }),
    );
    let original = tasks::load(&s, &paths(), 0).unwrap();
    assert_eq!(
        original.manual_template.as_deref(),
        Some("[CLS] {context} [SEP] {sub_label} was born in [P] . [SEP]")
    );
    let with_object = original
        .test
        .iter()
        .filter(|e| e.field("context").unwrap().contains(&e.label))
        .count();
    assert_eq!(with_object, original.test.len());
    s = common::task_with(&s, json!({ "perturbed": true }));
    let perturbed = tasks::load(&s, &paths(), 0).unwrap();
    assert_eq!(perturbed.test.len(), original.test.len());
    let still = perturbed
        .test
        .iter()
        .filter(|e| e.field("context").unwrap().contains(&e.label))
        .count();
    assert!(
        still * 10 < perturbed.test.len(),
        "{still} of {} perturbed contexts still name the object",
        perturbed.test.len()
    );
}

#[test]
fn over_budget_names_the_split() {
    let s = spec(TaskKind::SickE, 10, 600);
    let err = tasks::load(&s, &paths(), 0).unwrap_err().to_string();
    assert!(
        err.contains("SICK-E dev (TRIAL)") && err.contains("asked for"),
        "{err}"
    );
}

fn broken_sst2() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sst2")).unwrap();
    let good: String = (0..40)
        .map(|i| format!("sentence {i} \t{}\r\n", i % 2))
        .collect();
    std::fs::write(
        dir.path().join("sst2/train.tsv"),
        format!("sentence\tlabel\r\ngood one \t1\r\nbad row \t7\r\n{good}"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sst2/dev.tsv"),
        format!("sentence\tlabel\n{good}"),
    )
    .unwrap();
    dir
}

#[test]
fn malformed_row_names_file_and_line() {
    let dir = broken_sst2();
    let p = DataPaths {
        data_dir: dir.path().to_path_buf(),
        ..paths()
    };
    let err = tasks::load(&spec(TaskKind::Sst2, 4, 4), &p, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("sst2/train.tsv:3: unknown label `7`"), "{err}");
}

#[test]
fn skip_policy_counts_skipped_rows() {
    let dir = broken_sst2();
    let p = DataPaths {
        data_dir: dir.path().to_path_buf(),
        ..paths()
    };
    let s = common::task_spec_with(TaskKind::Sst2, 4, 4, json!({ "malformed_rows": "skip" }));
    let data = tasks::load(&s, &p, 0).unwrap();
    assert_eq!(data.skipped_rows, 1);
}

/// LAMA's protocol (the default for `lama`) removes duplicate evaluation facts; `strict`
/// keeps them. P138 has 3 repeated (subject, object) facts, all in the common vocabulary.
#[test]
fn lama_protocol_removes_duplicate_evaluation_facts() {
    let mut s = common::task_spec_with(TaskKind::Lama, 10, 10, json!({ "relation": "P138" }));
    let lama = tasks::load(&s, &paths(), 0).unwrap();
    s = common::task_with(&s, json!({ "ranking": "strict" }));
    let strict = tasks::load(&s, &paths(), 0).unwrap();
    assert_eq!(strict.test.len(), 645);
    assert_eq!(lama.test.len(), 642);
    assert_eq!(lama.filtered_examples, strict.filtered_examples + 3);
    let facts: std::collections::BTreeSet<_> = lama
        .test
        .iter()
        .map(|e| (e.field("sub_label").unwrap(), e.label.as_str()))
        .collect();
    assert_eq!(facts.len(), lama.test.len());
}
