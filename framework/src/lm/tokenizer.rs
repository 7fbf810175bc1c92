//! Tokenizers from the files a checkpoint ships: `tokenizer.json`, or `vocab.txt`
//! (WordPiece, BERT) or `vocab.json` + `merges.txt` (byte-level BPE, RoBERTa).
//!
//! Special tokens are looked up in the tokenizer's own vocabulary by their conventional
//! strings, never by hard-coded ids. The wrapped tokenizer is never mutated after loading.

use std::path::{Path, PathBuf};

use tokenizers::models::bpe::BPE;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{AddedToken, Tokenizer};

use super::LmError;

/// A special token: its string and id in this tokenizer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SpecialToken {
    pub text: String,
    pub id: u32,
}

/// The special tokens a template and the search need.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SpecialTokens {
    pub cls: SpecialToken,
    pub sep: SpecialToken,
    pub mask: SpecialToken,
    pub pad: SpecialToken,
}

/// How a vocabulary marks word boundaries in its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum WordMarker {
    /// WordPiece (BERT, DistilBERT, ELECTRA): `##` marks a piece that continues a word.
    Continuation,
    /// Byte-level BPE (RoBERTa): `Ġ` marks a token that starts a word after a space.
    ByteLevel,
    /// SentencePiece (XLM-RoBERTa, ALBERT): `▁` marks a token that starts a word.
    SentencePiece,
}

impl WordMarker {
    /// The marker most of a vocabulary's tokens carry.
    fn of(tokenizer: &Tokenizer) -> Self {
        let vocab = tokenizer.get_vocab(false);
        let count = |p: &str| vocab.keys().filter(|t| t.starts_with(p)).count();
        let (byte_level, sentence_piece, continuation) = (count("Ġ"), count("▁"), count("##"));
        if sentence_piece > byte_level.max(continuation) {
            WordMarker::SentencePiece
        } else if byte_level > continuation {
            WordMarker::ByteLevel
        } else {
            WordMarker::Continuation
        }
    }
}

/// A loaded tokenizer plus its special tokens.
#[derive(Clone)]
pub struct LmTokenizer {
    inner: Tokenizer,
    pub special: SpecialTokens,
    /// Every id the tokenizer treats as special/added (never a trigger or label candidate).
    pub special_ids: Vec<u32>,
    /// Whether the normaliser lowercases ("Paris" and "paris" encode alike).
    pub lowercases: bool,
    /// How its tokens mark word boundaries.
    pub marker: WordMarker,
}

impl std::fmt::Debug for LmTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LmTokenizer")
            .field("special", &self.special)
            .finish()
    }
}

const SPECIAL_CANDIDATES: [(&str, &str); 4] = [
    ("[CLS]", "<s>"),
    ("[SEP]", "</s>"),
    ("[MASK]", "<mask>"),
    ("[PAD]", "<pad>"),
];

impl LmTokenizer {
    /// Loads the tokenizer of a model directory, preferring `tokenizer.json`.
    pub fn from_dir(dir: &Path) -> Result<Self, LmError> {
        let tokenizer_json = dir.join("tokenizer.json");
        let inner = if tokenizer_json.is_file() {
            Tokenizer::from_file(&tokenizer_json)
                .map_err(|e| tokenizer_error(&tokenizer_json, e))?
        } else if dir.join("vocab.txt").is_file() {
            word_piece(dir)?
        } else if dir.join("vocab.json").is_file() && dir.join("merges.txt").is_file() {
            byte_level_bpe(dir)?
        } else {
            return Err(LmError::Unsupported {
                path: dir.to_owned(),
                message: "no tokenizer.json, vocab.txt or vocab.json + merges.txt".into(),
            });
        };
        Self::from_tokenizer(inner, dir)
    }

