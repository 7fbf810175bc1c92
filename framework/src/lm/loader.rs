//! Loading of Hugging Face checkpoints into [`MaskedLm`].
//!
//! A silently random tensor is the worst bug this project can have, so every tensor the
//! model needs must be found with the right shape; all such problems are collected and
//! reported together. Tensors the checkpoint has but the model does not use (extra task
//! heads beside the MLM head, an adapter, a classifier) are skipped with one warning that
//! lists them grouped by prefix, as transformers does ([`UnusedTensors::Skip`], the default);
//! [`UnusedTensors::Refuse`] (`model.strict = true`) refuses such a checkpoint instead.
//! Registered buffers and the BERT pre-training extras in [`IGNORED_SUFFIXES`] are never
//! reported. A checkpoint whose body loads but that has no MLM head at all (a bare
//! `BertModel`) gets its own error ([`LmError::NoMlmHead`]).
//!
//! Files: `model.safetensors` (f32, f16, bf16, f64), `pytorch_model.bin` (PyTorch zip or
//! legacy pickle, read without executing pickle code by burn-store's reader), or either
//! one sharded with its `*.index.json` ([`weight_files`]).
//!
//! Name table (HF → module), `{p}` = `bert.` / `roberta.` (or nothing for bare encoders):
//!
//! | checkpoint name | module |
//! |---|---|
//! | `{p}embeddings.word_embeddings.weight` | `embeddings.word` (also the tied decoder) |
//! | `{p}embeddings.position_embeddings.weight` | `embeddings.position` |
//! | `{p}embeddings.token_type_embeddings.weight` | `embeddings.token_type` |
//! | `{p}embeddings.LayerNorm.{weight,bias}` (old: `gamma`, `beta`) | `embeddings.norm` |
//! | `{p}encoder.layer.N.attention.self.{query,key,value}.*` | `layers[N].{query,key,value}` |
//! | `{p}encoder.layer.N.attention.output.dense.*` | `layers[N].attention_output` |
//! | `{p}encoder.layer.N.attention.output.LayerNorm.*` | `layers[N].attention_norm` |
//! | `{p}encoder.layer.N.intermediate.dense.*` | `layers[N].intermediate` |
//! | `{p}encoder.layer.N.output.dense.*` | `layers[N].output` |
//! | `{p}encoder.layer.N.output.LayerNorm.*` | `layers[N].output_norm` |
//! | `cls.predictions.transform.dense.*` / `lm_head.dense.*` | `head.dense` |
//! | `cls.predictions.transform.LayerNorm.*` / `lm_head.layer_norm.*` | `head.norm` |
//! | `cls.predictions.bias` / `lm_head.bias` | `head.bias` |
//! | `cls.predictions.decoder.weight` / `lm_head.decoder.weight` | must equal the word embeddings (tied) |
//! | `cls.predictions.decoder.bias` / `lm_head.decoder.bias` | must equal `head.bias` |
//!
//! DistilBERT (`{p}` = `distilbert.`) has no token types and names its pieces
//! `transformer.layer.N.attention.{q_lin,k_lin,v_lin,out_lin}`, `.sa_layer_norm`,
//! `.ffn.{lin1,lin2}`, `.output_layer_norm`; its head is `vocab_transform` (dense),
//! `vocab_layer_norm`, and `vocab_projector` (weight tied to the word embeddings, its bias
//! the decoder bias).
//!
//! ELECTRA's generator (`{p}` = `electra.`) has BERT's names for embeddings (of
//! `embedding_size`) and layers, `{p}embeddings_project` (embedding → hidden size, when they
//! differ), and the head `generator_predictions.{dense,LayerNorm}` (hidden → embedding size)
//! and `generator_lm_head` (weight tied to the word embeddings, its bias the decoder bias).
//!
//! ALBERT (`{p}` = `albert.`): embeddings as ELECTRA's, projected by
//! `{p}encoder.embedding_hidden_mapping_in`; one layer,
//! `{p}encoder.albert_layer_groups.0.albert_layers.0.{attention.{query,key,value,dense,LayerNorm},
//! ffn, ffn_output, full_layer_layer_norm}`, whose weights every layer shares (the loader
//! repeats it); head `predictions.{dense,LayerNorm,bias}` and `predictions.decoder` (tied).
//!
//! ModernBERT (`{p}` = `model.`): see `modern_parts` below (`tok_embeddings`, `layers.N.attn.Wqkv`,
//! `mlp.Wi`, `final_norm`, `head.{dense,norm}`, `decoder`; biases only where the config has them).
//!
//! PyTorch `Linear` weights are `[out, in]`; burn's are `[in, out]`, so they are transposed here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{DType, Tensor, TensorData, backend::Backend};

