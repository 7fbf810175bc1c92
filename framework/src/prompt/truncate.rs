//! Fitting long texts into the model's limit: which fields lose tokens, and which tokens.
//!
//! A sequence longer than `model.max_length` loses tokens from its *fields* only; the
//! template (or the model's own sentence markers) is kept whole. How many tokens each field
//! loses does not depend on the strategy: the longest field loses one token at a time until
//! the sequence fits (ties: the later field), so two fields share the cut the way the
//! paper's code's pair truncation shares it. The strategy only chooses *where* in a field
//! the tokens go:
//!
//! - `end` (the default, and what the paper's code does): keep the field's beginning;
//! - `start`: keep its end (reviews often conclude with their verdict);
//! - `middle`: keep its beginning and its end, half each (the start one token longer when
//!   the kept length is odd), dropping the middle.

use serde::{Deserialize, Serialize};

/// Where a field that is too long loses its tokens (`model.truncate`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Truncate {
    /// Drop tokens from the end of the field (keep its beginning).
    #[default]
    End,
    /// Drop tokens from the start of the field (keep its end).
    Start,
    /// Drop tokens from the middle of the field (keep both ends).
    Middle,
}

impl Truncate {
    /// Whether this is the default (left out of cell ids, so that experiments written
    /// before the option existed keep their ids).
    pub fn is_end(&self) -> bool {
        *self == Self::End
    }

    /// The name as written in experiment files.
    pub fn name(self) -> &'static str {
        match self {
            Self::End => "end",
            Self::Start => "start",
            Self::Middle => "middle",
        }
    }

    /// Removes `cut` tokens from `ids` where this strategy says.
    fn cut(self, ids: &mut Vec<u32>, cut: usize) {
        let cut = cut.min(ids.len());
        match self {
            Self::End => ids.truncate(ids.len() - cut),
            Self::Start => {
                ids.drain(..cut);
            }
            Self::Middle => {
                let head = (ids.len() - cut).div_ceil(2);
                ids.drain(head..head + cut);
            }
        }
    }

    /// Cuts `fields` so that together they hold at most `budget` tokens; returns how many
    /// tokens each field lost (in order). A zero budget empties every field.
    pub fn fit(self, fields: &mut [&mut Vec<u32>], budget: usize) -> Vec<usize> {
        let cuts = cut_counts(&fields.iter().map(|f| f.len()).collect::<Vec<_>>(), budget);
        for (field, &cut) in fields.iter_mut().zip(&cuts) {
            self.cut(field, cut);
        }
        cuts
    }
}

impl std::fmt::Display for Truncate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Tokens each field loses so that the lengths sum to at most `budget`: the longest field
/// (the last of equally long ones) loses one token at a time, so fields end as even as the
/// budget allows. Linear in the excess: a few thousand steps for a long document.
fn cut_counts(lengths: &[usize], budget: usize) -> Vec<usize> {
    let mut left = lengths.to_vec();
    let mut excess = left.iter().sum::<usize>().saturating_sub(budget);
    while excess > 0 {
        // `max_by_key` returns the last of equal maxima; the sum exceeds the budget, so
        // the longest field is non-empty.
        let (longest, _) = left
            .iter()
            .enumerate()
            .max_by_key(|(_, len)| **len)
            .expect("a field is non-empty while over budget");
        left[longest] -= 1;
        excess -= 1;
    }
    lengths
        .iter()
        .zip(&left)
        .map(|(was, now)| was - now)
        .collect()
}

/// A sequence's length limit and how fields are cut to meet it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthLimit {
    /// Longest sequence, in tokens, special tokens and template included.
    pub max_tokens: usize,
    pub truncate: Truncate,
}

impl LengthLimit {
    /// The paper's behaviour: cut fields at their end.
    pub fn at_end(max_tokens: usize) -> Self {
        Self {
            max_tokens,
            truncate: Truncate::End,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn cuts_fit_the_budget_and_spare_the_shorter_fields(
            lengths in proptest::collection::vec(0usize..300, 1..4),
            budget in 0usize..400,
        ) {
            let cuts = cut_counts(&lengths, budget);
            let total: usize = lengths.iter().sum();
            prop_assert_eq!(cuts.iter().sum::<usize>(), total.saturating_sub(budget));
            let left: Vec<usize> = lengths.iter().zip(&cuts).map(|(l, c)| l - c).collect();
            // A field that lost tokens ends no shorter than any other field, less one.
            for (i, &cut) in cuts.iter().enumerate() {
                if cut > 0 {
                    prop_assert!(left.iter().all(|&other| left[i] + 1 >= other));
                }
            }
        }
    }

    fn ids(n: u32) -> Vec<u32> {
        (0..n).collect()
    }

    #[test]
    fn end_keeps_the_beginning() {
        let mut a = ids(10);
        assert_eq!(Truncate::End.fit(&mut [&mut a], 4), [6]);
        assert_eq!(a, [0, 1, 2, 3]);
    }

    #[test]
    fn start_keeps_the_end() {
        let mut a = ids(10);
        Truncate::Start.fit(&mut [&mut a], 4);
        assert_eq!(a, [6, 7, 8, 9]);
    }

    #[test]
    fn middle_keeps_both_ends_the_start_longer() {
        let mut a = ids(10);
        Truncate::Middle.fit(&mut [&mut a], 5);
        assert_eq!(a, [0, 1, 2, 8, 9]);
        let mut b = ids(10);
        Truncate::Middle.fit(&mut [&mut b], 4);
        assert_eq!(b, [0, 1, 8, 9]);
    }

    #[test]
    fn the_longer_field_loses_first_and_a_field_that_fits_is_untouched() {
        let (mut a, mut b) = (ids(3), ids(9));
        let cuts = Truncate::Start.fit(&mut [&mut a, &mut b], 8);
        assert_eq!(cuts, [0, 4]);
        assert_eq!((a.len(), b), (3, vec![4, 5, 6, 7, 8]));
        let (mut a, mut b) = (ids(6), ids(6));
        assert_eq!(Truncate::End.fit(&mut [&mut a, &mut b], 7), [2, 3]);
    }

    #[test]
    fn zero_budget_empties_every_field() {
        let (mut a, mut b) = (ids(3), ids(2));
        Truncate::Middle.fit(&mut [&mut a, &mut b], 0);
        assert!(a.is_empty() && b.is_empty());
    }
}
