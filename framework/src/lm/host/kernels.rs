//! The numeric kernels of the host engine, on row-major `f32` slices: strided matrix
//! products (the `gemm` crate), LayerNorm, exact GELU and softmax, each with the backward
//! pass the input gradient needs. Every kernel is single-threaded: the engine's callers run
//! independent batches on separate cores.

/// A strided matrix operand: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
///
/// The fields are private on purpose: [`matmul`] hands them to an `unsafe` GEMM, and only
/// the constructors (which check that every element lies inside `data`) may set them.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> View<'a> {
    /// A contiguous row-major `[rows, cols]` matrix.
    pub fn dense(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols, 1)
    }

    /// Columns `col0..col0 + cols` of rows `row0..row0 + rows` of a row-major matrix whose
    /// rows are `width` wide (a head's slice of a fused projection, say).
    pub fn block(
        data: &'a [f32],
        width: usize,
        (row0, rows): (usize, usize),
        (col0, cols): (usize, usize),
    ) -> Self {
        Self::strided(&data[row0 * width + col0..], rows, cols, width, 1)
    }

    pub fn strided(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        let view = Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        };
        assert!(
            view.last_index() < data.len() || rows == 0 || cols == 0,
            "view [{rows}, {cols}] with strides ({row_stride}, {col_stride}) exceeds {} elements",
            data.len()
        );
        view
    }

    /// The same data read as its transpose.
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    fn last_index(&self) -> usize {
        (self.rows.max(1) - 1) * self.row_stride + (self.cols.max(1) - 1) * self.col_stride
    }
}

/// `out = a · b` (or `out += a · b` with `accumulate`), where `out` is row-major
/// `[a.rows, b.cols]` with rows `out_stride` apart.
pub fn matmul(out: &mut [f32], out_stride: usize, a: View, b: View, accumulate: bool) {
    assert_eq!(a.cols, b.rows, "inner dimensions of a matrix product");
    let (m, n, k) = (a.rows, b.cols, a.cols);
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        (m - 1) * out_stride + n <= out.len(),
        "product [{m}, {n}] does not fit the output"
    );
    // Rows closer than `n` apart would overlap: the GEMM would write one row over another.
    assert!(
        m == 1 || out_stride >= n,
        "output rows {out_stride} apart cannot hold {n} columns"
    );
    if k == 0 {
        if !accumulate {
            for row in out.chunks_mut(out_stride).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: the asserts above and in `View::strided` keep every index the product touches
    // inside its slice; `out` is borrowed mutably, so it cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            out_stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// A linear layer `y = x · W + b` with burn's weight layout `W [in, out]`.
#[derive(Debug, Clone)]
pub struct Dense {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub inputs: usize,
    pub outputs: usize,
}

impl Dense {
    /// `x [n, in]` → `[n, out]`.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        let n = x.len() / self.inputs;
        let mut out: Vec<f32> = self.bias.repeat(n);
        matmul(
            &mut out,
            self.outputs,
            View::dense(x, n, self.inputs),
            View::dense(&self.weight, self.inputs, self.outputs),
            true,
        );
        out
    }

    /// The gradient w.r.t. the input, `dy [n, out]` → `dy · Wᵀ [n, in]` (the weights are
    /// frozen, so their gradient is never formed).
    pub fn backward_input(&self, dy: &[f32]) -> Vec<f32> {
        let n = dy.len() / self.outputs;
        let mut dx = vec![0.0; n * self.inputs];
        matmul(
            &mut dx,
            self.inputs,
            View::dense(dy, n, self.outputs),
            View::dense(&self.weight, self.inputs, self.outputs).t(),
            false,
        );
        dx
    }
}

/// LayerNorm parameters.
#[derive(Debug, Clone)]
pub struct Norm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub eps: f32,
}

/// What LayerNorm's backward pass needs: the normalised input and `1 / σ` per row.
#[derive(Debug, Clone, Default)]
pub struct NormCache {
    pub normalized: Vec<f32>,
    pub inv_std: Vec<f32>,
}

impl Norm {
    /// Normalises every row of `x` in place (biased variance, as transformers and burn do).
    /// Fills `cache` when given.
    pub fn forward(&self, x: &mut [f32], mut cache: Option<&mut NormCache>) {
        let h = self.gamma.len();
        if let Some(c) = cache.as_deref_mut() {
            c.normalized = Vec::with_capacity(x.len());
            c.inv_std = Vec::with_capacity(x.len() / h);
        }
        for row in x.chunks_mut(h) {
            let mean = row.iter().sum::<f32>() / h as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h as f32;
            let inv_std = 1.0 / (var + self.eps).sqrt();
            for v in row.iter_mut() {
                *v = (*v - mean) * inv_std;
            }
            if let Some(c) = cache.as_deref_mut() {
                c.normalized.extend_from_slice(row);
                c.inv_std.push(inv_std);
            }
            for ((v, g), b) in row.iter_mut().zip(&self.gamma).zip(&self.beta) {
                *v = *v * g + b;
            }
        }
    }

