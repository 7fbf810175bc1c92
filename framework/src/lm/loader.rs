//! Strict loading of Hugging Face checkpoints into [`MaskedLm`].
//!
//! A silently random tensor is the worst bug this project can have, so every tensor the
//! model needs must be found with the right shape, and every tensor the checkpoint has must
//! be either used or listed in [`IGNORED_SUFFIXES`]. All problems are collected and
//! reported together.
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
/// registered buffers. Anything else left over is an error.
pub const IGNORED_SUFFIXES: &[&str] = &[
    "pooler.dense.weight",
    "pooler.dense.bias",
    "cls.seq_relationship.weight",
    "cls.seq_relationship.bias",
    "embeddings.position_ids",
    "embeddings.token_type_ids",
];

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

/// Builds a [`MaskedLm`] from checkpoint tensors, strictly (see the module docs).
pub fn load_weights<B: Backend>(
    config: &MaskedLmConfig,
    mut tensors: BTreeMap<String, RawTensor>,
    path: &Path,
    device: &B::Device,
) -> Result<MaskedLm<B>, LmError> {
    let family_prefix = match config.family {
        Family::Bert => "bert.",
        Family::Roberta => "roberta.",
        Family::DistilBert => "distilbert.",
        Family::Electra => "electra.",
        Family::Albert => "albert.",
        Family::ModernBert => "model.",
    };
    let word_name = match config.family {
        Family::ModernBert => "embeddings.tok_embeddings.weight",
        _ => "embeddings.word_embeddings.weight",
    };
    let p = if tensors.contains_key(&format!("{family_prefix}{word_name}")) {
        family_prefix
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
        (None, _) => post_norm_parts(&mut t, p, config),
    };
    let mut untied = vec![];
    if t.missing.is_empty() && t.mismatched.is_empty() {
        let word = embeddings.word.weight.val();
        let head_bias = head.bias.val().reshape([1, config.vocab_size]);
        untied.extend(t.check_tied(&[format!("{decoder}.weight")], &word));
        if !matches!(
            config.family,
            Family::DistilBert | Family::Electra | Family::ModernBert
        ) {
            untied.extend(t.check_tied(&[format!("{decoder}.bias")], &head_bias));
        }
    }
    let unused: Vec<String> = t.tensors.keys().cloned().collect();
    if !(t.missing.is_empty() && t.mismatched.is_empty() && unused.is_empty() && untied.is_empty())
    {
        return Err(LmError::Weights {
            path: path.to_owned(),
            missing: t.missing,
            mismatched: t.mismatched.into_iter().chain(untied).collect(),
            unused,
        });
    }
    tracing::debug!(
        tensors = t.taken.len(),
        ignored = ignored.len(),
        "checkpoint loaded"
    );
    Ok(MaskedLm {
        embeddings,
        layers,
        final_norm,
        head,
        dropout: 0.0,
        layer_norm_eps: eps,
    })
}

/// The modules of a checkpoint, and the name of its (tied) decoder.
struct Parts<B: Backend> {
    embeddings: Embeddings<B>,
    layers: Vec<Layer<B>>,
    final_norm: Option<LayerNorm<B>>,
    head: MlmHead<B>,
    decoder: &'static str,
}

