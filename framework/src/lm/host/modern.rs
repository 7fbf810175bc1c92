//! ModernBERT's pre-norm layer on packed sequences, forward and input-gradient backward: the
//! host engine's twin of `lm::modern::ModernLayer` (see that module for the network).
//!
//! Packing suits it as it does BERT's layer: positions count from the start of each row, so a
//! token's rotary angle and its local window are those of the padded batch. Scores outside a
//! local layer's window are `−∞` before the softmax, so their weight is exactly 0, as with
//! burn's additive mask in `f32`, and the backward pass sends them no gradient.

use super::Packed;
use super::kernels::{self, Dense, Norm, NormCache, View, matmul};
use super::layer::Queries;

#[derive(Debug, Clone)]
pub struct HostModernLayer {
    /// `None` in the first layer.
    attention_norm: Option<Norm>,
    /// `Wqkv [h, 3h]`: queries, keys and values side by side.
    qkv: Dense,
    attention_output: Dense,
    mlp_norm: Norm,
    /// `Wi [h, 2i]`: the GeGLU's input and gate side by side.
    mlp_in: Dense,
    mlp_out: Dense,
    heads: usize,
    /// `θ^(−2k/d)` for `k < d/2` (`d` the head size), in `f32` as the burn model computes it.
    inv_freq: Vec<f32>,
    /// `Some(w)` for a local layer: keys farther than `w` positions are not attended.
    window: Option<usize>,
}

/// Activations of one layer kept for its backward pass.
#[derive(Debug, Clone, Default)]
pub struct ModernCache {
    attention_norm: NormCache,
    /// The fused projection with the rotation applied to queries and keys.
    qkv: Vec<f32>,
    probs: Vec<f32>,
    mlp_norm: NormCache,
    /// `Wi`'s output `[queries, 2i]`: the activation's input, then the gate.
    gated: Vec<f32>,
}

/// The parts of a [`HostModernLayer`], as the model's weights give them.
pub struct ModernParts {
    pub attention_norm: Option<Norm>,
    pub qkv: Dense,
    pub attention_output: Dense,
    pub mlp_norm: Norm,
    pub mlp_in: Dense,
    pub mlp_out: Dense,
    pub heads: usize,
    pub rope_theta: f64,
    pub window: Option<usize>,
}

/// `(cos, sin)` of every position's `d/2` angles, `[positions, d/2]` (computed once per
/// forward or backward pass, not once per token and head).
fn rotary_table(inv_freq: &[f32], positions: usize) -> Vec<(f32, f32)> {
    (0..positions)
        .flat_map(|p| {
            inv_freq.iter().map(move |f| {
                let angle = p as f32 * f;
                (angle.cos(), angle.sin())
            })
        })
        .collect()
}

/// Rotates every head of one token's query or key in place, `angles` being its position's
/// row of [`rotary_table`]: `[x1 | x2]` → `[x1·cos − x2·sin | x2·cos + x1·sin]`.
fn rotate(v: &mut [f32], head_dim: usize, angles: &[(f32, f32)]) {
    let half = head_dim / 2;
    for head in v.chunks_mut(head_dim) {
        for (j, &(cos, sin)) in angles.iter().enumerate() {
            let (x1, x2) = (head[j], head[j + half]);
            head[j] = x1 * cos - x2 * sin;
            head[j + half] = x2 * cos + x1 * sin;
        }
    }
}

/// The transpose of [`rotate`] (its inverse): the gradient w.r.t. the unrotated vector.
fn rotate_back(d: &mut [f32], head_dim: usize, angles: &[(f32, f32)]) {
    let half = head_dim / 2;
    for head in d.chunks_mut(head_dim) {
        for (j, &(cos, sin)) in angles.iter().enumerate() {
            let (d1, d2) = (head[j], head[j + half]);
            head[j] = d1 * cos + d2 * sin;
            head[j + half] = d2 * cos - d1 * sin;
        }
    }
}

