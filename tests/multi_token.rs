//! Answers of several tokens against transformers: word and class scores under every
//! strategy and normalisation, and HotFlip's loss and trigger gradient, on SPLADE-tiny (BERT,
//! WordPiece), the committed tiny RoBERTa (byte-level BPE) and tiny XLM-RoBERTa
//! (SentencePiece), on both engines. Fixtures: `tests/parity/make_multi_token_fixtures.py`.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::backend::{Autodiff, NdArray};
use serde::Deserialize;

use autoprompt::lm::{self, LoadedModel};
use autoprompt::prompt::{Batch, Encoded};
use autoprompt::search::{
    Engine, FillOrder, Gold, LengthNorm, MultiToken, Scorer, Target, WordTarget,
};

type B = Autodiff<NdArray>;

#[derive(Deserialize)]
struct Fixture {
    model: String,
    words: Vec<Word>,
    classes: Vec<Vec<usize>>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Word {
    text: String,
    ids: Vec<u32>,
}

#[derive(Deserialize)]
struct Case {
    prefix_ids: Vec<u32>,
    suffix_ids: Vec<u32>,
    trigger_position: usize,
    scores: BTreeMap<String, Vec<f32>>,
    class_scores: BTreeMap<String, Vec<f32>>,
    loss: BTreeMap<String, f32>,
    gradient: BTreeMap<String, Vec<f32>>,
}

fn fixture(name: &str) -> Fixture {
    let path = common::repo().join(format!("tests/fixtures/parity/multi_token_{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn model_dir(name: &str) -> PathBuf {
    match name {
        "splade_tiny" => common::splade_tiny(),
        other => common::repo().join(format!("tests/fixtures/{}", other.replace('_', "-"))),
    }
}

const STRATEGIES: [(FillOrder, &str); 3] = [
    (FillOrder::Independent, "independent"),
    (FillOrder::LeftToRight, "left_to_right"),
    (FillOrder::Confidence, "confidence"),
];
const NORMS: [(LengthNorm, &str); 2] = [(LengthNorm::Sum, "sum"), (LengthNorm::Mean, "mean")];

/// The case's prompt with `[P]` as `masks` masks and one trigger slot.
fn batch(lm: &LoadedModel<B>, case: &Case, masks: usize) -> Batch {
    let mask = lm.tokenizer.special.mask.id;
    let ids: Vec<u32> = case
        .prefix_ids
        .iter()
        .copied()
        .chain(std::iter::repeat_n(mask, masks))
        .chain(case.suffix_ids.iter().copied())
        .collect();
    let encoded = Encoded {
        segment_ids: vec![0; ids.len()],
        ids,
        trigger_positions: vec![case.trigger_position],
        predict_position: case.prefix_ids.len(),
        cut_tokens: 0,
    };
    Batch::pad(&[&encoded], lm.tokenizer.special.pad.id)
}

fn spans(classes: &[Vec<usize>]) -> Vec<(usize, usize)> {
    // The fixture's classes are consecutive runs of words.
    let mut start = 0;
    classes
        .iter()
        .map(|c| {
            assert_eq!(c[0], start, "classes are consecutive runs of words");
            let span = (start, c.len());
            start += c.len();
            span
        })
        .collect()
}

/// Worst differences over every case, strategy and normalisation on one engine:
/// (scores, class scores, loss, gradient relative to its largest entry).
fn measure(name: &str, engine: Engine) -> [f32; 4] {
    let fx = fixture(name);
    assert_eq!(fx.model, name);
    let lm: LoadedModel<B> =
        lm::load::<B>(model_dir(name).to_str().unwrap(), &Default::default()).unwrap();
    for w in &fx.words {
        assert_eq!(
            lm.tokenizer.word_token_ids(&w.text).as_deref(),
            Some(w.ids.as_slice()),
            "{name}: tokens of `{}`",
            w.text
        );
    }
    let words: Vec<Vec<u32>> = fx.words.iter().map(|w| w.ids.clone()).collect();
    let class_spans = spans(&fx.classes);
    let mask = lm.tokenizer.special.mask.id;
    let pad = lm.tokenizer.special.pad.id;
    let scorer = |classes: Vec<(usize, usize)>, scoring| {
        Scorer::with_engine(
            lm.model.clone(),
            Target::Words(WordTarget::new(
                words.clone(),
                Some(classes),
                scoring,
                mask,
                pad,
            )),
            7,
            Default::default(),
            engine,
        )
    };
    let mut worst = [0.0f32; 4];
    for (strategy, s_name) in STRATEGIES {
        for (normalize, n_name) in NORMS {
            let key = format!("{s_name}/{n_name}");
            let scoring = MultiToken {
                strategy,
                normalize,
            };
            // Each word its own class: the class scores are the word scores.
            let per_word = scorer((0..words.len()).map(|i| (i, 1)).collect(), scoring);
            let by_class = scorer(class_spans.clone(), scoring);
            let masks = words.iter().map(Vec::len).max().unwrap();
            // This strategy's worst differences over the cases.
            let mut this = [0.0f32; 4];
            for case in &fx.cases {
                let b = batch(&lm, case, masks);
                let gold = [Gold { index: 0, token: 0 }];
                let row = &per_word.score_rows(&b, &gold, true)[0];
                let words_diff = common::max_abs_diff(&row.class_scores, &case.scores[&key]);
                let row = &by_class.score_rows(&b, &gold, true)[0];
                let classes_diff =
                    common::max_abs_diff(&row.class_scores, &case.class_scores[&key]);
                assert_eq!(row.gold_log_likelihood, row.class_scores[0]);
                let (loss, grads) = by_class.trigger_gradient(&b, &gold, None);
                let expected = &case.gradient[&key];
                let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let diffs = [
                    words_diff,
                    classes_diff,
                    (loss - case.loss[&key]).abs(),
                    common::max_abs_diff(&grads[0], expected) / scale,
                ];
                for (t, d) in this.iter_mut().zip(diffs) {
                    *t = t.max(d);
                }
            }
            println!(
                "{name} {engine:?} {key}: word {:.1e}, class {:.1e}, loss {:.1e}, gradient {:.1e}",
                this[0], this[1], this[2], this[3]
            );
            for (w, t) in worst.iter_mut().zip(this) {
                *w = w.max(t);
            }
        }
    }
    worst
}

fn check(name: &str) {
    for engine in [Engine::Host, Engine::Burn] {
        let [scores, classes, loss, gradient] = measure(name, engine);
        println!(
            "{name} {engine:?}: scores {scores:.2e}, class scores {classes:.2e}, loss {loss:.2e}, gradient (relative) {gradient:.2e}"
        );
        assert!(
            scores <= 1e-4,
            "{name} {engine:?}: word scores differ by {scores}"
        );
        assert!(
            classes <= 1e-4,
            "{name} {engine:?}: class scores differ by {classes}"
        );
        assert!(loss <= 1e-4, "{name} {engine:?}: loss differs by {loss}");
        assert!(
            gradient <= 1e-4,
            "{name} {engine:?}: gradient differs by {gradient}"
        );
    }
}

#[test]
fn bert_multi_token_scores_match_transformers() {
    check("splade_tiny");
}

#[test]
fn roberta_multi_token_scores_match_transformers() {
    check("tiny_roberta");
}

#[test]
fn xlm_roberta_multi_token_scores_match_transformers() {
    check("tiny_xlm_roberta");
}

fn records(dir: &std::path::Path, name: &str) -> Vec<autoprompt::record::Record> {
    common::records(&dir.join("results"), name)
        .into_iter()
        .map(|(_, r)| r)
        .collect()
}

/// What a search decided and measured, without its timings.
fn outcome(r: &autoprompt::record::Record) -> serde_json::Value {
    let search = r.search.as_ref().map(|s| {
        s.steps
            .iter()
            .map(|t| {
                serde_json::json!([
                    t.restart,
                    t.iteration,
                    t.slot,
                    t.loss,
                    t.current,
                    t.accepted,
                    t.dev,
                    t.rows
                ])
            })
            .collect::<Vec<_>>()
    });
    serde_json::json!({
        "metrics": r.metrics,
        "prompt": r.prompt,
        "steps": search,
    })
}

const SEARCH: &str =
    "search = { iters = 2, batch_size = 8, accumulation_steps = 2, num_candidates = 3 }";

/// A search with label words SPLADE-tiny splits ("very bad", "very good") runs, gives the
/// same record twice, and its saved prompt re-scored by `eval` gives its recorded accuracy.
#[test]
fn a_search_with_multi_token_label_words_is_deterministic_and_eval_reproduces_it() {
    common::splade_tiny();
    let body = format!(
        "[task]\nkind = \"sst2\"\ntrain_size = 16\ndev_size = 16\ntest_size = 32\n[method]\nkind = \"autoprompt\"\ntemplate = \"[CLS] {{sentence}} [T] [T] [P] . [SEP]\"\nlabels = {{ \"0\" = [\"terrible\", \"very bad\"], \"1\" = [\"great\", \"very good\"] }}\nmulti_token = {{ strategy = \"left_to_right\", normalize = \"mean\" }}\n{SEARCH}\n"
    );
    let run = || {
        let dir = tempfile::tempdir().unwrap();
        let file = common::experiment(dir.path(), "words", &body);
        common::assert_success(&common::run_cmd(&file).output().unwrap());
        let mut records = records(dir.path(), "words");
        assert_eq!(records.len(), 1);
        (dir, file, records.remove(0))
    };
    let (dir, file, record) = run();
    let (_other, _, again) = run();
    assert_eq!(outcome(&record), outcome(&again), "two runs differ");
    let prompt = record.prompt.clone().expect("a prompt");
    let verbalizer = prompt.verbalizer.as_ref().expect("label words");
    assert_eq!(verbalizer.classes[0].word_lengths, Some(vec![1, 2]));
    assert_eq!(verbalizer.classes[1].tokens, ["great", "very", "good"]);
    // left_to_right rows per example: (1, -), (2, -), (2, "very"): every count a multiple.
    let rows = record.search.as_ref().unwrap().rows.unwrap();
    assert!(rows.forward > 0 && rows.forward % 3 == 0, "{rows:?}");

    let path = dir.path().join("prompt.json");
    std::fs::write(&path, serde_json::to_vec(&prompt).unwrap()).unwrap();
    let out = common::cli()
        .args(["eval", file.to_str().unwrap(), "--prompt"])
        .arg(&path)
        .args(["--split", "dev", "--cell", &record.id])
        .output()
        .unwrap();
    common::assert_success(&out);
    let expected = format!("accuracy         {:.4}", record.metrics["dev_accuracy"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&expected), "{stdout}\nexpected {expected}");
}

/// Single-token label words are scored the same with `multi_token` set as without: the same
/// search, metrics and prompt.
#[test]
fn single_token_words_give_the_same_record_with_multi_token_on() {
    common::splade_tiny();
    let dir = tempfile::tempdir().unwrap();
    let method = |extra: &str| {
        format!(
            "{{ kind = \"autoprompt\", template = \"[CLS] {{sentence}} [T] [T] [P] . [SEP]\", labels = {{ \"0\" = [\"terrible\"], \"1\" = [\"great\"] }}, {SEARCH}{extra} }}"
        )
    };
    let body = format!(
        "[task]\nkind = \"sst2\"\ntrain_size = 16\ndev_size = 16\ntest_size = 32\n[method]\nkind = \"majority\"\n[grid]\nmethod = [\n  {},\n  {},\n]\n",
        method(""),
        method(", multi_token = { strategy = \"confidence\", normalize = \"mean\" }")
    );
    let file = common::experiment(dir.path(), "same", &body);
    common::assert_success(&common::run_cmd(&file).output().unwrap());
    let records = records(dir.path(), "same");
    assert_eq!(records.len(), 2);
    assert_ne!(records[0].id, records[1].id);
    assert_eq!(outcome(&records[0]), outcome(&records[1]));
}

/// Bad multi-token input is a configuration error (exit code 2) naming the key: an empty
/// word, a strategy that does not exist, a word too long for the model once placed, a word
/// of several tokens without `multi_token`, a candidate list with duplicates.
#[test]
fn bad_multi_token_input_is_a_clear_error_naming_the_key() {
    common::splade_tiny();
    let dir = tempfile::tempdir().unwrap();
    let vocab = dir.path().join("objects.txt");
    std::fs::write(&vocab, "Paris\nRio de Janeiro\nParis\n").unwrap();
    let facts = dir.path().join("facts.jsonl");
    std::fs::write(
        &facts,
        "{\"sub_label\": \"a\", \"obj_label\": \"Paris\", \"split\": \"train\"}\n{\"sub_label\": \"b\", \"obj_label\": \"Rio de Janeiro\", \"split\": \"test\"}\n",
    )
    .unwrap();
    let sst2 = |method: &str, model: &str| {
        format!(
            "[task]\nkind = \"sst2\"\ntrain_size = 8\ndev_size = 8\ntest_size = 8\n[model]\n{model}\n[method]\nkind = \"manual\"\ntemplate = \"[CLS] {{sentence}} [P] . [SEP]\"\n{method}\n"
        )
    };
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "an empty word",
            sst2(
                "labels = { \"0\" = [\"\"], \"1\" = [\"great\"] }\nmulti_token = {}",
                "",
            ),
            vec!["method.labels.0", "empty word"],
        ),
        (
            "an unknown strategy",
            sst2(
                "labels = { \"0\" = [\"very bad\"], \"1\" = [\"great\"] }\nmulti_token = { strategy = \"sideways\" }",
                "",
            ),
            vec!["method.multi_token", "sideways", "left_to_right"],
        ),
        (
            "a word too long once placed",
            sst2(
                "labels = { \"0\" = [\"very very very very very bad\"], \"1\" = [\"great\"] }\nmulti_token = {}",
                "max_length = 8",
            ),
            vec![
                "method.labels.0",
                "very very very very very bad",
                "6 tokens",
                "limit of 8",
            ],
        ),
        (
            "a word of several tokens without multi_token",
            sst2(
                "labels = { \"0\" = [\"very bad\"], \"1\" = [\"great\"] }",
                "",
            ),
            vec!["method.labels.0", "very bad", "2 tokens", "multi_token"],
        ),
        (
            "a candidate list with duplicates",
            format!(
                "[task]\nkind = \"fact_probe\"\nfile = {:?}\nsplit_column = \"split\"\nvocab = {:?}\ntrain_size = 1\ndev_size = 1\nat_most = true\n[method]\nkind = \"manual\"\ntemplate = \"[CLS] {{sub_label}} was born in [P] . [SEP]\"\nmulti_token = {{}}\n",
                facts.to_str().unwrap(),
                vocab.to_str().unwrap()
            ),
            vec![
                "task.vocab",
                "objects.txt",
                "line 3 repeats `Paris`",
                "line 1",
            ],
        ),
    ];
    for (what, body, expected) in cases {
        let file = common::experiment(dir.path(), "bad", &body);
        let out = common::run_cmd(&file).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        common::assert_has(&stderr, &expected);
        assert!(
            !dir.path().join("results/bad/cells").exists()
                || std::fs::read_dir(dir.path().join("results/bad/cells"))
                    .unwrap()
                    .next()
                    .is_none(),
            "{what}: a cell ran"
        );
    }
}