use super::LmError;
use super::config::{Family, MaskedLmConfig, ModernBert};
use super::model::{Embeddings, EncoderLayer, Layer, MaskedLm, MlmHead};
use super::modern::ModernLayer;

/// Checkpoint tensors known to be irrelevant to a masked LM: the pooler, the NSP head and
/// registered buffers. Skipped without a warning (a `BertForPreTraining` checkpoint loads as
/// it is, even with `strict`); anything else left over is an unused tensor.
pub const IGNORED_SUFFIXES: &[&str] = &[
    "pooler.dense.weight",
    "pooler.dense.bias",
    "cls.seq_relationship.weight",
    "cls.seq_relationship.bias",
    "embeddings.position_ids",
    "embeddings.token_type_ids",
];

/// What loading does with checkpoint tensors the model does not use (beyond
/// [`IGNORED_SUFFIXES`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum UnusedTensors {
    /// Load past them with one warning listing them, as transformers does (default).
    #[default]
    Skip,
    /// Refuse the checkpoint, listing them (`model.strict = true`, `fill-mask --strict`).
    Refuse,
}

/// A loaded model and the checkpoint tensors it skipped ([`group_names`]' summary: names,
/// or `prefix.* (n tensors)`), for the warning and the record's provenance.
#[derive(Debug)]
pub struct LoadedWeights<B: Backend> {
    pub model: MaskedLm<B>,
    pub skipped: Vec<String>,
}

/// A checkpoint tensor converted to f32.
#[derive(Debug, Clone)]
pub struct RawTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Reads every tensor of a `.safetensors` or `.bin` file (PyTorch zip/pickle, read without
/// executing pickle code by burn-store's reader).
pub fn read_checkpoint(path: &Path) -> Result<BTreeMap<String, RawTensor>, LmError> {
    let corrupt = |message: String| LmError::Corrupt {
        path: path.to_owned(),
        message,
    };
    let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    if is_safetensors {
        let bytes = std::fs::read(path).map_err(|source| LmError::Io {
            path: path.to_owned(),
            source,
        })?;
        let file =
            safetensors::SafeTensors::deserialize(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let mut out = BTreeMap::new();
        for (name, view) in file.tensors() {
            let dtype = match view.dtype() {
                safetensors::Dtype::F32 => DType::F32,
                safetensors::Dtype::F16 => DType::F16,
                safetensors::Dtype::BF16 => DType::BF16,
                safetensors::Dtype::F64 => DType::F64,
                safetensors::Dtype::I64 => DType::I64,
                safetensors::Dtype::I32 => DType::I32,
                other => {
                    return Err(corrupt(format!(
                        "tensor `{name}` has unsupported dtype {other:?}"
                    )));
                }
            };
            let shape = view.shape().to_vec();
            let data = TensorData::from_bytes_vec(view.data().to_vec(), shape.clone(), dtype);
            let raw = raw_from_data(data, shape).map_err(corrupt)?;
            check_finite(&name, &raw).map_err(corrupt)?;
            out.insert(name, raw);
        }
        Ok(out)
    } else {
        let reader =
            burn_store::pytorch::PytorchReader::new(path).map_err(|e| corrupt(e.to_string()))?;
        let mut out = BTreeMap::new();
        for (name, snapshot) in reader.into_tensors() {
            let shape: Vec<usize> = snapshot.shape.to_vec();
            let data = snapshot
                .to_data()
                .map_err(|e| corrupt(format!("tensor `{name}`: {e}")))?;
            let raw = raw_from_data(data, shape).map_err(corrupt)?;
            check_finite(&name, &raw).map_err(corrupt)?;
            out.insert(name, raw);
        }
        Ok(out)
    }
}

/// A weight with NaN or infinite values makes every score it touches non-finite, and a
/// search on such scores would still "find" a prompt: refuse the checkpoint instead.
fn check_finite(name: &str, raw: &RawTensor) -> Result<(), String> {
    let bad = raw.values.iter().filter(|v| !v.is_finite()).count();
    if bad == 0 {
        return Ok(());
    }
    Err(format!(
        "tensor `{name}` has {bad} NaN or infinite values (of {}); its scores could not be finite",
        raw.values.len()
    ))
}

fn raw_from_data(data: TensorData, shape: Vec<usize>) -> Result<RawTensor, String> {
    let values = data
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| format!("{e:?}"))?;
    Ok(RawTensor { shape, values })
}

/// Takes tensors out of a checkpoint by name, recording (instead of failing on) the first
/// problem of each tensor so that one error can list them all.
struct Taker<'a, B: Backend> {
    tensors: BTreeMap<String, RawTensor>,
    device: &'a B::Device,
    missing: Vec<String>,
    mismatched: Vec<String>,
    taken: Vec<String>,
}

