//! Verbalizers: each class label maps to one or more single tokens; a class's score is the
//! log-sum-exp of its tokens' log-probabilities at `[P]` (label marginalisation).

use std::collections::BTreeMap;

use crate::lm::LmTokenizer;

/// Label tokens of one class.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClassTokens {
    pub label: String,
    pub token_ids: Vec<u32>,
    pub tokens: Vec<String>,
}

/// The classes of a task, in a fixed order, with their label tokens.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Verbalizer {
    pub classes: Vec<ClassTokens>,
}

/// Why a verbalizer cannot be built.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VerbalizerError {
    #[error("label `{label}`: word `{word}` is not a single token of this model's vocabulary")]
    NotSingleToken { label: String, word: String },
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

impl Verbalizer {
    /// Builds a verbalizer for `classes` (the task's order) from `label → words`.
    pub fn from_words(
        classes: &[String],
        words: &BTreeMap<String, Vec<String>>,
        tokenizer: &LmTokenizer,
    ) -> Result<Self, VerbalizerError> {
        let given: Vec<String> = words.keys().cloned().collect();
        let mut expected = classes.to_vec();
        expected.sort();
        if given != expected {
            return Err(VerbalizerError::Classes { given, expected });
        }
        let classes = classes
            .iter()
            .map(|label| {
                let words = &words[label];
                if words.is_empty() {
                    return Err(VerbalizerError::Empty {
                        label: label.clone(),
                    });
                }
                let token_ids = words
                    .iter()
                    .map(|w| {
                        tokenizer.single_token_id(w).ok_or_else(|| {
                            VerbalizerError::NotSingleToken {
                                label: label.clone(),
                                word: w.clone(),
                            }
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(ClassTokens {
                    label: label.clone(),
                    tokens: token_ids
                        .iter()
                        .map(|&id| tokenizer.display_token(id))
                        .collect(),
                    token_ids,
                })
            })
            .collect::<Result<Vec<ClassTokens>, _>>()?;
        for (i, a) in classes.iter().enumerate() {
            for b in &classes[i + 1..] {
                if let Some(pos) = a.token_ids.iter().position(|t| b.token_ids.contains(t)) {
                    return Err(VerbalizerError::Shared {
                        token: a.tokens[pos].clone(),
                        first: a.label.clone(),
                        second: b.label.clone(),
                    });
                }
            }
        }
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
            })
            .collect();
        Self { classes }
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

/// Label marginalisation on plain numbers: per class, log-sum-exp of its columns of one row
/// of token log-probabilities (`row` is ordered as [`Verbalizer::all_token_ids`]).
pub fn class_scores(row: &[f32], spans: &[(usize, usize)]) -> Vec<f32> {
    spans
        .iter()
        .map(|&(start, len)| {
            let cols = &row[start..start + len];
            let max = cols.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            if max == f32::NEG_INFINITY {
                return max;
            }
            max + cols.iter().map(|v| (v - max).exp()).sum::<f32>().ln()
        })
        .collect()
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
