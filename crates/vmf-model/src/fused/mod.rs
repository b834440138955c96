//! Fused CPU kernels for the flex backend, each with the tensor-op code it replaces
//! as the fallback on every other backend (and the reference its test compares with):
//! the Bernoulli loss, the token cross-entropy (module `xent`), the LSTM layer and cell
//! (module `lstm`, forward and backward), the output layer's affine map (module
//! `linear`, forward and backward; these modules exist with the `flex` feature),
//! and the Adam update that vmf-train's optimiser runs. This crate is compiled with
//! optimisations even in the dev profile (the workspace's Cargo.toml), so that these
//! loops vectorise under `cargo run` too.
//!
//! Why by hand: flex runs one op at a time (no fusion in Burn 0.22), and its exp and
//! log go through libm one value at a time; the Bernoulli loss's chain of a dozen
//! element-wise ops was the largest cost after the matmuls (BENCHMARKS.md). Here it is
//! one pass with a vectorisable exp and log1p.

// Without flex the kernels have no caller but their tests (a build of this crate
// alone, without the feature).
#![cfg_attr(not(feature = "flex"), allow(dead_code, unused_imports))]

use burn::tensor::{Tensor, TensorData};

#[cfg(feature = "flex")]
pub mod linear;
#[cfg(feature = "flex")]
pub mod lstm;
#[cfg(feature = "flex")]
pub mod xent;

#[cfg(feature = "flex")]
pub use linear::linear;
#[cfg(feature = "flex")]
pub use lstm::{lstm_cell, lstm_layer};

/// On a build without flex there is nothing to fuse.
#[cfg(not(feature = "flex"))]
pub fn linear(_layer: &burn::nn::Linear, _x: &Tensor<3>) -> Option<Tensor<3>> {
    None
}

/// On a build without flex there is nothing to fuse.
#[cfg(not(feature = "flex"))]
pub fn lstm_layer(
    _p: &Tensor<3>,
    _w: &Tensor<2>,
    _h0: &Tensor<2>,
    _c0: &Tensor<2>,
) -> Option<Tensor<3>> {
    None
}

/// On a build without flex there is nothing to fuse.
#[cfg(not(feature = "flex"))]
pub fn lstm_cell(_gates: &Tensor<2>, _c_prev: &Tensor<2>) -> Option<(Tensor<2>, Tensor<2>)> {
    None
}

/// `value` (per row) with the gradient `g` with respect to `logits` attached for
/// autodiff: value + s - detach(s), s = sum over all but the first dimension of
/// logits * g. The value is unchanged and d/d logits is g: how a loss computed
/// untracked (a fused kernel) hands its hand-derived gradient to the backward pass.
///
/// # Shapes
/// - `value`: `[batch]`; `logits`, `g`: `[batch, ...]`
pub fn with_gradient<const D: usize>(
    value: Tensor<1>,
    logits: Tensor<D>,
    g: Tensor<D>,
) -> Tensor<1> {
    let surrogate = (logits * g)
        .flatten::<2>(1, D - 1)
        .sum_dim(1)
        .squeeze_dim::<1>(1);
    value + surrogate.clone() - surrogate.detach()
}

/// The Bernoulli loss per row, sum softplus(l) - x l, and (if `grad`) its gradient
/// sigmoid(l) - x with respect to the logits, for untracked logits `l` and targets `x`
/// on flex; `None` on any other backend (or for buffers the kernel cannot take).
///
/// Accuracy: exp and log1p within ~2e-7 relative of f64 per element (tested), against
/// libm's ~1e-7; each row is summed in 16 f32 lanes (about 50 terms each for MNIST),
/// then in f64.
///
/// # Shapes
/// - `l`, `x`: `[batch, features]` -> (`[batch]`, `[batch, features]`)
#[cfg(feature = "flex")]
pub fn bernoulli(
    l: &Tensor<2>,
    x: &Tensor<2>,
    grad: bool,
) -> Option<(Tensor<1>, Option<Tensor<2>>)> {
    use burn::tensor::DType;

    let [rows, cols] = l.dims();
    let (lp, xp) = (flex_buffer(l, DType::F32)?, flex_buffer(x, DType::F32)?);
    let (ls, xs) = (lp.as_slice::<f32>()?, xp.as_slice::<f32>()?);
    if ls.len() != rows * cols || xs.len() != rows * cols {
        return None;
    }
    let mut value = vec![0.0f32; rows];
    // Without a gradient to return, one row's worth of scratch.
    let mut g = vec![0.0f32; if grad { rows * cols } else { cols }];
    let kernel = kernels::pick();
    for (r, v) in value.iter_mut().enumerate() {
        let span = r * cols..(r + 1) * cols;
        let out = if grad {
            &mut g[span.clone()]
        } else {
            &mut g[..]
        };
        *v = kernel(&ls[span.clone()], &xs[span], out) as f32;
    }
    let device = l.device();
    Some((
        Tensor::from_data(TensorData::new(value, [rows]), &device),
        grad.then(|| Tensor::from_data(TensorData::new(g, [rows, cols]), &device)),
    ))
}