impl<B: Backend> Taker<'_, B> {
    /// The first of `names` that exists, as a tensor of `shape`. On a problem, records it and
    /// returns zeros, which never reach a caller because [`load_weights`] then fails.
    fn tensor<const D: usize>(&mut self, names: &[String], shape: [usize; D]) -> Tensor<B, D> {
        let Some(name) = names.iter().find(|n| self.tensors.contains_key(*n)) else {
            self.missing.push(names.join(" | "));
            return Tensor::zeros(shape, self.device);
        };
        let raw = self.tensors.remove(name).expect("checked above");
        self.taken.push(name.clone());
        if raw.shape != shape {
            self.mismatched.push(format!(
                "{name}: checkpoint {:?}, model expects {:?}",
                raw.shape, shape
            ));
            return Tensor::zeros(shape, self.device);
        }
        Tensor::from_data(TensorData::new(raw.values, shape), self.device)
    }

    fn linear(&mut self, prefix: &str, d_in: usize, d_out: usize) -> Linear<B> {
        self.linear_with(prefix, d_in, d_out, true)
    }

    /// A linear layer with or without a bias (ModernBERT's configs decide).
    fn linear_with(&mut self, prefix: &str, d_in: usize, d_out: usize, bias: bool) -> Linear<B> {
        let weight = self.tensor([format!("{prefix}.weight")].as_slice(), [d_out, d_in]);
        let bias = bias.then(|| {
            Param::from_tensor(self.tensor([format!("{prefix}.bias")].as_slice(), [d_out]))
        });
        Linear {
            weight: Param::from_tensor(weight.transpose()),
            bias,
        }
    }

    /// LayerNorm under its current (`weight`/`bias`) or old (`gamma`/`beta`) names.
    fn layer_norm(&mut self, prefix: &str, d: usize, eps: f64) -> LayerNorm<B> {
        self.layer_norm_with(prefix, d, eps, true)
    }

    /// LayerNorm with or without a bias.
    fn layer_norm_with(&mut self, prefix: &str, d: usize, eps: f64, bias: bool) -> LayerNorm<B> {
        let gamma = self.tensor(
            &[format!("{prefix}.weight"), format!("{prefix}.gamma")],
            [d],
        );
        let beta = bias.then(|| {
            Param::from_tensor(
                self.tensor(&[format!("{prefix}.bias"), format!("{prefix}.beta")], [d]),
            )
        });
        let mut norm = LayerNormConfig::new(d)
            .with_epsilon(eps)
            .with_bias(bias)
            .init(self.device);
        norm.gamma = Param::from_tensor(gamma);
        norm.beta = beta;
        norm
    }

    fn embedding(&mut self, name: &str, n: usize, d: usize) -> Embedding<B> {
        Embedding {
            weight: Param::from_tensor(self.tensor([name.to_string()].as_slice(), [n, d])),
        }
    }

    /// An optional tensor that must equal `expected` (tied decoder weights).
    fn check_tied(&mut self, names: &[String], expected: &Tensor<B, 2>) -> Option<String> {
        let name = names
            .iter()
            .find(|n| self.tensors.contains_key(*n))?
            .clone();
        let raw = self.tensors.remove(&name).expect("checked above");
        self.taken.push(name.clone());
        let expected = expected.to_data().into_vec::<f32>().unwrap_or_default();
        let numel: usize = raw.shape.iter().product();
        let same = numel == expected.len()
            && raw
                .values
                .iter()
                .zip(&expected)
                .all(|(a, b)| (a - b).abs() <= 1e-6);
        (!same).then(|| {
            format!(
                "{name} differs from the tied embedding/bias (untied decoders are not supported)"
            )
        })
    }
}

