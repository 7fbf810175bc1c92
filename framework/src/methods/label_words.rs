//! Label words checked against each cell's model before any cell runs: a word that is not
//! made of ordinary tokens, a word of several tokens without `method.multi_token`, or a word
//! too long for the model once `[P]` is expanded to it. These are mistakes in the experiment
//! file, so they stop the run as configuration errors (exit code 2) naming the key, instead
//! of failing every cell that uses them. Only the tokenizer and the model's `config.json` are
//! read; a model that cannot be found is left to the cell, which reports it as it always has.

use std::collections::HashMap;

use crate::config::{Labels, MethodSpec};
use crate::lm::LmTokenizer;
use crate::plan::Cell;
use crate::prompt::Template;

/// A label word the cell's model cannot score as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cell {cell}: key `{key}`: {message}")]
pub struct LabelWordError {
    pub cell: String,
    pub key: String,
    pub message: String,
}

/// Checks every cell's label words against its model's tokenizer (each model read once).
pub fn check_label_words(cells: &[&Cell]) -> Result<(), LabelWordError> {
    let mut tokenizers: HashMap<String, Option<(LmTokenizer, usize)>> = HashMap::new();
    for cell in cells {
        let spec = &cell.spec;
        let (labels, multi_token) = match &spec.method {
            MethodSpec::Manual {
                labels: Some(Labels::Words(words)),
                multi_token,
                ..
            }
            | MethodSpec::Autoprompt {
                labels: Some(Labels::Words(words)),
                multi_token,
                ..
            } => (words, multi_token.is_some()),
            _ => continue,
        };
        let Some((tokenizer, model_max)) = tokenizers
            .entry(spec.model.source.clone())
            .or_insert_with(|| crate::lm::load_tokenizer(&spec.model.source).ok())
        else {
            continue;
        };
        let limit = spec.model.length_limit(*model_max).max_tokens;
        let fixed = (cell.template.as_ref())
            .map(|t| fixed_tokens(t, tokenizer))
            .filter(|&f| f > 0);
        for (label, words) in labels {
            for word in words {
                let error = |message: String| LabelWordError {
                    cell: cell.id.clone(),
                    key: format!("method.labels.{label}"),
                    message,
                };
                let ids =
                    crate::prompt::verbalizer::word_tokens(label, word, tokenizer, multi_token)
                        .map_err(|e| error(e.to_string()))?;
                if let Some(fixed) = fixed
                    && fixed - 1 + ids.len() > limit
                {
                    return Err(error(format!(
                        "word `{word}` is {} tokens of `{}`; with [P] expanded to it the template alone is {} tokens, more than the limit of {limit} (model.max_length or the model's own)",
                        ids.len(),
                        spec.model.source,
                        fixed - 1 + ids.len()
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The template's own tokens (fields empty), `[P]` counted as one.
fn fixed_tokens(template: &Template, tokenizer: &LmTokenizer) -> usize {
    let placeholder = vec![tokenizer.special.mask.id; template.num_triggers()];
    let unlimited = crate::prompt::LengthLimit::at_end(usize::MAX);
    template
        .encode(|_| Some(""), tokenizer, &placeholder, unlimited, false)
        .map_or(0, |e| e.ids.len())
}