/// The token cross-entropy summed over each sentence, sum_t mask (logsumexp(l_t) -
/// l_t(target_t)), as one op on flex whose backward is mask (softmax(l_t) -
/// onehot(target_t)) times the upstream gradient, computed in the forward pass (see
/// `xent`); tracked for autodiff like any op. `None` elsewhere (or for buffers the
/// kernel cannot take, or a target outside the vocabulary). Masked positions are not
/// computed: their gradient is 0.
///
/// # Shapes
/// - `logits`: `[batch, T, vocab]`, `targets` (ids), `mask` (0 or 1): `[batch, T]`
/// - returns `[batch]`
#[cfg(feature = "flex")]
pub fn token_cross_entropy(
    logits: &Tensor<3>,
    targets: &Tensor<2, burn::tensor::Int>,
    mask: &Tensor<2>,
) -> Option<Tensor<1>> {
    use burn::tensor::DType;

    let [b, t, v] = logits.dims();
    let lp = flex_buffer(logits, DType::F32)?;
    let tp = flex_ids(targets, DType::I32)?;
    let mp = flex_buffer(mask, DType::F32)?;
    let (ls, ts, ms) = (
        lp.as_slice::<f32>()?,
        tp.as_slice::<i32>()?,
        mp.as_slice::<f32>()?,
    );
    if ls.len() != b * t * v || ts.len() != b * t || ms.len() != b * t {
        return None;
    }
    if ts.iter().any(|&id| id < 0 || id as usize >= v) {
        return None;
    }
    Some(xent::token_cross_entropy(logits, targets, mask))
}

/// On a build without flex there is nothing to fuse.
#[cfg(not(feature = "flex"))]
pub fn token_cross_entropy(
    _logits: &Tensor<3>,
    _targets: &Tensor<2, burn::tensor::Int>,
    _mask: &Tensor<2>,
) -> Option<Tensor<1>> {
    None
}

/// The rows of the token cross-entropy on raw buffers: each sentence's loss and, if
/// `grad`, the gradient `[b, T, V]` (see [`token_cross_entropy`]). Targets must be in
/// range (checked by the caller).
#[cfg(feature = "flex")]
pub(crate) fn xent_rows(
    ls: &[f32],
    ts: &[i32],
    ms: &[f32],
    [b, t, v]: [usize; 3],
    grad: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let kernel = kernels::pick_softmax();
    let mut value = vec![0.0f64; b];
    let mut g = vec![0.0f32; if grad { b * t * v } else { v }];
    for (pos, (&target, &m)) in ts.iter().zip(ms).enumerate() {
        if m == 0.0 {
            continue; // padding: no loss, gradient 0
        }
        let row = &ls[pos * v..(pos + 1) * v];
        let out = if grad {
            &mut g[pos * v..(pos + 1) * v]
        } else {
            &mut g[..]
        };
        let lse = kernel(row, out, if grad { m } else { 0.0 });
        let target = target as usize;
        value[pos / t] += f64::from(m) * (lse - f64::from(row[target]));
        if grad {
            out[target] -= m;
        }
    }
    (
        value.into_iter().map(|x| x as f32).collect(),
        grad.then_some(g),
    )
}

/// The values of an f32 flex buffer: borrowed when it holds exactly the tensor's
/// elements in order, else copied. The fused ops take f32 only (checked by their
/// public entry points).
#[cfg(feature = "flex")]
pub(crate) fn values(t: &burn::backend::flex::FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    use burn::backend::TensorMetadata;
    let n = t.shape().num_elements();
    match t.as_slice::<f32>() {
        Some(s) if s.len() == n => std::borrow::Cow::Borrowed(s),
        _ => std::borrow::Cow::Owned(
            t.clone()
                .into_data()
                .try_to_vec::<f32>()
                .expect("the fused ops take f32 buffers (checked by their entry points)"),
        ),
    }
}

