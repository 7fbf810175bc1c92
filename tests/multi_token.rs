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

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
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
            Target::Words(WordTarget::new(words.clone(), Some(classes), scoring, mask, pad)),
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
            for case in &fx.cases {
                let b = batch(&lm, case, masks);
                let gold = [Gold { index: 0, token: 0 }];
                let row = &per_word.score_rows(&b, &gold, true)[0];
                worst[0] = worst[0].max(max_abs_diff(&row.class_scores, &case.scores[&key]));
                let row = &by_class.score_rows(&b, &gold, true)[0];
                worst[1] =
                    worst[1].max(max_abs_diff(&row.class_scores, &case.class_scores[&key]));
                assert_eq!(row.gold_log_likelihood, row.class_scores[0]);
                let (loss, grads) = by_class.trigger_gradient(&b, &gold, None);
                worst[2] = worst[2].max((loss - case.loss[&key]).abs());
                let expected = &case.gradient[&key];
                let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                worst[3] = worst[3].max(max_abs_diff(&grads[0], expected) / scale);
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
        assert!(scores <= 1e-4, "{name} {engine:?}: word scores differ by {scores}");
        assert!(classes <= 1e-4, "{name} {engine:?}: class scores differ by {classes}");
        assert!(loss <= 1e-4, "{name} {engine:?}: loss differs by {loss}");
        assert!(gradient <= 1e-4, "{name} {engine:?}: gradient differs by {gradient}");
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
