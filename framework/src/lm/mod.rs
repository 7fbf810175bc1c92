//! Masked language models (BERT, RoBERTa, XLM-RoBERTa, DistilBERT, ELECTRA's generator, ALBERT,
//! ModernBERT) in burn, loaded strictly from Hugging Face files.
//!
//! - [`config`]: sizes from `config.json`.
//! - [`model`]: the network and the entry points the search needs (forward from input
//!   embeddings; scoring only requested tokens at [MASK]).
//! - `modern`: ModernBERT's pre-norm layer (rotary, sliding-window attention, GeGLU).
//! - [`loader`]: checkpoint name table, weight files (sharded too) and loading (missing or
//!   misshapen tensors refused; unused ones skipped with a warning, or refused when strict).
//! - [`host`]: the frozen model on the CPU with fused kernels (the search's hot loop).
//! - [`tokenizer`]: tokenizers and special tokens.
//! - [`source`]: resolving a model name to files.

pub mod config;
pub mod host;
pub mod loader;
pub mod model;
mod modern;
pub mod source;
pub mod tokenizer;

use std::path::PathBuf;

use burn::tensor::backend::Backend;

pub use config::{Activation, AttentionSpan, Family, MaskedLmConfig, ModernBert};
pub use loader::UnusedTensors;
pub use model::{EncoderInput, MaskedLm};
pub use source::{EMBEDDED_MODEL, ResolvedModel};
pub use tokenizer::{LmTokenizer, SpecialTokens, WordMarker};

/// Errors of model resolution and loading.
#[derive(Debug, thiserror::Error)]
pub enum LmError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid model config")]
    Config {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: unsupported model: {message}")]
    Unsupported { path: PathBuf, message: String },
    #[error("{path}: corrupt or unreadable file: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "{path}: checkpoint does not match the model\n  missing: {missing:?}\n  wrong shape: {mismatched:?}\n  unused: {unused:?}{note}"
    )]
    Weights {
        path: PathBuf,
        missing: Vec<String>,
        mismatched: Vec<String>,
        unused: Vec<String>,
        /// Why unused tensors alone refused it (strict loading), or empty.
        note: &'static str,
    },
    #[error(
        "{path}: the checkpoint has no masked-LM head (no {head} tensors): it holds only the encoder, \
         as a bare `*Model` or a fine-tuned classifier saves it, and its predictions at [MASK] would be \
         random. Use a checkpoint saved from {classes} (a model's original pre-trained release usually is one)"
    )]
    NoMlmHead {
        path: PathBuf,
        /// The family's head tensor prefixes, e.g. `cls.predictions.*`.
        head: String,
        classes: &'static str,
    },
    #[error("model `{source_name}` not found; tried:\n  - {}", tried.join("\n  - "))]
    NotFound {
        source_name: String,
        tried: Vec<String>,
    },
    #[error("cannot tokenize {text:?}: {message}")]
    Tokenize { text: String, message: String },
}

/// A model with its tokenizer and the files it came from (for provenance).
#[derive(Debug, Clone)]
pub struct LoadedModel<B: Backend> {
    pub model: MaskedLm<B>,
    pub tokenizer: LmTokenizer,
    pub config: MaskedLmConfig,
    pub resolved: ResolvedModel,
    /// Config and weight files, hashed into each record's provenance.
    pub files: Vec<PathBuf>,
    /// Checkpoint tensors the model does not use, skipped with a warning (grouped by
    /// prefix: [`loader::group_names`]); recorded in provenance.
    pub skipped_tensors: Vec<String>,
}

impl<B: Backend> LoadedModel<B> {
    /// Longest token sequence: the position table's, capped by the tokenizer's
    /// `model_max_length` (`tokenizer_config.json`) when it is smaller.
    pub fn max_sequence_length(&self) -> usize {
        max_sequence_length(&self.config, &self.tokenizer)
    }
}

/// Longest token sequence of a model: its position table's, capped by the tokenizer's
/// `model_max_length` when that is smaller.
pub fn max_sequence_length(config: &MaskedLmConfig, tokenizer: &LmTokenizer) -> usize {
    let positions = config.max_sequence_length();
    tokenizer
        .model_max_length
        .map_or(positions, |limit| limit.min(positions))
}

/// A model's tokenizer and its longest sequence, without its weights (checks of label words
/// before any cell runs).
pub fn load_tokenizer(source: &str) -> Result<(LmTokenizer, usize), LmError> {
    let resolved = source::resolve(source)?;
    let config = MaskedLmConfig::from_file(&resolved.dir.join("config.json"))?;
    let tokenizer = LmTokenizer::from_dir(&resolved.dir)?;
    let max = max_sequence_length(&config, &tokenizer);
    Ok((tokenizer, max))
}

