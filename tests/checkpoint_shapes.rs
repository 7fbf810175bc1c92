//! Checkpoints in the shapes users bring: extra task heads, a `BertForPreTraining`
//! checkpoint, an encoder without its MLM head, names with and without the family prefix,
//! the legacy (non-zip) `pytorch_model.bin`, sharded safetensors with an index, fp16 and
//! bf16 weights. Each loads and predicts exactly what the plain model predicts, or fails
//! with the error its shape calls for.
//!
//! RoBERTa shapes: `tests/fixtures/checkpoint-shapes/`, written by the committed
//! `tests/parity/make_checkpoint_shapes.py` from the tiny RoBERTa. BERT shapes: built here,
//! in a temporary directory, from SPLADE-tiny (17 MB, not committed) by renaming, adding or
//! dropping tensors with the `safetensors` crate.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use burn::backend::NdArray;
use safetensors::{Dtype, SafeTensors};

use autoprompt::lm::loader::{
    UnusedTensors, load_weights, read_checkpoint, read_weights, weight_files,
};
use autoprompt::lm::{self, LmError, MaskedLmConfig};

type B = NdArray;

const ROBERTA_TEXT: &str = "the movie was <mask> .";
const BERT_TEXT: &str = "the capital of france is [MASK] .";

/// Probability of every vocabulary entry at the (one) mask of `text`, indexed by id.
fn probabilities(lm: &lm::LoadedModel<B>, text: &str) -> Vec<f32> {
    let vocab = lm.model.vocab_size();
    let preds = lm::fill_mask(lm, text, vocab, &Default::default()).unwrap();
    let mut probs = vec![f32::NAN; vocab];
    for p in &preds[0] {
        probs[p.id as usize] = p.probability;
    }
    probs
}

/// Asserts that two models give the same probabilities (same weights, same arithmetic:
/// equal to float rounding).
fn assert_same_predictions(
    shape: &str,
    got: &lm::LoadedModel<B>,
    plain: &lm::LoadedModel<B>,
    text: &str,
) {
    let (a, b) = (probabilities(got, text), probabilities(plain, text));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 1e-7, "{shape}: probabilities differ by {worst}");
}

fn load(dir: &Path, unused: UnusedTensors) -> Result<lm::LoadedModel<B>, LmError> {
    lm::load_with::<B>(dir.to_str().unwrap(), unused, &Default::default())
}

fn tiny_roberta() -> PathBuf {
    common::repo().join("tests/fixtures/tiny-roberta")
}

/// A model directory in `tmp`: the files of the committed shape `name` plus the tiny
/// RoBERTa's tokenizer.
fn roberta_shape(tmp: &Path, name: &str) -> PathBuf {
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let shape = common::repo()
        .join("tests/fixtures/checkpoint-shapes")
        .join(name);
    for entry in std::fs::read_dir(&shape).unwrap().flatten() {
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(tiny_roberta().join(f), dir.join(f)).unwrap();
    }
    dir
}

/// One tensor of a safetensors file, as raw bytes.
struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl safetensors::View for &Entry {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn read_entries(path: &Path) -> HashMap<String, Entry> {
    let bytes = std::fs::read(path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            let entry = Entry {
                dtype: view.dtype(),
                shape: view.shape().to_vec(),
                bytes: view.data().to_vec(),
            };
            (name, entry)
        })
        .collect()
}

fn f32_entry(shape: Vec<usize>, seed: u32) -> Entry {
    let n: usize = shape.iter().product();
    let bytes = (0..n)
        .flat_map(|i| (((i as u32 * 7 + seed) % 13) as f32 * 0.01 - 0.06).to_le_bytes())
        .collect();
    Entry {
        dtype: Dtype::F32,
        shape,
        bytes,
    }
}