    fn from_tokenizer(inner: Tokenizer, dir: &Path) -> Result<Self, LmError> {
        let find = |pair: (&str, &str)| {
            [pair.0, pair.1]
                .into_iter()
                .find_map(|t| {
                    inner
                        .token_to_id(t)
                        .map(|id| SpecialToken { text: t.into(), id })
                })
                .ok_or_else(|| LmError::Unsupported {
                    path: dir.to_owned(),
                    message: format!("tokenizer has neither `{}` nor `{}`", pair.0, pair.1),
                })
        };
        let special = SpecialTokens {
            cls: find(SPECIAL_CANDIDATES[0])?,
            sep: find(SPECIAL_CANDIDATES[1])?,
            mask: find(SPECIAL_CANDIDATES[2])?,
            pad: find(SPECIAL_CANDIDATES[3])?,
        };
        let mut special_ids: Vec<u32> = inner
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| *id)
            .chain([
                special.cls.id,
                special.sep.id,
                special.mask.id,
                special.pad.id,
            ])
            .collect();
        for unk in ["[UNK]", "<unk>"] {
            special_ids.extend(inner.token_to_id(unk));
        }
        special_ids.sort_unstable();
        special_ids.dedup();
        let marker = WordMarker::of(&inner);
        let mut tokenizer = Self {
            inner,
            special,
            special_ids,
            lowercases: false,
            marker,
        };
        tokenizer.lowercases = tokenizer.encode("PARIS")? == tokenizer.encode("paris")?;
        Ok(tokenizer)
    }

    /// Token ids of `text`, without special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, LmError> {
        self.inner
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| LmError::Tokenize {
                text: text.chars().take(80).collect(),
                message: e.to_string(),
            })
    }

    /// Token ids of `text` with the checkpoint's special tokens (as transformers' default).
    pub fn encode_with_special_tokens(&self, text: &str) -> Result<Vec<u32>, LmError> {
        self.inner
            .encode(text, true)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| LmError::Tokenize {
                text: text.chars().take(80).collect(),
                message: e.to_string(),
            })
    }

    /// The id of a single-token word, or `None` when it is unknown or splits into several
    /// pieces. A leading space is prepended for byte-level BPE (`" Paris"`), matching how the
    /// word appears mid-sentence.
    pub fn single_token_id(&self, word: &str) -> Option<u32> {
        let text = if self.marker == WordMarker::ByteLevel {
            format!(" {}", word.trim())
        } else {
            word.trim().to_string()
        };
        match self.encode(&text).ok()?.as_slice() {
            [id] if !self.special_ids.contains(id) => Some(*id),
            _ => None,
        }
    }

    /// Whether sentence pairs take RoBERTa's form, `<s> A </s></s> B </s>` with one segment
    /// id (RoBERTa, XLM-RoBERTa), rather than BERT's `[CLS] A [SEP] B [SEP]` with two.
    pub fn uses_roberta_pairs(&self) -> bool {
        self.special.cls.text == "<s>"
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Human-readable text of one token (`Ġgood` → `good`, `##ing` → `##ing`).
    pub fn display_token(&self, id: u32) -> String {
        let raw = self.id_to_token(id).unwrap_or_else(|| format!("<{id}>"));
        match self.marker {
            WordMarker::ByteLevel => raw.replace('Ġ', " ").trim_start().to_string(),
            WordMarker::SentencePiece => raw.replace('▁', " ").trim_start().to_string(),
            WordMarker::Continuation => raw,
        }
    }
}

fn tokenizer_error(path: &Path, e: impl std::fmt::Display) -> LmError {
    LmError::Corrupt {
        path: path.to_owned(),
        message: format!("tokenizer: {e}"),
    }
}

/// `do_lower_case` from `tokenizer_config.json`; BERT's default (true) when absent.
fn lowercase_setting(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("tokenizer_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("do_lower_case").and_then(|b| b.as_bool()))
        .unwrap_or(true)
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn word_piece(dir: &Path) -> Result<Tokenizer, LmError> {
    let vocab: PathBuf = dir.join("vocab.txt");
    let model = WordPiece::from_file(&path_str(&vocab))
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| tokenizer_error(&vocab, e))?;
    let mut tokenizer = Tokenizer::new(model);
    let id = |t: &str| {
        tokenizer
            .token_to_id(t)
            .ok_or_else(|| tokenizer_error(&vocab, format!("no `{t}` in vocab")))
    };
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    tokenizer
        .with_normalizer(Some(BertNormalizer::new(
            true,
            true,
            None,
            lowercase_setting(dir),
        )))
        .with_pre_tokenizer(Some(BertPreTokenizer))
        .with_post_processor(Some(BertProcessing::new(
            ("[SEP]".into(), sep),
            ("[CLS]".into(), cls),
        )));
    let specials: Vec<AddedToken> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    tokenizer.add_special_tokens(&specials);
    Ok(tokenizer)
}

fn byte_level_bpe(dir: &Path) -> Result<Tokenizer, LmError> {
    let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
    let model = BPE::from_file(&path_str(&vocab), &path_str(&merges))
        .build()
        .map_err(|e| tokenizer_error(&vocab, e))?;
    let mut tokenizer = Tokenizer::new(model);
    let id = |t: &str| {
        tokenizer
            .token_to_id(t)
            .ok_or_else(|| tokenizer_error(&vocab, format!("no `{t}` in vocab")))
    };
    let (cls, sep) = (id("<s>")?, id("</s>")?);
    tokenizer
        .with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)))
        .with_decoder(Some(ByteLevel::default()))
        .with_post_processor(Some(RobertaProcessing::new(
            ("</s>".into(), sep),
            ("<s>".into(), cls),
        )));
    let specials: Vec<AddedToken> = ["<s>", "<pad>", "</s>", "<unk>"]
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .chain([AddedToken::from("<mask>", true).lstrip(true)])
        .collect();
    tokenizer.add_special_tokens(&specials);
    Ok(tokenizer)
}
