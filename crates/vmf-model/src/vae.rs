//! The vMF-VAE modules: encoder -> L2-normalise -> mu, decoder -> logits. Drawing z ~
//! vMF(mu, kappa) is [`crate::model::Posterior::draw`].

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::mlp::{Mlp, MlpConfig};

/// Rows with a norm below this are not rescaled further (keeps mu finite for a zero row).
const NORM_EPS: f64 = 1e-12;

/// A VAE with MLP encoder `input -> hidden... -> latent` and the mirrored decoder.
#[derive(Config, Debug)]
pub struct VmfVaeConfig {
    /// Input features (784 for MNIST).
    pub input_dim: usize,
    /// Hidden layer sizes of the encoder; the decoder uses them reversed.
    pub hidden: Vec<usize>,
    /// Ambient latent dimension d: z lies on S^(d-1).
    pub latent_dim: usize,
}

impl VmfVaeConfig {
    /// Builds the model on `device`.
    pub fn init(&self, device: &Device) -> VmfVae {
        let mut enc = vec![self.input_dim];
        enc.extend(&self.hidden);
        enc.push(self.latent_dim);
        let dec: Vec<usize> = enc.iter().rev().copied().collect();
        VmfVae {
            encoder: MlpConfig::new(enc).init(device),
            decoder: MlpConfig::new(dec).init(device),
        }
    }
}

/// See [`VmfVaeConfig`].
#[derive(Module, Debug)]
pub struct VmfVae {
    encoder: Mlp,
    decoder: Mlp,
}

impl VmfVae {
    /// mu(x) = normalise(encoder(x)).
    ///
    /// # Shapes
    /// - `x`: `[batch, input_dim]`
    /// - returns `[batch, d]`
    pub fn encode(&self, x: Tensor<2>) -> Tensor<2> {
        l2_normalise(self.encoder.forward(x))
    }

    /// Decoder logits for latents `z`.
    ///
    /// # Shapes
    /// - `z`: `[batch, d]`
    /// - returns `[batch, input_dim]`
    pub fn decode(&self, z: Tensor<2>) -> Tensor<2> {
        self.decoder.forward(z)
    }
}

/// Divides each row by its L2 norm (Burn has no normalise op).
///
/// # Shapes
/// - `x`: `[batch, d]` -> `[batch, d]`
pub fn l2_normalise(x: Tensor<2>) -> Tensor<2> {
    let norm = x
        .clone()
        .powi_scalar(2)
        .sum_dim(1)
        .sqrt()
        .clamp_min(NORM_EPS); // [batch, 1]
    x / norm
}
