//! Numerical parity with transformers on real weights, from fixtures written by the
//! committed script `tests/parity/make_fixtures.py` (PyTorch, float32, eager attention):
//! SPLADE-tiny (the embedded model) and a randomly initialised tiny RoBERTa. Tolerances:
//! logits and features max-abs ≤ 1e-4; gradients max-abs ≤ 1e-4 relative to the largest
//! gradient entry. Also the tokenizers (ids identical) and the loader's failure modes.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{Int, Tensor, TensorData};
use serde::Deserialize;

use autoprompt::lm::loader::{UnusedTensors, load_weights, read_checkpoint};
use autoprompt::lm::{self, EncoderInput, LmError, MaskedLm, MaskedLmConfig};

type B = Autodiff<NdArray>;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
    tokenizer_cases: Vec<TokenizerCase>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    /// A sentence pair's second text (`None` for single sentences).
    #[serde(default)]
    text_pair: Option<String>,
    input_ids: Vec<i64>,
    token_type_ids: Vec<i64>,
    mask_position: usize,
    subset_ids: Vec<i64>,
    subset_logits: Vec<f32>,
    mask_features: Vec<f32>,
    log_z: f32,
    target_id: i64,
    grad_inputs_embeds: Vec<Vec<f32>>,
}

#[derive(Deserialize)]
struct TokenizerCase {
    text: String,
    input_ids: Vec<u32>,
}