/// Resolves `source` and loads model and tokenizer onto `device`, skipping unused
/// checkpoint tensors with a warning ([`load_with`] chooses).
pub fn load<B: Backend>(source: &str, device: &B::Device) -> Result<LoadedModel<B>, LmError> {
    load_with(source, UnusedTensors::Skip, device)
}

/// [`load`], with what to do about checkpoint tensors the model does not use.
pub fn load_with<B: Backend>(
    source: &str,
    unused: UnusedTensors,
    device: &B::Device,
) -> Result<LoadedModel<B>, LmError> {
    let resolved = source::resolve(source)?;
    let config_path = resolved.dir.join("config.json");
    let config = MaskedLmConfig::from_file(&config_path)?;
    let weights = loader::weight_files(&resolved.dir)?.ok_or_else(|| LmError::Unsupported {
        path: resolved.dir.clone(),
        message:
            "no model.safetensors or pytorch_model.bin (nor a sharded `*.index.json` of either)"
                .into(),
    })?;
    let tensors = loader::read_weights(&weights)?;
    let loaded = loader::load_weights(&config, tensors, weights.path(), device, unused)?;
    let tokenizer = LmTokenizer::from_dir(&resolved.dir)?;
    if tokenizer.vocab_size() > config.vocab_size {
        return Err(LmError::Unsupported {
            path: resolved.dir.clone(),
            message: format!(
                "tokenizer has {} tokens but the model only {}",
                tokenizer.vocab_size(),
                config.vocab_size
            ),
        });
    }
    tracing::info!(source, dir = %resolved.dir.display(), origin = %resolved.origin, "model loaded");
    Ok(LoadedModel {
        model: loaded.model,
        tokenizer,
        config,
        resolved,
        files: std::iter::once(config_path).chain(weights.all()).collect(),
        skipped_tensors: loaded.skipped,
    })
}

/// One prediction of [`fill_mask`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prediction {
    pub token: String,
    pub id: u32,
    pub probability: f32,
}

/// Top-`k` predictions for every mask token of `text` (the model's own mask spelling, or
/// `[MASK]` for either family). The quickest check that a model loaded right.
pub fn fill_mask<B: Backend>(
    lm: &LoadedModel<B>,
    text: &str,
    k: usize,
    device: &B::Device,
) -> Result<Vec<Vec<Prediction>>, LmError> {
    use burn::tensor::{Int, Tensor, TensorData};
    let text = text.replace("[MASK]", &lm.tokenizer.special.mask.text);
    let ids = lm.tokenizer.encode_with_special_tokens(&text)?;
    let positions: Vec<usize> = ids
        .iter()
        .enumerate()
        .filter(|(_, id)| **id == lm.tokenizer.special.mask.id)
        .map(|(i, _)| i)
        .collect();
    if positions.is_empty() {
        return Err(LmError::Tokenize {
            text,
            message: "no mask token in the text".into(),
        });
    }
    let seq = ids.len();
    let to_i64 = |v: &[usize]| v.iter().map(|&x| x as i64).collect::<Vec<_>>();
    let id_tensor = Tensor::<B, 2, Int>::from_data(
        TensorData::new(
            to_i64(&ids.iter().map(|&i| i as usize).collect::<Vec<_>>()),
            [1, seq],
        ),
        device,
    );
    let hidden = lm.model.encode(EncoderInput {
        inputs_embeds: lm.model.embed_tokens(id_tensor),
        token_type_ids: Tensor::zeros([1, seq], device),
        attention_mask: Tensor::ones([1, seq], device),
    });
    let vocab = lm.model.vocab_size();
    let all = Tensor::<B, 1, Int>::arange(0..vocab as i64, device);
    positions
        .iter()
        .map(|&p| {
            let features = lm.model.mask_features(
                hidden.clone(),
                Tensor::from_data(TensorData::new(vec![p as i64], [1]), device),
            );
            let logits = lm.model.score_tokens(features, all.clone());
            let probs = burn::tensor::activation::softmax(logits, 1)
                .into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .expect("f32");
            let mut order: Vec<usize> = (0..probs.len()).collect();
            order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
            Ok(order
                .into_iter()
                .take(k)
                .map(|i| Prediction {
                    token: lm.tokenizer.display_token(i as u32),
                    id: i as u32,
                    probability: probs[i],
                })
                .collect())
        })
        .collect()
}