/// Builds a [`MaskedLm`] from checkpoint tensors (see the module docs). `path` names the
/// checkpoint in errors and in the warning.
pub fn load_weights<B: Backend>(
    config: &MaskedLmConfig,
    mut tensors: BTreeMap<String, RawTensor>,
    path: &Path,
    device: &B::Device,
    unused_tensors: UnusedTensors,
) -> Result<LoadedWeights<B>, LmError> {
    let names = FamilyNames::of(config.family);
    let p = if tensors.contains_key(&format!("{}{}", names.prefix, names.word_embeddings)) {
        names.prefix
    } else {
        ""
    };
    let ignored: Vec<String> = tensors
        .keys()
        .filter(|name| IGNORED_SUFFIXES.iter().any(|s| name.ends_with(s)))
        .cloned()
        .collect();
    for name in &ignored {
        tensors.remove(name);
    }
    let eps = config.layer_norm_eps;
    let mut t = Taker::<B> {
        tensors,
        device,
        missing: vec![],
        mismatched: vec![],
        taken: vec![],
    };
    let Parts {
        embeddings,
        layers,
        final_norm,
        head,
        decoder,
    } = match (&config.modern, config.family) {
        (Some(modern), Family::ModernBert) => modern_parts(&mut t, p, config, modern),
        (None, Family::ModernBert) | (Some(_), _) => {
            return Err(LmError::Unsupported {
                path: path.to_owned(),
                message: "ModernBERT settings belong to (and only to) a ModernBERT config".into(),
            });
        }
        (None, _) => post_norm_parts(&mut t, p, config, names),
    };
    let mut untied = vec![];
    if t.missing.is_empty() && t.mismatched.is_empty() {
        let word = embeddings.word.weight.val();
        let head_bias = head.bias.val().reshape([1, config.vocab_size]);
        untied.extend(t.check_tied(&[format!("{decoder}.weight")], &word));
        if names.head.decoder_has_bias {
            untied.extend(t.check_tied(&[format!("{decoder}.bias")], &head_bias));
        }
    }
    let unused: Vec<String> = t.tensors.keys().cloned().collect();
    let head_names = &names.head;
    if !t.missing.is_empty()
        && t.mismatched.is_empty()
        && head_names.is_absent(&t.missing, &t.taken)
    {
        return Err(LmError::NoMlmHead {
            path: path.to_owned(),
            head: head_names.prefixes.join("*, ") + "*",
            classes: head_names.classes,
        });
    }
    let refuse_unused = unused_tensors == UnusedTensors::Refuse && !unused.is_empty();
    if !(t.missing.is_empty() && t.mismatched.is_empty() && untied.is_empty()) || refuse_unused {
        let note = if refuse_unused && t.missing.is_empty() && t.mismatched.is_empty() {
            "\n  (strict loading refuses unused tensors; without `strict` they are skipped with a warning)"
        } else {
            ""
        };
        return Err(LmError::Weights {
            path: path.to_owned(),
            missing: t.missing,
            mismatched: t.mismatched.into_iter().chain(untied).collect(),
            unused,
            note,
        });
    }
    let used: Vec<&str> = t.taken.iter().chain(&ignored).map(String::as_str).collect();
    let skipped = group_names(&unused, &used);
    if !skipped.is_empty() {
        tracing::warn!(
            checkpoint = %path.display(),
            "{} checkpoint tensors are not used by the masked LM and were skipped: {} \
             (`model.strict = true` in an experiment, or `fill-mask --strict`, refuses such a checkpoint)",
            unused.len(),
            skipped.join(", ")
        );
    }
    tracing::debug!(
        tensors = t.taken.len(),
        ignored = ignored.len(),
        skipped = unused.len(),
        "checkpoint loaded"
    );
    Ok(LoadedWeights {
        model: MaskedLm {
            embeddings,
            layers,
            final_norm,
            head,
            dropout: 0.0,
            layer_norm_eps: eps,
        },
        skipped,
    })
}

/// Where one family keeps its tensors: the data that tells the families apart when loading
/// (one table per family; the module docs list them).
struct FamilyNames {
    /// Prefix of the encoder's tensors in a checkpoint of the masked LM (`bert.`); bare
    /// encoders save them without it.
    prefix: &'static str,
    /// The word embeddings, under the prefix.
    word_embeddings: &'static str,
    /// The embedding → hidden projection (when the sizes differ), under the prefix.
    embedding_project: &'static str,
    /// A post-norm layer's tensors (`None`: ModernBERT's pre-norm layers, `modern_parts`).
    layer: Option<LayerNames>,
    head: HeadNames,
}

/// One post-norm layer's tensors: BERT's computation under each family's names.
struct LayerNames {
    /// The layer's path under the prefix; `{i}` stands for the layer's index. Without it,
    /// one set of weights serves every layer (ALBERT).
    path: &'static str,
    query: &'static str,
    key: &'static str,
    value: &'static str,
    attention_output: &'static str,
    attention_norm: &'static str,
    intermediate: &'static str,
    output: &'static str,
    output_norm: &'static str,
}