    /// `dy` → the gradient w.r.t. the LayerNorm input, in place:
    /// `dx = (ĝ − mean(ĝ) − x̂ · mean(ĝ · x̂)) / σ` with `ĝ = dy · γ`.
    pub fn backward(&self, dy: &mut [f32], cache: &NormCache) {
        let h = self.gamma.len();
        for ((row, xhat), inv_std) in dy
            .chunks_mut(h)
            .zip(cache.normalized.chunks(h))
            .zip(&cache.inv_std)
        {
            for (v, g) in row.iter_mut().zip(&self.gamma) {
                *v *= g;
            }
            let mean_g = row.iter().sum::<f32>() / h as f32;
            let mean_gx = row.iter().zip(xhat).map(|(g, x)| g * x).sum::<f32>() / h as f32;
            for (v, x) in row.iter_mut().zip(xhat) {
                *v = (*v - mean_g - x * mean_gx) * inv_std;
            }
        }
    }
}

/// `erf(x)` for `f32`: a rational approximation on `[-4, 4]` (outside it `erf` rounds to
/// ±1 in single precision), odd numerator of degree 13 over even denominator of degree 8.
/// These are the coefficients Eigen and XLA use for their vectorised `erf`; unlike a libm
/// call the loop around it vectorises, which matters because GELU evaluates `erf` once per
/// feed-forward activation (75 M times per BERT-base forward at batch 32 × 64). Written with
/// plain multiply-adds, not `mul_add`: without FMA in the compile target `mul_add` is a libm
/// call per element, and plain arithmetic gives the same bits on every CPU.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906e-4;
    p = x2 * p + -2.954_6e-3;
    p = x2 * p + -1.609_603_3e-2;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329e-3;
    q = x2 * q + -1.426_474e-2;
    x * p / q
}

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;

#[inline(always)]
fn gelu_in_place(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v *= 0.5 * (1.0 + erf(*v * FRAC_1_SQRT_2));
    }
}

/// [`gelu_in_place`] compiled for AVX2 (8 lanes instead of SSE's 4; same arithmetic, so the
/// same results).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn gelu_avx2(x: &mut [f32]) {
    gelu_in_place(x)
}

/// Exact GELU `x · Φ(x)` in place.
pub fn gelu(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (just checked).
        return unsafe { gelu_avx2(x) };
    }
    gelu_in_place(x)
}

/// GELU of `pre` into a new vector (keeping `pre` for the backward pass).
pub fn gelu_of(pre: &[f32]) -> Vec<f32> {
    let mut out = pre.to_vec();
    gelu(&mut out);
    out
}

/// `dy ← dy · GELU'(pre)`, with `GELU'(x) = Φ(x) + x · φ(x)`.
pub fn gelu_backward(dy: &mut [f32], pre: &[f32]) {
    const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;
    for (g, &x) in dy.iter_mut().zip(pre) {
        let cdf = 0.5 * (1.0 + erf(x * FRAC_1_SQRT_2));
        let pdf = FRAC_1_SQRT_2PI * (-0.5 * x * x).exp();
        *g *= cdf + x * pdf;
    }
}

