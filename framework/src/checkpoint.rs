//! Checkpoints of long cells. A search or a fine-tuning run that is killed (a Slurm time
//! limit, a preempted node, `kill -9`) would otherwise start from zero on the next attempt,
//! and a cell longer than the gap between kills would never finish. So the loop hands its
//! whole state, at an iteration (search) or epoch (fine-tuning) boundary, to a
//! [`Checkpoints`] every so often, and asks it for a saved state before it starts: resumed,
//! it computes exactly what an uninterrupted run computes (the state holds the random
//! generators' positions too), apart from wall times.
//!
//! The loops know only this trait; where and how often states are kept is the runner's
//! business (`store::FileCheckpoints`: one file per cell, written atomically, deleted once the
//! cell's record is written). A state that cannot be read back is never an error: the cell
//! starts over, as it would without checkpoints.

/// Where a loop saves its state and finds it again.
pub trait Checkpoints<S> {
    /// The state an earlier, interrupted attempt of this cell saved, if there is a usable one.
    fn resume(&mut self) -> Option<S>;
    /// Whether a save is due now (the interval has passed since the last save).
    fn due(&self) -> bool;
    /// Saves `state`, replacing the previous one. Failures are logged, never fatal: a
    /// checkpoint is an optimisation of a re-run, not a result.
    fn save(&mut self, state: &S);
}

/// No checkpoints: nothing is resumed, nothing saved (benchmarks, `eval`, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCheckpoints;

impl<S> Checkpoints<S> for NoCheckpoints {
    fn resume(&mut self) -> Option<S> {
        None
    }

    fn due(&self) -> bool {
        false
    }

    fn save(&mut self, _state: &S) {}
}

/// A random generator's position (ChaCha's 68-bit word position as two halves), enough to
/// recreate a generator whose seed is known. The default is a fresh generator's (0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RngPosition {
    high: u64,
    low: u64,
}

impl RngPosition {
    pub fn of(rng: &rand_chacha::ChaCha8Rng) -> Self {
        let pos = rng.get_word_pos();
        Self {
            high: (pos >> 64) as u64,
            low: pos as u64,
        }
    }

    /// Moves `rng` (seeded as the saved one was) to this position.
    pub fn restore(self, rng: &mut rand_chacha::ChaCha8Rng) {
        rng.set_word_pos(((self.high as u128) << 64) | self.low as u128);
    }
}

#[cfg(test)]
mod tests {
    use rand::RngCore;

    use super::RngPosition;

    #[test]
    fn a_restored_generator_continues_the_same_stream() {
        let mut a = crate::tasks::sample::rng(3, "t");
        assert_eq!(RngPosition::of(&a), RngPosition::default());
        for _ in 0..17 {
            a.next_u32();
        }
        let pos = RngPosition::of(&a);
        let mut b = crate::tasks::sample::rng(3, "t");
        pos.restore(&mut b);
        let next: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        assert_eq!(next, (0..5).map(|_| b.next_u64()).collect::<Vec<_>>());
    }
}
