//! ModernBERT's pre-norm layer on packed sequences, forward and input-gradient backward: the
//! host engine's twin of `lm::modern::ModernLayer` (see that module for the network).
//!
//! Packing suits it as it does BERT's layer: positions count from the start of each row, so a
//! token's rotary angle and its local window are those of the padded batch. Scores outside a
//! local layer's window are `−∞` before the softmax, so their weight is exactly 0, as with
//! burn's additive mask in `f32`, and the backward pass sends them no gradient.

use super::Packed;
use super::attention::{Attention, add_at_queries};
use super::kernels::{self, Dense, Norm, NormCache};
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
    /// Its heads, and for a local layer the window: keys farther than it are not attended.
    attention: Attention,
    /// `θ^(−2k/d)` for `k < d/2` (`d` the head size), in `f32` as the burn model computes it.
    inv_freq: Vec<f32>,
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
            attention: Attention {
                heads: parts.heads,
                window: parts.window,
            },
            inv_freq,
        }
    }

    fn hidden(&self) -> usize {
        self.attention_output.outputs
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
        let head_dim = h / self.attention.heads;
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
        let (context, probs) = self
            .attention
            .forward(&qkv, h, packed, queries, cache.is_some());
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
            c.probs = probs;
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
        let head_dim = h / self.attention.heads;
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
        let mut d_qkv = self.attention.backward(
            &d_context,
            &cache.qkv,
            &cache.probs,
            h,
            &packed.starts,
            queries,
        );
        rotate_tokens(&mut d_qkv, h, head_dim, &self.inv_freq, packed, true);
        let mut d_x = self.qkv.backward_input(&d_qkv);
        if let Some(norm) = &self.attention_norm {
            norm.backward(&mut d_x, &cache.attention_norm);
        }
        add_at_queries(&mut d_x, &d_attended, h, &packed.starts, queries);
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
