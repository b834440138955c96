//! # vmf-model
//!
//! Burn modules for the vMF-VAE, organised by what depends on the data kind:
//! - [`latent`]: the posterior families every data kind shares (vMF with its
//!   reparameterisation layer [`reparam`] on top of vmf-core's device sampler; the
//!   Gaussian baseline of [`gaussian`]);
//! - [`vae`]: the [`VaeModel`] interface that training and evaluation use;
//! - [`image`]: MLP encoder and decoder with pixel likelihoods;
//! - [`text`]: embedding, recurrent encoder, autoregressive decoder conditioned on z,
//!   token cross-entropy.
//!
//! Every module has a config twin whose `init(&device)` builds it.

pub mod gaussian;
pub mod image;
pub mod latent;
pub mod reparam;
pub mod text;
pub mod vae;

pub use image::loss::ReconLoss;
pub use image::{ImageVae, ImageVaeConfig};
pub use latent::{ModelKind, Posterior, PosteriorDraw, l2_normalise};
pub use reparam::{LatentNoise, VmfReparam};
pub use text::{TextBatch, TextVae, TextVaeConfig};
pub use vae::{Rows, VaeModel};
