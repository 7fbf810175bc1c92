//! Prompt templates such as `[CLS] {sentence} [T] [T] [T] [P] . [SEP]`.
//!
//! Markers: `[T]` a trigger slot, `[P]` the predict slot (becomes the mask token), `[CLS]` /
//! `<s>` and `[SEP]` / `</s>` the model's own start and separator tokens (either spelling
//! works for either family), `{field}` a field of the example. Everything else is literal
//! text. Text is tokenised without adding special tokens: the template spells them out.
//!
//! Each literal and field is tokenised on its own so that, when a sequence is too long, only
//! the fields are truncated (see [`super::truncate`]) — never the template. A run of whitespace before a text part is
//! kept as one space, which is what byte-level BPE (RoBERTa) needs to see a word mid-sentence.

use super::truncate::LengthLimit;
use crate::lm::LmTokenizer;

/// One parsed piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Cls,
    Sep,
    Trigger,
    Predict,
    Literal { text: String, space_before: bool },
    Field { name: String, space_before: bool },
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub source: String,
    pub parts: Vec<Part>,
}

/// Why a template string is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template has no [P] (predict) slot")]
    NoPredict,
    #[error("template has {0} [P] slots; exactly one is allowed")]
    ManyPredicts(usize),
    #[error("unclosed `{{` at byte {0}")]
    UnclosedField(usize),
    #[error("empty field name `{{}}` at byte {0}")]
    EmptyField(usize),
    #[error(
        "template references field `{field}`, which the task does not have (it has: {available})"
    )]
    UnknownField { field: String, available: String },
    #[error("template is longer ({len} tokens without fields) than the model's limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error(
        "with [P] as {masks} masks (the longest answer's tokens) the template is {len} tokens without fields, more than the model's limit of {max}"
    )]
    AnswerTooLong {
        masks: usize,
        len: usize,
        max: usize,
    },
}

/// A template filled with one example: what the model sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub segment_ids: Vec<u32>,
    pub trigger_positions: Vec<usize>,
    pub predict_position: usize,
    /// Tokens the fields lost to fit the length limit (0: the example fit whole).
    pub cut_tokens: usize,
}

const MARKERS: [(&str, Part); 6] = [
    ("[T]", Part::Trigger),
    ("[P]", Part::Predict),
    ("[CLS]", Part::Cls),
    ("<s>", Part::Cls),
    ("[SEP]", Part::Sep),
    ("</s>", Part::Sep),
];

