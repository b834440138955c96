//! Reconstruction losses, summed over features and averaged over the batch (nats).

use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;
use serde::{Deserialize, Serialize};

/// The decoder's likelihood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReconLoss {
    /// Bernoulli with logits: -log p(x|z) = sum softplus(l) - x l (x in [0, 1]).
    Bernoulli,
    /// Gaussian with mean sigmoid(l) and unit variance, up to a constant:
    /// 0.5 sum (x - sigmoid(l))^2.
    Gaussian,
}

/// -log p(x | z) per example.
///
/// # Shapes
/// - `logits`, `x`: `[batch, features]`
/// - returns `[batch]`
pub fn reconstruction_per_example(kind: ReconLoss, logits: Tensor<2>, x: Tensor<2>) -> Tensor<1> {
    match kind {
        ReconLoss::Bernoulli => bernoulli_per_example(logits, x),
        ReconLoss::Gaussian => (x - sigmoid(logits))
            .powi_scalar(2)
            .mul_scalar(0.5)
            .sum_dim(1)
            .squeeze_dim(1),
    }
}

/// sum softplus(l) - x l per row, with the gradient (sigmoid(l) - x) supplied directly.
///
/// The value is computed untracked as relu(l) - x l + ln(1 + exp(-|l|)) (stable: the
/// exponent is <= 0) and the gradient rides on a surrogate `sum(l * g) - sum(l * g)`
/// with g = sigmoid(l) - x held constant. Written out by hand because the autodiff
/// chain of Burn's softplus (seven ops) or log_sigmoid (scalar log1p, ~13 ns per
/// element on flex) was the largest cost after the matmuls; see benches/step.rs.
/// ln(1 + t) for t <= 1 loses at most ~6e-8 absolute per element to rounding 1 + t.
/// On flex, value and gradient come from one fused pass ([`crate::fused::bernoulli`]);
/// this code is the fallback elsewhere and the reference its tests compare with.
fn bernoulli_per_example(logits: Tensor<2>, x: Tensor<2>) -> Tensor<1> {
    let l = logits.clone().detach();
    let tracked = logits.is_tracked();
    let (value, g) = crate::fused::bernoulli(&l, &x, tracked)
        .unwrap_or_else(|| bernoulli_value_and_gradient(l, x, tracked));
    match g {
        Some(g) => crate::fused::with_gradient(value, logits, g),
        None => value,
    }
}

/// sum softplus(l) - x l per row and (if `grad`) sigmoid(l) - x, in tensor ops (any
/// backend).
pub fn bernoulli_value_and_gradient(
    l: Tensor<2>,
    x: Tensor<2>,
    grad: bool,
) -> (Tensor<1>, Option<Tensor<2>>) {
    let value = l.clone().clamp_min(0.0) - x.clone() * l.clone()
        + l.clone().abs().neg().exp().add_scalar(1.0).log();
    let value = value.sum_dim(1).squeeze_dim::<1>(1);
    (value, grad.then(|| sigmoid(l) - x)) // the gradient is a constant for autodiff
}

/// -log p(x | z) averaged over the batch (a scalar tensor `[1]`).
pub fn reconstruction_loss(kind: ReconLoss, logits: Tensor<2>, x: Tensor<2>) -> Tensor<1> {
    reconstruction_per_example(kind, logits, x).mean()
}
