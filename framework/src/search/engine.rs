//! The seam between the search and a model: [`ScoringEngine`] is everything the search asks of
//! a frozen masked LM — the loss gradient at the trigger slots, row scores, `[P]` features and
//! HotFlip scores. Two implementations answer it: burn's model on any backend
//! ([`super::burn_engine`]) and the host engine's fused CPU kernels ([`crate::lm::host`], in
//! [`super::host`]). They agree to float rounding (`tests/host_engine.rs`), so the choice is
//! not part of a cell's id; it is made once, by [`Engine::resolve`], from the backend and the
//! `engine` setting.

use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use super::target::{Gold, RowScore, Target};
use crate::backend::BackendKind;
use crate::lm::MaskedLm;
use crate::prompt::Batch;

/// The `engine` setting: who runs the search's gradients and evaluations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// The host engine when the backend runs on the CPU, else burn.
    #[default]
    Auto,
    /// The host engine ([`crate::lm::host`]) whatever the backend.
    Host,
    /// burn's own tensor ops on the chosen backend.
    Burn,
}

/// The engine that runs, once the setting is resolved against a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    Host,
    Burn,
}

impl Engine {
    /// The one decision of who runs the search: `auto` is the host engine on the CPU backends
    /// (ndarray, flex) and burn on CUDA. A model the host engine does not cover
    /// (`host_covers_model` false: ELECTRA's projected embeddings) runs on burn whatever the
    /// setting — the same numbers, more slowly; [`FrozenModel`](super::FrozenModel) says so
    /// in an `info` line.
    pub fn resolve(self, backend: BackendKind, host_covers_model: bool) -> EngineKind {
        match self {
            _ if !host_covers_model => EngineKind::Burn,
            Engine::Auto if backend.runs_on_host() => EngineKind::Host,
            Engine::Auto | Engine::Burn => EngineKind::Burn,
            Engine::Host => EngineKind::Host,
        }
    }
}

/// What the search needs of a frozen masked LM. Batches are scored as given (callers chunk
/// them); every method is safe to call from several threads at once.
pub trait ScoringEngine: Send + Sync {
    /// Loss (weighted mean of minus the gold log-likelihood over the full vocabulary) and its
    /// gradient w.r.t. the input embeddings at each trigger slot, summed over the batch:
    /// `[slots][hidden]`. `weights` (one per row) weight the loss; `None` is the plain mean.
    fn trigger_gradient(
        &self,
        target: &Target,
        batch: &Batch,
        golds: &[Gold],
        weights: Option<&[f32]>,
    ) -> (f32, Vec<Vec<f32>>);

    /// Ranks (and, when asked, gold log-likelihoods) of every row.
    fn score_rows(
        &self,
        target: &Target,
        batch: &Batch,
        golds: &[Gold],
        need_log_likelihood: bool,
    ) -> Vec<RowScore>;

    /// `[rows, ids.len()]` log-probabilities of `ids` at each row's `[P]`, normalised over the
    /// full vocabulary (what answers of several tokens are scored with: [`super::words`]).
    fn token_log_probs(&self, batch: &Batch, ids: &[u32]) -> Vec<f32>;

    /// `[rows, hidden]` head features at `[P]`.
    fn mask_features(&self, batch: &Batch) -> Vec<f32>;

    /// `E · g` for every vocabulary token: the word-embedding table times a slot's gradient.
    fn embedding_products(&self, slot_gradient: &[f32]) -> Vec<f32>;

    /// `[vocab, embedding]` word embeddings, row-major (the label search's decoder).
    fn word_embeddings(&self) -> Vec<f32>;

    /// Width of the word embeddings: of a trigger slot's gradient and of `[P]` features.
    fn embedding_size(&self) -> usize;

    fn vocab_size(&self) -> usize;
}

/// The engine of `kind` for `model`, frozen, and the kind it is. The host engine converts
/// the weights once into its own `f32` copy and keeps no burn model; a model it does not
/// cover gets burn (which [`Engine::resolve`] has already chosen when told so).
pub fn build<B: AutodiffBackend>(
    kind: EngineKind,
    model: MaskedLm<B>,
    device: B::Device,
) -> (Box<dyn ScoringEngine>, EngineKind) {
    if kind == EngineKind::Host
        && let Some(host) = super::host::HostEngine::from_model(&model)
    {
        return (Box::new(host), EngineKind::Host);
    }
    (
        Box::new(super::burn_engine::BurnEngine::new(model, device)),
        EngineKind::Burn,
    )
}