/// A copy of `src` (config and tokenizer) in `tmp/name` whose `model.safetensors` is
/// `src`'s after `edit`.
fn derived(
    src: &Path,
    tmp: &Path,
    name: &str,
    edit: impl FnOnce(&mut HashMap<String, Entry>),
) -> PathBuf {
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(src).unwrap().flatten() {
        if entry.file_name() != "model.safetensors" {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    let mut tensors = read_entries(&src.join("model.safetensors"));
    edit(&mut tensors);
    safetensors::serialize_to_file(
        tensors.iter().map(|(k, v)| (k.clone(), v)),
        None,
        &dir.join("model.safetensors"),
    )
    .unwrap();
    dir
}

/// Renames every tensor starting with `from` to start with `to` instead.
fn rename_prefix(tensors: &mut HashMap<String, Entry>, from: &str, to: &str) {
    let names: Vec<String> = tensors
        .keys()
        .filter(|n| n.starts_with(from))
        .cloned()
        .collect();
    for name in names {
        let entry = tensors.remove(&name).unwrap();
        tensors.insert(format!("{to}{}", &name[from.len()..]), entry);
    }
}

/// A BERT checkpoint shipped with more heads than its MLM head (as one real pretrained
/// checkpoint has `cls.species.*` and `cls.chain.*` beside `cls.predictions.*`).
fn add_cls_heads(tensors: &mut HashMap<String, Entry>) {
    for (head, classes) in [("species", 5), ("chain", 3)] {
        let p = format!("cls.{head}");
        tensors.insert(
            format!("{p}.transform.dense.weight"),
            f32_entry(vec![128, 128], 1),
        );
        tensors.insert(format!("{p}.transform.dense.bias"), f32_entry(vec![128], 2));
        tensors.insert(
            format!("{p}.transform.LayerNorm.weight"),
            f32_entry(vec![128], 3),
        );
        tensors.insert(
            format!("{p}.transform.LayerNorm.bias"),
            f32_entry(vec![128], 4),
        );
        tensors.insert(
            format!("{p}.decoder.weight"),
            f32_entry(vec![classes, 128], 5),
        );
        tensors.insert(format!("{p}.decoder.bias"), f32_entry(vec![classes], 6));
    }
}

#[test]
fn extra_heads_are_skipped_and_named_and_strict_refuses_them() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = load(&tiny_roberta(), UnusedTensors::Refuse).unwrap();
    assert!(plain.skipped_tensors.is_empty());

    let dir = roberta_shape(tmp.path(), "extra-heads");
    let lm = load(&dir, UnusedTensors::Skip).unwrap();
    assert_eq!(
        lm.skipped_tensors,
        [
            "classifier.* (4 tensors)",
            "roberta.encoder.layer.*.output.adapter.* (8 tensors)"
        ]
    );
    assert_same_predictions("roberta + classifier + adapters", &lm, &plain, ROBERTA_TEXT);

    let err = autoprompt::errors::chain_text(&load(&dir, UnusedTensors::Refuse).unwrap_err());
    assert!(
        err.contains("checkpoint does not match the model")
            && err.contains("\"classifier.out_proj.weight\"")
            && err.contains("\"roberta.encoder.layer.1.output.adapter.up.bias\"")
            && err.contains("strict loading refuses unused tensors"),
        "{err}"
    );

    // BERT names: `cls.species.*` and `cls.chain.*` beside `cls.predictions.*`.
    let splade = common::splade_tiny();
    let bert_plain = load(&splade, UnusedTensors::Refuse).unwrap();
    let dir = derived(&splade, tmp.path(), "bert-extra-heads", add_cls_heads);
    let lm = load(&dir, UnusedTensors::Skip).unwrap();
    assert_eq!(
        lm.skipped_tensors,
        ["cls.chain.* (6 tensors)", "cls.species.* (6 tensors)"]
    );
    assert_same_predictions(
        "bert + cls.species + cls.chain",
        &lm,
        &bert_plain,
        BERT_TEXT,
    );
    let err = autoprompt::errors::chain_text(&load(&dir, UnusedTensors::Refuse).unwrap_err());
    assert!(err.contains("\"cls.species.decoder.weight\""), "{err}");
}

#[test]
fn a_bert_for_pretraining_checkpoint_loads_even_strictly() {
    let tmp = tempfile::tempdir().unwrap();
    let splade = common::splade_tiny();
    let plain = load(&splade, UnusedTensors::Refuse).unwrap();
    let dir = derived(&splade, tmp.path(), "bert-for-pretraining", |t| {
        t.insert(
            "bert.pooler.dense.weight".into(),
            f32_entry(vec![128, 128], 1),
        );
        t.insert("bert.pooler.dense.bias".into(), f32_entry(vec![128], 2));
        t.insert(
            "cls.seq_relationship.weight".into(),
            f32_entry(vec![2, 128], 3),
        );
        t.insert("cls.seq_relationship.bias".into(), f32_entry(vec![2], 4));
    });
    let lm = load(&dir, UnusedTensors::Refuse).unwrap();
    assert!(lm.skipped_tensors.is_empty(), "{:?}", lm.skipped_tensors);
    assert_same_predictions("BertForPreTraining", &lm, &plain, BERT_TEXT);
}

#[test]
fn an_encoder_without_its_mlm_head_is_refused_with_how_to_get_one() {
    let tmp = tempfile::tempdir().unwrap();
    // transformers' own `RobertaModel.save_pretrained`: no `lm_head.*`, no `roberta.` prefix,
    // a pooler.
    let dir = roberta_shape(tmp.path(), "encoder-only");
    let err = load(&dir, UnusedTensors::Skip).unwrap_err();
    assert!(matches!(err, LmError::NoMlmHead { .. }), "{err}");
    let msg = autoprompt::errors::chain_text(&err);
    assert!(
        msg.contains("the checkpoint has no masked-LM head (no lm_head.* tensors)")
            && msg.contains("`RobertaForMaskedLM`"),
        "{msg}"
    );

    // A bare `BertModel` (no `bert.` prefix, a pooler, no `cls.predictions.*`).
    let splade = common::splade_tiny();
    let dir = derived(&splade, tmp.path(), "bert-model", |t| {
        t.retain(|name, _| !name.starts_with("cls."));
        rename_prefix(t, "bert.", "");
        t.insert("pooler.dense.weight".into(), f32_entry(vec![128, 128], 1));
        t.insert("pooler.dense.bias".into(), f32_entry(vec![128], 2));
    });
    let msg = autoprompt::errors::chain_text(&load(&dir, UnusedTensors::Skip).unwrap_err());
    assert!(
        msg.contains("no masked-LM head (no cls.predictions.* tensors)")
            && msg.contains("`BertForMaskedLM` or `BertForPreTraining`"),
        "{msg}"
    );
    // Half a head is not "no head": the missing tensors are listed as such.
    let dir = derived(&splade, tmp.path(), "bert-half-head", |t| {
        t.remove("cls.predictions.bias").unwrap();
    });
    let msg = autoprompt::errors::chain_text(&load(&dir, UnusedTensors::Skip).unwrap_err());
    assert!(msg.contains("missing: [\"cls.predictions.bias\"]"), "{msg}");
}

#[test]
fn names_with_and_without_the_family_prefix_load_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let splade = common::splade_tiny();
    let plain = load(&splade, UnusedTensors::Refuse).unwrap();
    let dir = derived(&splade, tmp.path(), "bert-no-prefix", |t| {
        rename_prefix(t, "bert.", "")
    });
    let lm = load(&dir, UnusedTensors::Refuse).unwrap();
    assert_same_predictions("BERT without `bert.`", &lm, &plain, BERT_TEXT);

    let roberta = load(&tiny_roberta(), UnusedTensors::Refuse).unwrap();
    let dir = derived(&tiny_roberta(), tmp.path(), "roberta-no-prefix", |t| {
        rename_prefix(t, "roberta.", "")
    });
    let lm = load(&dir, UnusedTensors::Refuse).unwrap();
    assert_same_predictions("RoBERTa without `roberta.`", &lm, &roberta, ROBERTA_TEXT);
}

