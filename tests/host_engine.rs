//! The host engine against burn's implementation of the same network — BERT (the real
//! embedded model), RoBERTa (the random fixture: position offset, one token type),
//! XLM-RoBERTa, DistilBERT and ModernBERT (random fixtures) — on
//! real SST-2 sentences and SICK sentence pairs (segment ids) of different lengths, so
//! packing, padding and the pruned last layer are all exercised: hidden states, mask
//! features, evaluation scores and trigger gradients (purely relative tolerance) for both
//! kinds of target, with and without class weights.

mod common;

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{Int, Tensor, TensorData};

use autoprompt::lm::host::{HostModel, Packed};
use autoprompt::lm::{self, EncoderInput, LoadedModel};
use autoprompt::prompt::{Batch, Encoded, Template};
use autoprompt::search::trigger::batch_with_triggers;
use autoprompt::search::{Engine, EngineKind, Gold, Scorer, Target};

type B = Autodiff<NdArray>;
type Inner = NdArray;

/// One comparison: a model (a fixture directory under `tests/fixtures`, or the embedded
/// SPLADE-tiny when `None`), and whether its prompts are sentence pairs.
#[derive(Debug, Clone, Copy)]
struct Case {
    name: &'static str,
    fixture: Option<&'static str>,
    pair: bool,
}

/// BERT (the embedded SPLADE-tiny, with segment ids 0 / 1 on pairs), RoBERTa (the random
/// `tests/fixtures/tiny-roberta`: positions offset by `pad + 1`, one token type) and
/// XLM-RoBERTa (`tests/fixtures/tiny-xlm-roberta`: RoBERTa's layout, SentencePiece) and
/// DistilBERT (`tests/fixtures/tiny-distilbert`: no token types, so pairs' segment ids are
/// ignored) and ModernBERT (`tests/fixtures/tiny-modernbert`: pre-norm, rotary positions,
/// a local layer whose 4-token window is shorter than every row, GeGLU, final norm), each
/// on single sentences (SST-2) and sentence pairs (SICK).
const CASES: [Case; 10] = [
    Case {
        name: "bert single",
        fixture: None,
        pair: false,
    },
    Case {
        name: "bert pairs",
        fixture: None,
        pair: true,
    },
    Case {
        name: "roberta single",
        fixture: Some("tiny-roberta"),
        pair: false,
    },
    Case {
        name: "roberta pairs",
        fixture: Some("tiny-roberta"),
        pair: true,
    },
    Case {
        name: "xlm-roberta single",
        fixture: Some("tiny-xlm-roberta"),
        pair: false,
    },
    Case {
        name: "xlm-roberta pairs",
        fixture: Some("tiny-xlm-roberta"),
        pair: true,
    },
    Case {
        name: "distilbert single",
        fixture: Some("tiny-distilbert"),
        pair: false,
    },
    Case {
        name: "distilbert pairs",
        fixture: Some("tiny-distilbert"),
        pair: true,
    },
    Case {
        name: "modernbert single",
        fixture: Some("tiny-modernbert"),
        pair: false,
    },
    Case {
        name: "modernbert pairs",
        fixture: Some("tiny-modernbert"),
        pair: true,
    },
];

fn load<BK: burn::tensor::backend::Backend>(case: Case) -> LoadedModel<BK> {
    let dir = match case.fixture {
        Some(name) => common::repo().join("tests/fixtures").join(name),
        None => common::splade_tiny(),
    };
    lm::load::<BK>(dir.to_str().unwrap(), &Default::default()).unwrap()
}

