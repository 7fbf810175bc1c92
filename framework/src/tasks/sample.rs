//! Seeded sampling to a data budget. The same (seed, purpose, size) gives the same examples
//! on every machine: ChaCha8 is portable and the algorithm below is fixed.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{Example, TaskError};

/// A generator for one purpose (`"train"`, `"dev"`, ...) of one seed. Different purposes
/// get independent streams so that adding one never shifts another.
pub fn rng(seed: u64, purpose: &str) -> ChaCha8Rng {
    // FNV-1a of the purpose, mixed with the seed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in purpose.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    ChaCha8Rng::seed_from_u64(h ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// How many of each class to draw: proportional (largest remainder) or equal.
fn allocation(
    counts: &BTreeMap<&str, usize>,
    size: usize,
    balance: bool,
) -> BTreeMap<String, usize> {
    let total: usize = counts.values().sum();
    let classes = counts.len();
    let mut alloc: Vec<(String, usize, f64)> = counts
        .iter()
        .map(|(label, &n)| {
            let exact = if balance {
                size as f64 / classes as f64
            } else {
                size as f64 * n as f64 / total as f64
            };
            (
                label.to_string(),
                exact.floor() as usize,
                exact - exact.floor(),
            )
        })
        .collect();
    let mut left = size - alloc.iter().map(|a| a.1).sum::<usize>();
    let mut order: Vec<usize> = (0..alloc.len()).collect();
    order.sort_by(|&a, &b| alloc[b].2.total_cmp(&alloc[a].2).then(a.cmp(&b)));
    for i in order.into_iter().cycle().take(alloc.len() * 2) {
        if left == 0 {
            break;
        }
        alloc[i].1 += 1;
        left -= 1;
    }
    alloc.into_iter().map(|(l, n, _)| (l, n)).collect()
}

/// Draws `size` examples stratified by label (or balanced across labels), removing them
/// from `pool`. The result is shuffled.
pub fn stratified(
    pool: &mut Vec<Example>,
    size: usize,
    balance: bool,
    rng: &mut ChaCha8Rng,
    what: &str,
) -> Result<Vec<Example>, TaskError> {
    // An empty pool has no classes to allocate to: without this check it would give nothing.
    if size > pool.len() {
        return Err(TaskError::Budget {
            what: what.to_string(),
            asked: size,
            available: pool.len(),
        });
    }
    let mut by_label: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in pool.iter().enumerate() {
        by_label.entry(e.label.as_str()).or_default().push(i);
    }
    let counts: BTreeMap<&str, usize> = by_label.iter().map(|(l, v)| (*l, v.len())).collect();
    let alloc = allocation(&counts, size, balance);
    let mut chosen = vec![];
    for (label, indices) in by_label.iter_mut() {
        let want = alloc[*label];
        if want > indices.len() {
            return Err(TaskError::Budget {
                what: format!("{what} (label `{label}`)"),
                asked: want,
                available: indices.len(),
            });
        }
        indices.shuffle(rng);
        chosen.extend_from_slice(&indices[..want]);
    }
    Ok(take(pool, chosen, rng))
}

/// Draws `size` examples uniformly at random, removing them from `pool`.
pub fn uniform(
    pool: &mut Vec<Example>,
    size: usize,
    rng: &mut ChaCha8Rng,
    what: &str,
) -> Result<Vec<Example>, TaskError> {
    if size > pool.len() {
        return Err(TaskError::Budget {
            what: what.to_string(),
            asked: size,
            available: pool.len(),
        });
    }
    let mut indices: Vec<usize> = (0..pool.len()).collect();
    indices.shuffle(rng);
    indices.truncate(size);
    Ok(take(pool, indices, rng))
}

/// Train and dev sizes when both come from one pool of `available` examples and the
/// budget is a cap: the asked sizes when they fit, otherwise the pool split in the same
/// proportion (at least one dev example when there are two or more), like the paper's
/// "at most 1000 facts, split 80-20".
pub fn capped_split(available: usize, train: usize, dev: usize) -> (usize, usize) {
    if train + dev <= available {
        return (train, dev);
    }
    let scaled_dev = (available * dev).div_ceil(train + dev);
    let dev = scaled_dev.clamp(usize::from(available >= 2), available);
    (available - dev, dev)
}

/// Train, dev and evaluation examples.
pub type Splits = (Vec<Example>, Vec<Example>, Vec<Example>);

/// The budget of a classification task: `train_size` and `dev_size` examples drawn
/// (stratified, seeded) from their pools — dev from the training pool when it has none of
/// its own (named in errors), disjoint from train — and the evaluation split capped at `test_size` by a
/// fixed, seed-independent subsample. `what` names the task in errors. Under `per_class`
/// (the few-shot protocol) both are drawn class-balanced from the training pool.
pub fn classification_budget(
    spec: &super::TaskSpec,
    balance: bool,
    seed: u64,
    what: &str,
    train_pool: &mut Vec<Example>,
    dev_pool: Option<(&mut Vec<Example>, &str)>,
    mut test: Vec<Example>,
) -> Result<Splits, TaskError> {
    let budget = spec.budget();
    let (balance, dev_pool) = match spec.per_class() {
        Some(k) => {
            check_per_class(spec, k.get(), train_pool)?;
            (true, None)
        }
        None => (balance, dev_pool),
    };
    let train = stratified(
        train_pool,
        budget.train_size.get(),
        balance,
        &mut rng(seed, "train"),
        &format!("{what} train"),
    )?;
    let (dev_pool, dev_what) = match dev_pool {
        Some((pool, name)) => (pool, format!("{what} dev ({name})")),
        None => (train_pool, format!("{what} dev")),
    };
    let dev = stratified(
        dev_pool,
        budget.dev_size.get(),
        balance,
        &mut rng(seed, "dev"),
        &dev_what,
    )?;
    if let Some(n) = budget.test_size {
        test = stratified(
            &mut test,
            n.get(),
            false,
            &mut rng(0, "test"),
            &format!("{what} evaluation"),
        )?;
    }
    Ok((train, dev, test))
}

/// `per_class = K` asks for K examples of each class in train and in dev: both sizes must
/// be K × the classes of the training pool.
fn check_per_class(spec: &super::TaskSpec, k: usize, pool: &[Example]) -> Result<(), TaskError> {
    let classes = pool
        .iter()
        .map(|e| e.label.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let want = k * classes;
    let (train, dev) = (spec.budget().train_size.get(), spec.budget().dev_size.get());
    if train == want && dev == want {
        return Ok(());
    }
    Err(TaskError::Setting {
        key: "task.per_class".into(),
        message: format!(
            "task.per_class = {k} draws {k} examples of each of the {classes} classes for training and as many for dev: set task.train_size and task.dev_size to {want} (they are {train} and {dev})"
        ),
    })
}

/// The budget of a fact-retrieval task: `train_size` and `dev_size` facts drawn uniformly
/// (seeded) — dev from its own pool when there is one, else from what the train draw left —
/// and the evaluation facts capped at `test_size` by a fixed, seed-independent subsample.
/// Under `at_most` the sizes are caps: a shared pool is split in the asked proportion
/// ([`capped_split`]), separate pools are each capped. `what` names the task in errors.
pub fn fact_budget(
    spec: &super::TaskSpec,
    seed: u64,
    what: &str,
    train_pool: &mut Vec<Example>,
    dev_pool: Option<&mut Vec<Example>>,
    mut test: Vec<Example>,
) -> Result<Splits, TaskError> {
    let budget = spec.budget();
    let (train_size, dev_size) = (budget.train_size.get(), budget.dev_size.get());
    let (train_size, dev_size) = match &dev_pool {
        _ if !spec.at_most() => (train_size, dev_size),
        None => capped_split(train_pool.len(), train_size, dev_size),
        Some(dev) => (train_size.min(train_pool.len()), dev_size.min(dev.len())),
    };
    let train = uniform(
        train_pool,
        train_size,
        &mut rng(seed, "train"),
        &format!("{what} train"),
    )?;
    let dev_pool = dev_pool.unwrap_or(train_pool);
    let dev = uniform(
        dev_pool,
        dev_size,
        &mut rng(seed, "dev"),
        &format!("{what} dev"),
    )?;
    if let Some(n) = budget.test_size
        && n.get() < test.len()
    {
        test = uniform(&mut test, n.get(), &mut rng(0, "test"), "evaluation")?;
    }
    Ok((train, dev, test))
}

/// Down-samples every class to the size of the smallest (SICK-E 3-way balanced).
pub fn equalize_classes(examples: Vec<Example>, rng: &mut ChaCha8Rng) -> Vec<Example> {
    let mut by_label: BTreeMap<String, Vec<Example>> = BTreeMap::new();
    for e in examples {
        by_label.entry(e.label.clone()).or_default().push(e);
    }
    let min = by_label.values().map(Vec::len).min().unwrap_or(0);
    let mut out = vec![];
    for (_, mut group) in by_label {
        group.shuffle(rng);
        group.truncate(min);
        out.extend(group);
    }
    out.shuffle(rng);
    out
}

fn take(pool: &mut Vec<Example>, mut chosen: Vec<usize>, rng: &mut ChaCha8Rng) -> Vec<Example> {
    chosen.sort_unstable();
    let mut taken = Vec::with_capacity(chosen.len());
    for &i in chosen.iter().rev() {
        taken.push(pool.swap_remove(i));
    }
    taken.shuffle(rng);
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(pos: usize, neg: usize) -> Vec<Example> {
        (0..pos + neg)
            .map(|i| Example {
                fields: vec![("sentence".into(), format!("s{i}"))],
                label: if i < pos { "1".into() } else { "0".into() },
            })
            .collect()
    }

    #[test]
    fn stratified_keeps_proportions_and_is_deterministic() {
        let draw = || stratified(&mut pool(70, 30), 10, false, &mut rng(3, "train"), "t").unwrap();
        let a = draw();
        assert_eq!(a.iter().filter(|e| e.label == "1").count(), 7);
        assert_eq!(a, draw());
        let other = stratified(&mut pool(70, 30), 10, false, &mut rng(4, "train"), "t").unwrap();
        assert_ne!(a, other);
    }

    #[test]
    fn balanced_draws_equal_classes_and_removes_from_pool() {
        let mut p = pool(70, 30);
        let a = stratified(&mut p, 10, true, &mut rng(0, "train"), "t").unwrap();
        assert_eq!(a.iter().filter(|e| e.label == "1").count(), 5);
        assert_eq!(p.len(), 90);
        assert!(a.iter().all(|e| !p.contains(e)));
    }

    #[test]
    fn per_class_draws_k_of_each_class_for_train_and_dev_from_the_training_pool() {
        let eight = std::num::NonZeroUsize::new(8).unwrap();
        let mut spec = crate::tasks::TaskSpec::Sst2(crate::tasks::Sst2Task {
            budget: crate::tasks::Budget::new(eight, eight),
            per_class: std::num::NonZeroUsize::new(4),
        });
        let (mut train_pool, mut own_dev) = (pool(70, 30), pool(5, 5));
        let (train, dev, _) = classification_budget(
            &spec,
            false,
            13,
            "t",
            &mut train_pool,
            Some((&mut own_dev, "dev")),
            pool(2, 2),
        )
        .unwrap();
        for split in [&train, &dev] {
            assert_eq!(split.iter().filter(|e| e.label == "1").count(), 4);
            assert_eq!(split.iter().filter(|e| e.label == "0").count(), 4);
        }
        // Dev came from the training pool (disjoint from train), not the task's own dev pool.
        assert_eq!(own_dev.len(), 10);
        assert_eq!(train_pool.len(), 100 - 16);
        assert!(dev.iter().all(|e| !train.contains(e)));
        // Sizes that contradict K × classes are refused, naming the keys.
        spec.budget_mut().dev_size = std::num::NonZeroUsize::new(200).unwrap();
        let err = classification_budget(&spec, false, 13, "t", &mut pool(70, 30), None, vec![])
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("set task.train_size and task.dev_size to 8 (they are 8 and 200)"),
            "{err}"
        );
    }

    #[test]
    fn over_budget_is_an_error() {
        let err =
            stratified(&mut pool(5, 1), 4, true, &mut rng(0, "x"), "SST-2 train").unwrap_err();
        assert!(
            err.to_string().contains("(label `0`): asked for 2"),
            "{err}"
        );
        let err =
            stratified(&mut pool(3, 3), 10, false, &mut rng(0, "x"), "SST-2 train").unwrap_err();
        assert!(err.to_string().contains("asked for 10"), "{err}");
        // An empty pool has no class to fall short in: still an error, not zero examples.
        let err = stratified(&mut vec![], 1, false, &mut rng(0, "x"), "dev").unwrap_err();
        assert!(err.to_string().contains("only 0"), "{err}");
    }
}
