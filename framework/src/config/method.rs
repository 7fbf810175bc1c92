//! The `[method]` table: what a cell executes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::errors::NESTED_PATH;
use crate::search::{LabelSearchSettings, MultiToken, SearchSettings};

/// `labels = "auto"`: find label tokens automatically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelsKeyword {
    Auto,
}

/// Label tokens of a classification task: `{ "0" = ["bad"], "1" = ["good", "great"] }`
/// or `"auto"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a table of label = [\"token\", ...] or the string \"auto\""
)]
pub enum Labels {
    Words(BTreeMap<String, Vec<String>>),
    Keyword(LabelsKeyword),
}

/// A method and its settings, tagged by `kind`. Deserialised by hand (below) so that errors
/// inside a method keep their key path (serde's internally tagged enums lose it).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MethodSpec {
    /// Predict the most frequent training label (LAMA: objects by training frequency).
    Majority,
    /// Evaluate a fixed prompt with no triggers. For LAMA the template defaults to the
    /// relation's manual template from `relations.jsonl`.
    Manual {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        template: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        labels: Option<Labels>,
        /// Label words and fact objects of several tokens, scored this way. Absent: one
        /// token each (the paper's restriction).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        multi_token: Option<MultiToken>,
    },
    /// The AutoPrompt trigger search.
    Autoprompt {
        template: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        labels: Option<Labels>,
        /// As for `manual`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        multi_token: Option<MultiToken>,
        #[serde(default)]
        search: SearchSettings,
        #[serde(default)]
        label_search: LabelSearchSettings,
    },
    /// A linear layer on the frozen encoder's mean-pooled states (classification).
    LinearProbe {
        #[serde(default)]
        probe: crate::baselines::linear_probe::ProbeSettings,
    },
    /// Fine-tune the encoder with a classification head (classification).
    Finetune {
        #[serde(default)]
        finetune: crate::baselines::finetune::FinetuneSettings,
    },
    /// Report automatically found label tokens only.
    LabelSearch {
        template: String,
        #[serde(default)]
        label_search: LabelSearchSettings,
    },
}

/// The method's name, for tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MethodKind {
    Majority,
    Manual,
    Autoprompt,
    LabelSearch,
    LinearProbe,
    Finetune,
}

impl MethodSpec {
    pub fn kind(&self) -> MethodKind {
        match self {
            MethodSpec::Majority => MethodKind::Majority,
            MethodSpec::Manual { .. } => MethodKind::Manual,
            MethodSpec::Autoprompt { .. } => MethodKind::Autoprompt,
            MethodSpec::LabelSearch { .. } => MethodKind::LabelSearch,
            MethodSpec::LinearProbe { .. } => MethodKind::LinearProbe,
            MethodSpec::Finetune { .. } => MethodKind::Finetune,
        }
    }

    pub fn name(&self) -> &'static str {
        match self.kind() {
            MethodKind::Majority => "majority",
            MethodKind::Manual => "manual",
            MethodKind::Autoprompt => "autoprompt",
            MethodKind::LabelSearch => "label_search",
            MethodKind::LinearProbe => "linear_probe",
            MethodKind::Finetune => "finetune",
        }
    }

    /// The prompt template, for the methods that have one.
    pub fn template(&self) -> Option<&str> {
        match self {
            MethodSpec::Manual { template, .. } => template.as_deref(),
            MethodSpec::Autoprompt { template, .. } | MethodSpec::LabelSearch { template, .. } => {
                Some(template)
            }
            _ => None,
        }
    }

    /// How answers of several tokens are scored, for the prompt methods that take them.
    pub fn multi_token(&self) -> Option<&MultiToken> {
        match self {
            MethodSpec::Manual { multi_token, .. } | MethodSpec::Autoprompt { multi_token, .. } => {
                multi_token.as_ref()
            }
            _ => None,
        }
    }

    /// The trigger-search settings of an AutoPrompt cell.
    pub fn search_settings(&self) -> Option<&SearchSettings> {
        match self {
            MethodSpec::Autoprompt { search, .. } => Some(search),
            _ => None,
        }
    }

    /// Whether the method needs a masked LM.
    pub fn needs_model(&self) -> bool {
        !matches!(self, MethodSpec::Majority)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManualFields {
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    labels: Option<Labels>,
    #[serde(default)]
    multi_token: Option<MultiToken>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AutopromptFields {
    template: String,
    #[serde(default)]
    labels: Option<Labels>,
    #[serde(default)]
    multi_token: Option<MultiToken>,
    #[serde(default)]
    search: SearchSettings,
    #[serde(default)]
    label_search: LabelSearchSettings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelSearchFields {
    template: String,
    #[serde(default)]
    label_search: LabelSearchSettings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbeFields {
    #[serde(default)]
    probe: crate::baselines::linear_probe::ProbeSettings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FinetuneFields {
    #[serde(default)]
    finetune: crate::baselines::finetune::FinetuneSettings,
}

fn fields<T: serde::de::DeserializeOwned, E: serde::de::Error>(
    map: serde_json::Map<String, serde_json::Value>,
) -> Result<T, E> {
    serde_path_to_error::deserialize(serde_json::Value::Object(map)).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            E::custom(e.inner())
        } else {
            E::custom(format!("{NESTED_PATH}{path}{NESTED_PATH}{}", e.inner()))
        }
    })
}

impl<'de> Deserialize<'de> for MethodSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let kind = map
            .remove("kind")
            .ok_or_else(|| D::Error::missing_field("kind"))?;
        let kind: MethodKind = serde_json::from_value(kind.clone()).map_err(|_| {
            let shown = kind.as_str().map_or_else(|| kind.to_string(), |s| format!("`{s}`"));
            D::Error::custom(format!(
                "{NESTED_PATH}kind{NESTED_PATH}unknown variant {shown}, expected one of `majority`, `manual`, `autoprompt`, `label_search`, `linear_probe`, `finetune`"
            ))
        })?;
        Ok(match kind {
            MethodKind::Majority => {
                fields::<Empty, D::Error>(map)?;
                MethodSpec::Majority
            }
            MethodKind::Manual => {
                let f: ManualFields = fields(map)?;
                MethodSpec::Manual {
                    template: f.template,
                    labels: f.labels,
                    multi_token: f.multi_token,
                }
            }
            MethodKind::Autoprompt => {
                let f: AutopromptFields = fields(map)?;
                MethodSpec::Autoprompt {
                    template: f.template,
                    labels: f.labels,
                    multi_token: f.multi_token,
                    search: f.search,
                    label_search: f.label_search,
                }
            }
            MethodKind::LabelSearch => {
                let f: LabelSearchFields = fields(map)?;
                MethodSpec::LabelSearch {
                    template: f.template,
                    label_search: f.label_search,
                }
            }
            MethodKind::LinearProbe => MethodSpec::LinearProbe {
                probe: fields::<ProbeFields, D::Error>(map)?.probe,
            },
            MethodKind::Finetune => MethodSpec::Finetune {
                finetune: fields::<FinetuneFields, D::Error>(map)?.finetune,
            },
        })
    }
}
