//! Reconstruction losses, summed over features and averaged over the batch (nats).

use burn::tensor::Tensor;
use burn::tensor::activation::{sigmoid, softplus};
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
    let per_feature = match kind {
        ReconLoss::Bernoulli => softplus(logits.clone(), 1.0) - x * logits,
        ReconLoss::Gaussian => (x - sigmoid(logits)).powi_scalar(2).mul_scalar(0.5),
    };
    per_feature.sum_dim(1).squeeze_dim(1)
}

/// -log p(x | z) averaged over the batch (a scalar tensor `[1]`).
pub fn reconstruction_loss(kind: ReconLoss, logits: Tensor<2>, x: Tensor<2>) -> Tensor<1> {
    reconstruction_per_example(kind, logits, x).mean()
}
