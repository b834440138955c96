//! The affine map x W + b of a wide output layer as one op on flex, with its own
//! backward.
//!
//! Why: flex allocates every matmul's output with `FlexTensor::empty`, which fills a
//! byte vector with zeros and then copies it into a 16-byte-aligned buffer (cubecl's
//! `Bytes::from_bytes_vec`): two fresh buffers, page clearing and a copy for every
//! product. For the text model's 10,002-way output layer those products are the logits
//! (~14 MB a shard and step) and the weight's gradient (16 MB); `perf` put the page
//! clearing, fills and copies under them at ~9% of a PTB step. Here each output is an
//! f32 vector that flex takes without a copy, the bias is written into the logits
//! before gemm adds the product onto it (no separate pass for `+ b`), and the bias's
//! gradient is the column sum of the upstream gradient. Other backends (and anything
//! the op cannot take) keep Burn's `Linear::forward`, which the tests compare against.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::nn::Linear;
use burn::tensor::{DType, Tensor};

// gemm packs a strided (transposed) operand element by element, slower than a
// transpose materialised once.
use super::{flex, transposed, values};

/// The op's two passes on one backend's raw buffers.
pub trait AffineKernels: Backend {
    /// `x` `[n, k]`, `w` `[k, m]`, `b` `[m]` -> x w + b `[n, m]`.
    fn affine_forward(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// The gradients with respect to `x`, `w` and `b` from the upstream gradient
    /// `grad` `[n, m]`: grad w^T, x^T grad and the column sums of grad.
    fn affine_backward(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3];
}

/// The fused affine map as a backend extension: flex computes it, autodiff over flex
/// adds the backward. Call it through [`linear`].
#[backend_extension(Flex, Autodiff)]
pub trait AffineOps: Backend {
    /// `x` `[n, k]`, `w` `[k, m]`, `b` `[m]` -> `[n, m]`.
    fn affine(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

impl AffineOps for Flex {
    fn affine(x: FlexTensor, w: FlexTensor, b: FlexTensor) -> FlexTensor {
        Self::affine_forward(x, w, b)
    }
}

impl<B: AffineKernels, C: CheckpointStrategy> AffineOps for Autodiff<B, C> {
    fn affine(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct AffineBackward;

        impl<B: AffineKernels> Backward<B, 3> for AffineBackward {
            /// x and w.
            type State = (FloatTensor<B>, FloatTensor<B>);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let grad = grads.consume::<B>(&ops.node);
                let (x, w) = ops.state;
                let parts = B::affine_backward(x, w, grad);
                for (node, g) in ops.parents.into_iter().zip(parts) {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, g);
                    }
                }
            }
        }

