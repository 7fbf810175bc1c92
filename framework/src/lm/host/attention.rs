//! Multi-head attention over packed rows, read in place from a fused `[q | k | v]` projection
//! (`[tokens, 3h]`) through strided products, forward and input-gradient backward. Shared by
//! BERT's post-norm layer and ModernBERT's pre-norm one (whose queries and keys arrive
//! already rotated, and whose local layers pass a window).

use super::Packed;
use super::kernels::{self, View, matmul};
use super::layer::Queries;

/// The attention of one layer: its head count, and for a local layer the largest distance
/// (in row positions) a query attends across.
#[derive(Debug, Clone, Copy)]
pub struct Attention {
    pub heads: usize,
    pub window: Option<usize>,
}

impl Attention {
    /// `qkv [tokens, 3h]` → the context at `queries`, `[queries, h]`, and with `keep_probs` every row's and
    /// head's attention weights (`[queries, keys]` blocks, row after row, head after head)
    /// for [`Self::backward`]. Keys outside the window score `−∞`, so their weight is
    /// exactly 0.
    pub fn forward(
        &self,
        qkv: &[f32],
        h: usize,
        packed: &Packed,
        queries: &Queries,
        keep_probs: bool,
    ) -> (Vec<f32>, Vec<f32>) {
        let head_dim = h / self.heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let starts = &packed.starts;
        let mut context = vec![0.0; queries.count(starts) * h];
        let mut probs_all = vec![];
        let mut scores = vec![];
        for r in 0..starts.len() - 1 {
            let (start, len) = (starts[r], starts[r + 1] - starts[r]);
            let (q0, nq, out0) = queries.of_row(starts, r);
            for head in 0..self.heads {
                let col = head * head_dim;
                scores.clear();
                scores.resize(nq * len, 0.0);
                matmul(
                    &mut scores,
                    len,
                    View::block(qkv, 3 * h, (q0, nq), (col, head_dim)),
                    View::block(qkv, 3 * h, (start, len), (h + col, head_dim)).t(),
                    false,
                );
                scores.iter_mut().for_each(|s| *s *= scale);
                if let Some(window) = self.window {
                    for (qi, row) in scores.chunks_mut(len).enumerate() {
                        let query = packed.positions[q0 + qi];
                        for (key, s) in row.iter_mut().enumerate() {
                            if query.abs_diff(key) > window {
                                *s = f32::NEG_INFINITY;
                            }
                        }
                    }
                }
                kernels::softmax_rows(&mut scores, len);
                matmul(
                    &mut context[out0 * h + col..],
                    h,
                    View::dense(&scores, nq, len),
                    View::block(qkv, 3 * h, (start, len), (2 * h + col, head_dim)),
                    false,
                );
                if keep_probs {
                    probs_all.extend_from_slice(&scores);
                }
            }
        }
        (context, probs_all)
    }

    /// The gradient w.r.t. the fused projection `[tokens, 3h]`, given the gradient w.r.t.
    /// the context at `queries` and the forward pass's `qkv` and `probs`. (Keys outside the
    /// window have weight 0, so the softmax's backward gives their scores no gradient.)
    pub fn backward(
        &self,
        d_context: &[f32],
        qkv: &[f32],
        probs: &[f32],
        h: usize,
        starts: &[usize],
        queries: &Queries,
    ) -> Vec<f32> {
        let tokens = starts.last().copied().unwrap_or(0);
        let head_dim = h / self.heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let mut d_qkv = vec![0.0; tokens * 3 * h];
        let mut probs_at = 0;
        let mut d_scores = vec![];
        for r in 0..starts.len() - 1 {
            let (start, len) = (starts[r], starts[r + 1] - starts[r]);
            let (q0, nq, out0) = queries.of_row(starts, r);
            for head in 0..self.heads {
                let col = head * head_dim;
                let probs = &probs[probs_at..probs_at + nq * len];
                probs_at += nq * len;
                let d_ctx = View::block(d_context, h, (out0, nq), (col, head_dim));
                // d values += Pᵀ · d context
                matmul(
                    &mut d_qkv[start * 3 * h + 2 * h + col..],
                    3 * h,
                    View::dense(probs, nq, len).t(),
                    d_ctx,
                    true,
                );
                // d P = d context · Vᵀ, then through the softmax and the scale.
                d_scores.clear();
                d_scores.resize(nq * len, 0.0);
                matmul(
                    &mut d_scores,
                    len,
                    d_ctx,
                    View::block(qkv, 3 * h, (start, len), (2 * h + col, head_dim)).t(),
                    false,
                );
                kernels::softmax_backward_rows(&mut d_scores, probs, len);
                d_scores.iter_mut().for_each(|d| *d *= scale);
                // d queries += dS · K ; d keys += dSᵀ · Q
                matmul(
                    &mut d_qkv[q0 * 3 * h + col..],
                    3 * h,
                    View::dense(&d_scores, nq, len),
                    View::block(qkv, 3 * h, (start, len), (h + col, head_dim)),
                    true,
                );
                matmul(
                    &mut d_qkv[start * 3 * h + h + col..],
                    3 * h,
                    View::dense(&d_scores, nq, len).t(),
                    View::block(qkv, 3 * h, (q0, nq), (col, head_dim)),
                    true,
                );
            }
        }
        d_qkv
    }
}

/// Adds `d_residual` (`[queries, h]`, one row per query) into `d_x` (`[tokens, h]`) at the
/// query tokens: the residual around attention reaches the input there.
pub fn add_at_queries(
    d_x: &mut [f32],
    d_residual: &[f32],
    h: usize,
    starts: &[usize],
    queries: &Queries,
) {
    for r in 0..starts.len() - 1 {
        let (q0, nq, out0) = queries.of_row(starts, r);
        let src = &d_residual[out0 * h..(out0 + nq) * h];
        d_x[q0 * h..(q0 + nq) * h]
            .iter_mut()
            .zip(src)
            .for_each(|(d, s)| *d += s);
    }
}
