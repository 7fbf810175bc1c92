//! Tokenizers from the files a checkpoint ships: `tokenizer.json`, or `vocab.txt`
//! (WordPiece, BERT) or `vocab.json` + `merges.txt` (byte-level BPE, RoBERTa).
//!
//! Special tokens are looked up in the tokenizer's own vocabulary by the strings
//! `special_tokens_map.json` / `tokenizer_config.json` name, else by their conventional
//! strings, never by hard-coded ids. The wrapped tokenizer is never mutated after loading.
//!
//! The settings of `tokenizer_config.json` that change ids (`Settings`) are honoured as
//! transformers honours them, or refused by name where we cannot: `do_lower_case`,
//! `strip_accents` and `tokenize_chinese_chars` build a `vocab.txt` tokenizer's BERT
//! normaliser and rebuild a `tokenizer.json`'s `BertNormalizer` they disagree with (as
//! `BertTokenizerFast` does; with another normaliser a disagreeing `do_lower_case` is
//! refused); added tokens (`added_tokens.json`, `added_tokens_decoder`) are added to a
//! vocabulary-only tokenizer at their ids or checked against `tokenizer.json`; and
//! `model_max_length` caps the sequence length. A vocabulary-only directory that leaves
//! these settings out warns which defaults it assumed.

