//! The LSTM as ops on flex, forward and backward: a whole layer (training and
//! evaluation) and a single cell (step-by-step decoding).
//!
//! Why: written with tensor ops, one LSTM time step is a dozen element-wise ops (a
//! chunk into four gates, three sigmoids, two tanhs, the cell update), each its own
//! pass over memory with exp and tanh one value at a time, and under autodiff as many
//! backward nodes (the chunk's backward fills four zero tensors of the gates' size);
//! and a loop over time slices the input projections per step, each slice's backward
//! filling a zero tensor of the whole sequence (O(T^2) memory traffic). The PTB model
//! runs two layers per sentence. Here the layer's forward is, per step, one matmul and
//! one vectorised pass that keeps the gate activations, and its backward runs through
//! time in one call from them, the hidden weight's gradient one matmul over all steps:
//! Burn backend extensions ([`LstmCellOps`]) whose autodiff implementations register
//! hand-written [`Backward`]s. Other backends keep the tensor-op loop of
//! [`crate::text::rnn`], which the tests compare against.
//!
//! The cell, PyTorch's equations with the gates in PyTorch's order (i, f, g, o) along
//! the pre-activation row P = x W_x + h W_h + b:
//! i = s(P_i), f = s(P_f), g = tanh(P_g), o = s(P_o), c = f c' + i g, h = o tanh(c).
//! Backward, for upstream gradients dh and dc: dc~ = dc + dh o (1 - tanh(c)^2);
//! dP_i = dc~ g i (1 - i), dP_f = dc~ c' f (1 - f), dP_g = dc~ i (1 - g^2),
//! dP_o = dh tanh(c) o (1 - o), dc' = dc~ f.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::{DType, Tensor};

use super::{exp_nonpositive_with, flex, madd, transposed, values};