/// A flex tensor of `shape` owning `v` (no copy).
#[cfg(feature = "flex")]
pub(crate) fn flex(
    v: Vec<f32>,
    shape: impl Into<burn::tensor::Shape>,
) -> burn::backend::flex::FlexTensor {
    burn::backend::flex::FlexTensor::from_data(TensorData::new(v, shape))
}

/// The `[cols, rows]` transpose of the row-major `[rows, cols]` matrix `m`.
#[cfg(feature = "flex")]
pub(crate) fn transposed(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; rows * cols];
    for (r, row) in m.chunks_exact(cols).enumerate() {
        for (c, &x) in row.iter().enumerate() {
            out[c * rows + r] = x;
        }
    }
    out
}

/// The flex buffer of `t` (without any autodiff wrapper), if it lives on flex, in
/// whatever layout.
#[cfg(feature = "flex")]
pub(crate) fn flex_float<const D: usize>(t: &Tensor<D>) -> Option<burn::backend::flex::FlexTensor> {
    t.clone()
        .inner()
        .try_into_primitive::<burn::backend::Flex>()
        .ok()
}

/// [`flex_float`], if it also has `dtype` and is contiguous.
#[cfg(feature = "flex")]
fn flex_buffer<const D: usize>(
    t: &Tensor<D>,
    dtype: burn::tensor::DType,
) -> Option<burn::backend::flex::FlexTensor> {
    contiguous(flex_float(t)?, dtype)
}

/// [`flex_buffer`] for integer ids (Burn's bounds keep the two apart).
#[cfg(feature = "flex")]
fn flex_ids<const D: usize>(
    t: &Tensor<D, burn::tensor::Int>,
    dtype: burn::tensor::DType,
) -> Option<burn::backend::flex::FlexTensor> {
    let p = t
        .clone()
        .inner()
        .try_into_primitive::<burn::backend::Flex>();
    contiguous(p.ok()?, dtype)
}

/// `p` if it has `dtype` and a contiguous layout.
#[cfg(feature = "flex")]
fn contiguous(
    p: burn::backend::flex::FlexTensor,
    dtype: burn::tensor::DType,
) -> Option<burn::backend::flex::FlexTensor> {
    (p.dtype() == dtype && p.layout().contiguous_offsets().is_some()).then_some(p)
}

/// On a build without flex there is nothing to fuse.
#[cfg(not(feature = "flex"))]
pub fn bernoulli(
    _l: &Tensor<2>,
    _x: &Tensor<2>,
    _grad: bool,
) -> Option<(Tensor<1>, Option<Tensor<2>>)> {
    None
}

/// The scalars of one Adam step (computed by the caller as Burn computes them).
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    /// First-moment decay.
    pub beta_1: f32,
    /// Second-moment decay.
    pub beta_2: f32,
    /// sqrt(1 - beta_2^t) / (1 - beta_1^t).
    pub combined: f32,
    /// epsilon sqrt(1 - beta_2^t).
    pub epsilon: f32,
    /// The learning rate.
    pub lr: f32,
    /// The first step (t = 1): the moments start from the gradient alone.
    pub first: bool,
}

/// One Adam step over a parameter's buffers in place, with Burn's f32 operations in
/// Burn's order (m1 b1 + g (1 - b1); m2 b2 + g^2 (1 - b2); (m1 c) / (sqrt(m2) + e);
/// p - u lr), so that the result equals Burn's Adam bit for bit: no FMA (Rust does
/// not contract), and sqrt and division are exact IEEE operations lane by lane.
/// Iterators rather than indices, and the first-step branch outside the loop, so
/// that the loop vectorises.
pub fn adam_update(s: &AdamStep, p: &mut [f32], g: &[f32], m1: &mut [f32], m2: &mut [f32]) {
    let (f1, f2) = (1.0 - s.beta_1, 1.0 - s.beta_2);
    let lanes = p.iter_mut().zip(g).zip(m1.iter_mut().zip(m2.iter_mut()));
    if s.first {
        for ((p, &g), (m1, m2)) in lanes {
            let (a, v) = (g * f1, (g * g) * f2);
            (*m1, *m2) = (a, v);
            *p -= ((a * s.combined) / (v.sqrt() + s.epsilon)) * s.lr;
        }
    } else {
        for ((p, &g), (m1, m2)) in lanes {
            let (a, v) = (*m1 * s.beta_1 + g * f1, *m2 * s.beta_2 + (g * g) * f2);
            (*m1, *m2) = (a, v);
            *p -= ((a * s.combined) / (v.sqrt() + s.epsilon)) * s.lr;
        }
    }
}

