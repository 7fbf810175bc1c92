//! Re-scoring a saved prompt (`autoprompt eval`): a cell record (`cells/<id>.json`) or a
//! best-so-far prompt (`prompts/<id>.best.json`) read back, its token ids checked against the
//! model's vocabulary, and its template, triggers and label tokens scored on one split of the
//! cell's data, with the metrics and predictions a run reports and no search.

use std::collections::BTreeMap;

use burn::tensor::backend::{AutodiffBackend, Backend};

use super::MethodError;
use super::answers::{answers_of, target_of};
use super::scoring::{evaluate_prepared, prepare};
use crate::config::{CellSpec, Experiment};
use crate::lm::{LmError, LoadedModel};
use crate::metric::{Metric, Split as MetricSplit};
use crate::plan::Cell;
use crate::prompt::Template;
use crate::record::{Predictions, PromptArtifact};
use crate::search::{Engine, Scorer, SearchSettings};
use crate::tasks::{TaskData, TaskError};

/// Why `autoprompt eval` could not score a saved prompt.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error(transparent)]
    Model(#[from] LmError),
    #[error(transparent)]
    Method(#[from] MethodError),
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendUnavailable),
    #[error("{}", path.display())]
    SavedPrompt {
        path: std::path::PathBuf,
        #[source]
        problem: SavedPromptError,
    },
    #[error("no cell `{id}` in the plan of {} (`autoprompt plan` lists them)", file.display())]
    NoSuchCell {
        id: String,
        file: std::path::PathBuf,
    },
    #[error("{}: the experiment {} has {cells} cells and the file is not named after one; choose one with --cell ID", path.display(), file.display())]
    WhichCell {
        path: std::path::PathBuf,
        file: std::path::PathBuf,
        cells: usize,
    },
    #[error("prompt {}", path.display())]
    Prompt {
        path: std::path::PathBuf,
        #[source]
        mismatch: PromptMismatch,
    },
}

/// Why a saved prompt file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SavedPromptError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("the record has no prompt (not a prompt method)")]
    NoPrompt,
    #[error("neither a record nor a prompt")]
    Json(#[source] serde_json::Error),
}

/// Re-evaluates a saved prompt — a cell record (`cells/<id>.json`) or a best-so-far prompt
/// (`prompts/<id>.best.json`, whose cell is found in the plan by id) — on one split.
pub fn evaluate_saved(
    experiment: &Experiment,
    cells: &[Cell],
    path: &std::path::Path,
    split: SplitName,
    cell_id: Option<&str>,
) -> Result<(Cell, Evaluation), EvalError> {
    let planned = |id: &str| cells.iter().find(|c| c.id == id).cloned();
    let (cell, prompt) = match read_saved_prompt(path)? {
        SavedPrompt::Record { cell, prompt } => match cell_id {
            Some(id) => (planned(id).ok_or_else(|| no_cell(experiment, id))?, prompt),
            None => (*cell, prompt),
        },
        SavedPrompt::Bare(prompt) => (prompt_cell(experiment, cells, path, cell_id)?, prompt),
    };
    let evaluation = crate::with_backend!(
        experiment.settings.backend,
        B,
        device,
        Err(crate::backend::no_cuda().into()),
        evaluate_on::<B>(experiment, &cell, path, &prompt, split, device)
    )?;
    Ok((cell, evaluation))
}

/// What a saved prompt file holds.
#[derive(Debug, Clone)]
pub enum SavedPrompt {
    /// A cell record (`cells/<id>.json`): the prompt and the cell that made it.
    Record {
        cell: Box<Cell>,
        prompt: crate::record::PromptArtifact,
    },
    /// A bare prompt (`prompts/<id>.best.json`, or a copy under any name).
    Bare(crate::record::PromptArtifact),
}

/// Reads a saved prompt file; every error names the file.
pub fn read_saved_prompt(path: &std::path::Path) -> Result<SavedPrompt, EvalError> {
    let bad = |problem: SavedPromptError| EvalError::SavedPrompt {
        path: path.to_owned(),
        problem,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.into()))?;
    match serde_json::from_slice::<crate::record::Record>(&bytes) {
        Ok(record) => {
            let prompt = record
                .prompt
                .ok_or_else(|| bad(SavedPromptError::NoPrompt))?;
            // A stored cell's template was checked when it was planned.
            let template = record
                .spec
                .method
                .template()
                .and_then(|t| crate::prompt::Template::parse(t).ok());
            let cell = Cell {
                id: record.id,
                index: record.index,
                grid: record.grid,
                spec: record.spec,
                template,
            };
            Ok(SavedPrompt::Record {
                cell: Box::new(cell),
                prompt,
            })
        }
        Err(_) => serde_json::from_slice(&bytes)
            .map(SavedPrompt::Bare)
            .map_err(|e| bad(SavedPromptError::Json(e))),
    }
}

fn no_cell(experiment: &Experiment, id: &str) -> EvalError {
    EvalError::NoSuchCell {
        id: id.to_string(),
        file: experiment.file.clone(),
    }
}

/// The cell a bare prompt file is applied to: `--cell`, else the cell its file is named
/// after (`prompts/<id>.best.json`), else the experiment's only cell.
fn prompt_cell(
    experiment: &Experiment,
    cells: &[Cell],
    path: &std::path::Path,
    cell_id: Option<&str>,
) -> Result<Cell, EvalError> {
    let planned = |id: &str| cells.iter().find(|c| c.id == id).cloned();
    if let Some(id) = cell_id {
        return planned(id).ok_or_else(|| no_cell(experiment, id));
    }
    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(cell) = stem.split('.').next().and_then(planned) {
        return Ok(cell);
    }
    match cells {
        [only] => Ok(only.clone()),
        _ => Err(EvalError::WhichCell {
            path: path.to_owned(),
            file: experiment.file.clone(),
            cells: cells.len(),
        }),
    }
}