        match AffineBackward
            .prepare::<C>([x.node(), w.node(), b.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (xp, wp) = (x.primitive().clone(), w.primitive().clone());
                let out = B::affine_forward(xp.clone(), wp.clone(), b.primitive().clone());
                prep.finish((xp, wp), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::affine_forward(
                x.into_primitive(),
                w.into_primitive(),
                b.into_primitive(),
            )),
        }
    }
}

/// `dst` (row-major `[n, m]`) += `lhs` (row-major `[n, k]`) `rhs` (row-major `[k, m]`).
fn gemm_add(dst: &mut [f32], lhs: &[f32], rhs: &[f32], n: usize, k: usize, m: usize) {
    assert!(dst.len() == n * m && lhs.len() == n * k && rhs.len() == k * m);
    // flex's own threshold for going parallel (burn-flex's matmul: 192^3 products).
    let parallelism = if n.saturating_mul(m).saturating_mul(k) >= 192 * 192 * 192 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the three buffers hold exactly the row-major matrices the strides
    // describe (asserted above), and dst does not alias lhs or rhs (a &mut borrow).
    unsafe {
        gemm::gemm(
            n,
            m,
            k,
            dst.as_mut_ptr(),
            1,
            m as isize,
            true,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            1,
            m as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
}

impl AffineKernels for Flex {
    fn affine_forward(x: FlexTensor, w: FlexTensor, b: FlexTensor) -> FlexTensor {
        let [k, m] = w.shape().dims::<2>();
        let n = x.shape().num_elements() / k;
        let (x, w, b) = (values(&x), values(&w), values(&b));
        let mut out = Vec::with_capacity(n * m);
        for _ in 0..n {
            out.extend_from_slice(&b);
        }
        gemm_add(&mut out, &x, &w, n, k, m);
        flex(out, [n, m])
    }

    fn affine_backward(x: FlexTensor, w: FlexTensor, grad: FlexTensor) -> [FlexTensor; 3] {
        let [k, m] = w.shape().dims::<2>();
        let n = x.shape().num_elements() / k;
        let (x, w, grad) = (values(&x), values(&w), values(&grad));
        let g: &[f32] = &grad;
        // dx = grad w^T: [n, m] [m, k].
        let mut dx = vec![0.0f32; n * k];
        gemm_add(&mut dx, g, &transposed(&w, k, m), n, m, k);
        // dw = x^T grad: [k, n] [n, m].
        let mut dw = vec![0.0f32; k * m];
        gemm_add(&mut dw, &transposed(&x, n, k), g, k, n, m);
        let mut db = vec![0.0f32; m];
        for row in g.chunks_exact(m) {
            for (s, &v) in db.iter_mut().zip(row) {
                *s += v;
            }
        }
        [flex(dx, [n, k]), flex(dw, [k, m]), flex(db, [m])]
    }
}

/// `layer.forward(x)` for `x` `[batch, T, k]` as the fused op on flex (f32, with a
/// bias), tracked for autodiff like any op; `None` elsewhere, where the caller runs
/// Burn's `Linear::forward`.
pub fn linear(layer: &Linear, x: &Tensor<3>) -> Option<Tensor<3>> {
    let bias = layer.bias.as_ref()?.val();
    let w = layer.weight.val();
    let on_flex = |t: Option<FlexTensor>| t.is_some_and(|p| p.dtype() == DType::F32);
    if !(on_flex(super::flex_float(x))
        && on_flex(super::flex_float(&w))
        && on_flex(super::flex_float(&bias)))
    {
        return None;
    }
    let [b, t, k] = x.dims();
    let [wk, m] = w.dims();
    if wk != k {
        return None;
    }
    let x2 = x.clone().reshape([b * t, k]);
    let out = Tensor::<2>::from_dispatch(<Dispatch as AffineOps>::affine(
        x2.into_dispatch(),
        w.into_dispatch(),
        bias.into_dispatch(),
    ));
    Some(out.reshape([b, t, m]))
}

#[cfg(test)]
mod tests {
    use burn::nn::LinearConfig;
    use burn::tensor::{Device, TensorData};

    use super::*;

    fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    fn close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        let scale = b.iter().fold(0.0f32, |s, v| s.max(v.abs())).max(1e-3);
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= 2e-5 * scale, "{what}[{i}]: {x} vs {y}");
        }
    }

    /// The fused op against Burn's `Linear::forward` on the same weights: the output
    /// and the gradients of the input, the weight and the bias under a loss that
    /// weighs every output differently; once below gemm's parallel threshold, once
    /// above it, and once from a transposed (strided) input.
    #[test]
    fn the_fused_affine_map_equals_burns_linear_forward_and_backward() {
        let _rng = crate::rng_lock();
        let device = Device::flex().autodiff();
        for (b, t, k, m, strided) in [
            (2, 3, 7, 13, false),
            (4, 9, 200, 1000, false),
            (3, 5, 6, 11, true),
        ] {
            let layer = LinearConfig::new(k, m).init(&device);
            let x: Vec<f32> = (0..b * t * k)
                .map(|i| (i * 37 % 101) as f32 / 50.0 - 1.0)
                .collect();
            let x = if strided {
                Tensor::<3>::from_data(TensorData::new(x, [b, k, t]), &device).swap_dims(1, 2)
            } else {
                Tensor::<3>::from_data(TensorData::new(x, [b, t, k]), &device)
            };
            let weights: Vec<f32> = (0..b * t * m)
                .map(|i| (i * 13 % 29) as f32 / 7.0 - 2.0)
                .collect();
            let r = Tensor::<3>::from_data(TensorData::new(weights, [b, t, m]), &device);
            let run = |fused: bool| {
                let x = x.clone().require_grad();
                let out = if fused {
                    linear(&layer, &x).expect("flex, f32, with a bias")
                } else {
                    layer.forward(x.clone())
                };
                let grads = (out.clone() * r.clone()).sum().backward();
                let bias = layer.bias.as_ref().unwrap();
                (
                    floats(out),
                    floats(x.grad(&grads).unwrap()),
                    floats(layer.weight.grad(&grads).unwrap()),
                    floats(bias.grad(&grads).unwrap()),
                )
            };
            let (fused, burn) = (run(true), run(false));
            let case = format!("[{b}, {t}, {k}] x [{k}, {m}], strided {strided}");
            close(&fused.0, &burn.0, &format!("output, {case}"));
            close(&fused.1, &burn.1, &format!("d x, {case}"));
            close(&fused.2, &burn.2, &format!("d w, {case}"));
            close(&fused.3, &burn.3, &format!("d b, {case}"));
        }
        // Without a bias the caller runs Burn's layer.
        let no_bias = LinearConfig::new(3, 4).with_bias(false).init(&device);
        assert!(linear(&no_bias, &Tensor::<3>::zeros([1, 2, 3], &device)).is_none());
    }
}