/// Where a family keeps its masked-LM head, and the transformers classes that save one.
struct HeadNames {
    dense: &'static str,
    norm: &'static str,
    bias: &'static str,
    /// The decoder, whose weight must equal the word embeddings (tied).
    decoder: &'static str,
    /// Whether the decoder has a bias of its own that must equal the head's (elsewhere the
    /// decoder's bias *is* the head bias).
    decoder_has_bias: bool,
    /// Name prefixes of every head tensor (to tell a checkpoint without its head).
    prefixes: &'static [&'static str],
    classes: &'static str,
}

/// BERT's layer names, which RoBERTa and ELECTRA share.
const BERT_LAYER: LayerNames = LayerNames {
    path: "encoder.layer.{i}",
    query: "attention.self.query",
    key: "attention.self.key",
    value: "attention.self.value",
    attention_output: "attention.output.dense",
    attention_norm: "attention.output.LayerNorm",
    intermediate: "intermediate.dense",
    output: "output.dense",
    output_norm: "output.LayerNorm",
};

const BERT: FamilyNames = FamilyNames {
    prefix: "bert.",
    word_embeddings: "embeddings.word_embeddings.weight",
    embedding_project: "embeddings_project",
    layer: Some(BERT_LAYER),
    head: HeadNames {
        dense: "cls.predictions.transform.dense",
        norm: "cls.predictions.transform.LayerNorm",
        bias: "cls.predictions.bias",
        decoder: "cls.predictions.decoder",
        decoder_has_bias: true,
        prefixes: &["cls.predictions."],
        classes: "`BertForMaskedLM` or `BertForPreTraining`",
    },
};

const ROBERTA: FamilyNames = FamilyNames {
    prefix: "roberta.",
    word_embeddings: "embeddings.word_embeddings.weight",
    embedding_project: "embeddings_project",
    layer: Some(BERT_LAYER),
    head: HeadNames {
        dense: "lm_head.dense",
        norm: "lm_head.layer_norm",
        bias: "lm_head.bias",
        decoder: "lm_head.decoder",
        decoder_has_bias: true,
        prefixes: &["lm_head."],
        classes: "`RobertaForMaskedLM` (or `XLMRobertaForMaskedLM`)",
    },
};

const DISTILBERT: FamilyNames = FamilyNames {
    prefix: "distilbert.",
    word_embeddings: "embeddings.word_embeddings.weight",
    embedding_project: "embeddings_project",
    layer: Some(LayerNames {
        path: "transformer.layer.{i}",
        query: "attention.q_lin",
        key: "attention.k_lin",
        value: "attention.v_lin",
        attention_output: "attention.out_lin",
        attention_norm: "sa_layer_norm",
        intermediate: "ffn.lin1",
        output: "ffn.lin2",
        output_norm: "output_layer_norm",
    }),
    // The projector's own bias is the decoder bias: nothing further to tie.
    head: HeadNames {
        dense: "vocab_transform",
        norm: "vocab_layer_norm",
        bias: "vocab_projector.bias",
        decoder: "vocab_projector",
        decoder_has_bias: false,
        prefixes: &["vocab_transform.", "vocab_layer_norm.", "vocab_projector."],
        classes: "`DistilBertForMaskedLM`",
    },
};

const ELECTRA: FamilyNames = FamilyNames {
    prefix: "electra.",
    word_embeddings: "embeddings.word_embeddings.weight",
    embedding_project: "embeddings_project",
    layer: Some(BERT_LAYER),
    head: HeadNames {
        dense: "generator_predictions.dense",
        norm: "generator_predictions.LayerNorm",
        bias: "generator_lm_head.bias",
        decoder: "generator_lm_head",
        decoder_has_bias: false,
        prefixes: &["generator_predictions.", "generator_lm_head."],
        classes: "`ElectraForMaskedLM` (ELECTRA's generator; a discriminator has no MLM head)",
    },
};

const ALBERT: FamilyNames = FamilyNames {
    prefix: "albert.",
    word_embeddings: "embeddings.word_embeddings.weight",
    embedding_project: "encoder.embedding_hidden_mapping_in",
    layer: Some(LayerNames {
        path: "encoder.albert_layer_groups.0.albert_layers.0",
        query: "attention.query",
        key: "attention.key",
        value: "attention.value",
        attention_output: "attention.dense",
        attention_norm: "attention.LayerNorm",
        intermediate: "ffn",
        output: "ffn_output",
        output_norm: "full_layer_layer_norm",
    }),
    head: HeadNames {
        dense: "predictions.dense",
        norm: "predictions.LayerNorm",
        bias: "predictions.bias",
        decoder: "predictions.decoder",
        decoder_has_bias: true,
        prefixes: &["predictions."],
        classes: "`AlbertForMaskedLM` or `AlbertForPreTraining`",
    },
};

