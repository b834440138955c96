//! # vmf-model
//!
//! Burn modules for the vMF-VAE, organised by what depends on the data kind:
//! - [`latent`]: the posterior families every data kind shares (vMF with its
//!   reparameterisation layer [`reparam`] on top of vmf-core's device sampler; the
//!   Gaussian baseline of [`gaussian`]), on one sphere or a product of them
//!   ([`blocks`]);
//! - [`kappa`]: how kappa is set: scheduled, or learned globally or per example;
//! - [`vae`]: the [`VaeModel`] interface that training and evaluation use;
//! - [`image`]: MLP encoder and decoder with pixel likelihoods;
//! - [`text`]: embedding, recurrent encoder, autoregressive decoder conditioned on z,
//!   token cross-entropy.
//!
//! Every module has a config twin whose `init(&device)` builds it.
//!
//! The vMF reparameterisation layer on its own, inside any Burn model: gradients reach
//! the encoder's output through z = w mu + sqrt(1 - w^2) nu.
//!
//! ```
//! use burn::tensor::{Device, Distribution, Tensor};
//! use vmf_model::{LatentNoise, VmfReparam, l2_normalise};
//!
//! let device = Device::flex().autodiff();
//! let layer = VmfReparam::new(8, 20.0, &device)?; // S^7, kappa = 20
//! let h = Tensor::<2>::random([4, 8], Distribution::Normal(0.0, 1.0), &device).require_grad();
//! let mu = l2_normalise(h.clone());
//! let noise = LatentNoise {
//!     u: Tensor::random([4], Distribution::Default, &device),
//!     e: Tensor::random([4, 8], Distribution::Normal(0.0, 1.0), &device),
//! };
//! let z = layer.forward(mu, noise); // [4, 8], unit rows
//! let grads = z.sum().backward();
//! assert_eq!(h.grad(&grads).unwrap().dims(), [4, 8]);
//! assert!((layer.stats().unwrap().kl - 4.485985873856137).abs() < 1e-12); // a constant of kappa
//! # Ok::<(), vmf_core::VmfError>(())
//! ```

pub mod blocks;
pub mod fused;
pub mod gaussian;
pub mod image;
pub mod kappa;
pub mod latent;
pub mod reparam;
pub mod text;
pub mod vae;

pub use blocks::{BlockGroup, Blocks};
pub use image::conv::ConvConfig;
pub use image::loss::ReconLoss;
pub use image::{ImageVae, ImageVaeConfig};
pub use kappa::{KappaHead, KappaMode, KappaRange};
pub use latent::{ModelKind, Posterior, PosteriorDraw, l2_normalise};
pub use reparam::{LatentNoise, LayerStats, VmfReparam};
pub use text::{TextBatch, TextVae, TextVaeConfig};
pub use vae::{Rows, VaeModel};

/// Burn's initialisers draw from one RNG per process, and the test harness runs tests
/// on parallel threads: every test of this crate that draws weights holds this lock,
/// so that a test which seeds twice and compares the two draws sees no other test's
/// draws in between.
#[cfg(test)]
pub(crate) fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}
