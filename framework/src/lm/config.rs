//! Model sizes read straight from a Hugging Face `config.json`.
//!
//! Serde, not burn's `Config` derive: a user-facing file with a missing key must be an error
//! that names the key, and a missing optional key must take the transformers default.

use serde::Deserialize;
use std::path::Path;

use super::LmError;

/// Which architecture a checkpoint holds. They differ only in details the loader and the
/// embeddings absorb (weight-name prefix, head names, position-id offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Bert,
    Roberta,
}

/// The subset of `config.json` the masked LM needs, with transformers' defaults.
#[derive(Debug, Clone, Deserialize)]
pub struct HfConfig {
    /// `bert`, `roberta` (also `xlm-roberta`, `camembert`: same layout as RoBERTa).
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
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
    #[serde(default = "default_act")]
    pub hidden_act: String,
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
    pub num_layers: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub pad_token_id: usize,
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
            other => {
                return Err(format!(
                    "model_type `{other}` is not a BERT or RoBERTa masked LM"
                ));
            }
        };
        if raw.hidden_act != "gelu" {
            return Err(format!(
                "hidden_act `{}`: only exact-erf `gelu` is implemented",
                raw.hidden_act
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
            Family::Bert => 0,
            Family::Roberta => 1,
        });
        Ok(Self {
            family,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            num_layers: raw.num_hidden_layers,
            num_heads: raw.num_attention_heads,
            intermediate_size: raw.intermediate_size,
            max_position_embeddings: raw.max_position_embeddings,
            type_vocab_size: raw.type_vocab_size,
            layer_norm_eps: raw.layer_norm_eps,
            pad_token_id,
        })
    }

    /// First position id used for real tokens: 0 for BERT, `padding_idx + 1` for RoBERTa.
    pub fn position_offset(&self) -> usize {
        match self.family {
            Family::Bert => 0,
            Family::Roberta => self.pad_token_id + 1,
        }
    }

    /// Longest sequence the position table allows.
    pub fn max_sequence_length(&self) -> usize {
        self.max_position_embeddings - self.position_offset()
    }
}