/// ModernBERT's layers and embeddings are read by `modern_parts`; the table gives its prefix
/// and head.
const MODERNBERT: FamilyNames = FamilyNames {
    prefix: "model.",
    word_embeddings: "embeddings.tok_embeddings.weight",
    embedding_project: "",
    layer: None,
    head: HeadNames {
        dense: "head.dense",
        norm: "head.norm",
        bias: "decoder.bias",
        decoder: "decoder",
        decoder_has_bias: false,
        prefixes: &["head.", "decoder."],
        classes: "`ModernBertForMaskedLM`",
    },
};

impl FamilyNames {
    fn of(family: Family) -> &'static Self {
        match family {
            Family::Bert => &BERT,
            Family::Roberta => &ROBERTA,
            Family::DistilBert => &DISTILBERT,
            Family::Electra => &ELECTRA,
            Family::Albert => &ALBERT,
            Family::ModernBert => &MODERNBERT,
        }
    }
}

impl HeadNames {
    fn is_head(&self, name: &str) -> bool {
        self.prefixes.iter().any(|p| name.starts_with(p))
    }

    /// True when everything missing is the head and no head tensor was found: the
    /// checkpoint is an encoder without its MLM head.
    fn is_absent(&self, missing: &[String], taken: &[String]) -> bool {
        missing.iter().all(|m| self.is_head(m)) && !taken.iter().any(|n| self.is_head(n))
    }
}

/// Summarises tensor names for a warning: each name is cut at its shortest dotted prefix
/// that no `used` name shares (`cls.species` beside the used `cls.predictions.*`), layer
/// numbers become `*`, and a prefix covering several tensors is shown once as
/// `prefix.* (n tensors)`.
pub fn group_names(names: &[String], used: &[&str]) -> Vec<String> {
    let used_prefixes: std::collections::HashSet<String> = used
        .iter()
        .flat_map(|name| {
            let parts: Vec<&str> = name.split('.').collect();
            (1..=parts.len()).map(move |n| parts[..n].join("."))
        })
        .collect();
    let mut groups: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for name in names {
        let parts: Vec<&str> = name.split('.').collect();
        let n = (1..=parts.len())
            .find(|&n| !used_prefixes.contains(&parts[..n].join(".")))
            .unwrap_or(parts.len());
        let key = parts[..n]
            .iter()
            .map(|&p| {
                if p.bytes().all(|b| b.is_ascii_digit()) {
                    "*"
                } else {
                    p
                }
            })
            .collect::<Vec<_>>()
            .join(".");
        groups.entry(key).or_default().push(name);
    }
    groups
        .into_iter()
        .map(|(key, members)| match members.as_slice() {
            [one] => one.to_string(),
            many => format!("{key}.* ({} tensors)", many.len()),
        })
        .collect()
}

/// The modules of a checkpoint, and the name of its (tied) decoder.
struct Parts<B: Backend> {
    embeddings: Embeddings<B>,
    layers: Vec<Layer<B>>,
    final_norm: Option<LayerNorm<B>>,
    head: MlmHead<B>,
    decoder: &'static str,
}

/// BERT's layout and its relatives' renamings, read through the family's [`FamilyNames`].
fn post_norm_parts<B: Backend>(
    t: &mut Taker<B>,
    p: &str,
    config: &MaskedLmConfig,
    names: &FamilyNames,
) -> Parts<B> {
    let (h, e, eps) = (
        config.hidden_size,
        config.embedding_size,
        config.layer_norm_eps,
    );
    let embeddings = Embeddings {
        word: t.embedding(
            &format!("{p}{}", names.word_embeddings),
            config.vocab_size,
            e,
        ),
        position: Some(t.embedding(
            &format!("{p}embeddings.position_embeddings.weight"),
            config.max_position_embeddings,
            e,
        )),
        token_type: (config.type_vocab_size > 0).then(|| {
            t.embedding(
                &format!("{p}embeddings.token_type_embeddings.weight"),
                config.type_vocab_size,
                e,
            )
        }),
        norm: t.layer_norm(&format!("{p}embeddings.LayerNorm"), e, eps),
        project: (e != h).then(|| t.linear(&format!("{p}{}", names.embedding_project), e, h)),
        position_offset: config.position_offset(),
    };
    let layer = names
        .layer
        .as_ref()
        .expect("post-norm families have layer names");
    let path = |i: usize| format!("{p}{}", layer.path.replace("{i}", &i.to_string()));
    // ALBERT: one set of weights, shared by every layer (the frozen search only reads them).
    let shared = (!layer.path.contains("{i}")).then(|| post_norm_layer(t, &path(0), layer, config));
    let layers = (0..config.num_layers)
        .map(|i| {
            Layer::PostNorm(match &shared {
                Some(one) => one.clone(),
                None => post_norm_layer(t, &path(i), layer, config),
            })
        })
        .collect();
    let head_names = &names.head;
    let head = MlmHead {
        dense: t.linear(head_names.dense, h, e),
        norm: t.layer_norm(head_names.norm, e, eps),
        activation: config.activation,
        bias: Param::from_tensor(t.tensor(
            [head_names.bias.to_string()].as_slice(),
            [config.vocab_size],
        )),
    };
    Parts {
        embeddings,
        layers,
        final_norm: None,
        head,
        decoder: head_names.decoder,
    }
}

