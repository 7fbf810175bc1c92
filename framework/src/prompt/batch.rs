//! Padding encoded prompts into rectangular batches (plain `Vec`s; the search turns them
//! into tensors on its device).

use super::Encoded;

/// A padded batch of `rows` sequences of `seq_len` tokens, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub rows: usize,
    pub seq_len: usize,
    pub ids: Vec<u32>,
    pub segment_ids: Vec<u32>,
    /// 1.0 for real tokens, 0.0 for padding.
    pub attention_mask: Vec<f32>,
    pub predict_positions: Vec<usize>,
    /// `rows × num_triggers` positions, row-major.
    pub trigger_positions: Vec<usize>,
    pub num_triggers: usize,
}

impl Batch {
    /// Pads `examples` to the longest one with `pad_id`.
    pub fn pad(examples: &[&Encoded], pad_id: u32) -> Self {
        let seq_len = examples.iter().map(|e| e.ids.len()).max().unwrap_or(0);
        let num_triggers = examples.first().map_or(0, |e| e.trigger_positions.len());
        let mut batch = Self {
            rows: examples.len(),
            seq_len,
            ids: Vec::with_capacity(examples.len() * seq_len),
            segment_ids: Vec::with_capacity(examples.len() * seq_len),
            attention_mask: Vec::with_capacity(examples.len() * seq_len),
            predict_positions: Vec::with_capacity(examples.len()),
            trigger_positions: Vec::with_capacity(examples.len() * num_triggers),
            num_triggers,
        };
        for e in examples {
            let pad = seq_len - e.ids.len();
            batch.ids.extend(
                e.ids
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(pad_id, pad)),
            );
            batch.segment_ids.extend(
                e.segment_ids
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(0, pad)),
            );
            batch
                .attention_mask
                .extend(std::iter::repeat_n(1.0, e.ids.len()).chain(std::iter::repeat_n(0.0, pad)));
            batch.predict_positions.push(e.predict_position);
            batch.trigger_positions.extend(&e.trigger_positions);
        }
        batch
    }

    /// The same batch with trigger slot `slot` set to `token` in every row.
    pub fn with_trigger(&self, slot: usize, token: u32) -> Self {
        let mut out = self.clone();
        for row in 0..self.rows {
            let pos = self.trigger_positions[row * self.num_triggers + slot];
            out.ids[row * self.seq_len + pos] = token;
        }
        out
    }

    /// Stacks batches with equal `seq_len` row-wise (candidates × examples in one pass).
    pub fn concat(batches: &[Batch]) -> Self {
        let first = &batches[0];
        let mut out = Self {
            rows: 0,
            seq_len: first.seq_len,
            ids: vec![],
            segment_ids: vec![],
            attention_mask: vec![],
            predict_positions: vec![],
            trigger_positions: vec![],
            num_triggers: first.num_triggers,
        };
        for b in batches {
            assert_eq!(
                b.seq_len, first.seq_len,
                "concat needs equal sequence lengths"
            );
            out.rows += b.rows;
            out.ids.extend(&b.ids);
            out.segment_ids.extend(&b.segment_ids);
            out.attention_mask.extend(&b.attention_mask);
            out.predict_positions.extend(&b.predict_positions);
            out.trigger_positions.extend(&b.trigger_positions);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(ids: &[u32], triggers: &[usize], predict: usize) -> Encoded {
        Encoded {
            ids: ids.to_vec(),
            segment_ids: vec![0; ids.len()],
            trigger_positions: triggers.to_vec(),
            predict_position: predict,
            cut_tokens: 0,
        }
    }

    #[test]
    fn pads_to_longest_and_masks_padding() {
        let a = enc(&[1, 5, 6, 7, 2], &[2, 3], 4);
        let b = enc(&[1, 5, 6, 2], &[1, 2], 3);
        let batch = Batch::pad(&[&a, &b], 0);
        assert_eq!(batch.seq_len, 5);
        assert_eq!(batch.ids, vec![1, 5, 6, 7, 2, 1, 5, 6, 2, 0]);
        assert_eq!(batch.attention_mask[5..], [1.0, 1.0, 1.0, 1.0, 0.0]);
        assert_eq!(batch.trigger_positions, vec![2, 3, 1, 2]);
    }

    #[test]
    fn with_trigger_replaces_only_that_slot() {
        let a = enc(&[1, 5, 6, 7, 2], &[2, 3], 4);
        let batch = Batch::pad(&[&a], 0).with_trigger(1, 99);
        assert_eq!(batch.ids, vec![1, 5, 6, 99, 2]);
    }
}
