//! The `[method]` table: what a cell executes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::search::{LabelSearchSettings, SearchSettings};

/// `labels = "auto"`: find label tokens automatically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelsKeyword {
    Auto,
}

/// Label tokens of a classification task: `{ "0" = ["bad"], "1" = ["good", "great"] }`
/// or `"auto"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, expecting = "a table of label = [\"token\", ...] or the string \"auto\"")]
pub enum Labels {
    Words(BTreeMap<String, Vec<String>>),
    Keyword(LabelsKeyword),
}

/// A method and its settings, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
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
    },
    /// The AutoPrompt trigger search.
    Autoprompt {
        template: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        labels: Option<Labels>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

    /// Whether the method needs a masked LM.
    pub fn needs_model(&self) -> bool {
        !matches!(self, MethodSpec::Majority)
    }
}