use std::collections::BTreeMap;
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
    /// `model_max_length` of `tokenizer_config.json` (absent, or transformers' "no limit"
    /// sentinel: `None`).
    pub model_max_length: Option<usize>,
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
    /// Loads the tokenizer of a model directory, preferring `tokenizer.json`, with the
    /// settings of its `tokenizer_config.json` and `special_tokens_map.json`.
    pub fn from_dir(dir: &Path) -> Result<Self, LmError> {
        let settings = Settings::read(dir)?;
        let tokenizer_json = dir.join("tokenizer.json");
        let from_json = tokenizer_json.is_file();
        let mut inner = if from_json {
            let mut inner = Tokenizer::from_file(&tokenizer_json)
                .map_err(|e| tokenizer_error(&tokenizer_json, e))?;
            settings.apply_to_bert_normalizer(&mut inner, dir);
            inner
        } else if dir.join("vocab.txt").is_file() {
            settings.warn_assumed_defaults(dir);
            word_piece(dir, &settings)?
        } else if dir.join("vocab.json").is_file() && dir.join("merges.txt").is_file() {
            byte_level_bpe(dir)?
        } else {
            return Err(LmError::Unsupported {
                path: dir.to_owned(),
                message: "no tokenizer.json, vocab.txt or vocab.json + merges.txt".into(),
            });
        };
        settings.add_tokens(&mut inner, dir, from_json)?;
        let mut tokenizer = Self::from_tokenizer(inner, dir, &settings)?;
        let bert_normalizer = matches!(
            tokenizer.inner.get_normalizer(),
            Some(tokenizers::normalizers::NormalizerWrapper::BertNormalizer(
                _
            ))
        );
        if let Some(lowercase) = settings.do_lower_case
            && lowercase != tokenizer.lowercases
            && !bert_normalizer
        {
            return Err(LmError::Unsupported {
                path: dir.join("tokenizer_config.json"),
                message: format!(
                    "do_lower_case = {lowercase}, but the tokenizer {} lower-case and its normaliser is not BERT's, which the setting would rebuild; remove the setting or fix the tokenizer files",
                    if tokenizer.lowercases {
                        "does"
                    } else {
                        "does not"
                    }
                ),
            });
        }
        tokenizer.model_max_length = settings.max_length();
        Ok(tokenizer)
    }

    fn from_tokenizer(inner: Tokenizer, dir: &Path, settings: &Settings) -> Result<Self, LmError> {
        let find = |configured: Option<&TokenName>, key: &str, pair: (&str, &str)| {
            if let Some(name) = configured {
                let text = name.text();
                return inner
                    .token_to_id(text)
                    .map(|id| SpecialToken {
                        text: text.into(),
                        id,
                    })
                    .ok_or_else(|| LmError::Unsupported {
                        path: dir.to_owned(),
                        message: format!(
                            "{key} `{text}` (special_tokens_map.json / tokenizer_config.json) is not in the tokenizer's vocabulary"
                        ),
                    });
            }
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
            cls: find(
                settings.special.cls_token.as_ref(),
                "cls_token",
                SPECIAL_CANDIDATES[0],
            )?,
            sep: find(
                settings.special.sep_token.as_ref(),
                "sep_token",
                SPECIAL_CANDIDATES[1],
            )?,
            mask: find(
                settings.special.mask_token.as_ref(),
                "mask_token",
                SPECIAL_CANDIDATES[2],
            )?,
            pad: find(
                settings.special.pad_token.as_ref(),
                "pad_token",
                SPECIAL_CANDIDATES[3],
            )?,
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
            model_max_length: None,
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

    /// The tokens of `word` as it reads mid-sentence (after a space for byte-level BPE, as
    /// [`Self::single_token_id`]): one or more, none of them special. `None` for a word that
    /// is empty or tokenises to a special token.
    pub fn word_token_ids(&self, word: &str) -> Option<Vec<u32>> {
        let word = word.trim();
        if word.is_empty() {
            return None;
        }
        let text = if self.marker == WordMarker::ByteLevel {
            format!(" {word}")
        } else {
            word.to_string()
        };
        let ids = self.encode(&text).ok()?;
        (!ids.is_empty() && ids.iter().all(|id| !self.special_ids.contains(id))).then_some(ids)
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

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn word_piece(dir: &Path, settings: &Settings) -> Result<Tokenizer, LmError> {
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
        .with_normalizer(Some(settings.bert_normalizer(None)))
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

/// A special token as the config files write it: a string, or an object with `content`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
enum TokenName {
    Text(String),
    Object { content: String },
}

impl TokenName {
    fn text(&self) -> &str {
        match self {
            TokenName::Text(t) | TokenName::Object { content: t } => t,
        }
    }
}

/// One entry of `added_tokens_decoder` (id → token).
#[derive(Debug, Clone, serde::Deserialize)]
struct AddedTokenEntry {
    content: String,
    #[serde(default)]
    special: bool,
    #[serde(default)]
    lstrip: bool,
    #[serde(default)]
    rstrip: bool,
    #[serde(default)]
    single_word: bool,
    #[serde(default)]
    normalized: Option<bool>,
}

/// What `tokenizer_config.json` (and `special_tokens_map.json`, whose tokens take
/// precedence, and `added_tokens.json`) say that changes token ids. Other keys are ignored.
#[derive(Debug, Clone, Default, serde::Deserialize)]
struct Settings {
    #[serde(default)]
    do_lower_case: Option<bool>,
    #[serde(default)]
    strip_accents: Option<bool>,
    #[serde(default)]
    tokenize_chinese_chars: Option<bool>,
    #[serde(default)]
    model_max_length: Option<f64>,
    #[serde(flatten)]
    special: SpecialTokenNames,
    #[serde(default)]
    added_tokens_decoder: BTreeMap<String, AddedTokenEntry>,
    /// `added_tokens.json` (the slow tokenizers' file: token → id).
    #[serde(skip)]
    added_tokens_file: BTreeMap<String, u32>,
    /// Whether `tokenizer_config.json` exists.
    #[serde(skip)]
    has_config: bool,
}

/// The special tokens' names, as `tokenizer_config.json` and `special_tokens_map.json` give
/// them.
#[derive(Debug, Clone, Default, serde::Deserialize)]
struct SpecialTokenNames {
    #[serde(default)]
    cls_token: Option<TokenName>,
    #[serde(default)]
    sep_token: Option<TokenName>,
    #[serde(default)]
    mask_token: Option<TokenName>,
    #[serde(default)]
    pad_token: Option<TokenName>,
}

impl SpecialTokenNames {
    /// These names, each falling back to `other`'s where this one gives none.
    fn or(self, other: Self) -> Self {
        Self {
            cls_token: self.cls_token.or(other.cls_token),
            sep_token: self.sep_token.or(other.sep_token),
            mask_token: self.mask_token.or(other.mask_token),
            pad_token: self.pad_token.or(other.pad_token),
        }
    }
}

/// A JSON file of `dir`, parsed; `None` when it does not exist.
fn read_json<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>, LmError> {
    let path = dir.join(name);
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|source| LmError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| LmError::Config { path, source })
}

impl Settings {
    fn read(dir: &Path) -> Result<Self, LmError> {
        let mut settings = match read_json::<Settings>(dir, "tokenizer_config.json")? {
            Some(s) => Settings {
                has_config: true,
                ..s
            },
            None => Settings::default(),
        };
        if let Some(map) = read_json::<SpecialTokenNames>(dir, "special_tokens_map.json")? {
            settings.special = map.or(settings.special);
        }
        settings.added_tokens_file = read_json(dir, "added_tokens.json")?.unwrap_or_default();
        Ok(settings)
    }

    /// `model_max_length`, unless absent or transformers' `int(1e30)` "no limit".
    fn max_length(&self) -> Option<usize> {
        self.model_max_length
            .filter(|&n| n.is_finite() && (1.0..1e12).contains(&n))
            .map(|n| n as usize)
    }

    /// BERT's normaliser with these settings; unset ones from `base` (a `tokenizer.json`'s
    /// normaliser), else BERT's defaults (lower-casing, Chinese characters split, accents
    /// stripped when lower-casing).
    fn bert_normalizer(&self, base: Option<&BertNormalizer>) -> BertNormalizer {
        BertNormalizer::new(
            base.is_none_or(|b| b.clean_text),
            self.tokenize_chinese_chars
                .unwrap_or(base.is_none_or(|b| b.handle_chinese_chars)),
            self.strip_accents.or(base.and_then(|b| b.strip_accents)),
            self.do_lower_case
                .unwrap_or(base.is_none_or(|b| b.lowercase)),
        )
    }

    /// A `tokenizer.json` whose `BertNormalizer` disagrees with `tokenizer_config.json` is
    /// rebuilt with the config's values, as transformers' `BertTokenizerFast` does.
    fn apply_to_bert_normalizer(&self, tokenizer: &mut Tokenizer, dir: &Path) {
        use tokenizers::normalizers::NormalizerWrapper;
        let Some(NormalizerWrapper::BertNormalizer(base)) = tokenizer.get_normalizer() else {
            return;
        };
        let wanted = self.bert_normalizer(Some(base));
        let differs = wanted.lowercase != base.lowercase
            || wanted.strip_accents != base.strip_accents
            || wanted.handle_chinese_chars != base.handle_chinese_chars;
        if differs {
            tracing::info!(
                dir = %dir.display(),
                do_lower_case = wanted.lowercase,
                strip_accents = ?wanted.strip_accents,
                tokenize_chinese_chars = wanted.handle_chinese_chars,
                "tokenizer_config.json overrides tokenizer.json's BERT normaliser (as transformers does)"
            );
            tokenizer.with_normalizer(Some(wanted));
        }
    }

    /// A `vocab.txt` directory: says which of BERT's defaults it assumed.
    fn warn_assumed_defaults(&self, dir: &Path) {
        let mut assumed = vec![];
        if self.do_lower_case.is_none() {
            assumed.push("do_lower_case = true (text is lower-cased)");
        }
        if self.tokenize_chinese_chars.is_none() {
            assumed.push("tokenize_chinese_chars = true");
        }
        if self.strip_accents.is_none() {
            assumed.push("strip_accents follows do_lower_case");
        }
        if !assumed.is_empty() {
            tracing::warn!(
                dir = %dir.display(),
                "no tokenizer.json: the WordPiece tokenizer built from vocab.txt assumes BERT's defaults where {} says nothing: {}",
                if self.has_config {
                    "tokenizer_config.json"
                } else {
                    "a tokenizer_config.json (there is none)"
                },
                assumed.join(", ")
            );
        }
    }

    /// Added tokens at their ids: added to a vocabulary-only tokenizer in id order, checked
    /// against a `tokenizer.json` (which holds its own). A token whose id does not fit is
    /// refused by name.
    fn add_tokens(
        &self,
        tokenizer: &mut Tokenizer,
        dir: &Path,
        from_json: bool,
    ) -> Result<(), LmError> {
        let mut wanted: BTreeMap<u32, AddedTokenEntry> = BTreeMap::new();
        for (id, entry) in &self.added_tokens_decoder {
            let Ok(id) = id.parse::<u32>() else {
                return Err(LmError::Unsupported {
                    path: dir.join("tokenizer_config.json"),
                    message: format!("added_tokens_decoder key `{id}` is not a token id"),
                });
            };
            wanted.insert(id, entry.clone());
        }
        for (content, &id) in &self.added_tokens_file {
            wanted.entry(id).or_insert(AddedTokenEntry {
                content: content.clone(),
                special: false,
                lstrip: false,
                rstrip: false,
                single_word: false,
                normalized: None,
            });
        }
        for (id, entry) in wanted {
            match tokenizer.token_to_id(&entry.content) {
                Some(found) if found == id => {}
                Some(found) => {
                    return Err(LmError::Unsupported {
                        path: dir.to_owned(),
                        message: format!(
                            "added token `{}` has id {id} in the tokenizer config but {found} in the tokenizer",
                            entry.content
                        ),
                    });
                }
                None if !from_json && id as usize == tokenizer.get_vocab_size(true) => {
                    let token = AddedToken::from(entry.content.clone(), entry.special)
                        .lstrip(entry.lstrip)
                        .rstrip(entry.rstrip)
                        .single_word(entry.single_word)
                        .normalized(entry.normalized.unwrap_or(!entry.special));
                    if entry.special {
                        tokenizer.add_special_tokens(&[token]);
                    } else {
                        tokenizer.add_tokens(&[token]);
                    }
                }
                None => {
                    return Err(LmError::Unsupported {
                        path: dir.to_owned(),
                        message: format!(
                            "added token `{}` (id {id}) is not in the tokenizer, and cannot be added at that id (the vocabulary has {} entries)",
                            entry.content,
                            tokenizer.get_vocab_size(true)
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}