/// 12 training examples (SST-2 sentences or SICK pairs) encoded with three triggers, and
/// their classes.
fn batch(lm: &LoadedModel<B>, case: Case) -> (Batch, Vec<usize>) {
    let vocab = lm.model.vocab_size() as u32;
    let triggers = [vocab / 3, lm.tokenizer.special.mask.id, vocab / 2 + 7];
    let paths = autoprompt::tasks::DataPaths {
        data_dir: common::data_dir(),
        lama_dir: "unused".into(),
        lpaqa_dir: "unused".into(),
    };
    let (data, template) = if case.pair {
        let spec = common::task_spec_with(
            autoprompt::tasks::TaskKind::SickE,
            12,
            2,
            serde_json::json!({ "variant": "two_way" }),
        );
        (
            autoprompt::tasks::load(&spec, &paths, 5).unwrap(),
            "[CLS] {sentence_A} [SEP] {sentence_B} [T] [T] [T] [P] . [SEP]",
        )
    } else {
        (
            common::sst2(12, 1, 5),
            "[CLS] {sentence} [T] [T] [T] [P] . [SEP]",
        )
    };
    let template = Template::parse(template).unwrap();
    // Segment ids 1 after the first separator where the model has token types.
    let pair_segments = case.pair && lm.config.type_vocab_size > 1;
    let encoded: Vec<Encoded> = data
        .train
        .iter()
        .map(|e| {
            template
                .encode(
                    |f| e.field(f),
                    &lm.tokenizer,
                    &triggers,
                    autoprompt::prompt::LengthLimit::at_end(64),
                    pair_segments,
                )
                .unwrap()
        })
        .collect();
    let refs: Vec<&Encoded> = encoded.iter().collect();
    let classes = data
        .train
        .iter()
        .map(|e| data.classes.iter().position(|c| *c == e.label).unwrap())
        .collect();
    let batch = batch_with_triggers(&refs, &triggers, lm.tokenizer.special.pad.id);
    if pair_segments {
        assert!(
            batch.segment_ids.contains(&1),
            "{}: no second segment",
            case.name
        );
    }
    (batch, classes)
}

/// `max |host − burn| ≤ tolerance · max(max |burn|, 1)`; with `relative`, `≤ tolerance ·
/// max |burn|` whatever its scale (gradients can be small).
fn assert_close(what: &str, host: &[f32], burn: &[f32], tolerance: f32, relative: bool) {
    assert_eq!(host.len(), burn.len(), "{what}: lengths");
    let scale = burn.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = host
        .iter()
        .zip(burn)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!("{what}: max |host − burn| = {worst:.2e} (max |burn| = {scale:.2e})");
    let bound = if relative { scale } else { scale.max(1.0) };
    assert!(
        worst <= tolerance * bound,
        "{what}: max difference {worst} exceeds {tolerance} × {bound}"
    );
}

fn values<BK: burn::tensor::backend::Backend, const D: usize>(t: Tensor<BK, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec::<f32>().unwrap()
}

#[test]
fn packed_encoder_matches_burn_on_padded_rows() {
    for case in CASES {
        let lm = load::<Inner>(case);
        let (batch, _) = batch(&load::<B>(case), case);
        let lengths: Vec<usize> = batch
            .attention_mask
            .chunks(batch.seq_len)
            .map(|m| m.iter().filter(|&&v| v > 0.5).count())
            .collect();
        assert!(
            lengths.iter().min() < lengths.iter().max(),
            "{}: the fixture must pad some rows: lengths {lengths:?}",
            case.name
        );
        let device = Default::default();
        let shape = [batch.rows, batch.seq_len];
        let ids: Vec<i64> = batch.ids.iter().map(|&i| i as i64).collect();
        let segments: Vec<i64> = batch.segment_ids.iter().map(|&i| i as i64).collect();
        let hidden = lm.model.encode(EncoderInput {
            inputs_embeds: lm.model.embed_tokens(Tensor::<Inner, 2, Int>::from_data(
                TensorData::new(ids, shape),
                &device,
            )),
            token_type_ids: Tensor::from_data(TensorData::new(segments, shape), &device),
            attention_mask: Tensor::from_data(
                TensorData::new(batch.attention_mask.clone(), shape),
                &device,
            ),
        });
        let burn_hidden = values(hidden);
        let h = lm.model.hidden_size();
        // The real tokens of each padded row, in packed order.
        let burn_real: Vec<f32> = lengths
            .iter()
            .enumerate()
            .flat_map(|(r, &len)| {
                burn_hidden[r * batch.seq_len * h..(r * batch.seq_len + len) * h].to_vec()
            })
            .collect();
        let host = HostModel::from_model(&lm.model).expect("the host engine covers this family");
        let packed = Packed::from_padded(
            &batch.ids,
            &batch.segment_ids,
            &batch.attention_mask,
            batch.seq_len,
        );
        assert_eq!(packed.tokens(), lengths.iter().sum::<usize>());
        assert_close(
            &format!("{}: hidden states", case.name),
            &host.encode(&packed),
            &burn_real,
            1e-4,
            false,
        );
    }
}

fn scorers(case: Case, target: Target) -> (Scorer, Scorer) {
    let lm = load::<B>(case);
    let make = |engine| {
        Scorer::with_engine(
            lm.model.clone(),
            target.clone(),
            64,
            Default::default(),
            engine,
        )
    };
    let (host, burn) = (make(Engine::Host), make(Engine::Burn));
    assert_eq!(
        (host.engine(), burn.engine()),
        (EngineKind::Host, EngineKind::Burn)
    );
    (host, burn)
}

