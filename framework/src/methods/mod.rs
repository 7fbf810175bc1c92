//! The prompt methods — `manual`, `autoprompt`, `label_search` — on one cell, beside
//! [`crate::baselines`]: the task's answers turned into what is scored at `[P]`
//! (`answers.rs`), the splits encoded and scored into metrics and predictions
//! (`scoring.rs`), the method's pipeline (`pipeline.rs`: label words, trigger search, final
//! evaluation), a saved prompt scored again (`saved.rs`, `autoprompt eval`), and label words
//! checked against each cell's tokenizer before a run starts (`label_words.rs`).

mod answers;
pub mod label_words;
mod pipeline;
pub mod saved;
mod scoring;

pub use pipeline::{MethodHooks, PromptOutcome, run};
pub use saved::{
    EvalError, Evaluation, PromptMismatch, SavedPrompt, SavedPromptError, SplitName,
    check_prompt_vocabulary, evaluate_prompt, evaluate_saved, read_saved_prompt,
};

/// Why a method could not run on a cell (or a saved prompt could not be scored).
#[derive(Debug, thiserror::Error)]
pub enum MethodError {
    #[error(transparent)]
    Model(#[from] crate::lm::LmError),
    #[error("template")]
    Template(#[from] crate::prompt::TemplateError),
    #[error("label words")]
    Verbalizer(#[from] crate::prompt::verbalizer::VerbalizerError),
    #[error("no template: the method gives none and the task has no manual template")]
    NoTemplate,
    #[error(
        "fine-tuning ALBERT is not supported: its layers share one set of weights, which this fine-tuning would update once per layer"
    )]
    SharedLayersNotFinetunable,
    #[error("`{0}` is not a prompt method")]
    NotAPromptMethod(&'static str),
    #[error("initial_trigger `{0}` is not a single token of this model")]
    InitialTrigger(String),
    #[error(
        "no train or dev example has an answer among the candidates this model can score (single tokens unless method.multi_token is set)"
    )]
    NothingToScore,
    #[error(
        "the prompt's label words include words of several tokens; set method.multi_token to score them"
    )]
    MultiTokenOff,
    #[error("the prompt has {ids} trigger ids but its template {slots} slots")]
    TriggerCount { ids: usize, slots: usize },
    #[error("a classification prompt needs its label tokens (verbalizer)")]
    NoVerbalizer,
}
