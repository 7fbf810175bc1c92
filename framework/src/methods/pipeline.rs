//! A prompt method's pipeline on one cell: encode the splits, resolve the label tokens
//! (given, or found by the label search), search the triggers (`autoprompt`), and evaluate
//! the final prompt on the evaluation and dev splits.

use std::collections::BTreeMap;

use burn::tensor::backend::AutodiffBackend;

use super::MethodError;
use super::answers::{Answers, answer_masks, answers_of, target_of};
use super::scoring::{Prepared, Splits, evaluate_prepared};
use crate::checkpoint::Checkpoints;
use crate::config::{CellSpec, Labels, MethodSpec};
use crate::lm::LoadedModel;
use crate::metric::{Metric, Split as MetricSplit};
use crate::progress::ProgressSink;
use crate::prompt::{Encoded, Template, Verbalizer};
use crate::record::{ModelIdentity, Predictions, PromptArtifact};
use crate::search::candidates::{CandidateFilter, allowed_tokens};
use crate::search::labels::{LabelSearchResult, label_search};
use crate::search::trigger::{SearchContext, SearchState, search_resumable};
use crate::search::{
    Engine, FrozenModel, LabelSearchSettings, MultiToken, Scorer, SearchResult, SearchSettings,
    SelectBy, Target,
};
use crate::tasks::{Ranking, TaskData};

/// What a prompt method produced.
#[derive(Debug, Clone)]
pub struct PromptOutcome {
    pub metrics: BTreeMap<Metric, f64>,
    pub unscorable: usize,
    /// Examples (train, dev and evaluation) whose fields were cut to fit the length limit.
    pub truncated: usize,
    pub prompt: PromptArtifact,
    pub search: Option<SearchResult>,
    pub label_search: Option<LabelSearchResult>,
    /// The engine the search and evaluation ran on.
    pub engine: crate::search::EngineKind,
    /// The final prompt's predictions on the evaluation split.
    pub predictions: Predictions,
}

/// Fills `[T]` slots of a template string with trigger tokens, for display.
fn fill_template(template: &str, tokens: &[String]) -> String {
    let mut out = template.to_string();
    for t in tokens {
        out = out.replacen("[T]", t, 1);
    }
    out
}

/// What a prompt method asks for: its template, its label words (`None` or `auto`: found
/// by the label search), the search settings (the defaults for `manual`: its evaluation
/// chunk and initial trigger), and whether triggers are searched.
pub(super) struct PromptMethod<'a> {
    template: String,
    labels: Option<Labels>,
    multi_token: Option<MultiToken>,
    pub(super) settings: SearchSettings,
    label_search: Option<&'a LabelSearchSettings>,
    searches_triggers: bool,
}

impl<'a> PromptMethod<'a> {
    pub(super) fn of(method: &'a MethodSpec, data: &TaskData) -> Result<Self, MethodError> {
        Ok(match method {
            MethodSpec::Manual {
                template,
                labels,
                multi_token,
            } => Self {
                template: template
                    .clone()
                    .or_else(|| data.manual_template.clone())
                    .ok_or(MethodError::NoTemplate)?,
                labels: labels.clone(),
                multi_token: *multi_token,
                settings: SearchSettings::default(),
                label_search: None,
                searches_triggers: false,
            },
            MethodSpec::Autoprompt {
                template,
                labels,
                multi_token,
                search,
                label_search,
            } => Self {
                template: template.clone(),
                labels: labels.clone(),
                multi_token: *multi_token,
                settings: search.clone(),
                label_search: Some(label_search),
                searches_triggers: true,
            },
            MethodSpec::LabelSearch {
                template,
                label_search,
            } => Self {
                template: template.clone(),
                labels: Some(Labels::Keyword(crate::config::LabelsKeyword::Auto)),
                multi_token: None,
                settings: SearchSettings::default(),
                label_search: Some(label_search),
                searches_triggers: false,
            },
            MethodSpec::Majority | MethodSpec::LinearProbe { .. } | MethodSpec::Finetune { .. } => {
                return Err(MethodError::NotAPromptMethod(method.name()));
            }
        })
    }
}

