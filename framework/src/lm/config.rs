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
    /// ModernBERT: no position table (rotary embeddings), pre-norm layers with a GeGLU
    /// feed-forward, global and sliding-window attention, a final norm (see [`ModernBert`]).
    #[serde(rename = "modernbert")]
    ModernBert,
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
    "modernbert",
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
    /// `gelu` (exact) or `gelu_new`; anything else is rejected when the config is read.
    /// DistilBERT calls it `activation`, ModernBERT `hidden_activation`.
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
    /// ModernBERT's keys (absent from every other family's config).
    #[serde(flatten)]
    pub modern: HfModernBert,
}

/// The `config.json` keys of ModernBERT, with `ModernBertConfig`'s defaults. Both spellings
/// transformers has written are read: 4.x's `global_attn_every_n_layers` and
/// `global_rope_theta` / `local_rope_theta`, and 5.x's `layer_types` and `rope_parameters`
/// (which win when present).
#[derive(Debug, Clone, Deserialize)]
pub struct HfModernBert {
    #[serde(default)]
    pub hidden_activation: Option<String>,
    #[serde(default)]
    pub classifier_activation: Option<String>,
    #[serde(default)]
    pub norm_eps: Option<f64>,
    #[serde(default)]
    pub norm_bias: bool,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default)]
    pub classifier_bias: bool,
    #[serde(default = "yes")]
    pub decoder_bias: bool,
    #[serde(default = "yes")]
    pub tie_word_embeddings: bool,
    /// The whole local window (a token sees `local_attention / 2` tokens either side).
    #[serde(default = "default_local_attention")]
    pub local_attention: usize,
    #[serde(default = "default_global_every")]
    pub global_attn_every_n_layers: usize,
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
    #[serde(default)]
    pub global_rope_theta: Option<f64>,
    #[serde(default)]
    pub local_rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_parameters: Option<std::collections::BTreeMap<String, HfRope>>,
}

/// One entry of 5.x's `rope_parameters` (`full_attention` / `sliding_attention`).
#[derive(Debug, Clone, Deserialize)]
pub struct HfRope {
    #[serde(default = "default_rope_type")]
    pub rope_type: String,
    #[serde(default)]
    pub rope_theta: Option<f64>,
}

fn yes() -> bool {
    true
}
fn default_local_attention() -> usize {
    128
}
fn default_global_every() -> usize {
    3
}
fn default_rope_type() -> String {
    "default".into()
}

/// Which attention a ModernBERT layer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionSpan {
    /// Every token sees every token (`full_attention`).
    Global,
    /// Every token sees the tokens within `sliding_window` positions (`sliding_attention`).
    Local,
}

/// What ModernBERT adds to the shared sizes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModernBert {
    /// One entry per layer.
    pub spans: Vec<AttentionSpan>,
    /// Rotary base of the global layers (`global_rope_theta`, 160 000 by default).
    pub global_rope_theta: f64,
    /// Rotary base of the local layers (`local_rope_theta`, 10 000 by default).
    pub local_rope_theta: f64,
    /// Half the local window: a local layer's token attends to tokens at most this far away
    /// (transformers' `sliding_window`, `local_attention / 2`).
    pub sliding_window: usize,
    pub norm_bias: bool,
    pub attention_bias: bool,
    pub mlp_bias: bool,
    pub head_bias: bool,
    /// The head's activation (`classifier_activation`).
    pub head_activation: Activation,
}