/// Rotates (or, `back`, un-rotates) the query and key parts of every token of `qkv`
/// (`[tokens, 3h]`) at its row position.
fn rotate_tokens(
    qkv: &mut [f32],
    h: usize,
    head_dim: usize,
    inv_freq: &[f32],
    packed: &Packed,
    back: bool,
) {
    let half = inv_freq.len();
    let longest = packed.positions.iter().max().map_or(0, |p| p + 1);
    let table = rotary_table(inv_freq, longest);
    for (token, &position) in qkv.chunks_mut(3 * h).zip(&packed.positions) {
        let angles = &table[position * half..(position + 1) * half];
        if back {
            rotate_back(&mut token[..2 * h], head_dim, angles);
        } else {
            rotate(&mut token[..2 * h], head_dim, angles);
        }
    }
}

impl HostModernLayer {
    pub fn new(parts: ModernParts) -> Self {
        let head_dim = parts.attention_output.outputs / parts.heads;
        let theta = parts.rope_theta as f32;
        let inv_freq = (0..head_dim / 2)
            .map(|k| 1.0 / theta.powf((2 * k) as f32 / head_dim as f32))
            .collect();
        Self {
            attention_norm: parts.attention_norm,
            qkv: parts.qkv,
            attention_output: parts.attention_output,
            mlp_norm: parts.mlp_norm,
            mlp_in: parts.mlp_in,
            mlp_out: parts.mlp_out,
            heads: parts.heads,
            inv_freq,
            window: parts.window,
        }
    }

    fn hidden(&self) -> usize {
        self.attention_output.outputs
    }

    /// Whether a query at row position `query` attends to the key at `key`.
    fn sees(&self, query: usize, key: usize) -> bool {
        self.window.is_none_or(|w| query.abs_diff(key) <= w)
    }