fn evaluate_on<B: AutodiffBackend>(
    experiment: &Experiment,
    cell: &Cell,
    path: &std::path::Path,
    prompt: &crate::record::PromptArtifact,
    split: SplitName,
    device: B::Device,
) -> Result<Evaluation, EvalError> {
    let data = crate::tasks::load_columns(
        &cell.spec.task,
        &experiment.settings.data,
        cell.spec.seed,
        &cell.text_columns(),
    )?;
    let lm = crate::lm::load_with::<B>(
        &cell.spec.model.source,
        cell.spec.model.unused_tensors(),
        &device,
    )?;
    check_prompt_vocabulary(prompt, &lm).map_err(|mismatch| EvalError::Prompt {
        path: path.to_owned(),
        mismatch,
    })?;
    evaluate_prompt(
        &cell.spec,
        &data,
        &lm,
        prompt,
        split,
        &device,
        experiment.settings.engine,
    )
    .map_err(EvalError::from)
}

/// A saved prompt's metrics and predictions on one split (`autoprompt eval`).
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub metrics: BTreeMap<Metric, f64>,
    /// Examples of the split whose fields were cut to fit the length limit.
    pub truncated: usize,
    pub predictions: Predictions,
}

/// Which split `autoprompt eval` scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitName {
    Train,
    Dev,
    Test,
}

/// Why a saved prompt cannot be applied to a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PromptMismatch {
    #[error("token id {id} is outside this model's vocabulary of {vocab_size} tokens")]
    OutOfVocabulary { id: u32, vocab_size: usize },
    #[error(
        "token id {id} is `{here}` in this model's vocabulary but `{saved}` in the prompt: it was made with another vocabulary"
    )]
    DifferentToken {
        id: u32,
        here: String,
        saved: String,
    },
    #[error("the prompt was made on `{model}` ({saved} tokens); this model has {here}")]
    VocabularySize {
        model: String,
        saved: usize,
        here: usize,
    },
}

/// Checks that a prompt's trigger and label token ids name the same tokens in `lm`'s
/// vocabulary as when the prompt was made (ids are only meaningful in one vocabulary).
pub fn check_prompt_vocabulary<B: Backend>(
    prompt: &PromptArtifact,
    lm: &LoadedModel<B>,
) -> Result<(), PromptMismatch> {
    let vocab_size = lm.model.vocab_size();
    if let Some(m) = prompt.model.as_ref().filter(|m| m.vocab_size != vocab_size) {
        return Err(PromptMismatch::VocabularySize {
            model: m.source.clone(),
            saved: m.vocab_size,
            here: vocab_size,
        });
    }
    let labels = prompt.verbalizer.iter().flat_map(|v| {
        v.classes
            .iter()
            .flat_map(|c| c.token_ids.iter().zip(&c.tokens))
    });
    for (&id, saved) in prompt
        .trigger_ids
        .iter()
        .zip(&prompt.trigger_tokens)
        .chain(labels)
    {
        if id as usize >= vocab_size {
            return Err(PromptMismatch::OutOfVocabulary { id, vocab_size });
        }
        let here = lm.tokenizer.display_token(id);
        if &here != saved {
            return Err(PromptMismatch::DifferentToken {
                id,
                here,
                saved: saved.clone(),
            });
        }
    }
    Ok(())
}

/// Re-evaluates a saved prompt (template, trigger ids, label tokens) on one split of the
/// cell's task data: the metrics and predictions `run` reports, without searching.
pub fn evaluate_prompt<B: AutodiffBackend>(
    spec: &CellSpec,
    data: &TaskData,
    lm: &LoadedModel<B>,
    prompt: &PromptArtifact,
    split_name: SplitName,
    device: &B::Device,
    engine: Engine,
) -> Result<Evaluation, MethodError> {
    let template = Template::parse(&prompt.template)?;
    if template.num_triggers() != prompt.trigger_ids.len() {
        return Err(MethodError::TriggerCount {
            ids: prompt.trigger_ids.len(),
            slots: template.num_triggers(),
        });
    }
    let multi_token = spec.method.multi_token().copied();
    let answers = answers_of(data, &lm.tokenizer, multi_token.is_some());
    let target = target_of(
        &answers,
        prompt.verbalizer.as_ref(),
        multi_token,
        &lm.tokenizer,
    )?;
    let masks = target.predict_masks();
    let examples = match split_name {
        SplitName::Train => &data.train,
        SplitName::Dev => &data.dev,
        SplitName::Test => &data.test,
    };
    let limit = spec.model.length_limit(lm.max_sequence_length());
    let prepared = prepare(
        examples,
        &template,
        &answers,
        lm,
        &prompt.trigger_ids,
        (limit, masks),
    )?;
    // The cell's own evaluation chunk (the default for methods without search settings).
    let eval_rows = super::pipeline::PromptMethod::of(&spec.method, data)
        .map_or(SearchSettings::default().eval_batch_size, |m| {
            m.settings.eval_batch_size
        });
    let scorer = Scorer::with_engine(lm.model.clone(), target, eval_rows, device.clone(), engine);
    let (metrics, predictions) = evaluate_prepared(
        &scorer,
        lm.tokenizer.special.pad.id,
        (examples, &prepared),
        &prompt.trigger_ids,
        (answers.classes(), spec.task.ranking()),
        // Named as evaluation metrics whichever split it is (`autoprompt eval` says which).
        (MetricSplit::Eval, "eval"),
        &crate::progress::NoProgress,
    );
    Ok(Evaluation {
        metrics,
        truncated: prepared.truncated,
        predictions,
    })
}
