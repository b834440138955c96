//! # vmf-model
//!
//! Burn modules for the vMF-VAE: an MLP ([`mlp`]), the vMF reparameterisation layer
//! ([`reparam`], on top of vmf-core's device sampler), reconstruction losses
//! ([`loss`]) and the VAE that wires them ([`vae`]). Every module has a
//! `#[derive(Config)]` twin whose `init(&device)` builds it.

pub mod loss;
pub mod mlp;
pub mod reparam;
pub mod vae;

pub use loss::{ReconLoss, reconstruction_loss};
pub use mlp::{Mlp, MlpConfig};
pub use reparam::{VmfNoise, VmfReparam};
pub use vae::{VaeOutput, VmfVae, VmfVaeConfig, l2_normalise};