#[test]
fn a_legacy_pickle_bin_loads_like_safetensors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = roberta_shape(tmp.path(), "legacy-bin");
    // The legacy format: no zip magic, a pickled magic number first.
    let bytes = std::fs::read(dir.join("pytorch_model.bin")).unwrap();
    assert_ne!(&bytes[..2], b"PK", "the fixture must be the non-zip format");
    let lm = load(&dir, UnusedTensors::Refuse).unwrap();
    let plain = load(&tiny_roberta(), UnusedTensors::Refuse).unwrap();
    assert_same_predictions("legacy pytorch_model.bin", &lm, &plain, ROBERTA_TEXT);
}

#[test]
fn sharded_safetensors_load_through_their_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = roberta_shape(tmp.path(), "sharded");
    let weights = weight_files(&dir).unwrap().unwrap();
    assert_eq!(
        weights.index,
        Some(dir.join("model.safetensors.index.json"))
    );
    assert_eq!(
        weights.files,
        [
            dir.join("model-00001-of-00002.safetensors"),
            dir.join("model-00002-of-00002.safetensors")
        ]
    );
    let lm = load(&dir, UnusedTensors::Refuse).unwrap();
    // Provenance hashes the config, the index and every shard.
    assert_eq!(lm.files.len(), 4, "{:?}", lm.files);
    let plain = load(&tiny_roberta(), UnusedTensors::Refuse).unwrap();
    assert_same_predictions("sharded safetensors", &lm, &plain, ROBERTA_TEXT);

    // A shard the index names but the directory lacks is named.
    std::fs::remove_file(dir.join("model-00002-of-00002.safetensors")).unwrap();
    let msg = autoprompt::errors::chain_text(&load(&dir, UnusedTensors::Skip).unwrap_err());
    assert!(
        msg.contains("model.safetensors.index.json")
            && msg.contains("its shard `model-00002-of-00002.safetensors` is not in"),
        "{msg}"
    );
}

/// `value` rounded to the nearest half-precision number (`bf16`: bfloat16), as f32.
fn round(value: f32, bf16: bool) -> f32 {
    if bf16 {
        half::bf16::from_f32(value).to_f32()
    } else {
        half::f16::from_f32(value).to_f32()
    }
}