/// The cell's two passes on one backend's raw buffers.
pub trait LstmKernels: Backend {
    /// Forward: `gates` `[batch, 4 h]` (pre-activations), `c_prev` `[batch, h]` ->
    /// (`[2, batch, h]`: h then c, the activations i, f, g, o `[batch, 4 h]`).
    fn lstm_forward(
        gates: FloatTensor<Self>,
        c_prev: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// Backward from the forward's activations, `c_prev` and output, and the
    /// gradient of that output `[2, batch, h]` -> (d gates `[batch, 4 h]`, d c_prev
    /// `[batch, h]`).
    fn lstm_backward(
        acts: FloatTensor<Self>,
        c_prev: FloatTensor<Self>,
        out: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// A whole layer's forward: input projections `p` `[batch, T, 4 h]`, hidden
    /// weight `w` `[h, 4 h]` (y = h w), initial state `h0`, `c0` `[batch, h]` ->
    /// (every step's h `[batch, T, h]`, what the backward needs).
    fn lstm_layer_forward(
        p: FloatTensor<Self>,
        w: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, LayerTape<Self>);

    /// A whole layer's backward (through time) from its tape, `w` and the gradient of
    /// its output -> (d p, d w, d h0, d c0).
    fn lstm_layer_backward(
        tape: LayerTape<Self>,
        w: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 4];
}

/// What a layer's forward keeps for its backward, time-major: the gate activations
/// `[T, batch, 4 h]`, and the hidden and cell states `[T + 1, batch, h]` (the initial
/// ones first).
#[derive(Debug, Clone)]
pub struct LayerTape<B: Backend> {
    acts: FloatTensor<B>,
    hs: FloatTensor<B>,
    cs: FloatTensor<B>,
}

/// The fused cell as a backend extension: flex computes it, autodiff over flex adds
/// the hand-written backward. Call it through [`lstm_cell`].
#[backend_extension(Flex, Autodiff)]
pub trait LstmCellOps: Backend {
    /// `gates` `[batch, 4 h]`, `c_prev` `[batch, h]` -> `[2, batch, h]` (h, then c).
    fn lstm_cell(gates: FloatTensor<Self>, c_prev: FloatTensor<Self>) -> FloatTensor<Self>;

    /// A whole layer over T steps: `p` `[batch, T, 4 h]` (input projections), `w`
    /// `[h, 4 h]`, `h0`, `c0` `[batch, h]` -> every step's h `[batch, T, h]`.
    fn lstm_layer(
        p: FloatTensor<Self>,
        w: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

impl LstmCellOps for Flex {
    fn lstm_cell(gates: FloatTensor<Self>, c_prev: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::lstm_forward(gates, c_prev).0
    }

    fn lstm_layer(p: FlexTensor, w: FlexTensor, h0: FlexTensor, c0: FlexTensor) -> FlexTensor {
        Self::lstm_layer_forward(p, w, h0, c0).0
    }
}

impl<B: LstmKernels, C: CheckpointStrategy> LstmCellOps for Autodiff<B, C> {
    fn lstm_cell(gates: FloatTensor<Self>, c_prev: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct CellBackward;

        impl<B: LstmKernels> Backward<B, 2> for CellBackward {
            /// Activations, c_prev, output.
            type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_gates, node_c] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (acts, c_prev, out) = ops.state;
                let (d_gates, d_c) = B::lstm_backward(acts, c_prev, out, grad);
                if let Some(node) = node_gates {
                    grads.register::<B>(node.id, d_gates);
                }
                if let Some(node) = node_c {
                    grads.register::<B>(node.id, d_c);
                }
            }
        }

        match CellBackward
            .prepare::<C>([gates.node(), c_prev.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let c = c_prev.primitive().clone();
                let (out, acts) = B::lstm_forward(gates.primitive().clone(), c.clone());
                prep.finish((acts, c, out.clone()), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::lstm_forward(gates.into_primitive(), c_prev.into_primitive()).0)
            }
        }
    }

    fn lstm_layer(
        p: FloatTensor<Self>,
        w: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct LayerBackward;

        impl<B: LstmKernels> Backward<B, 4> for LayerBackward {
            type State = (LayerTape<B>, FloatTensor<B>);

            fn backward(
                self,
                ops: Ops<Self::State, 4>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let grad = grads.consume::<B>(&ops.node);
                let (tape, w) = ops.state;
                let parts = B::lstm_layer_backward(tape, w, grad);
                for (node, g) in ops.parents.into_iter().zip(parts) {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, g);
                    }
                }
            }
        }

        match LayerBackward
            .prepare::<C>([p.node(), w.node(), h0.node(), c0.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let w = w.primitive().clone();
                let (out, tape) = B::lstm_layer_forward(
                    p.primitive().clone(),
                    w.clone(),
                    h0.primitive().clone(),
                    c0.primitive().clone(),
                );
                prep.finish((tape, w), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(
                B::lstm_layer_forward(
                    p.into_primitive(),
                    w.into_primitive(),
                    h0.into_primitive(),
                    c0.into_primitive(),
                )
                .0,
            ),
        }
    }
}

impl LstmKernels for Flex {
    fn lstm_forward(gates: FlexTensor, c_prev: FlexTensor) -> (FlexTensor, FlexTensor) {
        let [b, h] = c_prev.shape().dims::<2>();
        let (p, c) = (values(&gates), values(&c_prev));
        let mut out = vec![0.0f32; 2 * b * h];
        let mut acts = vec![0.0f32; 4 * b * h];
        let (h_out, c_out) = out.split_at_mut(b * h);
        kernels::forward(&p, &c, &mut acts, h_out, c_out, h);
        (flex(out, [2, b, h]), flex(acts, [b, 4 * h]))
    }

    fn lstm_backward(
        acts: FlexTensor,
        c_prev: FlexTensor,
        out: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor) {
        let [b, h] = c_prev.shape().dims::<2>();
        let (a, cp, o, g) = (values(&acts), values(&c_prev), values(&out), values(&grad));
        let mut d_gates = vec![0.0f32; 4 * b * h];
        let mut d_c = vec![0.0f32; b * h];
        let (dh, dc) = g.split_at(b * h);
        kernels::backward(&a, &cp, &o[b * h..], dh, dc, &mut d_gates, &mut d_c, h);
        (flex(d_gates, [b, 4 * h]), flex(d_c, [b, h]))
    }

    fn lstm_layer_forward(
        p: FlexTensor,
        w: FlexTensor,
        h0: FlexTensor,
        c0: FlexTensor,
    ) -> (FlexTensor, LayerTape<Self>) {
        let [b, t_len, w4] = p.shape().dims::<3>();
        let (h, bh) = (w4 / 4, b * w4 / 4);
        let p = values(&p);
        let mut acts = vec![0.0f32; t_len * b * w4];
        let mut hs = vec![0.0f32; (t_len + 1) * bh];
        let mut cs = vec![0.0f32; (t_len + 1) * bh];
        hs[..bh].copy_from_slice(&values(&h0));
        cs[..bh].copy_from_slice(&values(&c0));
        let mut out = vec![0.0f32; b * t_len * h];
        let mut gates = vec![0.0f32; b * w4];
        for t in 0..t_len {
            // h_(t-1) w, then + this step's projections: the pre-activations.
            let hp = Flex::float_matmul(flex(hs[t * bh..(t + 1) * bh].to_vec(), [b, h]), w.clone());
            let hp = values(&hp);
            for r in 0..b {
                let row = &p[(r * t_len + t) * w4..(r * t_len + t + 1) * w4];
                let g = &mut gates[r * w4..(r + 1) * w4];
                for ((g, &x), &y) in g.iter_mut().zip(row).zip(&hp[r * w4..(r + 1) * w4]) {
                    *g = x + y;
                }
            }
            let (c_prev, c_next) = cs[t * bh..(t + 2) * bh].split_at_mut(bh);
            let h_next = &mut hs[(t + 1) * bh..(t + 2) * bh];
            let a = &mut acts[t * b * w4..(t + 1) * b * w4];
            kernels::forward(&gates, c_prev, a, h_next, c_next, h);
            for r in 0..b {
                out[(r * t_len + t) * h..(r * t_len + t + 1) * h]
                    .copy_from_slice(&h_next[r * h..(r + 1) * h]);
            }
        }
        let tape = LayerTape {
            acts: flex(acts, [t_len, b, w4]),
            hs: flex(hs, [t_len + 1, b, h]),
            cs: flex(cs, [t_len + 1, b, h]),
        };
        (flex(out, [b, t_len, h]), tape)
    }

    fn lstm_layer_backward(
        tape: LayerTape<Self>,
        w: FlexTensor,
        grad: FlexTensor,
    ) -> [FlexTensor; 4] {
        let [t_len, b, w4] = tape.acts.shape().dims::<3>();
        let (h, bh) = (w4 / 4, b * w4 / 4);
        let (acts, hs, cs, grad) = (
            values(&tape.acts),
            values(&tape.hs),
            values(&tape.cs),
            values(&grad),
        );
        // Transposes materialised once: gemm packs a transposed (strided) view element
        // by element, which profiling showed costing more than these copies.
        let w_t = flex(transposed(&values(&w), h, w4), [w4, h]); // [4 h, h]
        let mut dp_time = vec![0.0f32; t_len * b * w4]; // time-major
        let mut dh_next = vec![0.0f32; bh];
        let mut dc_next = vec![0.0f32; bh];
        let mut dh = vec![0.0f32; bh];
        let mut dc_prev = vec![0.0f32; bh];
        for t in (0..t_len).rev() {
            for r in 0..b {
                let up = &grad[(r * t_len + t) * h..(r * t_len + t + 1) * h];
                for ((d, &u), &n) in dh[r * h..(r + 1) * h]
                    .iter_mut()
                    .zip(up)
                    .zip(&dh_next[r * h..(r + 1) * h])
                {
                    *d = u + n;
                }
            }
            let dp = &mut dp_time[t * b * w4..(t + 1) * b * w4];
            kernels::backward(
                &acts[t * b * w4..(t + 1) * b * w4],
                &cs[t * bh..(t + 1) * bh],
                &cs[(t + 1) * bh..(t + 2) * bh],
                &dh,
                &dc_next,
                dp,
                &mut dc_prev,
                h,
            );
            std::mem::swap(&mut dc_next, &mut dc_prev);
            // d h_(t-1) from this step's pre-activations: dP w^T.
            let back = Flex::float_matmul(flex(dp.to_vec(), [b, w4]), w_t.clone());
            dh_next.copy_from_slice(&values(&back));
        }
        // Back to the input's batch-major layout.
        let mut dp = vec![0.0f32; b * t_len * w4];
        for t in 0..t_len {
            for r in 0..b {
                dp[(r * t_len + t) * w4..(r * t_len + t + 1) * w4]
                    .copy_from_slice(&dp_time[(t * b + r) * w4..(t * b + r + 1) * w4]);
            }
        }
        // d w = sum over steps of h_(t-1)^T dP_t: one matmul over all steps.
        let h_prev_t = flex(transposed(&hs[..t_len * bh], t_len * b, h), [h, t_len * b]);
        let dw = Flex::float_matmul(h_prev_t, flex(dp_time, [t_len * b, w4]));
        [
            flex(dp, [b, t_len, w4]),
            dw,
            flex(dh_next, [b, h]),
            flex(dc_next, [b, h]),
        ]
    }
}

/// One LSTM step from the pre-activations `gates` `[batch, 4 h]` and the previous
/// cell state `c_prev` `[batch, h]`: (h, c), each `[batch, h]`, tracked for autodiff
/// like any op. `None` off flex (or for other than f32), where the caller runs the
/// tensor-op cell.
pub fn lstm_cell(gates: &Tensor<2>, c_prev: &Tensor<2>) -> Option<(Tensor<2>, Tensor<2>)> {
    if !(on_flex_f32(gates) && on_flex_f32(c_prev)) {
        return None;
    }
    let [b, h] = c_prev.dims();
    if gates.dims() != [b, 4 * h] {
        return None;
    }
    let out = Tensor::<3>::from_dispatch(<Dispatch as LstmCellOps>::lstm_cell(
        gates.clone().into_dispatch(),
        c_prev.clone().into_dispatch(),
    ));
    // Slices along the first dimension: contiguous views, no copy.
    let part = |k: usize| out.clone().narrow(0, k, 1).reshape([b, h]);
    Some((part(0), part(1)))
}

/// An LSTM layer over every step of `p` `[batch, T, 4 h]` (the input projections,
/// biases included) with hidden weight `w` `[h, 4 h]` from state (`h0`, `c0`), as one
/// op with a backward through time of its own: every step's h `[batch, T, h]`. `None`
/// off flex (or for other than f32).
pub fn lstm_layer(
    p: &Tensor<3>,
    w: &Tensor<2>,
    h0: &Tensor<2>,
    c0: &Tensor<2>,
) -> Option<Tensor<3>> {
    let [b, _, w4] = p.dims();
    let h = w4 / 4;
    let fits = w.dims() == [h, w4] && h0.dims() == [b, h] && c0.dims() == [b, h];
    if !(fits && on_flex_f32(p) && on_flex_f32(w) && on_flex_f32(h0) && on_flex_f32(c0)) {
        return None;
    }
    Some(Tensor::<3>::from_dispatch(
        <Dispatch as LstmCellOps>::lstm_layer(
            p.clone().into_dispatch(),
            w.clone().into_dispatch(),
            h0.clone().into_dispatch(),
            c0.clone().into_dispatch(),
        ),
    ))
}

/// Whether `t` lives on flex (under autodiff or not) as f32.
fn on_flex_f32<const D: usize>(t: &Tensor<D>) -> bool {
    super::flex_float(t).is_some_and(|p| p.dtype() == DType::F32)
}

/// The logistic function, vectorisable: 1 / (1 + e) or e / (1 + e), e = exp(-|x|).
#[inline(always)]
fn sigmoid<const FMA: bool>(x: f32) -> f32 {
    let e = exp_nonpositive_with::<FMA>(-x.abs());
    let inv = 1.0 / (1.0 + e);
    if x >= 0.0 { inv } else { e * inv }
}

/// tanh, vectorisable: sign(x) (1 - e) / (1 + e), e = exp(-2|x|); absolute error
/// ~1e-7 (relative error grows as x -> 0, where tanh(x) ~ x is tiny anyway).
#[inline(always)]
fn tanh<const FMA: bool>(x: f32) -> f32 {
    let e = exp_nonpositive_with::<FMA>(-2.0 * x.abs());
    ((1.0 - e) / (1.0 + e)).copysign(x)
}

mod kernels {
    use super::{madd, sigmoid, tanh};

    /// Rows of the forward: pre-activations `p` (rows of 4 h), `c` (rows of h).
    #[inline(always)]
    fn forward_rows<const FMA: bool>(
        p: &[f32],
        c: &[f32],
        acts: &mut [f32],
        h_out: &mut [f32],
        c_out: &mut [f32],
        h: usize,
    ) {
        let rows = p
            .chunks_exact(4 * h)
            .zip(acts.chunks_exact_mut(4 * h))
            .zip(c.chunks_exact(h))
            .zip(h_out.chunks_exact_mut(h).zip(c_out.chunks_exact_mut(h)));
        for (((p, a), c), (ho, co)) in rows {
            let (pi, rest) = p.split_at(h);
            let (pf, rest) = rest.split_at(h);
            let (pg, po) = rest.split_at(h);
            let (ai, rest) = a.split_at_mut(h);
            let (af, rest) = rest.split_at_mut(h);
            let (ag, ao) = rest.split_at_mut(h);
            for j in 0..h {
                let (i, f) = (sigmoid::<FMA>(pi[j]), sigmoid::<FMA>(pf[j]));
                let (g, o) = (tanh::<FMA>(pg[j]), sigmoid::<FMA>(po[j]));
                let cj = madd::<FMA>(f, c[j], i * g);
                (ai[j], af[j], ag[j], ao[j]) = (i, f, g, o);
                co[j] = cj;
                ho[j] = o * tanh::<FMA>(cj);
            }
        }
    }

    /// Rows of the backward (see the module docs).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn backward_rows<const FMA: bool>(
        acts: &[f32],
        c_prev: &[f32],
        c: &[f32],
        dh: &[f32],
        dc: &[f32],
        d_gates: &mut [f32],
        d_c: &mut [f32],
        h: usize,
    ) {
        let rows = acts
            .chunks_exact(4 * h)
            .zip(d_gates.chunks_exact_mut(4 * h))
            .zip(c_prev.chunks_exact(h).zip(c.chunks_exact(h)))
            .zip(
                dh.chunks_exact(h)
                    .zip(dc.chunks_exact(h))
                    .zip(d_c.chunks_exact_mut(h)),
            );
        for (((a, dg), (cp, c)), ((dh, dc), dcp)) in rows {
            let (ai, rest) = a.split_at(h);
            let (af, rest) = rest.split_at(h);
            let (ag, ao) = rest.split_at(h);
            let (di, rest) = dg.split_at_mut(h);
            let (df, rest) = rest.split_at_mut(h);
            let (dgg, dout) = rest.split_at_mut(h);
            for j in 0..h {
                let (i, f, g, o) = (ai[j], af[j], ag[j], ao[j]);
                let tc = tanh::<FMA>(c[j]);
                let dct = madd::<FMA>(dh[j] * o, 1.0 - tc * tc, dc[j]);
                di[j] = dct * g * (i * (1.0 - i));
                df[j] = dct * cp[j] * (f * (1.0 - f));
                dgg[j] = dct * i * (1.0 - g * g);
                dout[j] = dh[j] * tc * (o * (1.0 - o));
                dcp[j] = dct * f;
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn forward_avx2(
        p: &[f32],
        c: &[f32],
        acts: &mut [f32],
        h_out: &mut [f32],
        c_out: &mut [f32],
        h: usize,
    ) {
        forward_rows::<true>(p, c, acts, h_out, c_out, h)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn backward_avx2(
        acts: &[f32],
        c_prev: &[f32],
        c: &[f32],
        dh: &[f32],
        dc: &[f32],
        d_gates: &mut [f32],
        d_c: &mut [f32],
        h: usize,
    ) {
        backward_rows::<true>(acts, c_prev, c, dh, dc, d_gates, d_c, h)
    }

    /// Whether this CPU runs the AVX2 + FMA versions.
    fn avx2_fma() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// Whether [`forward`] takes the AVX2 + FMA version here.
    #[cfg(test)]
    pub fn takes_avx2() -> bool {
        avx2_fma()
    }

    /// The forward, in the widest version this CPU runs.
    pub fn forward(
        p: &[f32],
        c: &[f32],
        acts: &mut [f32],
        h_out: &mut [f32],
        c_out: &mut [f32],
        h: usize,
    ) {
        forward_with(avx2_fma(), p, c, acts, h_out, c_out, h)
    }

    /// The forward, AVX2 + FMA if `fast` (only where the CPU has them), else portable.
    pub fn forward_with(
        fast: bool,
        p: &[f32],
        c: &[f32],
        acts: &mut [f32],
        h_out: &mut [f32],
        c_out: &mut [f32],
        h: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        if fast && avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA (checked here).
            return unsafe { forward_avx2(p, c, acts, h_out, c_out, h) };
        }
        let _ = fast;
        forward_rows::<false>(p, c, acts, h_out, c_out, h)
    }

    /// The backward, in the widest version this CPU runs.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        acts: &[f32],
        c_prev: &[f32],
        c: &[f32],
        dh: &[f32],
        dc: &[f32],
        d_gates: &mut [f32],
        d_c: &mut [f32],
        h: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        if avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            return unsafe { backward_avx2(acts, c_prev, c, dh, dc, d_gates, d_c, h) };
        }
        backward_rows::<false>(acts, c_prev, c, dh, dc, d_gates, d_c, h)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::activation::{sigmoid, tanh};
    use burn::tensor::{Device, Tensor, TensorData};

    use super::*;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    /// The cell in Burn's tensor ops, differentiated by Burn's autodiff: the oracle.
    fn reference(gates: Tensor<2>, c_prev: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let mut g = gates.chunk(4, 1).into_iter();
        let mut next = || g.next().unwrap();
        let (i, f, gg, o) = (
            sigmoid(next()),
            sigmoid(next()),
            tanh(next()),
            sigmoid(next()),
        );
        let c = f * c_prev + i * gg;
        (o * tanh(c.clone()), c)
    }

    /// Pseudo-random values in [-scale, scale] (saturating the gates at 6).
    fn noise(n: usize, seed: u32, scale: f32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    /// Values and both gradients of a weighted sum of h and c, fused against the
    /// tensor-op cell under autodiff; h = 37 units leaves a ragged vector tail.
    #[test]
    fn fused_cell_matches_the_tensor_op_cell_and_its_gradients() {
        let device = Device::flex().autodiff();
        let (b, h) = (3, 37);
        let leaf = |v: Vec<f32>, shape: [usize; 2]| {
            Tensor::<2>::from_data(TensorData::new(v, shape), &device).require_grad()
        };
        let wh = Tensor::<2>::from_data(TensorData::new(noise(b * h, 3, 1.0), [b, h]), &device);
        let wc = Tensor::<2>::from_data(TensorData::new(noise(b * h, 4, 1.0), [b, h]), &device);
        let run = |fused: bool| {
            let gates = leaf(noise(b * 4 * h, 1, 6.0), [b, 4 * h]);
            let c_prev = leaf(noise(b * h, 2, 2.0), [b, h]);
            let (hh, c) = if fused {
                lstm_cell(&gates, &c_prev).expect("flex takes the fused cell")
            } else {
                reference(gates.clone(), c_prev.clone())
            };
            let loss = (hh.clone() * wh.clone()).sum() + (c.clone() * wc.clone()).sum();
            let grads = loss.backward();
            (
                values(hh.inner()),
                values(c.inner()),
                values(gates.grad(&grads).unwrap()),
                values(c_prev.grad(&grads).unwrap()),
            )
        };
        let (ours, theirs) = (run(true), run(false));
        let close = |a: &[f32], b: &[f32], what: &str| {
            assert_eq!(a.len(), b.len());
            for (k, (x, y)) in a.iter().zip(b).enumerate() {
                assert!(
                    (x - y).abs() <= 2e-6 + 2e-6 * y.abs(),
                    "{what}[{k}]: {x} vs {y}"
                );
            }
        };
        close(&ours.0, &theirs.0, "h");
        close(&ours.1, &theirs.1, "c");
        close(&ours.2, &theirs.2, "d gates");
        close(&ours.3, &theirs.3, "d c_prev");
        assert!(ours.2.iter().any(|&g| g != 0.0));
    }

    /// The layer op against a loop of tensor-op cells under Burn's autodiff: every
    /// step's h, and the gradients of the projections, the hidden weight and the
    /// initial state.
    #[test]
    fn fused_layer_matches_a_loop_of_tensor_op_cells_and_its_gradients() {
        let device = Device::flex().autodiff();
        let (b, t_len, h) = (3, 5, 7);
        let leaf = |seed: u32, scale: f32, shape: Vec<usize>| {
            let n = shape.iter().product();
            Tensor::<1>::from_data(TensorData::new(noise(n, seed, scale), [n]), &device)
        };
        let wout = leaf(9, 1.0, vec![b * t_len * h]).reshape([b, t_len, h]);
        let run = |fused: bool| {
            let p = leaf(1, 3.0, vec![b * t_len * 4 * h])
                .reshape([b, t_len, 4 * h])
                .require_grad();
            let w = leaf(2, 0.5, vec![h * 4 * h])
                .reshape([h, 4 * h])
                .require_grad();
            let h0 = leaf(3, 0.9, vec![b * h]).reshape([b, h]).require_grad();
            let c0 = leaf(4, 1.5, vec![b * h]).reshape([b, h]).require_grad();
            let out = if fused {
                lstm_layer(&p, &w, &h0, &c0).expect("flex takes the fused layer")
            } else {
                let (mut hh, mut c) = (h0.clone(), c0.clone());
                let mut outs = vec![];
                for t in 0..t_len {
                    let g = p.clone().slice([0..b, t..t + 1]).reshape([b, 4 * h])
                        + hh.clone().matmul(w.clone());
                    (hh, c) = reference(g, c);
                    outs.push(hh.clone());
                }
                Tensor::stack(outs, 1)
            };
            let grads = (out.clone() * wout.clone()).sum().backward();
            let g = |x: &Tensor<2>| values(x.grad(&grads).unwrap());
            vec![
                values(out.inner()),
                values(p.grad(&grads).unwrap()),
                g(&w),
                g(&h0),
                g(&c0),
            ]
        };
        let (ours, theirs) = (run(true), run(false));
        for (what, (a, b)) in ["h", "d p", "d w", "d h0", "d c0"]
            .iter()
            .zip(ours.iter().zip(&theirs))
        {
            assert_eq!(a.len(), b.len(), "{what}");
            for (k, (x, y)) in a.iter().zip(b).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-5 + 1e-5 * y.abs(),
                    "{what}[{k}]: {x} vs {y}"
                );
            }
            assert!(a.iter().any(|&v| v != 0.0), "{what} is all zeros");
        }
    }

    /// The portable and the AVX2 + FMA versions agree (this CPU may run either).
    #[test]
    fn both_kernel_versions_agree() {
        let (b, h) = (2, 21);
        let (p, c) = (noise(b * 4 * h, 7, 5.0), noise(b * h, 8, 1.5));
        let mut first = None;
        for fma in [false, true] {
            if fma && !(cfg!(target_arch = "x86_64") && kernels::takes_avx2()) {
                continue;
            }
            let (mut acts, mut out) = (vec![0.0; 4 * b * h], vec![0.0; 2 * b * h]);
            let (ho, co) = out.split_at_mut(b * h);
            kernels::forward_with(fma, &p, &c, &mut acts, ho, co, h);
            match &first {
                None => first = Some(out),
                Some(f) => {
                    for (x, y) in out.iter().zip(f) {
                        assert!((x - y).abs() < 1e-6, "{x} vs {y}");
                    }
                }
            }
        }
    }
}