fn fixture(name: &str) -> Fixture {
    let path = common::repo().join(format!("tests/fixtures/parity/{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn values<const D: usize, BK: burn::tensor::backend::Backend>(t: Tensor<BK, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec::<f32>().unwrap()
}

struct Measured {
    logits: f32,
    features: f32,
    log_z: f32,
    grad_relative: f32,
}

/// Runs every case through the model and returns the worst differences.
fn measure(model: &MaskedLm<B>, fx: &Fixture) -> Measured {
    let device = Default::default();
    let mut worst = Measured {
        logits: 0.0,
        features: 0.0,
        log_z: 0.0,
        grad_relative: 0.0,
    };
    for case in &fx.cases {
        let seq = case.input_ids.len();
        let ids = Tensor::<B, 2, Int>::from_data(
            TensorData::new(case.input_ids.clone(), [1, seq]),
            &device,
        );
        let embeds = model.embed_tokens(ids).detach().require_grad();
        let hidden = model.encode(EncoderInput {
            inputs_embeds: embeds.clone(),
            token_type_ids: Tensor::from_data(
                TensorData::new(case.token_type_ids.clone(), [1, seq]),
                &device,
            ),
            attention_mask: Tensor::ones([1, seq], &device),
        });
        let pos = Tensor::<B, 1, Int>::from_data(
            TensorData::new(vec![case.mask_position as i64], [1]),
            &device,
        );
        let features = model.mask_features(hidden, pos);
        let subset = Tensor::<B, 1, Int>::from_data(
            TensorData::new(case.subset_ids.clone(), [case.subset_ids.len()]),
            &device,
        );
        let logits = model.score_tokens(features.clone(), subset);
        let log_z = model.log_normalizer(features.clone());
        let target =
            Tensor::<B, 1, Int>::from_data(TensorData::new(vec![case.target_id], [1]), &device);
        let loss = (model.score_row_tokens(features.clone(), target) - log_z.clone())
            .neg()
            .sum();
        let grads = loss.backward();
        let grad = values(embeds.grad(&grads).unwrap());
        let expected_grad: Vec<f32> = case.grad_inputs_embeds.iter().flatten().copied().collect();
        let scale = expected_grad.iter().fold(0f32, |m, v| m.max(v.abs()));
        worst.logits = worst
            .logits
            .max(common::max_abs_diff(&values(logits), &case.subset_logits));
        worst.features = worst
            .features
            .max(common::max_abs_diff(&values(features), &case.mask_features));
        worst.log_z = worst.log_z.max((values(log_z)[0] - case.log_z).abs());
        worst.grad_relative = worst
            .grad_relative
            .max(common::max_abs_diff(&grad, &expected_grad) / scale);
    }
    worst
}

fn assert_parity(name: &str, worst: &Measured) {
    println!(
        "{name}: max |Δlogit| {:.2e}, max |Δfeature| {:.2e}, |Δlog Z| {:.2e}, max |Δgrad|/max|grad| {:.2e}",
        worst.logits, worst.features, worst.log_z, worst.grad_relative
    );
    assert!(
        worst.logits <= 1e-4,
        "{name}: logits differ by {}",
        worst.logits
    );
    assert!(
        worst.features <= 1e-4,
        "{name}: features differ by {}",
        worst.features
    );
    assert!(
        worst.log_z <= 1e-4,
        "{name}: log Z differs by {}",
        worst.log_z
    );
    assert!(
        worst.grad_relative <= 1e-4,
        "{name}: gradients differ by {} (relative)",
        worst.grad_relative
    );
}

fn check_tokenizer(lm: &lm::LoadedModel<B>, fx: &Fixture) {
    for case in &fx.tokenizer_cases {
        assert_eq!(
            lm.tokenizer.encode_with_special_tokens(&case.text).unwrap(),
            case.input_ids,
            "{:?}",
            case.text
        );
    }
    // Pairs are built by templates, not the tokenizer's pair mode: only single texts here.
    for case in fx.cases.iter().filter(|c| c.text_pair.is_none()) {
        let ids: Vec<u32> = case.input_ids.iter().map(|&i| i as u32).collect();
        assert_eq!(
            lm.tokenizer.encode_with_special_tokens(&case.text).unwrap(),
            ids,
            "{:?}",
            case.text
        );
    }
}

#[test]
fn splade_tiny_matches_transformers() {
    let lm = lm::load::<B>(common::splade_tiny().to_str().unwrap(), &Default::default()).unwrap();
    let fx = fixture("splade_tiny");
    check_tokenizer(&lm, &fx);
    assert_parity("splade-tiny", &measure(&lm.model, &fx));
}

#[test]
fn tiny_roberta_matches_transformers() {
    let dir = common::repo().join("tests/fixtures/tiny-roberta");
    let lm = lm::load::<B>(dir.to_str().unwrap(), &Default::default()).unwrap();
    assert_eq!(lm.tokenizer.special.mask.text, "<mask>");
    let fx = fixture("tiny_roberta");
    check_tokenizer(&lm, &fx);
    assert_parity("tiny-roberta", &measure(&lm.model, &fx));
}

/// DistilBERT (`tests/fixtures/tiny-distilbert`, random, WordPiece trained on SST-2): no
/// token types, `q_lin`/`sa_layer_norm`/`vocab_transform` names, the projector's bias as the
/// decoder bias.
#[test]
fn tiny_distilbert_matches_transformers() {
    let dir = common::repo().join("tests/fixtures/tiny-distilbert");
    let lm = lm::load::<B>(dir.to_str().unwrap(), &Default::default()).unwrap();
    assert_eq!(lm.config.family, autoprompt::lm::config::Family::DistilBert);
    assert_eq!(lm.tokenizer.special.mask.text, "[MASK]");
    let fx = fixture("tiny_distilbert");
    check_tokenizer(&lm, &fx);
    assert_parity("tiny-distilbert", &measure(&lm.model, &fx));
}

/// ELECTRA's generator (`tests/fixtures/tiny-electra`, random, embeddings of 16 projected to
/// a hidden size of 32): the trigger gradient is w.r.t. the 16-wide word embeddings.
#[test]
fn tiny_electra_generator_matches_transformers() {
    let dir = common::repo().join("tests/fixtures/tiny-electra");
    let lm = lm::load::<B>(dir.to_str().unwrap(), &Default::default()).unwrap();
    assert_eq!(lm.config.family, autoprompt::lm::config::Family::Electra);
    assert_eq!(
        (lm.model.embedding_size(), lm.model.hidden_size()),
        (16, 32)
    );
    let fx = fixture("tiny_electra");
    check_tokenizer(&lm, &fx);
    assert_parity("tiny-electra", &measure(&lm.model, &fx));
}

/// XLM-RoBERTa (`tests/fixtures/tiny-xlm-roberta`, random, a SentencePiece Unigram tokenizer
/// trained on SST-2): RoBERTa's architecture, `▁` word markers.
#[test]
fn tiny_xlm_roberta_matches_transformers() {
    let dir = common::repo().join("tests/fixtures/tiny-xlm-roberta");
    let lm = lm::load::<B>(dir.to_str().unwrap(), &Default::default()).unwrap();
    assert_eq!(lm.config.family, autoprompt::lm::config::Family::Roberta);
    assert_eq!(
        lm.tokenizer.marker,
        autoprompt::lm::WordMarker::SentencePiece
    );
    assert_eq!(lm.tokenizer.special.mask.text, "<mask>");
    let good = lm
        .tokenizer
        .single_token_id("good")
        .expect("`good` is one token");
    assert_eq!(lm.tokenizer.id_to_token(good).unwrap(), "\u{2581}good");
    assert_eq!(lm.tokenizer.display_token(good), "good");
    let fx = fixture("tiny_xlm_roberta");
    check_tokenizer(&lm, &fx);
    assert_parity("tiny-xlm-roberta", &measure(&lm.model, &fx));
}

/// ALBERT (`tests/fixtures/tiny-albert`, random): factorised embeddings (16 → 32), one layer
/// shared by both layers, `gelu_new`, SentencePiece with `[CLS]`/`[SEP]`/`[MASK]`.
#[test]
fn tiny_albert_matches_transformers() {
    let dir = common::repo().join("tests/fixtures/tiny-albert");
    let lm = lm::load::<B>(dir.to_str().unwrap(), &Default::default()).unwrap();
    assert_eq!(lm.config.family, autoprompt::lm::config::Family::Albert);
    assert_eq!(lm.config.activation, autoprompt::lm::Activation::GeluNew);
    assert_eq!(
        lm.tokenizer.marker,
        autoprompt::lm::WordMarker::SentencePiece
    );
    assert_eq!(lm.tokenizer.special.mask.text, "[MASK]");
    let fx = fixture("tiny_albert");
    check_tokenizer(&lm, &fx);
    assert_parity("tiny-albert", &measure(&lm.model, &fx));
}

/// ModernBERT (`tests/fixtures/tiny-modernbert`, random, byte-level BPE trained on SST-2):
/// rotary positions with two bases, layers global / local / global with a window (4 either
/// side) shorter than every case, GeGLU, pre-norm with a final norm, no biases but the
/// decoder's, norm weights drawn at random; a SICK sentence pair among the cases.
#[test]
fn tiny_modernbert_matches_transformers() {
    use autoprompt::lm::AttentionSpan::{Global, Local};
    let dir = common::repo().join("tests/fixtures/tiny-modernbert");
    let lm = lm::load::<B>(dir.to_str().unwrap(), &Default::default()).unwrap();
    assert_eq!(lm.config.family, autoprompt::lm::config::Family::ModernBert);
    let modern = lm.config.modern.as_ref().unwrap();
    assert_eq!(modern.spans, [Global, Local, Global]);
    assert_eq!(modern.sliding_window, 4);
    assert_eq!(lm.tokenizer.marker, autoprompt::lm::WordMarker::ByteLevel);
    assert_eq!(lm.tokenizer.special.mask.text, "[MASK]");
    assert!(!lm.tokenizer.uses_roberta_pairs());
    let fx = fixture("tiny_modernbert");
    assert!(fx.cases.iter().any(|c| c.text_pair.is_some()));
    assert!(
        fx.cases
            .iter()
            .all(|c| c.input_ids.len() > 2 * modern.sliding_window + 1),
        "every case is longer than the local window"
    );
    check_tokenizer(&lm, &fx);
    assert_parity("tiny-modernbert", &measure(&lm.model, &fx));
}

/// Every case of `fx` in one batch padded to the longest: the largest difference of any
/// row's `[MASK]` logits from transformers' (which saw that row alone, unpadded).
fn padded_batch_logit_diff(lm: &lm::LoadedModel<B>, fx: &Fixture) -> f32 {
    let device = Default::default();
    let rows = fx.cases.len();
    let seq = fx.cases.iter().map(|c| c.input_ids.len()).max().unwrap();
    let pad = i64::from(lm.tokenizer.special.pad.id);
    let (mut ids, mut types, mut mask) = (vec![], vec![], vec![]);
    for case in &fx.cases {
        let n = case.input_ids.len();
        ids.extend(
            case.input_ids
                .iter()
                .copied()
                .chain(std::iter::repeat_n(pad, seq - n)),
        );
        types.extend(
            case.token_type_ids
                .iter()
                .copied()
                .chain(std::iter::repeat_n(0, seq - n)),
        );
        mask.extend((0..seq).map(|i| if i < n { 1.0f32 } else { 0.0 }));
    }
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [rows, seq]), &device);
    let hidden = lm.model.encode(EncoderInput {
        inputs_embeds: lm.model.embed_tokens(ids),
        token_type_ids: Tensor::from_data(TensorData::new(types, [rows, seq]), &device),
        attention_mask: Tensor::from_data(TensorData::new(mask, [rows, seq]), &device),
    });
    let positions: Vec<i64> = fx.cases.iter().map(|c| c.mask_position as i64).collect();
    let features = lm.model.mask_features(
        hidden,
        Tensor::from_data(TensorData::new(positions, [rows]), &device),
    );
    fx.cases
        .iter()
        .enumerate()
        .map(|(row, case)| {
            let subset = Tensor::<B, 1, Int>::from_data(
                TensorData::new(case.subset_ids.clone(), [case.subset_ids.len()]),
                &device,
            );
            let row_features = features.clone().narrow(0, row, 1);
            common::max_abs_diff(
                &values(lm.model.score_tokens(row_features, subset)),
                &case.subset_logits,
            )
        })
        .fold(0.0, f32::max)
}

