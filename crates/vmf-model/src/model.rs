//! Either model kind behind one interface: the vMF-VAE (the default) or the
//! Gaussian-VAE baseline. Training, evaluation and pictures use only this, so they
//! never need to know which posterior and prior are in play.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use rand::{Rng, RngExt};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::gaussian::{
    GaussianVae, GaussianVaeConfig, gaussian_kl, gaussian_log_ratio, gaussian_sample,
};
use crate::reparam::{LatentNoise, VmfReparam};
use crate::vae::{VmfVae, VmfVaeConfig};

/// Which posterior and prior.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// q = vMF(mu(x), kappa) on S^(d-1), p = uniform on the sphere.
    #[default]
    Vmf,
    /// q = N(mean(x), diag sigma^2(x)) on R^d, p = N(0, I).
    Gaussian,
}

impl ModelKind {
    /// Whether latents live on the unit sphere (paths between them are great circles).
    pub fn on_sphere(self) -> bool {
        self == Self::Vmf
    }

    /// One draw from the prior p(z), in f64 on the host.
    pub fn prior_sample<R: Rng + ?Sized>(self, rng: &mut R, d: usize) -> Vec<f64> {
        match self {
            Self::Vmf => vmf_core::uniform_sphere(rng, d),
            Self::Gaussian => (0..d).map(|_| rng.sample(StandardNormal)).collect(),
        }
    }
}

/// Builds a [`Vae`] of either kind with MLP encoder and decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct VaeConfig {
    /// Which model.
    pub kind: ModelKind,
    /// Input features (784 for MNIST).
    pub input_dim: usize,
    /// Hidden layer sizes of the encoder; the decoder uses them reversed.
    pub hidden: Vec<usize>,
    /// Latent dimension d (ambient dimension of the sphere for vMF).
    pub latent_dim: usize,
}

impl VaeConfig {
    /// Builds the model on `device`.
    pub fn init(&self, device: &Device) -> Vae {
        let (i, h, d) = (self.input_dim, self.hidden.clone(), self.latent_dim);
        match self.kind {
            ModelKind::Vmf => Vae::Vmf(VmfVaeConfig::new(i, h, d).init(device)),
            ModelKind::Gaussian => Vae::Gaussian(GaussianVaeConfig::new(i, h, d).init(device)),
        }
    }
}

/// A VAE of either kind; see [`VaeConfig`].
#[derive(Module, Debug)]
pub enum Vae {
    /// The vMF-VAE.
    Vmf(VmfVae),
    /// The Gaussian-VAE baseline.
    Gaussian(GaussianVae),
}

/// q(z | x) for a batch: its parameters per row.
// One short-lived value per batch: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Posterior {
    /// vMF(mu, kappa): mean directions `[batch, d]` (unit rows); kappa is the layer's.
    Vmf {
        /// Mean directions.
        mu: Tensor<2>,
    },
    /// N(mean, diag exp(logvar)): both `[batch, d]`.
    Gaussian {
        /// Means.
        mean: Tensor<2>,
        /// Log-variances.
        logvar: Tensor<2>,
    },
}

/// One draw z ~ q(z | x) per row, with what losses and importance weights need.
#[derive(Debug, Clone)]
pub struct PosteriorDraw {
    /// The posterior's location, mu (unit rows) or the mean: `[batch, d]`.
    pub location: Tensor<2>,
    /// The draw: `[batch, d]`.
    pub z: Tensor<2>,
    /// KL(q(z | x) || p(z)) per row (a constant for vMF at fixed kappa): `[batch]`.
    pub kl: Tensor<1>,
    /// What [`PosteriorDraw::log_ratio`] needs beyond location and z.
    ratio: RatioParts,
}

/// Only the importance-sampled evaluation needs log p(z) - log q(z|x): it is
/// computed on demand, not on the training step.
// One per draw, short-lived: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum RatioParts {
    /// kappa and the f64 constant log C_d(0) - log C_d(kappa) - kappa.
    Vmf { kappa: f64, constant: f64 },
    /// The standard normals of the draw and the log-variances.
    Gaussian { eps: Tensor<2>, logvar: Tensor<2> },
}

impl PosteriorDraw {
    /// log p(z) - log q(z | x) per row: `[batch]`.
    pub fn log_ratio(&self) -> Tensor<1> {
        match &self.ratio {
            // log C_d(0) - log C_d(kappa) - kappa <mu, z>
            //   = [f64 constant - kappa] + kappa (1 - <mu, z>):
            // the large terms cancel in f64 on the host, not in f32 on the device.
            RatioParts::Vmf { kappa, constant } => (self.location.clone() * self.z.clone())
                .sum_dim(1)
                .squeeze_dim::<1>(1)
                .neg()
                .add_scalar(1.0)
                .mul_scalar(*kappa)
                .add_scalar(*constant),
            RatioParts::Gaussian { eps, logvar } => {
                gaussian_log_ratio(self.z.clone(), eps.clone(), logvar.clone())
            }
        }
    }
}