/// BERT's layout and its relatives' renamings (see the module docs).
fn post_norm_parts<B: Backend>(t: &mut Taker<B>, p: &str, config: &MaskedLmConfig) -> Parts<B> {
    let (h, e, eps) = (
        config.hidden_size,
        config.embedding_size,
        config.layer_norm_eps,
    );
    let embeddings = Embeddings {
        word: t.embedding(
            &format!("{p}embeddings.word_embeddings.weight"),
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
        project: (e != h).then(|| {
            let name = match config.family {
                Family::Albert => format!("{p}encoder.embedding_hidden_mapping_in"),
                _ => format!("{p}embeddings_project"),
            };
            t.linear(&name, e, h)
        }),
        position_offset: config.position_offset(),
    };
    // ALBERT: one set of weights, shared by every layer (the frozen search only reads them).
    let shared = (config.family == Family::Albert).then(|| {
        albert_layer(
            t,
            &format!("{p}encoder.albert_layer_groups.0.albert_layers.0"),
            config,
        )
    });
    let layers = (0..config.num_layers)
        .map(|i| {
            if let Some(layer) = &shared {
                return Layer::PostNorm(layer.clone());
            }
            if config.family == Family::DistilBert {
                return Layer::PostNorm(distilbert_layer(
                    t,
                    &format!("{p}transformer.layer.{i}"),
                    config,
                ));
            }
            let l = format!("{p}encoder.layer.{i}");
            Layer::PostNorm(EncoderLayer {
                query: t.linear(&format!("{l}.attention.self.query"), h, h),
                key: t.linear(&format!("{l}.attention.self.key"), h, h),
                value: t.linear(&format!("{l}.attention.self.value"), h, h),
                attention_output: t.linear(&format!("{l}.attention.output.dense"), h, h),
                attention_norm: t.layer_norm(&format!("{l}.attention.output.LayerNorm"), h, eps),
                intermediate: t.linear(
                    &format!("{l}.intermediate.dense"),
                    h,
                    config.intermediate_size,
                ),
                output: t.linear(&format!("{l}.output.dense"), config.intermediate_size, h),
                output_norm: t.layer_norm(&format!("{l}.output.LayerNorm"), h, eps),
                num_heads: config.num_heads,
                activation: config.activation,
            })
        })
        .collect();
    let (dense, norm, bias, decoder) = match config.family {
        Family::Bert => (
            "cls.predictions.transform.dense",
            "cls.predictions.transform.LayerNorm",
            "cls.predictions.bias",
            "cls.predictions.decoder",
        ),
        Family::Roberta => (
            "lm_head.dense",
            "lm_head.layer_norm",
            "lm_head.bias",
            "lm_head.decoder",
        ),
        // The projector's own bias is the decoder bias: nothing further to tie.
        Family::DistilBert => (
            "vocab_transform",
            "vocab_layer_norm",
            "vocab_projector.bias",
            "vocab_projector",
        ),
        Family::Electra => (
            "generator_predictions.dense",
            "generator_predictions.LayerNorm",
            "generator_lm_head.bias",
            "generator_lm_head",
        ),
        Family::Albert => (
            "predictions.dense",
            "predictions.LayerNorm",
            "predictions.bias",
            "predictions.decoder",
        ),
        // Its head's names; its layers are read by `modern_parts`, which `load_weights`
        // picks for every ModernBERT config.
        Family::ModernBert => ("head.dense", "head.norm", "decoder.bias", "decoder"),
    };
    let head = MlmHead {
        dense: t.linear(dense, h, e),
        norm: t.layer_norm(norm, e, eps),
        activation: config.activation,
        bias: Param::from_tensor(t.tensor([bias.to_string()].as_slice(), [config.vocab_size])),
    };
    Parts {
        embeddings,
        layers,
        final_norm: None,
        head,
        decoder,
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
                &format!("{p}embeddings.tok_embeddings.weight"),
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
            dense: t.linear_with("head.dense", h, h, modern.head_bias),
            norm: t.layer_norm_with("head.norm", h, eps, norm_bias),
            activation: modern.head_activation,
            bias: Param::from_tensor(
                t.tensor(["decoder.bias".to_string()].as_slice(), [config.vocab_size]),
            ),
        },
        decoder: "decoder",
    }
}

/// One DistilBERT block (same computation as BERT's, other names).
fn distilbert_layer<B: Backend>(
    t: &mut Taker<B>,
    l: &str,
    config: &MaskedLmConfig,
) -> EncoderLayer<B> {
    let (h, eps, ff) = (
        config.hidden_size,
        config.layer_norm_eps,
        config.intermediate_size,
    );
    EncoderLayer {
        query: t.linear(&format!("{l}.attention.q_lin"), h, h),
        key: t.linear(&format!("{l}.attention.k_lin"), h, h),
        value: t.linear(&format!("{l}.attention.v_lin"), h, h),
        attention_output: t.linear(&format!("{l}.attention.out_lin"), h, h),
        attention_norm: t.layer_norm(&format!("{l}.sa_layer_norm"), h, eps),
        intermediate: t.linear(&format!("{l}.ffn.lin1"), h, ff),
        output: t.linear(&format!("{l}.ffn.lin2"), ff, h),
        output_norm: t.layer_norm(&format!("{l}.output_layer_norm"), h, eps),
        num_heads: config.num_heads,
        activation: config.activation,
    }
}

/// ALBERT's one layer (BERT's computation, other names).
fn albert_layer<B: Backend>(t: &mut Taker<B>, l: &str, config: &MaskedLmConfig) -> EncoderLayer<B> {
    let (h, eps, ff) = (
        config.hidden_size,
        config.layer_norm_eps,
        config.intermediate_size,
    );
    EncoderLayer {
        query: t.linear(&format!("{l}.attention.query"), h, h),
        key: t.linear(&format!("{l}.attention.key"), h, h),
        value: t.linear(&format!("{l}.attention.value"), h, h),
        attention_output: t.linear(&format!("{l}.attention.dense"), h, h),
        attention_norm: t.layer_norm(&format!("{l}.attention.LayerNorm"), h, eps),
        intermediate: t.linear(&format!("{l}.ffn"), h, ff),
        output: t.linear(&format!("{l}.ffn_output"), ff, h),
        output_norm: t.layer_norm(&format!("{l}.full_layer_layer_norm"), h, eps),
        num_heads: config.num_heads,
        activation: config.activation,
    }
}

/// The weight file of a model directory: `model.safetensors`, else `pytorch_model.bin`.
pub fn weights_file(dir: &Path) -> Option<PathBuf> {
    ["model.safetensors", "pytorch_model.bin"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
}