/// One post-norm layer at `l` (BERT's computation under the family's names).
fn post_norm_layer<B: Backend>(
    t: &mut Taker<B>,
    l: &str,
    names: &LayerNames,
    config: &MaskedLmConfig,
) -> EncoderLayer<B> {
    let (h, eps, ff) = (
        config.hidden_size,
        config.layer_norm_eps,
        config.intermediate_size,
    );
    EncoderLayer {
        query: t.linear(&format!("{l}.{}", names.query), h, h),
        key: t.linear(&format!("{l}.{}", names.key), h, h),
        value: t.linear(&format!("{l}.{}", names.value), h, h),
        attention_output: t.linear(&format!("{l}.{}", names.attention_output), h, h),
        attention_norm: t.layer_norm(&format!("{l}.{}", names.attention_norm), h, eps),
        intermediate: t.linear(&format!("{l}.{}", names.intermediate), h, ff),
        output: t.linear(&format!("{l}.{}", names.output), ff, h),
        output_norm: t.layer_norm(&format!("{l}.{}", names.output_norm), h, eps),
        num_heads: config.num_heads,
        activation: config.activation,
    }
}

/// ModernBERT (`{p}` = `model.`): `{p}embeddings.{tok_embeddings,norm}`,
/// `{p}layers.N.{attn_norm (not in layer 0), attn.Wqkv, attn.Wo, mlp_norm, mlp.Wi, mlp.Wo}`,
/// `{p}final_norm`, `head.{dense,norm}`, and `decoder` (weight tied to the token embeddings,
/// its bias the decoder bias). Biases are read only where the config has them.
fn modern_parts<B: Backend>(
    t: &mut Taker<B>,
    p: &str,
    config: &MaskedLmConfig,
    modern: &ModernBert,
) -> Parts<B> {
    let (h, eps, ff) = (
        config.hidden_size,
        config.layer_norm_eps,
        config.intermediate_size,
    );
    let norm_bias = modern.norm_bias;
    let layers = modern
        .spans
        .iter()
        .enumerate()
        .map(|(i, &span)| {
            let l = format!("{p}layers.{i}");
            Layer::PreNorm(ModernLayer {
                attention_norm: (i > 0)
                    .then(|| t.layer_norm_with(&format!("{l}.attn_norm"), h, eps, norm_bias)),
                qkv: t.linear_with(&format!("{l}.attn.Wqkv"), h, 3 * h, modern.attention_bias),
                attention_output: t.linear_with(
                    &format!("{l}.attn.Wo"),
                    h,
                    h,
                    modern.attention_bias,
                ),
                mlp_norm: t.layer_norm_with(&format!("{l}.mlp_norm"), h, eps, norm_bias),
                mlp_in: t.linear_with(&format!("{l}.mlp.Wi"), h, 2 * ff, modern.mlp_bias),
                mlp_out: t.linear_with(&format!("{l}.mlp.Wo"), ff, h, modern.mlp_bias),
                num_heads: config.num_heads,
                activation: config.activation,
                rope_theta: modern.rope_theta(span),
                window: modern.window(span),
            })
        })
        .collect();
    Parts {
        embeddings: Embeddings {
            word: t.embedding(
                &format!("{p}{}", MODERNBERT.word_embeddings),
                config.vocab_size,
                h,
            ),
            position: None,
            token_type: None,
            norm: t.layer_norm_with(&format!("{p}embeddings.norm"), h, eps, norm_bias),
            project: None,
            position_offset: 0,
        },
        layers,
        final_norm: Some(t.layer_norm_with(&format!("{p}final_norm"), h, eps, norm_bias)),
        head: MlmHead {
            dense: t.linear_with(MODERNBERT.head.dense, h, h, modern.head_bias),
            norm: t.layer_norm_with(MODERNBERT.head.norm, h, eps, norm_bias),
            activation: modern.head_activation,
            bias: Param::from_tensor(t.tensor(
                [MODERNBERT.head.bias.to_string()].as_slice(),
                [config.vocab_size],
            )),
        },
        decoder: MODERNBERT.head.decoder,
    }
}

