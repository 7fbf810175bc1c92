//! The `[launcher]` table: where cells run (in this process, or as a Slurm job array).

use serde::{Deserialize, Serialize};

/// Where cells run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LauncherKind {
    /// In this process (default).
    #[default]
    Local,
    /// As a Slurm job array.
    Slurm,
}

/// The `[launcher]` table of an experiment (command-line flags override it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LauncherOptions {
    /// `local` (default) or `slurm`.
    #[serde(default)]
    pub kind: LauncherKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// `--time`, e.g. `"02:00:00"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// `--mem`, e.g. `"8G"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<String>,
    /// `--gres`, e.g. `"gpu:1"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gres: Option<String>,
    /// Array tasks running at once (`%N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<usize>,
    /// Extra `sbatch` arguments.
    #[serde(default)]
    pub extra: Vec<String>,
}