/// The token every trigger slot starts as: `initial_trigger`, else the mask token.
fn initial_trigger(
    settings: &SearchSettings,
    tokenizer: &crate::lm::LmTokenizer,
) -> Result<u32, MethodError> {
    match &settings.initial_trigger {
        Some(word) => tokenizer
            .single_token_id(word)
            .ok_or_else(|| MethodError::InitialTrigger(word.clone())),
        None => Ok(tokenizer.special.mask.id),
    }
}

/// A classification task's label tokens found by the label search on the training split's
/// `[P]` features. `None` for fact retrieval (the answer is the token).
#[allow(clippy::too_many_arguments)]
fn resolve_verbalizer<B: AutodiffBackend>(
    method: &PromptMethod,
    data: &TaskData,
    train: &Prepared,
    model: &FrozenModel,
    lm: &LoadedModel<B>,
    placeholder: &[u32],
    device: &B::Device,
) -> Result<(Option<Verbalizer>, Option<LabelSearchResult>), MethodError> {
    if data.classes.is_empty() {
        return Ok((None, None));
    }
    let tokenizer = &lm.tokenizer;
    let refs: Vec<&Encoded> = train.encoded.iter().collect();
    let batch =
        crate::search::trigger::batch_with_triggers(&refs, placeholder, tokenizer.special.pad.id);
    let classes: Vec<usize> = train.golds.iter().map(|g| g.index).collect();
    let result = label_search::<B>(
        &model.mask_features(&batch),
        &classes,
        data.classes.len(),
        &model.word_embeddings(),
        &whole_word_tokens(lm),
        method.label_search.ok_or(MethodError::NoVerbalizer)?,
        device,
    );
    let v = Verbalizer::from_ids(&data.classes, result.token_ids.clone(), tokenizer);
    tracing::info!(labels = ?v.classes.iter().map(|c| (&c.label, &c.tokens)).collect::<Vec<_>>(), "label search");
    Ok((Some(v), Some(result)))
}

/// The label words a method names (`None`: found by the label search, or fact retrieval).
fn given_verbalizer(
    method: &PromptMethod,
    data: &TaskData,
    tokenizer: &crate::lm::LmTokenizer,
) -> Result<Option<Verbalizer>, MethodError> {
    match &method.labels {
        Some(Labels::Words(words)) if !data.classes.is_empty() => Ok(Some(Verbalizer::from_words(
            &data.classes,
            words,
            tokenizer,
            method.multi_token.is_some(),
        )?)),
        _ => Ok(None),
    }
}

/// Tokens that may not become triggers: the label words' tokens, or the gold answers'.
fn excluded_tokens(target: &Target, splits: &Splits) -> Vec<u32> {
    let golds = splits.train.golds.iter().chain(&splits.dev.golds);
    match target {
        Target::Classes { label_ids, .. } => label_ids.clone(),
        Target::Vocabulary { .. } => golds.map(|g| g.token).collect(),
        Target::Words(words) if words.classes.is_some() => words.tokens().to_vec(),
        Target::Words(words) => golds
            .flat_map(|g| words.words[g.index].iter().copied())
            .collect(),
    }
}

/// What a running prompt method hands on while it runs: every new best prompt (kept by the
/// caller, so that an interrupted search leaves it behind), its loop state (checkpoints) and
/// where it stands (progress).
pub struct MethodHooks<'a> {
    pub on_best: &'a mut dyn FnMut(&PromptArtifact),
    pub checkpoints: &'a mut dyn Checkpoints<SearchState>,
    pub progress: &'a dyn ProgressSink,
    /// A requested stop ends the search after its current iteration.
    pub stop: &'a crate::interrupt::StopSignal,
}

