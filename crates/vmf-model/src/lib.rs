//! # vmf-model
//!
//! Burn modules for the vMF-VAE: an MLP ([`mlp`]), the vMF reparameterisation layer
//! ([`reparam`], on top of vmf-core's device sampler), reconstruction losses
//! ([`loss`]), the VAE that wires them ([`vae`]), the Gaussian-VAE baseline
//! ([`gaussian`]) and either of the two behind one interface ([`model`]). Every
//! module has a config twin whose `init(&device)` builds it.

pub mod gaussian;
pub mod loss;
pub mod mlp;
pub mod model;
pub mod reparam;
pub mod vae;

pub use gaussian::{GaussianVae, GaussianVaeConfig};
pub use loss::{ReconLoss, reconstruction_loss};
pub use mlp::{Mlp, MlpConfig};
pub use model::{ModelKind, Posterior, PosteriorDraw, Vae, VaeConfig};
pub use reparam::{LatentNoise, VmfReparam};
pub use vae::{VmfVae, VmfVaeConfig, l2_normalise};