/// Padding never changes an unpadded row's result, for every family: the cases (of different
/// lengths) batched and padded give transformers' single-row logits.
#[test]
fn padding_does_not_change_any_row_in_any_family() {
    for (dir, name) in [
        ("tests/fixtures/tiny-roberta", "tiny_roberta"),
        ("tests/fixtures/tiny-distilbert", "tiny_distilbert"),
        ("tests/fixtures/tiny-electra", "tiny_electra"),
        ("tests/fixtures/tiny-xlm-roberta", "tiny_xlm_roberta"),
        ("tests/fixtures/tiny-albert", "tiny_albert"),
        ("tests/fixtures/tiny-modernbert", "tiny_modernbert"),
    ]
    .map(|(d, n)| (common::repo().join(d), n))
    .into_iter()
    .chain([(common::splade_tiny(), "splade_tiny")])
    {
        let lm = lm::load::<B>(dir.to_str().unwrap(), &Default::default()).unwrap();
        let fx = fixture(name);
        let lengths: std::collections::BTreeSet<usize> =
            fx.cases.iter().map(|c| c.input_ids.len()).collect();
        assert!(lengths.len() > 1, "{name}: the cases must differ in length");
        let diff = padded_batch_logit_diff(&lm, &fx);
        println!("{name}: padded batch, max |Δlogit| {diff:.2e}");
        assert!(
            diff <= 1e-4,
            "{name}: a padded row's logits differ by {diff}"
        );
    }
}