impl Template {
    /// Parses a template string.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let mut parts = vec![];
        let mut literal = String::new();
        let mut space_before = false;
        let flush = |literal: &mut String, space_before: &mut bool, parts: &mut Vec<Part>| {
            let trimmed = literal.trim_end();
            if !trimmed.is_empty() {
                parts.push(Part::Literal {
                    text: trimmed.to_string(),
                    space_before: *space_before,
                });
            }
            literal.clear();
        };
        let mut i = 0;
        while i < source.len() {
            let rest = &source[i..];
            if let Some((marker, part)) = MARKERS.iter().find(|(m, _)| rest.starts_with(m)) {
                flush(&mut literal, &mut space_before, &mut parts);
                parts.push(part.clone());
                i += marker.len();
                space_before = false;
                continue;
            }
            if rest.starts_with('{') {
                flush(&mut literal, &mut space_before, &mut parts);
                let close = rest.find('}').ok_or(TemplateError::UnclosedField(i))?;
                let name = rest[1..close].trim();
                if name.is_empty() {
                    return Err(TemplateError::EmptyField(i));
                }
                parts.push(Part::Field {
                    name: name.to_string(),
                    space_before,
                });
                space_before = false;
                i += close + 1;
                continue;
            }
            let c = rest.chars().next().expect("non-empty");
            if c.is_whitespace() {
                if literal.is_empty() {
                    space_before = true;
                } else {
                    literal.push(' ');
                }
            } else {
                literal.push(c);
            }
            i += c.len_utf8();
        }
        flush(&mut literal, &mut space_before, &mut parts);
        let predicts = parts.iter().filter(|p| **p == Part::Predict).count();
        match predicts {
            0 => Err(TemplateError::NoPredict),
            1 => Ok(Self {
                source: source.to_string(),
                parts,
            }),
            n => Err(TemplateError::ManyPredicts(n)),
        }
    }

    /// Number of `[T]` slots.
    pub fn num_triggers(&self) -> usize {
        self.parts.iter().filter(|p| **p == Part::Trigger).count()
    }

    /// Field names the template references, in order of appearance.
    pub fn fields(&self) -> Vec<&str> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Field { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Checks that every referenced field is one of `available`.
    pub fn check_fields(&self, available: &[&str]) -> Result<(), TemplateError> {
        match self.fields().into_iter().find(|f| !available.contains(f)) {
            Some(field) => Err(TemplateError::UnknownField {
                field: field.to_string(),
                available: available.join(", "),
            }),
            None => Ok(()),
        }
    }

    /// Fills the template with one example.
    ///
    /// `field` returns a field's text; `triggers` gives the token of each `[T]` (its length
    /// must equal [`Self::num_triggers`]); `pair_segments` gives the span after the first
    /// separator segment id 1 (BERT sentence pairs). When the sequence is longer than the
    /// limit, fields (never the template) lose tokens as [`super::Truncate`] describes.
    pub fn encode<'a>(
        &self,
        field: impl Fn(&str) -> Option<&'a str>,
        tokenizer: &LmTokenizer,
        triggers: &[u32],
        limit: LengthLimit,
        pair_segments: bool,
    ) -> Result<Encoded, crate::lm::LmError> {
        self.encode_with_masks(field, tokenizer, triggers, limit, pair_segments, 1)
    }

    /// [`Self::encode`] with `[P]` as `masks` mask tokens (answers of several tokens: room for
    /// the longest; `predict_position` is the first). The masks count as template tokens:
    /// they are never cut.
    pub fn encode_with_masks<'a>(
        &self,
        field: impl Fn(&str) -> Option<&'a str>,
        tokenizer: &LmTokenizer,
        triggers: &[u32],
        limit: LengthLimit,
        pair_segments: bool,
        masks: usize,
    ) -> Result<Encoded, crate::lm::LmError> {
        assert!(masks >= 1, "[P] is at least one mask");
        assert_eq!(
            triggers.len(),
            self.num_triggers(),
            "one token per trigger slot"
        );
        let byte_level = tokenizer.marker == crate::lm::WordMarker::ByteLevel;
        let text_ids = |text: &str, space_before: bool| {
            let text = if byte_level && space_before {
                format!(" {text}")
            } else {
                text.to_string()
            };
            tokenizer.encode(&text)
        };
        // Tokenise every part; fields are the truncatable ones.
        let mut pieces: Vec<(Vec<u32>, bool)> = Vec::with_capacity(self.parts.len());
        let mut next_trigger = triggers.iter();
        let special = &tokenizer.special;
        for part in &self.parts {
            let piece = match part {
                Part::Cls => (vec![special.cls.id], false),
                Part::Sep => (vec![special.sep.id], false),
                Part::Predict => (vec![special.mask.id; masks], false),
                Part::Trigger => (vec![*next_trigger.next().expect("counted")], false),
                Part::Literal { text, space_before } => (text_ids(text, *space_before)?, false),
                Part::Field { name, space_before } => {
                    let value = field(name).unwrap_or("").trim();
                    (text_ids(value, *space_before)?, true)
                }
            };
            pieces.push(piece);
        }
        let fixed: usize = pieces
            .iter()
            .filter(|(_, field)| !field)
            .map(|(ids, _)| ids.len())
            .sum();
        if fixed > limit.max_tokens {
            return Err(crate::lm::LmError::Tokenize {
                text: self.source.clone(),
                message: if masks > 1 {
                    TemplateError::AnswerTooLong {
                        masks,
                        len: fixed,
                        max: limit.max_tokens,
                    }
                } else {
                    TemplateError::TooLong {
                        len: fixed,
                        max: limit.max_tokens,
                    }
                }
                .to_string(),
            });
        }
        let mut fields: Vec<&mut Vec<u32>> = pieces
            .iter_mut()
            .filter(|(_, field)| *field)
            .map(|(ids, _)| ids)
            .collect();
        let cut_tokens = limit
            .truncate
            .fit(&mut fields, limit.max_tokens - fixed)
            .iter()
            .sum();
        let mut encoded = Encoded {
            ids: vec![],
            segment_ids: vec![],
            trigger_positions: vec![],
            predict_position: 0,
            cut_tokens,
        };
        let mut segment = 0;
        for (part, (ids, _)) in self.parts.iter().zip(pieces) {
            match part {
                Part::Trigger => encoded.trigger_positions.push(encoded.ids.len()),
                Part::Predict => encoded.predict_position = encoded.ids.len(),
                _ => {}
            }
            encoded
                .segment_ids
                .extend(std::iter::repeat_n(segment, ids.len()));
            encoded.ids.extend(ids);
            if *part == Part::Sep && pair_segments {
                segment = 1;
            }
        }
        Ok(encoded)
    }
}

impl std::fmt::Display for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_markers_fields_and_literals() {
        let t = Template::parse("[CLS] {sentence} [T] [T] [T] [P] . [SEP]").unwrap();
        assert_eq!(t.num_triggers(), 3);
        assert_eq!(t.fields(), vec!["sentence"]);
        assert_eq!(
            t.parts,
            vec![
                Part::Cls,
                Part::Field {
                    name: "sentence".into(),
                    space_before: true
                },
                Part::Trigger,
                Part::Trigger,
                Part::Trigger,
                Part::Predict,
                Part::Literal {
                    text: ".".into(),
                    space_before: true
                },
                Part::Sep,
            ]
        );
    }

    #[test]
    fn roberta_markers_and_literal_words() {
        let t = Template::parse("<s> {sub_label} was born in [P] . </s>").unwrap();
        assert_eq!(t.parts[0], Part::Cls);
        assert_eq!(
            t.parts[2],
            Part::Literal {
                text: "was born in".into(),
                space_before: true
            }
        );
        assert_eq!(t.parts.last(), Some(&Part::Sep));
    }

    #[test]
    fn rejects_missing_or_repeated_predict() {
        assert_eq!(
            Template::parse("[CLS] {sentence} [SEP]"),
            Err(TemplateError::NoPredict)
        );
        assert_eq!(
            Template::parse("[P] [P]"),
            Err(TemplateError::ManyPredicts(2))
        );
    }

    #[test]
    fn rejects_bad_fields() {
        assert_eq!(
            Template::parse("{sentence [P]"),
            Err(TemplateError::UnclosedField(0))
        );
        assert_eq!(
            Template::parse("{ } [P]"),
            Err(TemplateError::EmptyField(0))
        );
        let t = Template::parse("{premise} [P]").unwrap();
        let err = t.check_fields(&["sentence_A", "sentence_B"]).unwrap_err();
        assert!(err.to_string().contains("`premise`"), "{err}");
    }

    #[test]
    fn field_glued_to_text_keeps_no_space() {
        let t = Template::parse("[CLS]{sentence}[P]").unwrap();
        assert_eq!(
            t.parts[1],
            Part::Field {
                name: "sentence".into(),
                space_before: false
            }
        );
    }
}
