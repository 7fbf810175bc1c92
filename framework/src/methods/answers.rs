//! How a task's answers become what is scored at `[P]`: class indices for classification
//! (label words filled in by the verbalizer), single-token candidates (a `vocab` file, LAMA's
//! common vocabulary, the model's vocabulary) or, under `method.multi_token`, candidate words
//! of any length; and the `Target` the scorer ranks them with.

use std::collections::HashMap;

use super::MethodError;
use crate::prompt::Verbalizer;
use crate::search::{Gold, MultiToken, Target, WordTarget};
use crate::tasks::{Candidates, Example, TaskData};

/// How answers map to scored tokens.
pub(super) enum Answers {
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
    pub(super) fn classes(&self) -> &[String] {
        match self {
            Answers::Classes(classes) => classes,
            Answers::Tokens { .. } | Answers::Words { .. } => &[],
        }
    }

    pub(super) fn gold(
        &self,
        example: &Example,
        lm_tokenizer: &crate::lm::LmTokenizer,
    ) -> Option<Gold> {
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

/// How many masks `[P]` is encoded as: the longest label word's or candidate's tokens.
pub(super) fn answer_masks(answers: &Answers, verbalizer: Option<&Verbalizer>) -> usize {
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
pub(super) fn target_of(
    answers: &Answers,
    verbalizer: Option<&Verbalizer>,
    multi_token: Option<MultiToken>,
    tokenizer: &crate::lm::LmTokenizer,
) -> Result<Target, MethodError> {
    let scoring = multi_token.unwrap_or_default();
    let (mask_id, pad_id) = (tokenizer.special.mask.id, tokenizer.special.pad.id);
    match answers {
        Answers::Classes(_) => {
            let v = verbalizer.ok_or(MethodError::NoVerbalizer)?;
            if v.has_multi_token_words() && multi_token.is_none() {
                return Err(MethodError::MultiTokenOff);
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

/// How gold answers map to scored tokens: class indices (classification, label tokens to be
/// filled in), or the candidates (a `vocab` file, LAMA's common vocabulary, or the model's
/// whole vocabulary) restricted to single tokens of this model; with `multi_token`, the
/// candidate words (or, for a task ranking the whole vocabulary, every object of its facts:
/// train, dev and evaluation) of any length.
pub(super) fn answers_of(
    data: &TaskData,
    tokenizer: &crate::lm::LmTokenizer,
    multi_token: bool,
) -> Answers {
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