/// Two classes of label tokens (two and one), away from the special tokens.
fn classification(lm: &LoadedModel<B>) -> Target {
    let v = lm.model.vocab_size() as u32;
    Target::Classes {
        label_ids: vec![v / 4, v / 4 + 1, v / 5],
        spans: vec![(0, 2), (2, 1)],
    }
}

#[test]
fn host_scores_match_burn_for_classes_and_vocabulary() {
    for case in CASES {
        let lm = load::<B>(case);
        let (batch, classes) = batch(&lm, case);
        let class_golds: Vec<Gold> = classes
            .iter()
            .map(|&c| Gold { index: c, token: 0 })
            .collect();
        // Fact-retrieval style: a gold among 50 candidates.
        let first = lm.model.vocab_size() as u32 / 2;
        let candidate_ids: Vec<u32> = (first..first + 50).collect();
        let vocabulary_golds: Vec<Gold> = (0..batch.rows)
            .map(|r| Gold {
                index: r % 50,
                token: candidate_ids[r % 50],
            })
            .collect();
        for (target, golds) in [
            (classification(&lm), class_golds),
            (Target::Vocabulary { candidate_ids }, vocabulary_golds),
        ] {
            let name = case.name;
            let (host, burn) = scorers(case, target.clone());
            assert_close(
                &format!("{name}: mask features"),
                &host.mask_features(&batch),
                &burn.mask_features(&batch),
                1e-4,
                false,
            );
            let host_rows = host.score_rows(&batch, &golds, true);
            let burn_rows = burn.score_rows(&batch, &golds, true);
            let ll = |rows: &[autoprompt::search::RowScore]| {
                rows.iter()
                    .map(|r| r.gold_log_likelihood)
                    .collect::<Vec<_>>()
            };
            assert_close(
                &format!("{name}: gold log-likelihoods"),
                &ll(&host_rows),
                &ll(&burn_rows),
                1e-4,
                false,
            );
            let ranks = |rows: &[autoprompt::search::RowScore]| {
                rows.iter().map(|r| r.rank).collect::<Vec<_>>()
            };
            assert_eq!(ranks(&host_rows), ranks(&burn_rows), "{name}: {target:?}");

            let weights: Vec<f32> = (0..batch.rows).map(|r| 0.5 + (r % 3) as f32).collect();
            for w in [None, Some(weights.as_slice())] {
                let (host_loss, host_grad) = host.trigger_gradient(&batch, &golds, w);
                let (burn_loss, burn_grad) = burn.trigger_gradient(&batch, &golds, w);
                assert!(
                    (host_loss - burn_loss).abs() <= 1e-5 * burn_loss.abs(),
                    "{name}: loss: host {host_loss} vs burn {burn_loss}"
                );
                assert_eq!(host_grad.len(), burn_grad.len());
                for (slot, (a, b)) in host_grad.iter().zip(&burn_grad).enumerate() {
                    assert_close(
                        &format!("{name}: trigger slot {slot} gradient"),
                        a,
                        b,
                        1e-3,
                        true,
                    );
                }
            }
        }
    }
}

#[test]
fn host_engine_is_chosen_for_cpu_backends_only_when_asked_or_automatic() {
    use autoprompt::backend::BackendKind;
    assert_eq!(
        Engine::Auto.resolve(BackendKind::Ndarray, true),
        EngineKind::Host
    );
    assert_eq!(
        Engine::Auto.resolve(BackendKind::Flex, true),
        EngineKind::Host
    );
    assert_eq!(
        Engine::Auto.resolve(BackendKind::Cuda, true),
        EngineKind::Burn
    );
    assert_eq!(
        Engine::Burn.resolve(BackendKind::Ndarray, true),
        EngineKind::Burn
    );
    assert_eq!(
        Engine::Host.resolve(BackendKind::Cuda, true),
        EngineKind::Host
    );
    // A model the host engine does not cover (ELECTRA's projection) runs on burn.
    assert_eq!(
        Engine::Auto.resolve(BackendKind::Ndarray, false),
        EngineKind::Burn
    );
    assert_eq!(
        Engine::Host.resolve(BackendKind::Ndarray, false),
        EngineKind::Burn
    );
    // The scorer resolves the setting against the backend it is built for.
    assert_eq!(BackendKind::of::<B>(), Some(BackendKind::Ndarray));
    assert_eq!(
        BackendKind::of::<burn::backend::Flex>(),
        Some(BackendKind::Flex)
    );
}
