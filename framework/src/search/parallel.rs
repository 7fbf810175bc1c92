//! Independent forward/backward passes of the search on several threads.
//!
//! burn's CPU backends parallelise inside large matrix products only; the element-wise
//! work around them (softmax, LayerNorm, GELU, masks, reductions) runs on one core. The
//! search has plenty of independent work — the gradient batches of one iteration, the
//! chunks of a candidate evaluation — so running those side by side uses every core.
//! Results come back in input order and are combined in that order by the caller, so the
//! numbers do not depend on the thread count.

/// Worker threads: one per core (at most `items`).
pub fn workers(items: usize) -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items)
        .max(1)
}

/// `f` over `items` on [`workers`] scoped threads, each taking a contiguous run of items;
/// the results in input order.
pub fn map_ordered<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = workers(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let per_thread = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(per_thread)
            .map(|chunk| {
                let f = &f;
                scope.spawn(move || chunk.iter().map(f).collect::<Vec<R>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("search worker panicked"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_input_order() {
        let items: Vec<usize> = (0..37).collect();
        assert_eq!(
            map_ordered(&items, |x| x * 2),
            (0..37).map(|x| x * 2).collect::<Vec<_>>()
        );
        assert!(map_ordered(&Vec::<usize>::new(), |x| *x).is_empty());
    }
}
