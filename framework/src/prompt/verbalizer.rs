//! Verbalizers: each class label maps to one or more words; a class's score is the
//! log-sum-exp of its words' log-probabilities at `[P]` (label marginalisation). A word is
//! one token (the paper's restriction, and the default), or several when the method scores
//! answers of several tokens (`method.multi_token`, [`crate::search::words`]).

use std::collections::BTreeMap;

use crate::lm::LmTokenizer;

/// Label words of one class: their tokens, word after word.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClassTokens {
    pub label: String,
    /// Every word's tokens, word after word.
    pub token_ids: Vec<u32>,
    /// How each token reads (checked against a model's vocabulary before a saved prompt is
    /// applied).
    pub tokens: Vec<String>,
    /// How many of `token_ids` each word takes, when some word of the verbalizer is longer
    /// than one token; absent: every token is a word (so single-token verbalizers keep the
    /// form they always had).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub word_lengths: Option<Vec<usize>>,
}

impl ClassTokens {
    /// The class's words, each its tokens.
    pub fn words(&self) -> Vec<&[u32]> {
        match &self.word_lengths {
            None => self.token_ids.chunks(1).collect(),
            Some(lengths) => {
                let mut start = 0;
                lengths
                    .iter()
                    .map(|&n| {
                        let word = &self.token_ids[start..start + n];
                        start += n;
                        word
                    })
                    .collect()
            }
        }
    }
}

/// The classes of a task, in a fixed order, with their label tokens.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Verbalizer {
    pub classes: Vec<ClassTokens>,
}

/// Why a verbalizer cannot be built.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VerbalizerError {
    #[error(
        "label `{label}`: word `{word}` is not a single token of this model's vocabulary{}",
        pieces_hint(pieces)
    )]
    NotSingleToken {
        label: String,
        word: String,
        /// The tokens it is (empty when it does not tokenise to ordinary tokens at all).
        pieces: Vec<String>,
    },
    #[error(
        "label `{label}`: word `{word}` is empty or is not made of ordinary tokens of this model's vocabulary"
    )]
    NoTokens { label: String, word: String },
    #[error("label `{label}` has no tokens")]
    Empty { label: String },
    #[error(
        "label token `{token}` is used by both `{first}` and `{second}`; classes need distinct tokens"
    )]
    Shared {
        token: String,
        first: String,
        second: String,
    },
    #[error("labels {given:?} do not match the task's classes {expected:?}")]
    Classes {
        given: Vec<String>,
        expected: Vec<String>,
    },
}

fn pieces_hint(pieces: &[String]) -> String {
    if pieces.len() > 1 {
        format!(
            " (it is {} tokens: {}); set method.multi_token (e.g. {{ strategy = \"independent\" }}) to score words of several tokens",
            pieces.len(),
            pieces
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(" ")
        )
    } else {
        String::new()
    }
}

