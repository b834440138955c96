//! The Gaussian latent of the baseline: z = mean + sigma * eps, standard normal prior,
//! analytic KL. The reference the vMF model is compared with.

use burn::tensor::Tensor;

/// z = mean + exp(logvar / 2) * eps.
pub fn gaussian_sample(mean: Tensor<2>, logvar: Tensor<2>, eps: Tensor<2>) -> Tensor<2> {
    mean + logvar.mul_scalar(0.5).exp() * eps
}

/// KL(N(mean, diag exp(logvar)) || N(0, I)) per row:
/// 0.5 sum (mean^2 + exp(logvar) - 1 - logvar).
///
/// # Shapes
/// - `mean`, `logvar`: `[batch, d]` -> `[batch]`
pub fn gaussian_kl(mean: Tensor<2>, logvar: Tensor<2>) -> Tensor<1> {
    (mean.powi_scalar(2) + logvar.clone().exp() - logvar.add_scalar(1.0))
        .sum_dim(1)
        .squeeze_dim::<1>(1)
        .mul_scalar(0.5)
}

/// log p(z) - log q(z | x) per row for z = mean + sigma * eps (the 2 pi terms cancel):
/// -|z|^2 / 2 + |eps|^2 / 2 + sum(logvar) / 2.
///
/// # Shapes
/// - all `[batch, d]` -> `[batch]`
pub fn gaussian_log_ratio(z: Tensor<2>, eps: Tensor<2>, logvar: Tensor<2>) -> Tensor<1> {
    (eps.powi_scalar(2) - z.powi_scalar(2) + logvar)
        .sum_dim(1)
        .squeeze_dim::<1>(1)
        .mul_scalar(0.5)
}