    /// `x [tokens, h]` → the layer output at `queries`.
    pub fn forward(
        &self,
        x: &[f32],
        packed: &Packed,
        queries: &Queries,
        cache: Option<&mut ModernCache>,
    ) -> Vec<f32> {
        let h = self.hidden();
        let head_dim = h / self.heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let starts = &packed.starts;
        let mut cache = cache;
        let mut normed = x.to_vec();
        if let Some(norm) = &self.attention_norm {
            norm.forward(
                &mut normed,
                cache.as_deref_mut().map(|c| &mut c.attention_norm),
            );
        }
        let mut qkv = self.qkv.forward(&normed);
        rotate_tokens(&mut qkv, h, head_dim, &self.inv_freq, packed, false);
        let mut context = vec![0.0; queries.count(starts) * h];
        let keep_probs = cache.is_some();
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
                    View::block(&qkv, 3 * h, (q0, nq), (col, head_dim)),
                    View::block(&qkv, 3 * h, (start, len), (h + col, head_dim)).t(),
                    false,
                );
                for (qi, row) in scores.chunks_mut(len).enumerate() {
                    let query = packed.positions[q0 + qi];
                    for (key, s) in row.iter_mut().enumerate() {
                        *s = if self.sees(query, key) {
                            *s * scale
                        } else {
                            f32::NEG_INFINITY
                        };
                    }
                }
                kernels::softmax_rows(&mut scores, len);
                matmul(
                    &mut context[out0 * h + col..],
                    h,
                    View::dense(&scores, nq, len),
                    View::block(&qkv, 3 * h, (start, len), (2 * h + col, head_dim)),
                    false,
                );
                if keep_probs {
                    probs_all.extend_from_slice(&scores);
                }
            }
        }
        let mut attended = self.attention_output.forward(&context);
        let residual = super::layer::query_rows(x, h, queries);
        attended
            .iter_mut()
            .zip(&residual)
            .for_each(|(a, x)| *a += x);
        let mut mlp_input = attended.clone();
        self.mlp_norm.forward(
            &mut mlp_input,
            cache.as_deref_mut().map(|c| &mut c.mlp_norm),
        );
        let gated = self.mlp_in.forward(&mlp_input);
        let inner = self.geglu(&gated);
        let mut out = self.mlp_out.forward(&inner);
        out.iter_mut().zip(&attended).for_each(|(o, a)| *o += a);
        if let Some(c) = cache {
            c.qkv = qkv;
            c.probs = probs_all;
            c.gated = gated;
        }
        out
    }

    /// `gelu(input) · gate` per row of `gated [n, 2i]` → `[n, i]`.
    fn geglu(&self, gated: &[f32]) -> Vec<f32> {
        let inner = self.mlp_out.inputs;
        gated
            .chunks(2 * inner)
            .flat_map(|row| {
                let (input, gate) = row.split_at(inner);
                kernels::gelu_of(input)
                    .into_iter()
                    .zip(gate)
                    .map(|(a, g)| a * g)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The gradient w.r.t. the layer input `[tokens, h]`, given the gradient w.r.t. its
    /// output at `queries`.
    pub fn backward(
        &self,
        d_out: &[f32],
        packed: &Packed,
        queries: &Queries,
        cache: &ModernCache,
    ) -> Vec<f32> {
        let h = self.hidden();
        let head_dim = h / self.heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let starts = &packed.starts;
        let tokens = packed.tokens();
        // Feed-forward: out = attended + Wo(gelu(input) · gate), input | gate = Wi(norm(attended)).
        let d_inner = self.mlp_out.backward_input(d_out);
        let inner = self.mlp_out.inputs;
        let mut d_gated = Vec::with_capacity(cache.gated.len());
        for (row, d_row) in cache.gated.chunks(2 * inner).zip(d_inner.chunks(inner)) {
            let (input, gate) = row.split_at(inner);
            let mut d_input: Vec<f32> = d_row.iter().zip(gate).map(|(d, g)| d * g).collect();
            kernels::gelu_backward(&mut d_input, input);
            d_gated.extend(d_input);
            d_gated.extend(
                kernels::gelu_of(input)
                    .into_iter()
                    .zip(d_row)
                    .map(|(a, d)| a * d),
            );
        }
        let mut d_attended = self.mlp_in.backward_input(&d_gated);
        self.mlp_norm.backward(&mut d_attended, &cache.mlp_norm);
        d_attended.iter_mut().zip(d_out).for_each(|(a, d)| *a += d);
        // Attention: attended = x[queries] + Wo(context).
        let d_context = self.attention_output.backward_input(&d_attended);
        let qkv = &cache.qkv;
        let mut d_qkv = vec![0.0; tokens * 3 * h];
        let mut probs_at = 0;
        let mut d_scores = vec![];
        for r in 0..starts.len() - 1 {
            let (start, len) = (starts[r], starts[r + 1] - starts[r]);
            let (q0, nq, out0) = queries.of_row(starts, r);
            for head in 0..self.heads {
                let col = head * head_dim;
                let probs = &cache.probs[probs_at..probs_at + nq * len];
                probs_at += nq * len;
                let d_ctx = View::block(&d_context, h, (out0, nq), (col, head_dim));
                matmul(
                    &mut d_qkv[start * 3 * h + 2 * h + col..],
                    3 * h,
                    View::dense(probs, nq, len).t(),
                    d_ctx,
                    true,
                );
                d_scores.clear();
                d_scores.resize(nq * len, 0.0);
                matmul(
                    &mut d_scores,
                    len,
                    d_ctx,
                    View::block(qkv, 3 * h, (start, len), (2 * h + col, head_dim)).t(),
                    false,
                );
                // Keys outside the window have probability 0, so their score gradient is 0.
                kernels::softmax_backward_rows(&mut d_scores, probs, len);
                d_scores.iter_mut().for_each(|d| *d *= scale);
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
        rotate_tokens(&mut d_qkv, h, head_dim, &self.inv_freq, packed, true);
        let mut d_x = self.qkv.backward_input(&d_qkv);
        if let Some(norm) = &self.attention_norm {
            norm.backward(&mut d_x, &cache.attention_norm);
        }
        for r in 0..starts.len() - 1 {
            let (q0, nq, out0) = queries.of_row(starts, r);
            let src = &d_attended[out0 * h..(out0 + nq) * h];
            d_x[q0 * h..(q0 + nq) * h]
                .iter_mut()
                .zip(src)
                .for_each(|(d, s)| *d += s);
        }
        d_x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotate_back_undoes_rotate() {
        let inv_freq = [1.0, 0.1, 0.01];
        let table = rotary_table(&inv_freq, 18);
        let angles = &table[17 * 3..18 * 3];
        let original: Vec<f32> = (0..12).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut v = original.clone();
        rotate(&mut v, 6, angles);
        assert!(v.iter().zip(&original).any(|(a, b)| (a - b).abs() > 1e-3));
        rotate_back(&mut v, 6, angles);
        for (a, b) in v.iter().zip(&original) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}
