//! The host engine against burn's implementation of the same network, on the real embedded
//! model and real SST-2 sentences of different lengths (so packing, padding and the pruned
//! last layer are all exercised): hidden states, mask features, evaluation scores and
//! trigger gradients for both kinds of target, with and without class weights.

mod common;

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{Int, Tensor, TensorData};

use autoprompt::lm::host::{HostModel, Packed};
use autoprompt::lm::{self, EncoderInput, LoadedModel};
use autoprompt::prompt::{Batch, Encoded, Template};
use autoprompt::search::trigger::batch_with_triggers;
use autoprompt::search::{Engine, Gold, Scorer, Target};

type B = Autodiff<NdArray>;
type Inner = NdArray;

fn load<BK: burn::tensor::backend::Backend>() -> LoadedModel<BK> {
    lm::load::<BK>(common::splade_tiny().to_str().unwrap(), &Default::default()).unwrap()
}

/// 12 SST-2 training sentences and their encodings with three triggers.
fn batch(lm: &LoadedModel<B>) -> (Batch, Vec<usize>) {
    let data = common::sst2(12, 1, 5);
    let triggers = [
        lm.tokenizer.single_token_id("movie").unwrap(),
        lm.tokenizer.special.mask.id,
        lm.tokenizer.single_token_id("really").unwrap(),
    ];
    let template = Template::parse("[CLS] {sentence} [T] [T] [T] [P] . [SEP]").unwrap();
    let encoded: Vec<Encoded> = data
        .train
        .iter()
        .map(|e| {
            template
                .encode(|f| e.field(f), &lm.tokenizer, &triggers, 64, false)
                .unwrap()
        })
        .collect();
    let refs: Vec<&Encoded> = encoded.iter().collect();
    let classes = data
        .train
        .iter()
        .map(|e| e.label.parse().unwrap())
        .collect();
    (
        batch_with_triggers(&refs, &triggers, lm.tokenizer.special.pad.id),
        classes,
    )
}

fn assert_close(what: &str, host: &[f32], burn: &[f32], tolerance: f32) {
    assert_eq!(host.len(), burn.len(), "{what}: lengths");
    let scale = burn.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = host
        .iter()
        .zip(burn)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!("{what}: max |host − burn| = {worst:.2e} (max |burn| = {scale:.2e})");
    assert!(
        worst <= tolerance * scale.max(1.0),
        "{what}: max difference {worst} exceeds {tolerance} × {scale}"
    );
}

fn values<BK: burn::tensor::backend::Backend, const D: usize>(t: Tensor<BK, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec::<f32>().unwrap()
}

#[test]
fn packed_encoder_matches_burn_on_padded_rows() {
    let lm = load::<Inner>();
    let (batch, _) = batch(&load::<B>());
    let lengths: Vec<usize> = batch
        .attention_mask
        .chunks(batch.seq_len)
        .map(|m| m.iter().filter(|&&v| v > 0.5).count())
        .collect();
    assert!(
        lengths.iter().min() < lengths.iter().max(),
        "the fixture must pad some rows: lengths {lengths:?}"
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
    let host = HostModel::from_model(&lm.model);
    let packed = Packed::from_padded(
        &batch.ids,
        &batch.segment_ids,
        &batch.attention_mask,
        batch.seq_len,
    );
    assert_eq!(packed.tokens(), lengths.iter().sum::<usize>());
    assert_close("hidden states", &host.encode(&packed), &burn_real, 1e-4);
}

fn scorers(target: Target) -> (Scorer<B>, Scorer<B>) {
    let lm = load::<B>();
    let make = |engine| {
        Scorer::<B>::with_engine(
            lm.model.clone(),
            target.clone(),
            64,
            Default::default(),
            engine,
        )
    };
    (make(Engine::Host), make(Engine::Burn))
}

fn classification() -> Target {
    let lm = load::<B>();
    let ids = |words: &[&str]| -> Vec<u32> {
        words
            .iter()
            .map(|w| lm.tokenizer.single_token_id(w).unwrap())
            .collect()
    };
    let mut label_ids = ids(&["terrible", "bad"]);
    label_ids.extend(ids(&["great"]));
    Target::Classes {
        label_ids,
        spans: vec![(0, 2), (2, 1)],
    }
}

#[test]
fn host_scores_match_burn_for_classes_and_vocabulary() {
    let lm = load::<B>();
    let (batch, classes) = batch(&lm);
    let class_golds: Vec<Gold> = classes
        .iter()
        .map(|&c| Gold { index: c, token: 0 })
        .collect();
    // Fact-retrieval style: rank each row's own first sentence token among 50 candidates.
    let candidate_ids: Vec<u32> = (2000..2050).collect();
    let vocabulary_golds: Vec<Gold> = (0..batch.rows)
        .map(|r| Gold {
            index: r % 50,
            token: candidate_ids[r % 50],
        })
        .collect();
    for (target, golds) in [
        (classification(), class_golds),
        (Target::Vocabulary { candidate_ids }, vocabulary_golds),
    ] {
        let (host, burn) = scorers(target.clone());
        assert_close(
            "mask features",
            &host.mask_features(&batch),
            &burn.mask_features(&batch),
            1e-4,
        );
        let host_rows = host.score_rows(&batch, &golds, true);
        let burn_rows = burn.score_rows(&batch, &golds, true);
        let ll = |rows: &[autoprompt::search::RowScore]| {
            rows.iter()
                .map(|r| r.gold_log_likelihood)
                .collect::<Vec<_>>()
        };
        assert_close(
            "gold log-likelihoods",
            &ll(&host_rows),
            &ll(&burn_rows),
            1e-4,
        );
        let ranks =
            |rows: &[autoprompt::search::RowScore]| rows.iter().map(|r| r.rank).collect::<Vec<_>>();
        assert_eq!(ranks(&host_rows), ranks(&burn_rows), "{target:?}");

        let weights: Vec<f32> = (0..batch.rows).map(|r| 0.5 + (r % 3) as f32).collect();
        for w in [None, Some(weights.as_slice())] {
            let (host_loss, host_grad) = host.trigger_gradient(&batch, &golds, w);
            let (burn_loss, burn_grad) = burn.trigger_gradient(&batch, &golds, w);
            assert!(
                (host_loss - burn_loss).abs() <= 1e-5 * burn_loss.abs(),
                "loss: host {host_loss} vs burn {burn_loss}"
            );
            assert_eq!(host_grad.len(), burn_grad.len());
            for (slot, (a, b)) in host_grad.iter().zip(&burn_grad).enumerate() {
                assert_close(&format!("trigger slot {slot} gradient"), a, b, 1e-3);
            }
        }
    }
}

#[test]
fn host_engine_is_chosen_for_cpu_backends_only_when_asked_or_automatic() {
    assert!(Engine::Auto.uses_host::<NdArray>());
    assert!(Engine::Auto.uses_host::<burn::backend::Flex>());
    assert!(!Engine::Burn.uses_host::<NdArray>());
    assert!(Engine::Host.uses_host::<NdArray>());
}
