//! Which vocabulary tokens may become triggers or label tokens, and the top-k of a score
//! vector under that filter.

use crate::lm::{LmTokenizer, WordMarker};

/// Filter options for trigger candidates (all off by default, as in the reference).
#[derive(Debug, Clone, Copy, Default)]
pub struct CandidateFilter {
    pub capitalized: bool,
    pub non_alphabetic: bool,
}

/// The word a vocabulary entry spells, without WordPiece `##`, byte-level `Ġ` or
/// SentencePiece `▁` markers, and whether it continues a word (a sub-word piece).
pub fn surface(tokenizer: &LmTokenizer, id: u32) -> (String, bool) {
    let raw = tokenizer.id_to_token(id).unwrap_or_default();
    let starts_word = |marker: char| match raw.strip_prefix(marker) {
        Some(rest) => (rest.to_string(), false),
        None => (raw.clone(), true),
    };
    match tokenizer.marker {
        WordMarker::ByteLevel => starts_word('Ġ'),
        WordMarker::SentencePiece => starts_word('▁'),
        WordMarker::Continuation => match raw.strip_prefix("##") {
            Some(rest) => (rest.to_string(), true),
            None => (raw.clone(), false),
        },
    }
}

/// `allowed[id]` for every id below `vocab_size`: never special tokens, `[unusedN]`
/// placeholders or the `excluded` ids (label tokens, gold objects); optionally no
/// capitalised or non-alphabetic tokens.
pub fn allowed_tokens(
    tokenizer: &LmTokenizer,
    vocab_size: usize,
    excluded: &[u32],
    filter: CandidateFilter,
) -> Vec<bool> {
    let mut allowed = vec![true; vocab_size];
    for id in 0..vocab_size as u32 {
        let raw = tokenizer.id_to_token(id).unwrap_or_default();
        let (word, _) = surface(tokenizer, id);
        let bad = raw.is_empty()
            || (raw.starts_with('[') && raw.ends_with(']'))
            || (raw.starts_with('<') && raw.ends_with('>'))
            || (filter.capitalized && word.chars().next().is_some_and(char::is_uppercase))
            || (filter.non_alphabetic
                && (word.is_empty() || !word.chars().all(char::is_alphabetic)));
        allowed[id as usize] = !bad;
    }
    for &id in tokenizer.special_ids.iter().chain(excluded) {
        if let Some(slot) = allowed.get_mut(id as usize) {
            *slot = false;
        }
    }
    allowed
}

/// Indices of the `k` highest scores among allowed entries, best first (ties by id).
pub fn top_k(scores: &[f32], allowed: &[bool], k: usize) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..scores.len() as u32)
        .filter(|&i| {
            allowed.get(i as usize).copied().unwrap_or(false) && !scores[i as usize].is_nan()
        })
        .collect();
    let k = k.min(ids.len());
    if k == 0 {
        return vec![];
    }
    let by_score = |a: &u32, b: &u32| {
        scores[*b as usize]
            .total_cmp(&scores[*a as usize])
            .then(a.cmp(b))
    };
    ids.select_nth_unstable_by(k - 1, by_score);
    ids.truncate(k);
    ids.sort_by(by_score);
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_respects_filter_and_order() {
        let scores = [0.1, 0.9, 0.5, 0.7, f32::NAN];
        let allowed = [true, false, true, true, true];
        assert_eq!(top_k(&scores, &allowed, 2), vec![3, 2]);
        assert_eq!(top_k(&scores, &allowed, 10), vec![3, 2, 0]);
    }
}