/// Softmax of every `width`-wide row of `x`, in place.
pub fn softmax_rows(x: &mut [f32], width: usize) {
    for row in x.chunks_mut(width) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

/// Backward of a row softmax: `dp ← p · (dp − Σ dp · p)` row by row (`p` the softmax
/// output).
pub fn softmax_backward_rows(dp: &mut [f32], p: &[f32], width: usize) {
    for (d, p) in dp.chunks_mut(width).zip(p.chunks(width)) {
        let dot: f32 = d.iter().zip(p).map(|(a, b)| a * b).sum();
        for (a, b) in d.iter_mut().zip(p) {
            *a = b * (*a - dot);
        }
    }
}

/// `log Σ exp` of every `width`-wide row.
pub fn log_sum_exp_rows(x: &[f32], width: usize) -> Vec<f32> {
    x.chunks(width)
        .map(|row| {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            max + row.iter().map(|v| (v - max).exp()).sum::<f32>().ln()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `erf` in f64 from its Maclaurin series, `2/√π Σ (−1)ⁿ x²ⁿ⁺¹ / (n! (2n + 1))`: exact to
    /// about 1e-11 on [-4, 4] (the largest term is ~1e5 at x = 4, so cancellation costs five
    /// of f64's sixteen digits).
    fn erf_series(x: f64) -> f64 {
        let mut term = x; // x^(2n+1) / n!
        let mut sum = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_matches_its_series_to_float_precision() {
        let worst = (-40_000..=40_000)
            .map(|i| i as f64 * 1e-4)
            .map(|x| (erf(x as f32) as f64 - erf_series(x)).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-6, "max |erf − series| = {worst}");
        // Beyond 4, erf is ±1 to within f32 resolution (erfc(4) ≈ 1.5e-8).
        assert!((erf(10.0) - 1.0).abs() < 1e-6 && (erf(-10.0) + 1.0).abs() < 1e-6);
    }

    #[test]
    fn matmul_reads_strided_and_transposed_operands() {
        // a = [[1, 2], [3, 4]], b = [[5, 6], [7, 8]]
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [5.0, 6.0, 7.0, 8.0];
        let mut out = [0.0; 4];
        matmul(
            &mut out,
            2,
            View::dense(&a, 2, 2),
            View::dense(&b, 2, 2),
            false,
        );
        assert_eq!(out, [19.0, 22.0, 43.0, 50.0]);
        matmul(
            &mut out,
            2,
            View::dense(&a, 2, 2),
            View::dense(&b, 2, 2).t(),
            false,
        );
        assert_eq!(out, [17.0, 23.0, 39.0, 53.0]);
        matmul(
            &mut out,
            2,
            View::dense(&a, 2, 2),
            View::dense(&b, 2, 2),
            true,
        );
        assert_eq!(out, [36.0, 45.0, 82.0, 103.0]);
        // Column 1 of a as a [2, 1] block times row 0 of b as a [1, 2] block.
        let mut outer = [0.0; 4];
        matmul(
            &mut outer,
            2,
            View::block(&a, 2, (0, 2), (1, 1)),
            View::block(&b, 2, (0, 1), (0, 2)),
            false,
        );
        assert_eq!(outer, [10.0, 12.0, 20.0, 24.0]);
    }

    /// Central differences of a scalar function of `x`.
    fn numeric_gradient(x: &[f32], f: impl Fn(&[f32]) -> f32) -> Vec<f32> {
        let eps = 1e-2;
        (0..x.len())
            .map(|i| {
                let mut up = x.to_vec();
                let mut down = x.to_vec();
                up[i] += eps;
                down[i] -= eps;
                (f(&up) - f(&down)) / (2.0 * eps)
            })
            .collect()
    }

    fn assert_close(a: &[f32], b: &[f32], tol: f32) {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol, "element {i}: {x} vs {y}");
        }
    }

    #[test]
    fn backward_passes_match_finite_differences() {
        let x = [0.3, -1.2, 2.0, 0.7, -0.1, 1.5];
        let weights = [0.5, -1.0, 2.0, 0.25, 1.5, -0.75];
        let dot = |v: &[f32]| v.iter().zip(&weights).map(|(a, b)| a * b).sum::<f32>();

        let norm = Norm {
            gamma: vec![1.5, 0.5, -1.0],
            beta: vec![0.1, 0.2, 0.3],
            eps: 1e-5,
        };
        let mut cache = NormCache::default();
        norm.forward(&mut x.clone(), Some(&mut cache));
        let mut analytic = weights.to_vec();
        norm.backward(&mut analytic, &cache);
        let numeric = numeric_gradient(&x, |v| {
            let mut v = v.to_vec();
            norm.forward(&mut v, None);
            dot(&v)
        });
        assert_close(&analytic, &numeric, 2e-2);

        let mut analytic = weights.to_vec();
        gelu_backward(&mut analytic, &x);
        let numeric = numeric_gradient(&x, |v| dot(&gelu_of(v)));
        assert_close(&analytic, &numeric, 1e-2);

        let mut p = x.to_vec();
        softmax_rows(&mut p, 3);
        let mut analytic = weights.to_vec();
        softmax_backward_rows(&mut analytic, &p, 3);
        let numeric = numeric_gradient(&x, |v| {
            let mut v = v.to_vec();
            softmax_rows(&mut v, 3);
            dot(&v)
        });
        assert_close(&analytic, &numeric, 1e-2);
    }
}

#[cfg(test)]
mod bounds {
    use super::*;

    #[test]
    #[should_panic(expected = "cannot hold")]
    fn output_rows_closer_than_a_row_are_refused() {
        let a = [1.0f32; 4];
        let mut out = [0.0f32; 8];
        matmul(
            &mut out,
            1,
            View::dense(&a, 2, 2),
            View::dense(&a, 2, 2),
            false,
        );
    }

    #[test]
    #[should_panic(expected = "exceeds")]
    fn a_view_past_its_data_is_refused() {
        let a = [1.0f32; 4];
        View::strided(&a, 2, 3, 3, 1);
    }
}
