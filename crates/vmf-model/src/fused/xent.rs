//! The token cross-entropy as one op on flex with its own backward.
//!
//! Why: the 10,002-way softmax's logits are the text model's largest tensor (~15 MB a
//! shard and step). Its gradient, mask (softmax - onehot), falls out of the forward
//! pass for free; handing it to autodiff through a surrogate (value + sum(l g) -
//! detach) cost four more passes over the logits (the product, its sum, and their
//! backward). As a backend extension ([`TokenXentOps`]) the forward keeps g and the
//! backward scales it by each sentence's upstream gradient in place: one pass.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::{Int, Tensor, TensorData};

use super::xent_rows;

/// The op's two passes on one backend's raw buffers.
pub trait XentKernels: Backend {
    /// Each sentence's loss `[b]` from `logits` `[b, T, V]`, `targets` and `mask`
    /// `[b, T]`, and, if `grad`, the gradient mask (softmax - onehot) `[b, T, V]`.
    fn xent_forward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        mask: FloatTensor<Self>,
        grad: bool,
    ) -> (FloatTensor<Self>, Option<FloatTensor<Self>>);

    /// The forward's gradient `g` `[b, T, V]` with each sentence's rows scaled by the
    /// upstream gradient `up` `[b]`.
    fn xent_backward(g: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// The fused token cross-entropy as a backend extension: flex computes it, autodiff
/// over flex adds the backward. Call it through [`super::token_cross_entropy`].
#[backend_extension(Flex, Autodiff)]
pub trait TokenXentOps: Backend {
    /// `logits` `[b, T, V]`, `targets` (ids) and `mask` `[b, T]` -> `[b]`.
    fn token_xent(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        mask: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

impl TokenXentOps for Flex {
    fn token_xent(logits: FlexTensor, targets: FlexTensor, mask: FlexTensor) -> FlexTensor {
        Self::xent_forward(logits, targets, mask, false).0
    }
}

impl<B: XentKernels, C: CheckpointStrategy> TokenXentOps for Autodiff<B, C> {
    fn token_xent(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        mask: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct XentBackward;

        impl<B: XentKernels> Backward<B, 1> for XentBackward {
            /// The gradient with respect to the logits, per unit of upstream gradient.
            type State = FloatTensor<B>;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node] = ops.parents;
                let up = grads.consume::<B>(&ops.node);
                if let Some(node) = node {
                    grads.register::<B>(node.id, B::xent_backward(ops.state, up));
                }
            }
        }

        // The mask is data: a constant to this op.
        let mask = mask.into_primitive();
        match XentBackward
            .prepare::<C>([logits.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (value, g) = B::xent_forward(logits.into_primitive(), targets, mask, true);
                prep.finish(g.expect("asked for the gradient"), value)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::xent_forward(logits.into_primitive(), targets, mask, false).0)
            }
        }
    }
}

const CHECKED: &str = "contiguous buffers of the right type (checked by token_cross_entropy)";

impl XentKernels for Flex {
    fn xent_forward(
        logits: FlexTensor,
        targets: FlexTensor,
        mask: FlexTensor,
        grad: bool,
    ) -> (FlexTensor, Option<FlexTensor>) {
        let [b, t, v] = logits.shape().dims::<3>();
        let (value, g) = xent_rows(
            logits.as_slice::<f32>().expect(CHECKED),
            targets.as_slice::<i32>().expect(CHECKED),
            mask.as_slice::<f32>().expect(CHECKED),
            [b, t, v],
            grad,
        );
        (
            FlexTensor::from_data(TensorData::new(value, [b])),
            g.map(|g| FlexTensor::from_data(TensorData::new(g, [b, t, v]))),
        )
    }

    fn xent_backward(mut g: FlexTensor, up: FlexTensor) -> FlexTensor {
        let [_, t, v] = g.shape().dims::<3>();
        let up = up
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 upstream gradients");
        // In place: the state is the only owner of g by now (else a copy).
        let buf = g.storage_mut::<f32>();
        for (rows, &u) in buf.chunks_exact_mut(t * v).zip(&up) {
            rows.iter_mut().for_each(|x| *x *= u);
        }
        g
    }
}

/// [`super::token_cross_entropy`] once the buffers are checked.
pub(super) fn token_cross_entropy(
    logits: &Tensor<3>,
    targets: &Tensor<2, Int>,
    mask: &Tensor<2>,
) -> Tensor<1> {
    Tensor::from_dispatch(<Dispatch as TokenXentOps>::token_xent(
        logits.clone().into_dispatch(),
        targets.clone().into_dispatch(),
        mask.clone().into_dispatch(),
    ))
}
