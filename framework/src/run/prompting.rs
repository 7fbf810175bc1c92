//! Prompt-based methods on one cell: `manual`, `autoprompt`, `label_search`.
//!
//! Turns task examples into encoded prompts and gold answers, builds the scorer, runs the
//! searches the method asks for, and evaluates the final prompt on dev and evaluation data.

use std::collections::{BTreeMap, HashMap};

use burn::tensor::backend::{AutodiffBackend, Backend};

use super::RunError;
use crate::checkpoint::Checkpoints;
use crate::config::{CellSpec, Labels, MethodSpec};
use crate::lm::LoadedModel;
use crate::metric::{Measure, Metric, Split as MetricSplit};
use crate::progress::ProgressSink;
use crate::prompt::{Encoded, LengthLimit, Template, Verbalizer};
use crate::record::{ModelIdentity, Prediction, Predictions, PromptArtifact};
use crate::search::candidates::{CandidateFilter, allowed_tokens};
use crate::search::labels::{LabelSearchResult, label_search};
use crate::search::trigger::{
    SearchContext, SearchState, Split, evaluate_split_reporting, search_resumable,
};
use crate::search::{
    Engine, FrozenModel, Gold, LabelSearchSettings, MultiToken, RowScore, Scorer, SearchResult,
    SearchSettings, SelectBy, Target, WordTarget,
};
use crate::tasks::metrics::{LAMA_MRR_DEPTH, accuracy, retrieval_within};
use crate::tasks::{Candidates, Example, Ranking, TaskData};

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

/// A saved prompt's metrics and predictions on one split (`autoprompt eval`).
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub metrics: BTreeMap<Metric, f64>,
    /// Examples of the split whose fields were cut to fit the length limit.
    pub truncated: usize,
    pub predictions: Predictions,
}

/// Examples of one split that can be scored, with their golds, plus the count that cannot.
struct Prepared {
    encoded: Vec<Encoded>,
    golds: Vec<Gold>,
    /// Position in the split of each encoded example.
    indices: Vec<usize>,
    unscorable: usize,
    /// Encoded examples whose fields were cut to fit the length limit.
    truncated: usize,
}

/// How answers map to scored tokens.
enum Answers {
    Classes(Vec<String>),
    /// Answer (lower-cased for uncased models) → its column among the scored candidates and
    /// its token; and the candidates.
    Tokens {
        map: HashMap<String, (usize, u32)>,
        candidate_ids: Vec<u32>,
    },
    /// Candidate answers of any length (`method.multi_token`, some candidate longer than one
    /// token): answer → its index among `words`, and every candidate's tokens.
    Words {
        map: HashMap<String, usize>,
        words: Vec<Vec<u32>>,
    },
}

impl Answers {
    /// The class names of a classification task; empty for fact retrieval.
    fn classes(&self) -> &[String] {
        match self {
            Answers::Classes(classes) => classes,
            Answers::Tokens { .. } | Answers::Words { .. } => &[],
        }
    }

    fn gold(&self, example: &Example, lm_tokenizer: &crate::lm::LmTokenizer) -> Option<Gold> {
        match self {
            Answers::Classes(classes) => classes
                .iter()
                .position(|c| *c == example.label)
                .map(|index| Gold { index, token: 0 }),
            Answers::Tokens { map, .. } => map
                .get(&answer_key(&example.label, lm_tokenizer))
                .map(|&(index, token)| Gold { index, token }),
            Answers::Words { map, words } => map
                .get(&answer_key(&example.label, lm_tokenizer))
                .map(|&index| Gold {
                    index,
                    token: words[index][0],
                }),
        }
    }
}

/// How an answer is looked up: lower-cased for uncased models.
fn answer_key(answer: &str, tokenizer: &crate::lm::LmTokenizer) -> String {
    if tokenizer.lowercases {
        answer.to_lowercase()
    } else {
        answer.to_string()
    }
}