#[test]
fn half_precision_weights_load_as_their_values() {
    let tmp = tempfile::tempdir().unwrap();
    let config = MaskedLmConfig::from_file(&tiny_roberta().join("config.json")).unwrap();
    let full = read_checkpoint(&tiny_roberta().join("model.safetensors")).unwrap();
    for (name, dtype, bf16) in [("fp16", Dtype::F16, false), ("bf16", Dtype::BF16, true)] {
        let dir = roberta_shape(tmp.path(), name);
        let entries = read_entries(&dir.join("model.safetensors"));
        assert!(
            entries.values().all(|e| e.dtype == dtype),
            "{name}: not all {dtype:?}"
        );
        let weights = weight_files(&dir).unwrap().unwrap();
        let halves = read_weights(&weights).unwrap();
        // Every value is the f32 weight rounded to half precision, exactly.
        for (tensor, raw) in &full {
            let got = &halves[tensor];
            assert_eq!(got.shape, raw.shape, "{name} {tensor}");
            for (g, v) in got.values.iter().zip(&raw.values) {
                assert_eq!(*g, round(*v, bf16), "{name} {tensor}");
            }
        }
        // And the model predicts what the f32 model with those rounded weights predicts.
        let rounded = full
            .iter()
            .map(|(k, raw)| {
                let mut raw = raw.clone();
                raw.values.iter_mut().for_each(|v| *v = round(*v, bf16));
                (k.clone(), raw)
            })
            .collect();
        let expected = load_weights::<B>(
            &config,
            rounded,
            Path::new("rounded"),
            &Default::default(),
            UnusedTensors::Refuse,
        )
        .unwrap()
        .model;
        let lm = load(&dir, UnusedTensors::Refuse).unwrap();
        let reference = lm::LoadedModel {
            model: expected,
            ..lm.clone()
        };
        assert_same_predictions(name, &lm, &reference, ROBERTA_TEXT);
    }
}

/// The binary with uncoloured logs at the default level.
fn uncoloured_cli() -> Command {
    let mut cmd = common::cli();
    cmd.env("NO_COLOR", "1").env_remove("RUST_LOG");
    cmd
}

#[test]
fn fill_mask_warns_once_about_skipped_tensors_and_strict_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = roberta_shape(tmp.path(), "extra-heads");
    let out = uncoloured_cli()
        .args(["fill-mask", "--model"])
        .arg(&dir)
        .arg(ROBERTA_TEXT)
        .output()
        .unwrap();
    common::assert_success(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("12 checkpoint tensors are not used by the masked LM")
            && warnings[0].contains("classifier.* (4 tensors)")
            && warnings[0].contains("model.strict = true"),
        "{stderr}"
    );

    let out = uncoloured_cli()
        .args(["fill-mask", "--strict", "--model"])
        .arg(&dir)
        .arg(ROBERTA_TEXT)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"classifier.dense.weight\""), "{stderr}");
}

#[test]
fn a_run_records_the_skipped_tensors_and_strict_changes_no_cell_id() {
    let tmp = tempfile::tempdir().unwrap();
    let model = roberta_shape(tmp.path(), "extra-heads");
    let body = |strict: &str| {
        format!(
            "[model]\nsource = {:?}\n{strict}[task]\nkind = \"sst2\"\ntrain_size = 8\ndev_size = 8\ntest_size = 8\n[method]\nkind = \"manual\"\ntemplate = \"[CLS] {{sentence}} it was [P] . [SEP]\"\nlabels = {{ \"0\" = [\"bad\"], \"1\" = [\"good\"] }}\n",
            model.display().to_string()
        )
    };
    let file = common::experiment(tmp.path(), "skips", &body(""));
    let out = uncoloured_cli().arg("run").arg(&file).output().unwrap();
    common::assert_success(&out);
    let cells = tmp.path().join("results/skips/cells");
    let records: Vec<autoprompt::record::Record> = std::fs::read_dir(&cells)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap())
        .collect();
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].provenance.skipped_tensors,
        [
            "classifier.* (4 tensors)",
            "roberta.encoder.layer.*.output.adapter.* (8 tensors)"
        ]
    );

    // `strict = false` written out is the default: same cell id. `strict = true` fails the
    // cell with the unused tensors named.
    let plan = |name: &str, strict: &str| {
        let file = common::experiment(tmp.path(), name, &body(strict));
        let out = uncoloured_cli().arg("plan").arg(&file).output().unwrap();
        common::assert_success(&out);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let id = &records[0].id;
    assert!(plan("skips2", "strict = false\n").contains(id.as_str()));
    let file = common::experiment(tmp.path(), "strict", &body("strict = true\n"));
    let out = uncoloured_cli().arg("run").arg(&file).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
