//! autoprompt: AutoPrompt (Shin et al., EMNLP 2020) as declarative, reproducible experiments.
//!
//! An experiment flows one way (see ARCHITECTURE.md):
//!
//! ```text
//! experiments/x.toml ─config─▶ Experiment ─plan─▶ [Cell] ─run─▶ Record ─store─▶ results/x/ ─report─▶ tables, reports/x.md
//! ```
//!
//! A cell's method uses `tasks` (data and metrics), `lm` (the masked LM), `prompt`
//! (templates, verbalizers, batches) and `search` (trigger and label-token search).

pub mod backend;
pub mod baselines;
pub mod bench;
pub mod checkpoint;
pub mod colour;
pub mod config;
pub mod errors;
pub mod interrupt;
pub mod lm;
pub mod methods;
pub mod metric;
pub mod plan;
pub mod progress;
pub mod prompt;
pub mod record;
pub mod report;
pub mod run;
pub mod search;
pub mod store;
pub mod tasks;
