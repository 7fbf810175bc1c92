//! Model sizes read straight from a Hugging Face `config.json`.
//!
//! Serde, not burn's `Config` derive: a user-facing file with a missing key must be an error
//! that names the key, and a missing optional key must take the transformers default.

use serde::Deserialize;
use std::path::Path;

use super::LmError;

/// Which architecture a checkpoint holds. They differ only in details the loader and the
/// embeddings absorb (weight-name prefix, head names, position-id offset, token types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Bert,
    Roberta,
    /// BERT's encoder without token types (`q_lin`..., `sa_layer_norm`, `vocab_transform`).
    DistilBert,
    /// ELECTRA's generator (`ElectraForMaskedLM`): BERT's encoder with embeddings of
    /// `embedding_size` projected to the hidden size, and a head back down to it.
    Electra,
    /// ALBERT: ELECTRA's factorised embeddings, one layer's weights shared by every layer,
    /// `gelu_new`.
    Albert,
}

/// The encoder's and head's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `gelu`: exact, with the error function.
    Gelu,
    /// `gelu_new` (ALBERT): the tanh approximation.
    GeluNew,
}

/// The `model_type`s this crate loads.
pub const SUPPORTED_MODEL_TYPES: &[&str] = &[
    "bert",
    "roberta",
    "xlm-roberta",
    "camembert",
    "distilbert",
    "electra",
    "albert",
];

/// The subset of `config.json` the masked LM needs, with transformers' defaults.
#[derive(Debug, Clone, Deserialize)]
pub struct HfConfig {
    /// `bert`, `roberta` (also `xlm-roberta`, `camembert`: same layout as RoBERTa),
    /// `distilbert`.
    pub model_type: String,
    pub vocab_size: usize,
    /// DistilBERT calls it `dim`.
    #[serde(alias = "dim")]
    pub hidden_size: usize,
    /// ELECTRA: the width of the embeddings (and of the head's output) when it differs
    /// from `hidden_size`. Default: `hidden_size`.
    #[serde(default)]
    pub embedding_size: Option<usize>,
    #[serde(alias = "n_layers")]
    pub num_hidden_layers: usize,
    #[serde(alias = "n_heads")]
    pub num_attention_heads: usize,
    #[serde(alias = "hidden_dim")]
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    /// Default 2, as in transformers' `BertConfig`.
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// Default 1e-12, as in transformers' `BertConfig`.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Default 0 (BERT); RoBERTa configs state 1.
    #[serde(default)]
    pub pad_token_id: Option<usize>,
    /// Only exact-erf `gelu` is supported; anything else is rejected when the model is built.
    /// DistilBERT calls it `activation`.
    #[serde(default = "default_act", alias = "activation")]
    pub hidden_act: String,
    /// DistilBERT's fixed sine position table: not supported (learned positions only).
    #[serde(default)]
    pub sinusoidal_pos_embds: bool,
    /// ALBERT: groups of distinct layer weights (only 1, every layer sharing one set, is
    /// implemented).
    #[serde(default = "one")]
    pub num_hidden_groups: usize,
    /// ALBERT: layers inside a group (only 1 is implemented).
    #[serde(default = "one")]
    pub inner_group_num: usize,
}

fn one() -> usize {
    1
}

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}

/// Resolved, validated sizes of a masked LM.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MaskedLmConfig {
    pub family: Family,
    pub vocab_size: usize,
    pub hidden_size: usize,
    /// Width of the word and position embeddings and of the head's features (ELECTRA may
    /// make it smaller than `hidden_size`; everywhere else they are equal).
    pub embedding_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub pad_token_id: usize,
    pub activation: Activation,
}

impl MaskedLmConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self, LmError> {
        let text = std::fs::read_to_string(path).map_err(|source| LmError::Io {
            path: path.to_owned(),
            source,
        })?;
        let raw: HfConfig = serde_json::from_str(&text).map_err(|source| LmError::Config {
            path: path.to_owned(),
            source,
        })?;
        Self::from_hf(raw).map_err(|message| LmError::Unsupported {
            path: path.to_owned(),
            message,
        })
    }

    pub fn from_hf(raw: HfConfig) -> Result<Self, String> {
        let family = match raw.model_type.as_str() {
            "bert" => Family::Bert,
            "roberta" | "xlm-roberta" | "camembert" => Family::Roberta,
            "distilbert" => Family::DistilBert,
            "electra" => Family::Electra,
            "albert" => Family::Albert,
            other => {
                return Err(format!(
                    "model_type `{other}` is not supported; supported: {}",
                    SUPPORTED_MODEL_TYPES.join(", ")
                ));
            }
        };
        if raw.sinusoidal_pos_embds {
            return Err(
                "sinusoidal_pos_embds: only learned position embeddings are implemented".into(),
            );
        }
        let activation = match raw.hidden_act.as_str() {
            "gelu" => Activation::Gelu,
            "gelu_new" => Activation::GeluNew,
            other => {
                return Err(format!(
                    "hidden_act `{other}`: only `gelu` (exact) and `gelu_new` (tanh) are implemented"
                ));
            }
        };
        if raw.num_hidden_groups != 1 || raw.inner_group_num != 1 {
            return Err(format!(
                "num_hidden_groups {} / inner_group_num {}: only one shared layer (1 / 1) is implemented",
                raw.num_hidden_groups, raw.inner_group_num
            ));
        }
        if raw.num_attention_heads == 0 || !raw.hidden_size.is_multiple_of(raw.num_attention_heads)
        {
            return Err(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                raw.hidden_size, raw.num_attention_heads
            ));
        }
        let pad_token_id = raw.pad_token_id.unwrap_or(match family {
            Family::Bert | Family::DistilBert | Family::Electra | Family::Albert => 0,
            Family::Roberta => 1,
        });
        // DistilBERT has no token-type embeddings, and a fixed LayerNorm epsilon.
        let (type_vocab_size, layer_norm_eps) = match family {
            Family::DistilBert => (0, 1e-12),
            _ => (raw.type_vocab_size, raw.layer_norm_eps),
        };
        Ok(Self {
            family,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            embedding_size: raw.embedding_size.unwrap_or(raw.hidden_size),
            num_layers: raw.num_hidden_layers,
            num_heads: raw.num_attention_heads,
            intermediate_size: raw.intermediate_size,
            max_position_embeddings: raw.max_position_embeddings,
            type_vocab_size,
            layer_norm_eps,
            activation,
            pad_token_id,
        })
    }

    /// First position id used for real tokens: 0 for BERT, `padding_idx + 1` for RoBERTa.
    pub fn position_offset(&self) -> usize {
        match self.family {
            Family::Bert | Family::DistilBert | Family::Electra | Family::Albert => 0,
            Family::Roberta => self.pad_token_id + 1,
        }
    }

    /// Longest sequence the position table allows.
    pub fn max_sequence_length(&self) -> usize {
        self.max_position_embeddings - self.position_offset()
    }
}