/// The examples of one split encoded (`[P]` as `masks` masks: room for the longest answer)
/// with their golds.
fn prepare(
    examples: &[Example],
    template: &Template,
    answers: &Answers,
    lm: &LoadedModel<impl burn::tensor::backend::Backend>,
    triggers: &[u32],
    (limit, masks): (LengthLimit, usize),
) -> Result<Prepared, RunError> {
    let mut out = Prepared {
        encoded: vec![],
        golds: vec![],
        indices: vec![],
        unscorable: 0,
        truncated: 0,
    };
    for (index, example) in examples.iter().enumerate() {
        let Some(gold) = answers.gold(example, &lm.tokenizer) else {
            out.unscorable += 1;
            continue;
        };
        let encoded = template.encode_with_masks(
            |f| example.field(f),
            &lm.tokenizer,
            triggers,
            limit,
            false,
            masks,
        )?;
        out.truncated += usize::from(encoded.cut_tokens > 0);
        out.encoded.push(encoded);
        out.golds.push(gold);
        out.indices.push(index);
    }
    Ok(out)
}

/// Classification metrics (`accuracy`) or fact-retrieval metrics (`p_at_1`, `p_at_10`,
/// `mrr`, `log_likelihood`) on `split`, with unscorable examples counted as misses.
fn metrics_of(
    rows: &[RowScore],
    unscorable: usize,
    classification: bool,
    ranking: Ranking,
    split: MetricSplit,
) -> BTreeMap<Metric, f64> {
    let mut m = BTreeMap::new();
    let on = |measure| Metric::Of(measure, split);
    if classification {
        let mut ranks: Vec<usize> = rows.iter().map(|r| r.rank).collect();
        ranks.extend(std::iter::repeat_n(usize::MAX, unscorable));
        m.insert(on(Measure::Accuracy), accuracy(&ranks));
    } else {
        let (rank, depth): (fn(&RowScore) -> usize, _) = match ranking {
            Ranking::Lama => (|r| r.rank_in_order, Some(LAMA_MRR_DEPTH)),
            Ranking::Strict => (|r| r.rank, None),
        };
        let mut ranks: Vec<Option<usize>> = rows.iter().map(|r| Some(rank(r))).collect();
        ranks.extend(std::iter::repeat_n(None, unscorable));
        let r = retrieval_within(&ranks, depth);
        m.insert(on(Measure::PAt1), r.p_at_1);
        m.insert(on(Measure::PAt10), r.p_at_10);
        m.insert(on(Measure::Mrr), r.mrr);
        if !rows.is_empty() {
            let ll = rows
                .iter()
                .map(|r| r.gold_log_likelihood as f64)
                .sum::<f64>()
                / rows.len() as f64;
            m.insert(on(Measure::LogLikelihood), ll);
        }
    }
    m
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
struct PromptMethod<'a> {
    template: String,
    labels: Option<Labels>,
    multi_token: Option<MultiToken>,
    settings: SearchSettings,
    label_search: Option<&'a LabelSearchSettings>,
    searches_triggers: bool,
}

impl<'a> PromptMethod<'a> {
    fn of(method: &'a MethodSpec, data: &TaskData) -> Result<Self, RunError> {
        Ok(match method {
            MethodSpec::Manual {
                template,
                labels,
                multi_token,
            } => Self {
                template: template
                    .clone()
                    .or_else(|| data.manual_template.clone())
                    .ok_or(RunError::NoTemplate)?,
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
                return Err(RunError::NotAPromptMethod(method.name()));
            }
        })
    }
}

/// The three splits, encoded with placeholder triggers.
struct Splits {
    train: Prepared,
    dev: Prepared,
    test: Prepared,
}

impl Splits {
    fn prepare(
        data: &TaskData,
        template: &Template,
        answers: &Answers,
        lm: &LoadedModel<impl Backend>,
        placeholder: &[u32],
        limit: (LengthLimit, usize),
    ) -> Result<Self, RunError> {
        let prepare = |examples| prepare(examples, template, answers, lm, placeholder, limit);
        let splits = Self {
            train: prepare(&data.train)?,
            dev: prepare(&data.dev)?,
            test: prepare(&data.test)?,
        };
        if splits.train.encoded.is_empty() || splits.dev.encoded.is_empty() {
            return Err(RunError::NothingToScore);
        }
        Ok(splits)
    }
}

impl Prepared {
    fn split(&self) -> Split<'_> {
        Split {
            encoded: &self.encoded,
            golds: &self.golds,
        }
    }
}

