//! The Gaussian-VAE baseline: encoder -> (mean, log-variance), z = mean + sigma * eps,
//! standard normal prior, analytic KL. The reference the vMF model is compared with.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::mlp::{Mlp, MlpConfig};

/// A Gaussian VAE with MLP encoder `input -> hidden... -> 2 * latent` (mean and
/// log-variance) and decoder `latent -> hidden reversed -> input`.
#[derive(Config, Debug)]
pub struct GaussianVaeConfig {
    /// Input features (784 for MNIST).
    pub input_dim: usize,
    /// Hidden layer sizes of the encoder; the decoder uses them reversed.
    pub hidden: Vec<usize>,
    /// Latent dimension d: z in R^d.
    pub latent_dim: usize,
}

impl GaussianVaeConfig {
    /// Builds the model on `device`.
    pub fn init(&self, device: &Device) -> GaussianVae {
        let mut enc = vec![self.input_dim];
        enc.extend(&self.hidden);
        enc.push(2 * self.latent_dim);
        let mut dec = vec![self.latent_dim];
        dec.extend(self.hidden.iter().rev());
        dec.push(self.input_dim);
        GaussianVae {
            encoder: MlpConfig::new(enc).init(device),
            decoder: MlpConfig::new(dec).init(device),
        }
    }
}

/// See [`GaussianVaeConfig`].
#[derive(Module, Debug)]
pub struct GaussianVae {
    encoder: Mlp,
    decoder: Mlp,
}

impl GaussianVae {
    /// The posterior's mean and log-variance.
    ///
    /// # Shapes
    /// - `x`: `[batch, input_dim]`
    /// - returns two `[batch, d]`
    pub fn encode(&self, x: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let h = self.encoder.forward(x);
        let [batch, two_d] = h.dims();
        let d = two_d / 2;
        (
            h.clone().slice([0..batch, 0..d]),
            h.slice([0..batch, d..two_d]),
        )
    }

    /// Decoder logits for latents `z`.
    ///
    /// # Shapes
    /// - `z`: `[batch, d]` -> `[batch, input_dim]`
    pub fn decode(&self, z: Tensor<2>) -> Tensor<2> {
        self.decoder.forward(z)
    }
}

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