impl ModernBert {
    fn from_hf(raw: &HfModernBert, layers: usize) -> Result<Self, String> {
        if !raw.decoder_bias {
            return Err("decoder_bias = false is not implemented".into());
        }
        if !raw.tie_word_embeddings {
            return Err("tie_word_embeddings = false: untied decoders are not supported".into());
        }
        let spans = match &raw.layer_types {
            Some(types) => types
                .iter()
                .map(|t| match t.as_str() {
                    "full_attention" => Ok(AttentionSpan::Global),
                    "sliding_attention" => Ok(AttentionSpan::Local),
                    other => Err(format!(
                        "layer_types: `{other}` is neither `full_attention` nor `sliding_attention`"
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => {
                let every = raw.global_attn_every_n_layers.max(1);
                (0..layers)
                    .map(|i| {
                        if i % every == 0 {
                            AttentionSpan::Global
                        } else {
                            AttentionSpan::Local
                        }
                    })
                    .collect()
            }
        };
        if spans.len() != layers {
            return Err(format!(
                "layer_types has {} entries for {layers} layers",
                spans.len()
            ));
        }
        let theta = |key: &str, legacy: Option<f64>, default: f64| -> Result<f64, String> {
            match raw.rope_parameters.as_ref().and_then(|p| p.get(key)) {
                Some(rope) if rope.rope_type != "default" => Err(format!(
                    "rope_parameters.{key}.rope_type `{}`: only `default` rotary embeddings are implemented",
                    rope.rope_type
                )),
                Some(rope) => Ok(rope.rope_theta.or(legacy).unwrap_or(default)),
                None => Ok(legacy.unwrap_or(default)),
            }
        };
        Ok(Self {
            spans,
            global_rope_theta: theta("full_attention", raw.global_rope_theta, 160_000.0)?,
            local_rope_theta: theta("sliding_attention", raw.local_rope_theta, 10_000.0)?,
            sliding_window: raw.local_attention / 2,
            norm_bias: raw.norm_bias,
            attention_bias: raw.attention_bias,
            mlp_bias: raw.mlp_bias,
            head_bias: raw.classifier_bias,
            head_activation: activation_of(
                "classifier_activation",
                raw.classifier_activation.as_deref().unwrap_or("gelu"),
            )?,
        })
    }

    /// How far a layer of this span attends: `Some(sliding_window)` for local layers.
    pub fn window(&self, span: AttentionSpan) -> Option<usize> {
        (span == AttentionSpan::Local).then_some(self.sliding_window)
    }

    /// The rotary base of a layer of this span.
    pub fn rope_theta(&self, span: AttentionSpan) -> f64 {
        match span {
            AttentionSpan::Global => self.global_rope_theta,
            AttentionSpan::Local => self.local_rope_theta,
        }
    }
}

/// A config's activation name as an [`Activation`].
fn activation_of(key: &str, name: &str) -> Result<Activation, String> {
    match name {
        "gelu" => Ok(Activation::Gelu),
        "gelu_new" => Ok(Activation::GeluNew),
        other => Err(format!(
            "{key} `{other}`: only `gelu` (exact) and `gelu_new` (tanh) are implemented"
        )),
    }
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
    /// ModernBERT's rotary, attention-span and bias settings; `None` for every other family.
    pub modern: Option<ModernBert>,
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
            "modernbert" => Family::ModernBert,
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
        let activation = match (&raw.modern.hidden_activation, family) {
            (Some(name), Family::ModernBert) => activation_of("hidden_activation", name)?,
            _ => activation_of("hidden_act", &raw.hidden_act)?,
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
            Family::ModernBert => 50283,
        });
        // DistilBERT and ModernBERT have no token-type embeddings; DistilBERT has a fixed
        // LayerNorm epsilon, ModernBERT its own key.
        let (type_vocab_size, layer_norm_eps) = match family {
            Family::DistilBert => (0, 1e-12),
            Family::ModernBert => (0, raw.modern.norm_eps.unwrap_or(1e-5)),
            _ => (raw.type_vocab_size, raw.layer_norm_eps),
        };
        let modern = (family == Family::ModernBert)
            .then(|| ModernBert::from_hf(&raw.modern, raw.num_hidden_layers))
            .transpose()?;
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
            modern,
        })
    }

    /// First position id used for real tokens: 0 for BERT, `padding_idx + 1` for RoBERTa.
    pub fn position_offset(&self) -> usize {
        match self.family {
            Family::Bert
            | Family::DistilBert
            | Family::Electra
            | Family::Albert
            | Family::ModernBert => 0,
            Family::Roberta => self.pad_token_id + 1,
        }
    }