#[test]
fn pytorch_bin_loads_the_same_weights_as_safetensors() {
    let dir = common::repo().join("tests/fixtures/tiny-roberta-bin");
    let config = MaskedLmConfig::from_file(&dir.join("config.json")).unwrap();
    let bin = dir.join("pytorch_model.bin");
    let model = load_weights::<B>(
        &config,
        read_checkpoint(&bin).unwrap(),
        &bin,
        &Default::default(),
        UnusedTensors::Skip,
    )
    .unwrap()
    .model;
    assert_parity(
        "tiny-roberta (.bin)",
        &measure(&model, &fixture("tiny_roberta")),
    );
}

#[test]
fn vocab_files_give_the_same_ids_as_tokenizer_json() {
    // The tiny RoBERTa directory has both tokenizer.json and vocab.json + merges.txt: copy only
    // the latter (plus config and weights) and compare.
    let src = common::repo().join("tests/fixtures/tiny-roberta");
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "vocab.json",
        "merges.txt",
    ] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let lm = lm::load::<B>(dir.path().to_str().unwrap(), &Default::default()).unwrap();
    check_tokenizer(&lm, &fixture("tiny_roberta"));
}

fn roberta_tensors() -> (MaskedLmConfig, BTreeMap<String, lm::loader::RawTensor>) {
    let dir = common::repo().join("tests/fixtures/tiny-roberta");
    let config = MaskedLmConfig::from_file(&dir.join("config.json")).unwrap();
    (
        config,
        read_checkpoint(&dir.join("model.safetensors")).unwrap(),
    )
}

