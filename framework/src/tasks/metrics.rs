//! Metrics on plain scores. Ranks are pessimistic by default: a candidate scoring the same as
//! the gold answer counts as ranked above it, so ties count as wrong (as the paper's code's
//! accuracy does). LAMA's evaluation protocol, the default for `lama` and `fact_probe`
//! (`task.ranking`), ranks ties in candidate order ([`rank_in_order`]) and scores MRR only
//! within the top [`LAMA_MRR_DEPTH`]; the task loaders remove its duplicate facts.

use serde::{Deserialize, Serialize};

/// 0-based rank of `gold` among `scores`.
pub fn pessimistic_rank(scores: &[f32], gold: usize) -> usize {
    let g = scores[gold];
    scores
        .iter()
        .enumerate()
        .filter(|&(i, &s)| i != gold && (s >= g || s.is_nan()))
        .count()
}

/// 0-based rank of `gold` when ties are broken by position, as a stable sort of `scores`
/// (descending) orders them: higher scores first, and among equal scores the earlier one.
pub fn rank_in_order(scores: &[f32], gold: usize) -> usize {
    let g = scores[gold];
    scores
        .iter()
        .enumerate()
        .filter(|&(i, &s)| i != gold && (s > g || (s == g && i < gold) || s.is_nan()))
        .count()
}

/// How deep LAMA's evaluation looks for the gold answer when it computes MRR (its
/// `run_evaluation` ranks the top 10,000 predictions; a deeper gold scores 0).
pub const LAMA_MRR_DEPTH: usize = 10_000;

/// Fact-retrieval metrics over examples; `None` ranks (answer not scorable) count as misses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetrievalMetrics {
    pub p_at_1: f64,
    pub p_at_10: f64,
    pub mrr: f64,
}

pub fn retrieval(ranks: &[Option<usize>]) -> RetrievalMetrics {
    retrieval_within(ranks, None)
}

/// [`retrieval`] with MRR counting only golds ranked within `mrr_depth` (deeper: 0).
pub fn retrieval_within(ranks: &[Option<usize>], mrr_depth: Option<usize>) -> RetrievalMetrics {
    let n = ranks.len().max(1) as f64;
    let hits = |k: usize| ranks.iter().filter(|r| r.is_some_and(|r| r < k)).count() as f64 / n;
    let depth = mrr_depth.unwrap_or(usize::MAX);
    RetrievalMetrics {
        p_at_1: hits(1),
        p_at_10: hits(10),
        mrr: ranks
            .iter()
            .map(|r| match r {
                Some(r) if *r < depth => 1.0 / (r + 1) as f64,
                _ => 0.0,
            })
            .sum::<f64>()
            / n,
    }
}

/// Accuracy from ranks: rank 0 is correct.
pub fn accuracy(ranks: &[usize]) -> f64 {
    ranks.iter().filter(|&&r| r == 0).count() as f64 / ranks.len().max(1) as f64
}

/// Accuracy of row-major logits `[n, classes]` against gold class indices (ties wrong).
pub fn accuracy_of_logits(logits: &[f32], gold: &[usize]) -> f64 {
    let classes = logits.len() / gold.len().max(1);
    let ranks: Vec<usize> = logits
        .chunks(classes.max(1))
        .zip(gold)
        .map(|(row, &g)| pessimistic_rank(row, g))
        .collect();
    accuracy(&ranks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_count_as_wrong() {
        assert_eq!(pessimistic_rank(&[0.5, 0.5], 0), 1);
        assert_eq!(pessimistic_rank(&[0.6, 0.5], 0), 0);
        assert_eq!(pessimistic_rank(&[0.1, 0.5, 0.3], 0), 2);
    }

    #[test]
    fn ties_in_order_go_to_the_earlier_candidate() {
        assert_eq!(rank_in_order(&[0.5, 0.5], 0), 0);
        assert_eq!(rank_in_order(&[0.5, 0.5], 1), 1);
        assert_eq!(rank_in_order(&[0.1, 0.5, 0.5, 0.7], 2), 2);
        assert_eq!(rank_in_order(&[0.1, 0.5, 0.3], 0), 2);
    }

    #[test]
    fn lama_mrr_ignores_golds_below_its_depth() {
        let ranks = [
            Some(0),
            Some(LAMA_MRR_DEPTH - 1),
            Some(LAMA_MRR_DEPTH),
            None,
        ];
        let m = retrieval_within(&ranks, Some(LAMA_MRR_DEPTH));
        let expected = (1.0 + 1.0 / LAMA_MRR_DEPTH as f64) / 4.0;
        assert!((m.mrr - expected).abs() < 1e-15);
        assert!(retrieval(&ranks).mrr > m.mrr);
        assert_eq!(retrieval(&ranks).p_at_1, m.p_at_1);
    }

    #[test]
    fn retrieval_metrics_by_hand() {
        let m = retrieval(&[Some(0), Some(1), Some(12), None]);
        assert_eq!(m.p_at_1, 0.25);
        assert_eq!(m.p_at_10, 0.5);
        assert!((m.mrr - (1.0 + 0.5 + 1.0 / 13.0) / 4.0).abs() < 1e-12);
    }
}