    /// Longest sequence the position table allows.
    pub fn max_sequence_length(&self) -> usize {
        self.max_position_embeddings - self.position_offset()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<MaskedLmConfig, String> {
        MaskedLmConfig::from_hf(serde_json::from_str(json).expect("the test's JSON parses"))
    }

    /// `answerdotai/ModernBERT-base`'s `config.json` as transformers 4.x wrote it (the keys
    /// this crate reads; 4.x spelled the layer pattern and the rotary bases this way).
    const MODERNBERT_BASE_4X: &str = r#"{
        "architectures": ["ModernBertForMaskedLM"], "model_type": "modernbert",
        "vocab_size": 50368, "hidden_size": 768, "intermediate_size": 1152,
        "num_hidden_layers": 22, "num_attention_heads": 12, "max_position_embeddings": 8192,
        "hidden_activation": "gelu", "classifier_activation": "gelu", "norm_eps": 1e-05,
        "norm_bias": false, "attention_bias": false, "mlp_bias": false, "decoder_bias": true,
        "classifier_bias": false, "global_attn_every_n_layers": 3, "local_attention": 128,
        "global_rope_theta": 160000.0, "local_rope_theta": 10000.0, "pad_token_id": 50283,
        "cls_token_id": 50281, "sep_token_id": 50282, "tie_word_embeddings": true
    }"#;

    #[test]
    fn modernbert_base_4x_config_gives_its_layer_pattern_bases_and_window() {
        let config = read(MODERNBERT_BASE_4X).unwrap();
        assert_eq!(config.family, Family::ModernBert);
        assert_eq!((config.type_vocab_size, config.layer_norm_eps), (0, 1e-5));
        assert_eq!(config.max_sequence_length(), 8192);
        let modern = config.modern.unwrap();
        assert_eq!(modern.spans.len(), 22);
        let globals: Vec<usize> = (0..22)
            .filter(|&i| modern.spans[i] == AttentionSpan::Global)
            .collect();
        assert_eq!(globals, [0, 3, 6, 9, 12, 15, 18, 21]);
        assert_eq!(modern.sliding_window, 64);
        assert_eq!(modern.rope_theta(AttentionSpan::Global), 160_000.0);
        assert_eq!(modern.rope_theta(AttentionSpan::Local), 10_000.0);
        assert_eq!(modern.window(AttentionSpan::Global), None);
        assert_eq!(modern.window(AttentionSpan::Local), Some(64));
        assert!(!modern.attention_bias && !modern.mlp_bias && !modern.norm_bias);
    }

    #[test]
    fn modernbert_5x_layer_types_and_rope_parameters_win() {
        let json = MODERNBERT_BASE_4X.replace(
            "\"tie_word_embeddings\": true",
            "\"tie_word_embeddings\": true, \"num_hidden_layers\": 2,
             \"layer_types\": [\"sliding_attention\", \"full_attention\"],
             \"rope_parameters\": {\"full_attention\": {\"rope_type\": \"default\", \"rope_theta\": 5.0},
                                   \"sliding_attention\": {\"rope_type\": \"default\", \"rope_theta\": 7.0}}",
        )
        .replace("\"num_hidden_layers\": 22,", "");
        let modern = read(&json).unwrap().modern.unwrap();
        assert_eq!(modern.spans, [AttentionSpan::Local, AttentionSpan::Global]);
        assert_eq!(
            (modern.global_rope_theta, modern.local_rope_theta),
            (5.0, 7.0)
        );
    }

    #[test]
    fn modernbert_settings_it_does_not_implement_are_errors_that_name_them() {
        let cases = [
            (
                MODERNBERT_BASE_4X.replace(
                    "\"tie_word_embeddings\": true",
                    "\"tie_word_embeddings\": true, \"rope_parameters\": {\"full_attention\": {\"rope_type\": \"yarn\"}}",
                ),
                "rope_parameters.full_attention.rope_type `yarn`",
            ),
            (
                MODERNBERT_BASE_4X.replace(
                    "\"tie_word_embeddings\": true",
                    "\"tie_word_embeddings\": true, \"layer_types\": [\"full_attention\"]",
                ),
                "layer_types has 1 entries for 22 layers",
            ),
            (
                MODERNBERT_BASE_4X.replace("\"decoder_bias\": true", "\"decoder_bias\": false"),
                "decoder_bias = false",
            ),
            (
                MODERNBERT_BASE_4X.replace(
                    "\"hidden_activation\": \"gelu\"",
                    "\"hidden_activation\": \"silu\"",
                ),
                "hidden_activation `silu`",
            ),
        ];
        for (json, expected) in cases {
            let err = read(&json).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
    }
}