/// exp(x) for x <= 0 in f32, written so that a loop over it vectorises: 2^n exp(r)
/// with n = round(x / ln 2) by the 1.5 * 2^23 trick (no libm call), r = x - n ln 2 in
/// two parts, and Cephes' degree-6 polynomial for exp(r), |r| <= ln 2 / 2. Below
/// -87 the result is 0 (f32 would underflow into denormals, which we flush anyway).
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    exp_nonpositive_with::<false>(x)
}

/// `a b + c`, fused where the caller is compiled with FMA (`FMA`), else two roundings.
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// [`exp_nonpositive`], with its polynomial in fused multiply-adds if `FMA`.
#[inline(always)]
fn exp_nonpositive_with<const FMA: bool>(x: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0; // 1.5 * 2^23
    let tiny = x < -87.0;
    let x = x.max(-87.0);
    // t's low mantissa bits hold n = round(x / ln 2) in [-126, 0]: 2^n from them by
    // integer arithmetic, which vectorises, where an f32 -> i32 cast would not.
    let t = x * std::f32::consts::LOG2_E + SHIFT;
    let n = t - SHIFT;
    let scale = f32::from_bits(t.to_bits().wrapping_sub(SHIFT.to_bits() - 127) << 23);
    let r = (x - n * 0.693_359_4) + n * 2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = madd::<FMA>(p, r, 1.398_199_9e-3);
    p = madd::<FMA>(p, r, 8.333_452e-3);
    p = madd::<FMA>(p, r, 4.166_579_6e-2);
    p = madd::<FMA>(p, r, 1.666_666_5e-1);
    p = madd::<FMA>(p, r, 0.5); // Cephes: 5.0000001e-1, which is 0.5 in f32
    let e = madd::<FMA>(p, r * r, r) + 1.0;
    if tiny { 0.0 } else { e * scale }
}

/// ln(1 + e) for e in [0, 1], by 2 atanh(s), s = e / (2 + e) <= 1/3: the odd series to
/// s^17 (truncation below 2e-9 relative); exact as e -> 0, unlike ln of a rounded 1 + e.
#[inline(always)]
pub fn log1p_unit(e: f32) -> f32 {
    log1p_unit_with::<false>(e)
}

/// [`log1p_unit`], with its polynomial in fused multiply-adds if `FMA`.
#[inline(always)]
fn log1p_unit_with<const FMA: bool>(e: f32) -> f32 {
    // 1/17, 1/15, ..., 1/3 as literals: no division in the loop but e / (2 + e).
    const C: [f32; 8] = [
        0.058_823_53,
        0.066_666_67,
        0.076_923_08,
        0.090_909_09,
        0.111_111_11,
        0.142_857_15,
        0.2,
        0.333_333_34,
    ];
    let s = e / (2.0 + e);
    let z = s * s;
    let mut p = C[0];
    for c in &C[1..] {
        p = madd::<FMA>(p, z, *c);
    }
    2.0 * s * madd::<FMA>(p, z, 1.0)
}

mod kernels {
    use super::{exp_nonpositive_with, log1p_unit_with};

    /// One row: writes sigmoid(l) - x into `grad` and returns sum softplus(l) - x l.
    pub type Kernel = fn(&[f32], &[f32], &mut [f32]) -> f64;

    /// One element: (softplus(l) - x l, sigmoid(l) - x).
    #[inline(always)]
    fn element<const FMA: bool>(l: f32, x: f32) -> (f32, f32) {
        let e = exp_nonpositive_with::<FMA>(-l.abs());
        let inv = 1.0 / (1.0 + e);
        // sigmoid(l) = 1 / (1 + e) for l >= 0, e / (1 + e) below.
        let sig = if l >= 0.0 { inv } else { e * inv };
        (l.max(0.0) - x * l + log1p_unit_with::<FMA>(e), sig - x)
    }