/// The token every trigger slot starts as: `initial_trigger`, else the mask token.
fn initial_trigger(
    settings: &SearchSettings,
    tokenizer: &crate::lm::LmTokenizer,
) -> Result<u32, RunError> {
    match &settings.initial_trigger {
        Some(word) => tokenizer
            .single_token_id(word)
            .ok_or_else(|| RunError::InitialTrigger(word.clone())),
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
) -> Result<(Option<Verbalizer>, Option<LabelSearchResult>), RunError> {
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
        method.label_search.ok_or(RunError::NoVerbalizer)?,
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
) -> Result<Option<Verbalizer>, RunError> {
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

/// How many masks `[P]` is encoded as: the longest label word's or candidate's tokens.
fn answer_masks(answers: &Answers, verbalizer: Option<&Verbalizer>) -> usize {
    let longest = |words: &mut dyn Iterator<Item = usize>| words.max().unwrap_or(1).max(1);
    match (answers, verbalizer) {
        (Answers::Words { words, .. }, _) => longest(&mut words.iter().map(Vec::len)),
        (Answers::Classes(_), Some(v)) => longest(&mut v.words().0.iter().map(Vec::len)),
        _ => 1,
    }
}

/// What is scored at `[P]`: the verbalizer's label tokens, or the candidate vocabulary; words
/// of several tokens under `multi_token` (a verbalizer or candidate list of single tokens
/// stays on the single-token path whatever `multi_token` says: the same numbers).
fn target_of(
    answers: &Answers,
    verbalizer: Option<&Verbalizer>,
    multi_token: Option<MultiToken>,
    tokenizer: &crate::lm::LmTokenizer,
) -> Result<Target, RunError> {
    let scoring = multi_token.unwrap_or_default();
    let (mask_id, pad_id) = (tokenizer.special.mask.id, tokenizer.special.pad.id);
    match answers {
        Answers::Classes(_) => {
            let v = verbalizer.ok_or(RunError::NoVerbalizer)?;
            if v.has_multi_token_words() && multi_token.is_none() {
                return Err(RunError::MultiTokenOff);
            }
            Ok(Target::of_classes(v, scoring, mask_id, pad_id))
        }
        Answers::Tokens { candidate_ids, .. } => Ok(Target::Vocabulary {
            candidate_ids: candidate_ids.clone(),
        }),
        Answers::Words { words, .. } => Ok(Target::Words(WordTarget::new(
            words.clone(),
            None,
            scoring,
            mask_id,
            pad_id,
        ))),
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

/// Metrics of `triggers` on one prepared split (named as metrics of `metric_split`) and the
/// split's predictions; the rows scored are reported to `progress` as split `split`.
fn evaluate_prepared(
    scorer: &Scorer,
    pad_id: u32,
    (examples, prepared): (&[Example], &Prepared),
    triggers: &[u32],
    (classes, ranking): (&[String], Ranking),
    (metric_split, split): (MetricSplit, &str),
    progress: &dyn ProgressSink,
) -> (BTreeMap<Metric, f64>, Predictions) {
    let classification = scorer.target.is_classification();
    let rows = evaluate_split_reporting(
        scorer,
        pad_id,
        prepared.split(),
        triggers,
        !classification,
        &mut |rows, of| {
            progress.report(crate::progress::Stage::Score {
                split: split.to_string(),
                rows,
                of,
            })
        },
    );
    (
        metrics_of(
            &rows,
            prepared.unscorable,
            classification,
            ranking,
            metric_split,
        ),
        predictions_of(examples, prepared, &rows, classes, ranking),
    )
}

/// A split's predictions from its scored rows: every example in split order, those that
/// could not be scored without a rank (the metrics count them as wrong). `classes`: the
/// class names of a classification target, else empty.
fn predictions_of(
    examples: &[Example],
    prepared: &Prepared,
    rows: &[RowScore],
    classes: &[String],
    ranking: Ranking,
) -> Predictions {
    let mut scored: Vec<Option<&RowScore>> = vec![None; examples.len()];
    for (&i, row) in prepared.indices.iter().zip(rows) {
        scored[i] = Some(row);
    }
    // The rank the metrics count (`metrics_of`): classification ranks are pessimistic.
    let rank = |r: &RowScore| match (classes.is_empty(), ranking) {
        (true, Ranking::Lama) => r.rank_in_order,
        _ => r.rank,
    };
    let rows = examples
        .iter()
        .zip(scored)
        .enumerate()
        .map(|(i, (example, row))| Prediction {
            example: i as u32,
            gold: example.label.clone(),
            predicted: row
                .and_then(|r| crate::record::first_max(&r.class_scores))
                .and_then(|c| classes.get(c).cloned()),
            rank: row.map(|r| u32::try_from(rank(r)).unwrap_or(u32::MAX)),
            scores: row.map_or_else(Vec::new, |r| r.class_scores.clone()),
        })
        .collect();
    Predictions {
        classes: classes.to_vec(),
        rows,
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
pub fn run<B: AutodiffBackend>(
    spec: &CellSpec,
    data: &TaskData,
    lm: &LoadedModel<B>,
    device: &B::Device,
    engine: Engine,
    hooks: MethodHooks,
) -> Result<PromptOutcome, RunError> {
    let MethodHooks {
        on_best,
        checkpoints,
        progress,
        stop,
    } = hooks;
    let method = PromptMethod::of(&spec.method, data)?;
    let settings = &method.settings;
    let template = Template::parse(&method.template)?;
    let tokenizer = &lm.tokenizer;
    let pad_id = tokenizer.special.pad.id;
    let limit = spec.model.length_limit(lm.max_sequence_length());
    let initial_trigger = initial_trigger(settings, tokenizer)?;
    let placeholder = vec![initial_trigger; template.num_triggers()];
    let answers = answers_of(data, tokenizer, method.multi_token.is_some());
    let classification = matches!(answers, Answers::Classes(_));
    let given = given_verbalizer(&method, data, tokenizer)?;
    let masks = answer_masks(&answers, given.as_ref());
    let splits = Splits::prepare(data, &template, &answers, lm, &placeholder, (limit, masks))?;

    // One frozen model (its weights converted once) for the label search and the search.
    let model = FrozenModel::new(
        lm.model.clone(),
        settings.eval_batch_size,
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

    let display = |id: u32| tokenizer.display_token(id);
    let artifact = |ids: &[u32]| {
        let tokens: Vec<String> = ids.iter().map(|&i| display(i)).collect();
        PromptArtifact {
            template: method.template.clone(),
            filled: fill_template(&method.template, &tokens),
            trigger_ids: ids.to_vec(),
            trigger_tokens: tokens,
            verbalizer: verbalizer.clone(),
            model: Some(ModelIdentity {
                source: spec.model.source.clone(),
                vocab_size: lm.model.vocab_size(),
            }),
        }
    };
    let search_result = (method.searches_triggers && template.num_triggers() > 0)
        .then(|| {
            let excluded = excluded_tokens(&scorer.target, &splits);
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
            let ctx = SearchContext {
                scorer: &scorer,
                settings,
                select_by: settings.select_by.unwrap_or(if classification {
                    SelectBy::Accuracy
                } else {
                    SelectBy::LogLikelihood
                }),
                allowed: &allowed,
                pad_id,
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
                spec.seed,
                |ids, dev_metric| {
                    tracing::info!(triggers = ?ids.iter().map(|&i| display(i)).collect::<Vec<_>>(), dev = dev_metric, "new best prompt");
                    on_best(&artifact(ids));
                },
                checkpoints,
            )
        });
    if search_result
        .as_ref()
        .is_some_and(|r| r.stopped_by == crate::search::StopReason::Interrupted)
    {
        return Err(RunError::Interrupted);
    }
    let triggers = search_result
        .as_ref()
        .map_or(placeholder.clone(), |r| r.trigger_ids.clone());
    let ranking = spec.task.ranking();
    let (mut metrics, predictions) = evaluate_prepared(
        &scorer,
        pad_id,
        (&data.test, &splits.test),
        &triggers,
        (answers.classes(), ranking),
        (MetricSplit::Eval, "test"),
        progress,
    );
    metrics.extend(
        evaluate_prepared(
            &scorer,
            pad_id,
            (&data.dev, &splits.dev),
            &triggers,
            (answers.classes(), ranking),
            (MetricSplit::Dev, "dev"),
            progress,
        )
        .0,
    );
    if let Some(r) = &label_result {
        metrics.insert(Metric::LabelProbeTrainAccuracy, r.train_accuracy);
    }
    Ok(PromptOutcome {
        metrics,
        unscorable: splits.test.unscorable,
        truncated: splits.train.truncated + splits.dev.truncated + splits.test.truncated,
        prompt: artifact(&triggers),
        search: search_result,
        label_search: label_result,
        engine: scorer.engine(),
        predictions,
    })
}

/// How gold answers map to scored tokens: class indices (classification, label tokens to be
/// filled in), or the candidates (a `vocab` file, LAMA's common vocabulary, or the model's
/// whole vocabulary) restricted to single tokens of this model; with `multi_token`, the
/// candidate words (or, for a task ranking the whole vocabulary, every object of its facts:
/// train, dev and evaluation) of any length.
fn answers_of(data: &TaskData, tokenizer: &crate::lm::LmTokenizer, multi_token: bool) -> Answers {
    if !data.classes.is_empty() {
        return Answers::Classes(data.classes.clone());
    }
    let vocabulary = match &data.candidates {
        Some(Candidates::Words(vocab)) if !multi_token => {
            return answers_from(candidate_words(vocab, tokenizer, false));
        }
        Some(Candidates::ModelVocabulary) if !multi_token => {
            return vocabulary_answers(data, tokenizer);
        }
        Some(Candidates::Words(vocab)) => vocab.clone(),
        // Multi-token answers cannot be ranked among single tokens: the task's objects are the
        // candidates.
        Some(Candidates::ModelVocabulary) => data
            .train
            .iter()
            .chain(&data.dev)
            .chain(&data.test)
            .map(|e| e.label.clone())
            .collect(),
        None => vec![],
    };
    answers_from(candidate_words(&vocabulary, tokenizer, true))
}

/// Every non-special token of the vocabulary ranked; gold answers map to theirs.
fn vocabulary_answers(data: &TaskData, tokenizer: &crate::lm::LmTokenizer) -> Answers {
    let mut map = HashMap::new();
    let mut ids = vec![];
    let mut index_of = vec![None; tokenizer.vocab_size()];
    for id in 0..tokenizer.vocab_size() as u32 {
        if !tokenizer.special_ids.contains(&id) {
            index_of[id as usize] = Some(ids.len());
            ids.push(id);
        }
    }
    let golds = data.train.iter().chain(&data.dev).chain(&data.test);
    for example in golds {
        let key = answer_key(&example.label, tokenizer);
        if map.contains_key(&key) {
            continue;
        }
        if let Some(id) = tokenizer.single_token_id(&example.label)
            && let Some(Some(index)) = index_of.get(id as usize)
        {
            map.insert(key, (*index, id));
        }
    }
    Answers::Tokens {
        map,
        candidate_ids: ids,
    }
}

/// Candidate words tokenised, each answer once, in list order: answer → its index, and each
/// kept word's tokens. Words of several tokens are kept only when `multi_token`.
fn candidate_words(
    candidates: &[String],
    tokenizer: &crate::lm::LmTokenizer,
    multi_token: bool,
) -> (HashMap<String, usize>, Vec<Vec<u32>>) {
    let mut map = HashMap::new();
    let mut words: Vec<Vec<u32>> = vec![];
    for word in candidates {
        let key = answer_key(word, tokenizer);
        if map.contains_key(&key) {
            continue;
        }
        if let Some(ids) = tokenizer
            .word_token_ids(word)
            .filter(|ids| multi_token || ids.len() == 1)
        {
            map.insert(key, words.len());
            words.push(ids);
        }
    }
    (map, words)
}

/// Tokenised candidates as answers: the single-token path when every word is one token (the
/// same answers as without `multi_token`), else words of any length.
fn answers_from((map, words): (HashMap<String, usize>, Vec<Vec<u32>>)) -> Answers {
    if words.iter().all(|w| w.len() == 1) {
        return Answers::Tokens {
            map: map
                .into_iter()
                .map(|(key, index)| (key, (index, words[index][0])))
                .collect(),
            candidate_ids: words.into_iter().map(|w| w[0]).collect(),
        };
    }
    Answers::Words { map, words }
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
) -> Result<Evaluation, RunError> {
    let template = Template::parse(&prompt.template)?;
    if template.num_triggers() != prompt.trigger_ids.len() {
        return Err(RunError::TriggerCount {
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
    let eval_rows = PromptMethod::of(&spec.method, data)
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