/// The weight files of a model directory, in the order they are looked for:
/// `model.safetensors`, `model.safetensors.index.json` (sharded), `pytorch_model.bin`,
/// `pytorch_model.bin.index.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightFiles {
    /// The index of a sharded checkpoint (names it in errors); `None` for one file.
    pub index: Option<PathBuf>,
    /// The file, or the shards in name order.
    pub files: Vec<PathBuf>,
}

impl WeightFiles {
    /// The path errors and the warning name: the index, or the one file.
    pub fn path(&self) -> &Path {
        self.index.as_deref().unwrap_or(&self.files[0])
    }

    /// Every file, index included (hashed into provenance).
    pub fn all(&self) -> Vec<PathBuf> {
        self.index.iter().chain(&self.files).cloned().collect()
    }
}

/// A sharded checkpoint's index (`weight_map`: tensor name → shard file).
#[derive(serde::Deserialize)]
struct ShardIndex {
    weight_map: BTreeMap<String, String>,
}

/// Finds the weights of `dir` (see [`WeightFiles`]); `Ok(None)` when it has none.
pub fn weight_files(dir: &Path) -> Result<Option<WeightFiles>, LmError> {
    for single in ["model.safetensors", "pytorch_model.bin"] {
        let file = dir.join(single);
        if file.is_file() {
            return Ok(Some(WeightFiles {
                index: None,
                files: vec![file],
            }));
        }
        let index = dir.join(format!("{single}.index.json"));
        if index.is_file() {
            let text = std::fs::read_to_string(&index).map_err(|source| LmError::Io {
                path: index.clone(),
                source,
            })?;
            let parsed: ShardIndex =
                serde_json::from_str(&text).map_err(|source| LmError::Config {
                    path: index.clone(),
                    source,
                })?;
            let shards: std::collections::BTreeSet<&String> = parsed.weight_map.values().collect();
            let mut files = vec![];
            for shard in shards {
                let file = dir.join(shard);
                if !file.is_file() {
                    return Err(LmError::Corrupt {
                        path: index.clone(),
                        message: format!("its shard `{shard}` is not in {}", dir.display()),
                    });
                }
                files.push(file);
            }
            if files.is_empty() {
                return Err(LmError::Corrupt {
                    path: index,
                    message: "its `weight_map` names no shard".into(),
                });
            }
            return Ok(Some(WeightFiles {
                index: Some(index),
                files,
            }));
        }
    }
    Ok(None)
}

/// Reads every tensor of `weights`, merging the shards of a sharded checkpoint (a name in
/// two shards is an error: which one the model would get is not defined).
pub fn read_weights(weights: &WeightFiles) -> Result<BTreeMap<String, RawTensor>, LmError> {
    let mut all = BTreeMap::new();
    for file in &weights.files {
        for (name, tensor) in read_checkpoint(file)? {
            if all.insert(name.clone(), tensor).is_some() {
                return Err(LmError::Corrupt {
                    path: weights.path().to_owned(),
                    message: format!("tensor `{name}` is in more than one shard"),
                });
            }
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn unused_names_are_grouped_by_the_prefix_the_model_does_not_use() {
        let used = [
            "bert.encoder.layer.0.output.dense.weight",
            "bert.encoder.layer.1.output.dense.weight",
            "cls.predictions.bias",
        ];
        let unused = names(&[
            "cls.species.decoder.weight",
            "cls.species.decoder.bias",
            "cls.chain.weight",
            "bert.encoder.layer.0.output.adapter.down.weight",
            "bert.encoder.layer.1.output.adapter.down.weight",
            "classifier.weight",
            "classifier.bias",
            "extra",
        ]);
        assert_eq!(
            group_names(&unused, &used),
            [
                "bert.encoder.layer.*.output.adapter.* (2 tensors)",
                "classifier.* (2 tensors)",
                "cls.chain.weight",
                "cls.species.* (2 tensors)",
                "extra",
            ]
        );
        assert!(group_names(&[], &used).is_empty());
    }
}