/// Runs a prompt method on a cell: encode the splits, resolve the label tokens, search the
/// triggers (autoprompt), evaluate the final prompt on the evaluation and dev splits.
/// `Ok(None)`: a stop was requested before the search finished.
pub fn run<B: AutodiffBackend>(
    spec: &CellSpec,
    data: &TaskData,
    lm: &LoadedModel<B>,
    device: &B::Device,
    engine: Engine,
    hooks: MethodHooks,
) -> Result<Option<PromptOutcome>, MethodError> {
    let MethodHooks {
        on_best,
        checkpoints,
        progress,
        stop,
    } = hooks;
    let method = PromptMethod::of(&spec.method, data)?;
    let template = Template::parse(&method.template)?;
    let tokenizer = &lm.tokenizer;
    let limit = spec.model.length_limit(lm.max_sequence_length());
    let initial_trigger = initial_trigger(&method.settings, tokenizer)?;
    let placeholder = vec![initial_trigger; template.num_triggers()];
    let answers = answers_of(data, tokenizer, method.multi_token.is_some());
    let given = given_verbalizer(&method, data, tokenizer)?;
    let masks = answer_masks(&answers, given.as_ref());
    let splits = Splits::prepare(data, &template, &answers, lm, &placeholder, (limit, masks))?;

    // One frozen model (its weights converted once) for the label search and the search.
    let model = FrozenModel::new(
        lm.model.clone(),
        method.settings.eval_batch_size,
        device.clone(),
        engine,
    );
    let (verbalizer, label_result) = match given {
        Some(v) => (Some(v), None),
        None => resolve_verbalizer(
            &method,
            data,
            &splits.train,
            &model,
            lm,
            &placeholder,
            device,
        )?,
    };
    let scorer = model.scoring(target_of(
        &answers,
        verbalizer.as_ref(),
        method.multi_token,
        tokenizer,
    )?);
    let artifact =
        |ids: &[u32]| prompt_artifact(spec, &method.template, lm, verbalizer.as_ref(), ids);

    let search_result = if method.searches_triggers && template.num_triggers() > 0 {
        let searched = search_triggers(
            TriggerSearch {
                scorer: &scorer,
                settings: &method.settings,
                splits: &splits,
                lm,
                initial_trigger,
                classification: matches!(answers, Answers::Classes(_)),
                seed: spec.seed,
            },
            (progress, stop),
            &mut |ids| on_best(&artifact(ids)),
            checkpoints,
        );
        if searched.stopped_by == crate::search::StopReason::Interrupted {
            return Ok(None);
        }
        Some(searched)
    } else {
        None
    };
    let triggers = search_result
        .as_ref()
        .map_or(placeholder, |r| r.trigger_ids.clone());
    let (mut metrics, predictions) = evaluate_final(
        (&scorer, tokenizer.special.pad.id),
        data,
        &splits,
        &triggers,
        (answers.classes(), spec.task.ranking()),
        progress,
    );
    if let Some(r) = &label_result {
        metrics.insert(Metric::LabelProbeTrainAccuracy, r.train_accuracy);
    }
    Ok(Some(PromptOutcome {
        metrics,
        unscorable: splits.test.unscorable,
        truncated: splits.train.truncated + splits.dev.truncated + splits.test.truncated,
        prompt: artifact(&triggers),
        search: search_result,
        label_search: label_result,
        engine: scorer.engine(),
        predictions,
    }))
}

/// A prompt as saved: its template filled with the trigger tokens, the ids, the label tokens
/// and the vocabulary the ids belong to.
fn prompt_artifact<B: AutodiffBackend>(
    spec: &CellSpec,
    template: &str,
    lm: &LoadedModel<B>,
    verbalizer: Option<&Verbalizer>,
    ids: &[u32],
) -> PromptArtifact {
    let tokens: Vec<String> = ids.iter().map(|&i| lm.tokenizer.display_token(i)).collect();
    PromptArtifact {
        template: template.to_string(),
        filled: fill_template(template, &tokens),
        trigger_ids: ids.to_vec(),
        trigger_tokens: tokens,
        verbalizer: verbalizer.cloned(),
        model: Some(ModelIdentity {
            source: spec.model.source.clone(),
            vocab_size: lm.model.vocab_size(),
        }),
    }
}

