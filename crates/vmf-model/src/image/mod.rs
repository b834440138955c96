//! The image data kind's modules: an MLP encoder whose head parameterises q(z | x)
//! and a mirrored MLP decoder that gives per-pixel logits, with the pixel
//! likelihoods of [`loss`].

pub mod loss;
pub mod mlp;

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::latent::{ModelKind, Posterior};
use crate::vae::VaeModel;
use loss::{ReconLoss, reconstruction_per_example};
use mlp::{Mlp, MlpConfig};

/// Builds an [`ImageVae`]: encoder `input -> hidden... -> head`, decoder
/// `latent -> hidden reversed... -> input`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageVaeConfig {
    /// Which latent family.
    pub kind: ModelKind,
    /// Input features (784 for MNIST).
    pub input_dim: usize,
    /// Hidden layer sizes of the encoder; the decoder uses them reversed.
    pub hidden: Vec<usize>,
    /// Latent dimension d (ambient dimension of the sphere for vMF).
    pub latent_dim: usize,
    /// The decoder's pixel likelihood.
    pub loss: ReconLoss,
}

impl ImageVaeConfig {
    /// Builds the model on `device` (encoder first, then decoder: the order in which
    /// the initial weights are drawn).
    pub fn init(&self, device: &Device) -> ImageVae {
        let mut enc = vec![self.input_dim];
        enc.extend(&self.hidden);
        enc.push(self.kind.head_width(self.latent_dim));
        let mut dec = vec![self.latent_dim];
        dec.extend(self.hidden.iter().rev());
        dec.push(self.input_dim);
        ImageVae {
            encoder: MlpConfig::new(enc).init(device),
            decoder: MlpConfig::new(dec).init(device),
            kind: self.kind,
            latent_dim: self.latent_dim,
            loss: self.loss,
        }
    }
}

/// See [`ImageVaeConfig`]. Its batches are pixels in [0, 1], `[batch, input_dim]`.
#[derive(Module, Debug)]
pub struct ImageVae {
    encoder: Mlp,
    decoder: Mlp,
    #[module(skip)]
    kind: ModelKind,
    #[module(skip)]
    latent_dim: usize,
    #[module(skip)]
    loss: ReconLoss,
}

impl ImageVae {
    /// The posterior's location: mu(x) (unit rows) or the mean.
    ///
    /// # Shapes
    /// - `x`: `[batch, input_dim]` -> `[batch, d]`
    pub fn locate(&self, x: Tensor<2>) -> Tensor<2> {
        self.posterior(&x).location()
    }

    /// Decoder logits for latents `z`.
    ///
    /// # Shapes
    /// - `z`: `[batch, d]` -> `[batch, input_dim]`
    pub fn decode(&self, z: Tensor<2>) -> Tensor<2> {
        self.decoder.forward(z)
    }
}

impl VaeModel for ImageVae {
    type Batch = Tensor<2>;

    fn kind(&self) -> ModelKind {
        self.kind
    }

    fn latent_dim(&self) -> usize {
        self.latent_dim
    }

    fn posterior(&self, x: &Tensor<2>) -> Posterior {
        self.kind.posterior(self.encoder.forward(x.clone()))
    }

    fn neg_log_likelihood(&self, x: &Tensor<2>, z: Tensor<2>) -> Tensor<1> {
        reconstruction_per_example(self.loss, self.decode(z), x.clone())
    }
}