fn repeat_rows(t: Tensor<2>, k: usize) -> Tensor<2> {
    let [b, d] = t.dims();
    t.unsqueeze_dim::<3>(1).repeat_dim(1, k).reshape([b * k, d])
}

impl Posterior {
    /// The location: mu or the mean, `[batch, d]`.
    pub fn location(&self) -> Tensor<2> {
        match self {
            Self::Vmf { mu } => mu.clone(),
            Self::Gaussian { mean, .. } => mean.clone(),
        }
    }

    /// Each row repeated `k` times in place (row i becomes rows i k .. i k + k - 1),
    /// for k draws per example.
    pub fn repeat_rows(&self, k: usize) -> Self {
        match self {
            Self::Vmf { mu } => Self::Vmf {
                mu: repeat_rows(mu.clone(), k),
            },
            Self::Gaussian { mean, logvar } => Self::Gaussian {
                mean: repeat_rows(mean.clone(), k),
                logvar: repeat_rows(logvar.clone(), k),
            },
        }
    }

    /// One draw per row with `noise` (the Gaussian uses only its normals `e`);
    /// `reparam` holds the vMF table and kappa.
    ///
    /// # Panics
    /// If this is a vMF posterior and `reparam` is `None` (a programming error).
    pub fn draw(&self, noise: LatentNoise, reparam: Option<&VmfReparam>) -> PosteriorDraw {
        match self {
            Self::Vmf { mu } => {
                let reparam = reparam.expect("a vMF posterior draws through its VmfReparam");
                let [batch, _] = mu.dims();
                let z = reparam.forward(mu.clone(), noise);
                let stats = reparam.stats();
                let log_c0 = vmf_core::log_normaliser_uniform(stats.dim)
                    .expect("d was checked when the layer was built");
                PosteriorDraw {
                    kl: Tensor::full([batch], stats.kl, &mu.device()),
                    location: mu.clone(),
                    z,
                    ratio: RatioParts::Vmf {
                        kappa: stats.kappa,
                        constant: log_c0 - stats.log_normaliser - stats.kappa,
                    },
                }
            }
            Self::Gaussian { mean, logvar } => {
                let z = gaussian_sample(mean.clone(), logvar.clone(), noise.e.clone());
                PosteriorDraw {
                    kl: gaussian_kl(mean.clone(), logvar.clone()),
                    location: mean.clone(),
                    z,
                    ratio: RatioParts::Gaussian {
                        eps: noise.e,
                        logvar: logvar.clone(),
                    },
                }
            }
        }
    }
}

impl Vae {
    /// Which kind this is.
    pub fn kind(&self) -> ModelKind {
        match self {
            Self::Vmf(_) => ModelKind::Vmf,
            Self::Gaussian(_) => ModelKind::Gaussian,
        }
    }

    /// q(z | x) for the rows of `x` (`[batch, input_dim]`).
    pub fn posterior(&self, x: Tensor<2>) -> Posterior {
        match self {
            Self::Vmf(m) => Posterior::Vmf { mu: m.encode(x) },
            Self::Gaussian(m) => {
                let (mean, logvar) = m.encode(x);
                Posterior::Gaussian { mean, logvar }
            }
        }
    }

    /// The posterior's location: mu(x) (unit rows) or the mean.
    ///
    /// # Shapes
    /// - `x`: `[batch, input_dim]` -> `[batch, d]`
    pub fn locate(&self, x: Tensor<2>) -> Tensor<2> {
        self.posterior(x).location()
    }

    /// Decoder logits for latents `z`.
    ///
    /// # Shapes
    /// - `z`: `[batch, d]` -> `[batch, input_dim]`
    pub fn decode(&self, z: Tensor<2>) -> Tensor<2> {
        match self {
            Self::Vmf(m) => m.decode(z),
            Self::Gaussian(m) => m.decode(z),
        }
    }

    /// Encodes `x` and draws z ~ q(z | x): [`Posterior::draw`] of [`Vae::posterior`].
    ///
    /// # Shapes
    /// - `x`: `[batch, input_dim]`; noise `u`: `[batch]`, `e`: `[batch, d]`
    pub fn draw(
        &self,
        x: Tensor<2>,
        noise: LatentNoise,
        reparam: Option<&VmfReparam>,
    ) -> PosteriorDraw {
        self.posterior(x).draw(noise, reparam)
    }
}