/// What the trigger search runs on.
struct TriggerSearch<'a, B: AutodiffBackend> {
    scorer: &'a Scorer,
    settings: &'a SearchSettings,
    splits: &'a Splits,
    lm: &'a LoadedModel<B>,
    initial_trigger: u32,
    /// A classification target (selects by accuracy unless `select_by` says otherwise; the
    /// training classes steer the batch draw).
    classification: bool,
    seed: u64,
}

/// Searches the triggers on the training split, selecting on dev; every new best prompt's
/// ids go to `on_best`.
fn search_triggers<B: AutodiffBackend>(
    search: TriggerSearch<B>,
    (progress, stop): (&dyn ProgressSink, &crate::interrupt::StopSignal),
    on_best: &mut dyn FnMut(&[u32]),
    checkpoints: &mut dyn Checkpoints<SearchState>,
) -> SearchResult {
    let TriggerSearch {
        scorer,
        settings,
        splits,
        lm,
        initial_trigger,
        classification,
        seed,
    } = search;
    let tokenizer = &lm.tokenizer;
    let excluded = excluded_tokens(&scorer.target, splits);
    let filter = CandidateFilter {
        capitalized: settings.filter_capitalized,
        non_alphabetic: settings.filter_non_alphabetic,
    };
    let allowed = allowed_tokens(tokenizer, lm.model.vocab_size(), &excluded, filter);
    let train_classes: Vec<usize> = splits
        .train
        .golds
        .iter()
        .map(|g| if classification { g.index } else { 0 })
        .collect();
    let display = |id: u32| tokenizer.display_token(id);
    let ctx = SearchContext {
        scorer,
        settings,
        select_by: settings.select_by.unwrap_or(if classification {
            SelectBy::Accuracy
        } else {
            SelectBy::LogLikelihood
        }),
        allowed: &allowed,
        pad_id: tokenizer.special.pad.id,
        initial_trigger,
        train_classes: &train_classes,
        display: &display,
        progress,
        stop,
    };
    search_resumable(
        &ctx,
        splits.train.split(),
        splits.dev.split(),
        seed,
        |ids, dev_metric| {
            tracing::info!(triggers = ?ids.iter().map(|&i| display(i)).collect::<Vec<_>>(), dev = dev_metric, "new best prompt");
            on_best(ids);
        },
        checkpoints,
    )
}

/// The final prompt's metrics on the evaluation and dev splits, and its evaluation
/// predictions.
fn evaluate_final(
    (scorer, pad_id): (&Scorer, u32),
    data: &TaskData,
    splits: &Splits,
    triggers: &[u32],
    (classes, ranking): (&[String], Ranking),
    progress: &dyn ProgressSink,
) -> (BTreeMap<Metric, f64>, Predictions) {
    let (mut metrics, predictions) = evaluate_prepared(
        scorer,
        pad_id,
        (&data.test, &splits.test),
        triggers,
        (classes, ranking),
        (MetricSplit::Eval, "test"),
        progress,
    );
    let (dev, _) = evaluate_prepared(
        scorer,
        pad_id,
        (&data.dev, &splits.dev),
        triggers,
        (classes, ranking),
        (MetricSplit::Dev, "dev"),
        progress,
    );
    metrics.extend(dev);
    (metrics, predictions)
}

/// Tokens a label may be: whole words (no sub-word pieces), alphabetic, not special.
fn whole_word_tokens<B: burn::tensor::backend::Backend>(lm: &LoadedModel<B>) -> Vec<bool> {
    let filter = CandidateFilter {
        capitalized: false,
        non_alphabetic: true,
    };
    let mut allowed = allowed_tokens(&lm.tokenizer, lm.model.vocab_size(), &[], filter);
    for (id, slot) in allowed.iter_mut().enumerate() {
        if crate::search::candidates::surface(&lm.tokenizer, id as u32).1 {
            *slot = false;
        }
    }
    allowed
}
