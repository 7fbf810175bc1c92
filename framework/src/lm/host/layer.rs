//! One post-norm encoder layer on packed sequences, forward and input-gradient backward, and
//! [`HostBlock`]: either it or ModernBERT's pre-norm layer (`super::modern`).

use super::Packed;
use super::attention::{Attention, add_at_queries};
use super::kernels::{self, Dense, Norm, NormCache};

/// Which tokens a layer computes outputs for (keys and values always come from every token).
#[derive(Debug, Clone)]
pub enum Queries {
    /// Every token: the output is `[tokens, h]`.
    All,
    /// One packed token index per row: the output is `[rows, h]`.
    OnePerRow(Vec<usize>),
}

impl Queries {
    /// Row `r`'s queries as `(first packed token, count, first output row)`.
    pub(super) fn of_row(&self, starts: &[usize], r: usize) -> (usize, usize, usize) {
        match self {
            Queries::All => (starts[r], starts[r + 1] - starts[r], starts[r]),
            Queries::OnePerRow(tokens) => (tokens[r], 1, r),
        }
    }

    pub(super) fn count(&self, starts: &[usize]) -> usize {
        match self {
            Queries::All => starts.last().copied().unwrap_or(0),
            Queries::OnePerRow(tokens) => tokens.len(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct HostLayer {
    /// Query, key and value projections side by side: `W [h, 3h]`.
    qkv: Dense,
    attention_output: Dense,
    attention_norm: Norm,
    intermediate: Dense,
    output: Dense,
    output_norm: Norm,
    /// Global: every real token of a row.
    attention: Attention,
}

/// Activations of one layer kept for its backward pass.
#[derive(Debug, Clone, Default)]
pub struct LayerCache {
    qkv: Vec<f32>,
    /// Attention weights, row after row, head after head: `[queries, keys]` blocks.
    probs: Vec<f32>,
    attention_norm: NormCache,
    intermediate_pre: Vec<f32>,
    output_norm: NormCache,
}

/// Concatenates `[in, out_i]` weights along the output axis.
fn fuse(parts: [Dense; 3]) -> Dense {
    let inputs = parts[0].inputs;
    let outputs: usize = parts.iter().map(|p| p.outputs).sum();
    let mut weight = Vec::with_capacity(inputs * outputs);
    for i in 0..inputs {
        for p in &parts {
            weight.extend_from_slice(&p.weight[i * p.outputs..(i + 1) * p.outputs]);
        }
    }
    let bias = parts.iter().flat_map(|p| p.bias.iter().copied()).collect();
    Dense {
        weight,
        bias,
        inputs,
        outputs,
    }
}

/// Rows of `x` (`[tokens, h]`) at the query tokens, in output order.
pub(super) fn query_rows(x: &[f32], h: usize, queries: &Queries) -> Vec<f32> {
    match queries {
        Queries::All => x.to_vec(),
        Queries::OnePerRow(tokens) => tokens
            .iter()
            .flat_map(|&t| x[t * h..(t + 1) * h].iter().copied())
            .collect(),
    }
}

impl HostLayer {
    pub fn new(
        qkv: [Dense; 3],
        attention_output: Dense,
        attention_norm: Norm,
        intermediate: Dense,
        output: Dense,
        output_norm: Norm,
        heads: usize,
    ) -> Self {
        Self {
            qkv: fuse(qkv),
            attention_output,
            attention_norm,
            intermediate,
            output,
            output_norm,
            attention: Attention {
                heads,
                window: None,
            },
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
        cache: Option<&mut LayerCache>,
    ) -> Vec<f32> {
        let h = self.hidden();
        let qkv = self.qkv.forward(x);
        let (context, probs) = self
            .attention
            .forward(&qkv, h, packed, queries, cache.is_some());
        let mut attended = self.attention_output.forward(&context);
        let residual = query_rows(x, h, queries);
        attended
            .iter_mut()
            .zip(&residual)
            .for_each(|(a, x)| *a += x);
        let mut cache = cache;
        self.attention_norm.forward(
            &mut attended,
            cache.as_deref_mut().map(|c| &mut c.attention_norm),
        );
        let mut inner = self.intermediate.forward(&attended);
        // The pre-activation is copied only when the backward pass will need it.
        let pre = cache.is_some().then(|| inner.clone());
        kernels::gelu(&mut inner);
        let mut out = self.output.forward(&inner);
        out.iter_mut().zip(&attended).for_each(|(o, a)| *o += a);
        self.output_norm
            .forward(&mut out, cache.as_deref_mut().map(|c| &mut c.output_norm));
        if let Some(c) = cache {
            c.qkv = qkv;
            c.probs = probs;
            c.intermediate_pre = pre.expect("kept for the cache");
        }
        out
    }

    /// The gradient w.r.t. the layer input `[tokens, h]`, given the gradient w.r.t. its
    /// output at `queries`.
    pub fn backward(
        &self,
        d_out: &[f32],
        starts: &[usize],
        queries: &Queries,
        cache: &LayerCache,
    ) -> Vec<f32> {
        let h = self.hidden();
        // Output LayerNorm, feed-forward and its residual.
        let mut d_sum = d_out.to_vec();
        self.output_norm.backward(&mut d_sum, &cache.output_norm);
        let mut d_inner = self.output.backward_input(&d_sum);
        kernels::gelu_backward(&mut d_inner, &cache.intermediate_pre);
        let mut d_attended = self.intermediate.backward_input(&d_inner);
        d_attended.iter_mut().zip(&d_sum).for_each(|(a, s)| *a += s);
        // Attention LayerNorm; `d_attended` becomes the gradient of (projection + residual).
        self.attention_norm
            .backward(&mut d_attended, &cache.attention_norm);
        let d_context = self.attention_output.backward_input(&d_attended);
        let d_qkv =
            self.attention
                .backward(&d_context, &cache.qkv, &cache.probs, h, starts, queries);
        let mut d_x = self.qkv.backward_input(&d_qkv);
        add_at_queries(&mut d_x, &d_attended, h, starts, queries);
        d_x
    }
}

/// One layer of either layout.
#[derive(Debug, Clone)]
pub enum HostBlock {
    PostNorm(HostLayer),
    PreNorm(super::modern::HostModernLayer),
}

/// A [`HostBlock`]'s backward state: the part of its layout is filled, the other stays empty.
#[derive(Debug, Clone, Default)]
pub struct BlockCache {
    post_norm: LayerCache,
    pre_norm: super::modern::ModernCache,
}

impl HostBlock {
    /// `x [tokens, h]` → the output at `queries`, filling `cache` when given.
    pub fn forward(
        &self,
        x: &[f32],
        packed: &Packed,
        queries: &Queries,
        cache: Option<&mut BlockCache>,
    ) -> Vec<f32> {
        match self {
            HostBlock::PostNorm(layer) => {
                layer.forward(x, packed, queries, cache.map(|c| &mut c.post_norm))
            }
            HostBlock::PreNorm(layer) => {
                layer.forward(x, packed, queries, cache.map(|c| &mut c.pre_norm))
            }
        }
    }

    /// The gradient w.r.t. the input, from the gradient at `queries` and the forward's cache.
    pub fn backward(
        &self,
        d_out: &[f32],
        packed: &Packed,
        queries: &Queries,
        cache: &BlockCache,
    ) -> Vec<f32> {
        match self {
            HostBlock::PostNorm(layer) => {
                layer.backward(d_out, &packed.starts, queries, &cache.post_norm)
            }
            HostBlock::PreNorm(layer) => layer.backward(d_out, packed, queries, &cache.pre_norm),
        }
    }
}