    /// Lanes of independent partial sums: an f32 sum in one accumulator is a chain
    /// the compiler may not reorder, which would keep the whole loop scalar.
    const LANES: usize = 16;

    #[inline(always)]
    fn row<const FMA: bool>(l: &[f32], x: &[f32], grad: &mut [f32]) -> f64 {
        let mut acc = [0.0f32; LANES];
        let mut chunks = l
            .chunks_exact(LANES)
            .zip(x.chunks_exact(LANES))
            .zip(grad.chunks_exact_mut(LANES));
        for ((l, x), g) in &mut chunks {
            for j in 0..LANES {
                let (v, d) = element::<FMA>(l[j], x[j]);
                g[j] = d;
                acc[j] += v;
            }
        }
        let done = l.len() - l.len() % LANES;
        let mut total: f64 = acc.iter().map(|&a| f64::from(a)).sum();
        for i in done..l.len() {
            let (v, d) = element::<FMA>(l[i], x[i]);
            grad[i] = d;
            total += f64::from(v);
        }
        total
    }

    fn portable(l: &[f32], x: &[f32], grad: &mut [f32]) -> f64 {
        row::<false>(l, x, grad)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2(l: &[f32], x: &[f32], grad: &mut [f32]) -> f64 {
        row::<true>(l, x, grad)
    }

    #[cfg(target_arch = "x86_64")]
    fn avx2_safe(l: &[f32], x: &[f32], grad: &mut [f32]) -> f64 {
        // SAFETY: chosen by `pick` only where the CPU has AVX2 and FMA.
        unsafe { avx2(l, x, grad) }
    }

    /// One position's logits: writes softmax(l) * `scale` into `out` (nothing when
    /// `scale` is 0) and returns logsumexp(l) in f64.
    pub type SoftmaxKernel = fn(&[f32], &mut [f32], f32) -> f64;

    #[inline(always)]
    fn softmax_row<const FMA: bool>(l: &[f32], out: &mut [f32], scale: f32) -> f64 {
        // Lanes again: max and sum reductions in independent accumulators.
        let mut top = [f32::NEG_INFINITY; LANES];
        let mut chunks = l.chunks_exact(LANES);
        for c in &mut chunks {
            for j in 0..LANES {
                top[j] = top[j].max(c[j]);
            }
        }
        let m = chunks.remainder().iter().fold(
            top.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)),
            |a, &b| a.max(b),
        );
        let mut acc = [0.0f32; LANES];
        let mut tail = 0.0f32;
        if scale == 0.0 {
            let mut chunks = l.chunks_exact(LANES);
            for c in &mut chunks {
                for j in 0..LANES {
                    acc[j] += exp_nonpositive_with::<FMA>(c[j] - m);
                }
            }
            for &x in chunks.remainder() {
                tail += exp_nonpositive_with::<FMA>(x - m);
            }
        } else {
            let mut chunks = l.chunks_exact(LANES).zip(out.chunks_exact_mut(LANES));
            for (c, o) in &mut chunks {
                for j in 0..LANES {
                    let e = exp_nonpositive_with::<FMA>(c[j] - m);
                    o[j] = e;
                    acc[j] += e;
                }
            }
            let done = l.len() - l.len() % LANES;
            for i in done..l.len() {
                let e = exp_nonpositive_with::<FMA>(l[i] - m);
                out[i] = e;
                tail += e;
            }
        }
        let sum: f64 = acc.iter().map(|&a| f64::from(a)).sum::<f64>() + f64::from(tail);
        if scale != 0.0 {
            let k = (f64::from(scale) / sum) as f32;
            out[..l.len()].iter_mut().for_each(|o| *o *= k);
        }
        f64::from(m) + sum.ln()
    }

    fn softmax_portable(l: &[f32], out: &mut [f32], scale: f32) -> f64 {
        softmax_row::<false>(l, out, scale)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn softmax_avx2(l: &[f32], out: &mut [f32], scale: f32) -> f64 {
        softmax_row::<true>(l, out, scale)
    }

    #[cfg(target_arch = "x86_64")]
    fn softmax_avx2_safe(l: &[f32], out: &mut [f32], scale: f32) -> f64 {
        // SAFETY: chosen by `pick_softmax` only where the CPU has AVX2 and FMA.
        unsafe { softmax_avx2(l, out, scale) }
    }

    /// The widest softmax version this CPU runs.
    pub fn pick_softmax() -> SoftmaxKernel {
        #[cfg(target_arch = "x86_64")]
        if avx2_fma() {
            return softmax_avx2_safe;
        }
        softmax_portable
    }

    /// Whether this CPU runs the AVX2 + FMA versions.
    #[cfg(target_arch = "x86_64")]
    fn avx2_fma() -> bool {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }

    /// The portable softmax version (tests compare both).
    #[cfg(test)]
    pub fn portable_softmax() -> SoftmaxKernel {
        softmax_portable
    }

    /// The widest version this CPU runs.
    pub fn pick() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        if avx2_fma() {
            return avx2_safe;
        }
        portable
    }

    /// The portable version (tests compare both).
    #[cfg(test)]
    pub fn portable_kernel() -> Kernel {
        portable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_log1p_match_f64_to_a_few_ulp() {
        let mut worst = (0.0f64, 0.0f64);
        for i in 0..=200_000 {
            let x = -(i as f32) * 87.0 / 200_000.0;
            let got = f64::from(exp_nonpositive(x));
            let want = f64::from(x).exp();
            worst.0 = worst.0.max((got - want).abs() / want);
            let e = i as f32 / 200_000.0;
            let got = f64::from(log1p_unit(e));
            let want = f64::from(e).ln_1p();
            if want > 0.0 {
                worst.1 = worst.1.max((got - want).abs() / want);
            }
        }
        assert!(
            worst.0 < 1.5e-7 && worst.1 < 3e-7,
            "relative errors {worst:?}"
        );
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-200.0), 0.0);
        assert_eq!(log1p_unit(0.0), 0.0);
        assert_eq!(log1p_unit(1e-30), 1e-30);
    }

    #[test]
    fn both_softmax_kernels_give_logsumexp_and_softmax_of_f64() {
        let v = 1003;
        let l: Vec<f32> = (0..v)
            .map(|i| ((i * 7919) % 2001) as f32 / 40.0 - 25.0)
            .collect();
        let m = l
            .iter()
            .fold(f64::NEG_INFINITY, |a, &b| a.max(f64::from(b)));
        let sum: f64 = l.iter().map(|&x| (f64::from(x) - m).exp()).sum();
        let lse = m + sum.ln();
        for kernel in [kernels::portable_softmax(), kernels::pick_softmax()] {
            let mut out = vec![0.0f32; v];
            let got = kernel(&l, &mut out, 0.5);
            assert!((got - lse).abs() < 1e-6 * lse.abs(), "{got} vs {lse}");
            for i in 0..v {
                let want = 0.5 * (f64::from(l[i]) - lse).exp();
                assert!((f64::from(out[i]) - want).abs() < 1e-7, "{i}");
            }
            // Without a scale: the value alone, `out` untouched.
            let mut untouched = vec![7.0f32; v];
            assert_eq!(kernel(&l, &mut untouched, 0.0), got);
            assert!(untouched.iter().all(|&x| x == 7.0));
        }
    }

    #[test]
    fn both_kernels_give_the_loss_and_gradient_of_f64() {
        let n = 1000;
        let l: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 2001) as f32 / 50.0 - 20.0)
            .collect();
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 104_729) % 101) as f32 / 100.0)
            .collect();
        let (mut want_v, mut want_g) = (0.0f64, vec![0.0f64; n]);
        for i in 0..n {
            let (l, x) = (f64::from(l[i]), f64::from(x[i]));
            want_v += l.max(0.0) - x * l + (-l.abs()).exp().ln_1p();
            want_g[i] = 1.0 / (1.0 + (-l).exp()) - x;
        }
        let mut kernels = vec![kernels::portable_kernel()];
        kernels.push(kernels::pick());
        for kernel in kernels {
            let mut g = vec![0.0f32; n];
            let v = kernel(&l, &x, &mut g);
            assert!((v - want_v).abs() < 1e-6 * want_v, "{v} vs {want_v}");
            for i in 0..n {
                assert!((f64::from(g[i]) - want_g[i]).abs() < 1e-6, "{i}");
            }
        }
    }
}