fn load_err(config: &MaskedLmConfig, tensors: BTreeMap<String, lm::loader::RawTensor>) -> String {
    match load_weights::<B>(
        config,
        tensors,
        Path::new("ckpt.safetensors"),
        &Default::default(),
        UnusedTensors::Skip,
    ) {
        Ok(_) => panic!("checkpoint should be rejected"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn renamed_tensor_is_reported_missing_and_unused() {
    let (config, mut tensors) = roberta_tensors();
    let t = tensors
        .remove("roberta.encoder.layer.1.output.dense.weight")
        .unwrap();
    tensors.insert(
        "roberta.encoder.layer.1.output.dense_renamed.weight".into(),
        t,
    );
    let err = load_err(&config, tensors);
    assert!(
        err.contains("missing: [\"roberta.encoder.layer.1.output.dense.weight\"]"),
        "{err}"
    );
    assert!(
        err.contains("unused: [\"roberta.encoder.layer.1.output.dense_renamed.weight\"]"),
        "{err}"
    );
}

#[test]
fn missing_tensor_is_an_error() {
    let (config, mut tensors) = roberta_tensors();
    tensors.remove("lm_head.dense.bias").unwrap();
    let err = load_err(&config, tensors);
    assert!(err.contains("missing: [\"lm_head.dense.bias\"]"), "{err}");
}

#[test]
fn shape_mismatch_is_an_error() {
    let (config, mut tensors) = roberta_tensors();
    let t = tensors
        .get_mut("roberta.embeddings.LayerNorm.weight")
        .unwrap();
    t.shape = vec![16, 2];
    let err = load_err(&config, tensors);
    assert!(
        err.contains("roberta.embeddings.LayerNorm.weight: checkpoint [16, 2], model expects [32]"),
        "{err}"
    );
}

#[test]
fn untied_decoder_is_an_error() {
    let (config, mut tensors) = roberta_tensors();
    let mut decoder = tensors["roberta.embeddings.word_embeddings.weight"].clone();
    decoder.values[0] += 1.0;
    tensors.insert("lm_head.decoder.weight".into(), decoder);
    let err = load_err(&config, tensors);
    assert!(
        err.contains("lm_head.decoder.weight differs from the tied embedding"),
        "{err}"
    );
}

#[test]
fn corrupt_weight_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    std::fs::write(&path, b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header").unwrap();
    let err = read_checkpoint(&path).unwrap_err();
    assert!(matches!(err, LmError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("model.safetensors: corrupt or unreadable"),
        "{err}"
    );
}

#[test]
fn missing_config_key_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let src = common::repo().join("tests/fixtures/tiny-roberta/config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src).unwrap()).unwrap();
    config.as_object_mut().unwrap().remove("hidden_size");
    let path = dir.path().join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let err = autoprompt::errors::chain_text(&MaskedLmConfig::from_file(&path).unwrap_err());
    assert!(err.contains("missing field `hidden_size`"), "{err}");
}

#[test]
fn unknown_model_lists_what_was_tried() {
    let err = lm::load::<B>("./no/such/model", &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model `./no/such/model` not found") && err.contains("local directory"),
        "{err}"
    );
}

#[test]
fn fill_mask_predicts_real_words() {
    let device = Default::default();
    let lm = lm::load::<NdArray>(common::splade_tiny().to_str().unwrap(), &device).unwrap();
    let preds = lm::fill_mask(&lm, "the capital of france is [MASK] .", 10, &device).unwrap();
    assert_eq!(preds.len(), 1);
    let total: f32 = preds[0].iter().map(|p| p.probability).sum();
    assert!(total > 0.0 && total <= 1.0 + 1e-5);
    assert!(
        preds[0]
            .windows(2)
            .all(|w| w[0].probability >= w[1].probability)
    );
}

/// SPLADE-tiny's files with one weight value replaced by NaN, in `dir`.
fn splade_tiny_with_nan(dir: &std::path::Path) -> std::path::PathBuf {
    let src = common::splade_tiny();
    let model = dir.join("nan-model");
    std::fs::create_dir_all(&model).unwrap();
    for entry in std::fs::read_dir(&src).unwrap().flatten() {
        std::fs::copy(entry.path(), model.join(entry.file_name())).unwrap();
    }
    let path = model.join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let (_, info) = header
        .as_object()
        .unwrap()
        .iter()
        .find(|(name, info)| name.contains("LayerNorm.gamma") && info["dtype"] == "F32")
        .unwrap();
    let start = 8 + header_len + info["data_offsets"][0].as_u64().unwrap() as usize;
    bytes[start..start + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    model
}

/// A NaN in a weight is refused when the checkpoint is read (naming the tensor), so no
/// prompt is ever "found" on non-finite scores; in a sweep that cell fails with the reason
/// and the next cell runs.
#[test]
fn non_finite_weight_fails_the_cell_and_the_sweep_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let model = splade_tiny_with_nan(dir.path());
    let err = read_checkpoint(&model.join("model.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("LayerNorm.gamma` has 1 NaN or infinite values"),
        "{err}"
    );
    let body = format!(
        "[task]\nkind = \"sst2\"\ntrain_size = 8\ndev_size = 8\ntest_size = 16\n[method]\nkind = \"manual\"\ntemplate = \"[CLS] {{sentence}} it was [P] . [SEP]\"\nlabels = {{ \"0\" = [\"terrible\"], \"1\" = [\"great\"] }}\n[grid]\n\"model.source\" = [{:?}, {:?}]\n",
        model.display().to_string(),
        common::splade_tiny().display().to_string()
    );
    let file = common::experiment(dir.path(), "nan", &body);
    let out = std::process::Command::new(common::bin())
        .arg("run")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a failed cell fails the run");
    let store = autoprompt::store::Store::open(&dir.path().join("results"), "nan").unwrap();
    let records = store.records().unwrap();
    assert_eq!(records.len(), 2);
    for r in records {
        if r.spec.model.source.contains("nan-model") {
            assert_eq!(r.status, autoprompt::record::Status::Failed);
            let error = r.error.unwrap_or_default();
            assert!(error.contains("NaN or infinite"), "{error}");
            assert!(r.prompt.is_none() && r.metrics.is_empty());
        } else {
            assert_eq!(
                r.status,
                autoprompt::record::Status::Finished,
                "{:?}",
                r.error
            );
        }
    }
    common::reliability(
        "NaN in a weight of `model.safetensors`",
        "the cell fails naming the tensor, no prompt is reported, the sweep goes on",
        "that cell failed (NaN or infinite values named); the next cell finished",
        "parity::non_finite_weight_fails_the_cell_and_the_sweep_goes_on",
    );
}

/// A `pytorch_model.bin` whose pickle calls `os.system` when unpickled (the classic reduce
/// payload, legacy and zip layouts; `scripts/make_hostile_fixtures.py`) is refused with an
/// error naming the file, and nothing runs: the payload would create a marker file in the
/// working directory.
#[test]
fn a_pickle_that_calls_a_function_is_refused_never_run() {
    let fixtures = common::repo().join("tests/fixtures");
    for payload in ["reduce_os_system.bin", "reduce_os_system_zip.bin"] {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("hostile-model");
        std::fs::create_dir_all(&model).unwrap();
        for entry in std::fs::read_dir(fixtures.join("tiny-roberta"))
            .unwrap()
            .flatten()
        {
            if entry.file_name() != "model.safetensors" {
                std::fs::copy(entry.path(), model.join(entry.file_name())).unwrap();
            }
        }
        std::fs::copy(
            fixtures.join("hostile").join(payload),
            model.join("pytorch_model.bin"),
        )
        .unwrap();
        let out = std::process::Command::new(common::bin())
            .args(["fill-mask", "--model"])
            .arg(&model)
            .arg("the movie was <mask> .")
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{payload}: loaded");
        assert_ne!(
            out.status.code(),
            Some(101),
            "{payload}: panicked: {stderr}"
        );
        assert!(stderr.contains("pytorch_model.bin"), "{payload}: {stderr}");
        assert!(
            !dir.path().join("pickle_payload_ran").exists(),
            "{payload}: the pickle's payload ran"
        );
        let reason = stderr
            .split("Pickle parsing error: ")
            .nth(1)
            .and_then(|r| r.split(". ").next())
            .unwrap_or("")
            .to_string();
        common::reliability(
            &format!("`pytorch_model.bin` with an `os.system` reduce payload ({payload})"),
            "refused with an error naming the file; nothing executed",
            &format!(
                "exit {}; no marker file; the error names pytorch_model.bin: {}",
                out.status.code().unwrap_or(-1),
                reason.replace('|', "/")
            ),
            "parity::a_pickle_that_calls_a_function_is_refused_never_run",
        );
    }
}

/// SPLADE-tiny's files in `dir/name`, with `break_it` applied to that copy.
fn broken_splade_tiny(
    dir: &std::path::Path,
    name: &str,
    break_it: impl Fn(&std::path::Path),
) -> std::path::PathBuf {
    let model = dir.join(name);
    std::fs::create_dir_all(&model).unwrap();
    for entry in std::fs::read_dir(common::splade_tiny()).unwrap().flatten() {
        std::fs::copy(entry.path(), model.join(entry.file_name())).unwrap();
    }
    break_it(&model);
    model
}

/// Rewrites the JSON header of a safetensors file.
fn edit_safetensors_header(path: &std::path::Path, edit: impl Fn(&mut serde_json::Value)) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    edit(&mut header);
    // Offsets count from the end of the header, so its length may change.
    let text = serde_json::to_vec(&header).unwrap();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(path, out).unwrap();
}

/// Broken model files are refused at load with an error naming the file and what is wrong
/// (never a panic, never a model with a silently wrong tensor).
#[test]
fn broken_model_files_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let first_tensor = |h: &serde_json::Value| {
        h.as_object()
            .unwrap()
            .keys()
            .find(|k| *k != "__metadata__")
            .unwrap()
            .clone()
    };
    let cases: Vec<(&str, std::path::PathBuf, &str)> = vec![
        (
            "truncated model.safetensors",
            broken_splade_tiny(dir.path(), "truncated", |m| {
                let p = m.join("model.safetensors");
                let bytes = std::fs::read(&p).unwrap();
                std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
            }),
            "model.safetensors",
        ),
        (
            "a safetensors header whose offsets run past the data",
            broken_splade_tiny(dir.path(), "lying", |m| {
                edit_safetensors_header(&m.join("model.safetensors"), |h| {
                    let k = first_tensor(h);
                    let end = h[&k]["data_offsets"][1].as_u64().unwrap();
                    h[&k]["data_offsets"][1] = (end + 1_000_000_000).into();
                });
            }),
            "model.safetensors",
        ),
        (
            "a tensor stored with the wrong dtype",
            broken_splade_tiny(dir.path(), "dtype", |m| {
                edit_safetensors_header(&m.join("model.safetensors"), |h| {
                    let k = first_tensor(h);
                    h[&k]["dtype"] = "I64".into();
                });
            }),
            "model.safetensors",
        ),
        (
            "config.json whose vocab_size disagrees with the weights",
            broken_splade_tiny(dir.path(), "config-vocab", |m| {
                let p = m.join("config.json");
                let mut c: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                c["vocab_size"] = 1000.into();
                std::fs::write(&p, serde_json::to_vec(&c).unwrap()).unwrap();
            }),
            "model expects [1000, 128]",
        ),
        (
            "tokenizer.json with more tokens than the model's vocabulary",
            broken_splade_tiny(dir.path(), "tokenizer-vocab", |m| {
                let p = m.join("tokenizer.json");
                let mut t: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                let n = t["model"]["vocab"].as_object().unwrap().len();
                t["model"]["vocab"]["zzzqqq"] = (n + 5).into();
                std::fs::write(&p, serde_json::to_vec(&t).unwrap()).unwrap();
            }),
            "tokenizer has 30523 tokens but the model only 30522",
        ),
    ];
    for (fault, model, expected) in cases {
        let out = std::process::Command::new(common::bin())
            .args(["fill-mask", "--model"])
            .arg(&model)
            .arg("the movie was [MASK] .")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{fault}: {stderr}");
        assert!(stderr.contains(expected), "{fault}: {stderr}");
        let first = stderr.lines().next().unwrap_or("");
        let reason = first.rsplit(": ").next().unwrap_or("").replace('|', "/");
        common::reliability(
            fault,
            "refused at load with an error naming the file and the fault; no panic",
            &format!("exit 1; `{reason}`"),
            "parity::broken_model_files_are_refused_with_a_reason",
        );
    }
}

#[derive(Deserialize)]
struct SettingsFixture {
    texts: Vec<String>,
    cases: Vec<SettingsCase>,
}

#[derive(Deserialize)]
struct SettingsCase {
    name: String,
    copied: Vec<String>,
    written: BTreeMap<String, serde_json::Value>,
    ids: Vec<Vec<u32>>,
}

/// `tokenizer_config.json` / `added_tokens.json` settings beside a `vocab.txt` or a
/// `tokenizer.json` give transformers' ids (`tests/parity/make_tokenizer_settings.py`).
#[test]
fn tokenizer_settings_give_transformers_ids() {
    let path = common::repo().join("tests/fixtures/parity/tokenizer_settings.json");
    let fx: SettingsFixture =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let src = common::repo().join("tests/fixtures/tiny-distilbert");
    assert_eq!(fx.cases.len(), 8);
    for case in &fx.cases {
        let dir = tempfile::tempdir().unwrap();
        for f in &case.copied {
            std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
        }
        for (f, content) in &case.written {
            std::fs::write(dir.path().join(f), content.to_string()).unwrap();
        }
        let tokenizer =
            lm::LmTokenizer::from_dir(dir.path()).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        for (text, expected) in fx.texts.iter().zip(&case.ids) {
            assert_eq!(
                &tokenizer.encode_with_special_tokens(text).unwrap(),
                expected,
                "{}: {text}",
                case.name
            );
        }
    }
}

#[test]
fn tokenizer_settings_that_cannot_hold_are_refused_by_name() {
    let src = common::repo().join("tests/fixtures/tiny-distilbert");
    let with = |files: &[(&str, &str)]| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(src.join("vocab.txt"), dir.path().join("vocab.txt")).unwrap();
        for (f, content) in files {
            std::fs::write(dir.path().join(f), content).unwrap();
        }
        lm::LmTokenizer::from_dir(dir.path()).map(|t| t.model_max_length)
    };
    // An added token whose id is not the next free one.
    let err = with(&[("added_tokens.json", "{\"<new>\": 2005}")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("added token `<new>` (id 2005)") && err.contains("2000 entries"),
        "{err}"
    );
    // A configured mask token the vocabulary lacks.
    let err = with(&[("special_tokens_map.json", "{\"mask_token\": \"<mask>\"}")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mask_token `<mask>`") && err.contains("not in the tokenizer's vocabulary"),
        "{err}"
    );
    // model_max_length is read; transformers' "no limit" sentinel is none.
    assert_eq!(
        with(&[("tokenizer_config.json", "{\"model_max_length\": 64}")]).unwrap(),
        Some(64)
    );
    assert_eq!(
        with(&[(
            "tokenizer_config.json",
            "{\"model_max_length\": 1000000000000000019884624838656}"
        )])
        .unwrap(),
        None
    );
    // do_lower_case that a byte-level BPE tokenizer.json does not follow.
    let roberta = common::repo().join("tests/fixtures/tiny-roberta");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        roberta.join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        "{\"do_lower_case\": true}",
    )
    .unwrap();
    let err = lm::LmTokenizer::from_dir(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("do_lower_case = true") && err.contains("tokenizer_config.json"),
        "{err}"
    );
}

#[test]
fn model_max_length_caps_the_sequence_length() {
    let src = common::repo().join("tests/fixtures/tiny-roberta");
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let lm = lm::load::<B>(dir.path().to_str().unwrap(), &Default::default()).unwrap();
    assert_eq!(lm.max_sequence_length(), 128);
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        "{\"model_max_length\": 16}",
    )
    .unwrap();
    let lm = lm::load::<B>(dir.path().to_str().unwrap(), &Default::default()).unwrap();
    assert_eq!(lm.max_sequence_length(), 16);
}