impl Verbalizer {
    /// Builds a verbalizer for `classes` (the task's order) from `label → words`. Unless
    /// `multi_token`, every word must be one token.
    pub fn from_words(
        classes: &[String],
        words: &BTreeMap<String, Vec<String>>,
        tokenizer: &LmTokenizer,
        multi_token: bool,
    ) -> Result<Self, VerbalizerError> {
        let given: Vec<String> = words.keys().cloned().collect();
        let mut expected = classes.to_vec();
        expected.sort();
        if given != expected {
            return Err(VerbalizerError::Classes { given, expected });
        }
        let tokenized = classes
            .iter()
            .map(|label| {
                let words = &words[label];
                if words.is_empty() {
                    return Err(VerbalizerError::Empty {
                        label: label.clone(),
                    });
                }
                words
                    .iter()
                    .map(|w| word_tokens(label, w, tokenizer, multi_token))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<Vec<Vec<u32>>>, _>>()?;
        let several = tokenized.iter().flatten().any(|w| w.len() > 1);
        let classes: Vec<ClassTokens> = classes
            .iter()
            .zip(tokenized)
            .map(|(label, words)| {
                let token_ids: Vec<u32> = words.iter().flatten().copied().collect();
                ClassTokens {
                    label: label.clone(),
                    tokens: token_ids
                        .iter()
                        .map(|&id| tokenizer.display_token(id))
                        .collect(),
                    token_ids,
                    word_lengths: several.then(|| words.iter().map(Vec::len).collect()),
                }
            })
            .collect();
        check_distinct(&classes, tokenizer)?;
        Ok(Self { classes })
    }

    /// Builds a verbalizer from token ids already chosen (label search).
    pub fn from_ids(labels: &[String], ids: Vec<Vec<u32>>, tokenizer: &LmTokenizer) -> Self {
        let classes = labels
            .iter()
            .zip(ids)
            .map(|(label, token_ids)| ClassTokens {
                label: label.clone(),
                tokens: token_ids
                    .iter()
                    .map(|&id| tokenizer.display_token(id))
                    .collect(),
                token_ids,
                word_lengths: None,
            })
            .collect();
        Self { classes }
    }

    /// Whether some word is longer than one token.
    pub fn has_multi_token_words(&self) -> bool {
        self.classes.iter().any(|c| c.word_lengths.is_some())
    }

    /// Every class's words, class after class, and each class's `(start, len)` range of them.
    pub fn words(&self) -> (Vec<Vec<u32>>, Vec<(usize, usize)>) {
        let mut words = vec![];
        let mut spans = vec![];
        for class in &self.classes {
            let start = words.len();
            words.extend(class.words().into_iter().map(<[u32]>::to_vec));
            spans.push((start, words.len() - start));
        }
        (words, spans)
    }

    /// All label token ids, class after class (the columns [`Self::class_spans`] index).
    pub fn all_token_ids(&self) -> Vec<u32> {
        self.classes
            .iter()
            .flat_map(|c| c.token_ids.iter().copied())
            .collect()
    }

    /// `(start, len)` of each class's columns within [`Self::all_token_ids`].
    pub fn class_spans(&self) -> Vec<(usize, usize)> {
        let mut start = 0;
        self.classes
            .iter()
            .map(|c| {
                let span = (start, c.token_ids.len());
                start += c.token_ids.len();
                span
            })
            .collect()
    }

    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }
}

/// A word's tokens: exactly one unless `multi_token` (also what the run checks before any cell
/// starts, `methods::label_words`).
pub fn word_tokens(
    label: &str,
    word: &str,
    tokenizer: &LmTokenizer,
    multi_token: bool,
) -> Result<Vec<u32>, VerbalizerError> {
    let ids = tokenizer.word_token_ids(word);
    match ids {
        Some(ids) if ids.len() == 1 || multi_token => Ok(ids),
        Some(ids) => Err(VerbalizerError::NotSingleToken {
            label: label.to_string(),
            word: word.to_string(),
            pieces: ids.iter().map(|&i| tokenizer.display_token(i)).collect(),
        }),
        None if multi_token => Err(VerbalizerError::NoTokens {
            label: label.to_string(),
            word: word.to_string(),
        }),
        None => Err(VerbalizerError::NotSingleToken {
            label: label.to_string(),
            word: word.to_string(),
            pieces: vec![],
        }),
    }
}

/// Classes may not share a word: a single token (the paper's rule), or the same tokens of a
/// longer word (`very good` and `very bad` share a token, not a word).
fn check_distinct(classes: &[ClassTokens], tokenizer: &LmTokenizer) -> Result<(), VerbalizerError> {
    for (i, a) in classes.iter().enumerate() {
        for b in &classes[i + 1..] {
            let b_words = b.words();
            if let Some(shared) = a.words().into_iter().find(|w| b_words.contains(w)) {
                return Err(VerbalizerError::Shared {
                    token: shared
                        .iter()
                        .map(|&t| tokenizer.display_token(t))
                        .collect::<Vec<_>>()
                        .join(" "),
                    first: a.label.clone(),
                    second: b.label.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Label marginalisation on plain numbers: per class, log-sum-exp of its columns of one row
/// of token log-probabilities (`row` is ordered as [`Verbalizer::all_token_ids`]).
pub fn class_scores(row: &[f32], spans: &[(usize, usize)]) -> Vec<f32> {
    spans
        .iter()
        .map(|&(start, len)| log_sum_exp(&row[start..start + len]))
        .collect()
}

/// `ln Σ exp(v)`, computed from the largest value (minus infinity when there is none).
pub fn log_sum_exp(values: &[f32]) -> f32 {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    max + values.iter().map(|v| (v - max).exp()).sum::<f32>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marginalises_tokens_of_each_class() {
        // Class 0 has tokens with log-probs ln 0.1 and ln 0.3 → ln 0.4; class 1: ln 0.5.
        let row = [0.1f32.ln(), 0.3f32.ln(), 0.5f32.ln()];
        let scores = class_scores(&row, &[(0, 2), (2, 1)]);
        assert!((scores[0] - 0.4f32.ln()).abs() < 1e-6, "{scores:?}");
        assert!((scores[1] - 0.5f32.ln()).abs() < 1e-6, "{scores:?}");
    }

    #[test]
    fn marginalisation_can_flip_the_decision() {
        // The single best token belongs to class 1, but class 0's mass is larger.
        let row = [0.2f32.ln(), 0.2f32.ln(), 0.3f32.ln()];
        let scores = class_scores(&row, &[(0, 2), (2, 1)]);
        assert!(scores[0] > scores[1]);
    }
}
