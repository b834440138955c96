//! The vMF reparameterisation layer: z = w mu + sqrt(1 - w^2) nu with w drawn from the
//! quantile table held on the device (vmf-core's [`DeviceSampler`]).

use burn::tensor::{Device, Tensor};
use vmf_core::{DeviceSampler, Result, VmfStats};

/// The randomness of one posterior draw per row: drawn by the caller (e.g. on the
/// host from a counter-based seed, which makes runs identical across backends).
#[derive(Debug, Clone)]
pub struct LatentNoise {
    /// Uniforms in [0, 1) that pick the vMF angle: `[batch]` (unused by the Gaussian).
    pub u: Tensor<1>,
    /// Standard normals: the direction orthogonal to mu (vMF) or eps (Gaussian):
    /// `[batch, d]`.
    pub e: Tensor<2>,
}

impl LatentNoise {
    /// The rows `rows` of the noise (a shard of the batch).
    pub fn rows(&self, rows: std::ops::Range<usize>) -> Self {
        Self {
            u: self.u.clone().slice(rows.clone()),
            e: self.e.clone().slice(rows),
        }
    }
}

/// Holds the table constant for the current kappa and rebuilds it only when kappa
/// changes, so a constant schedule uploads one table for the whole run. Not a
/// [`burn::module::Module`]: it has no trainable parameters, and its state is
/// (dim, kappa), which the training loop records.
#[derive(Debug, Clone)]
pub struct VmfReparam {
    sampler: DeviceSampler,
    stats: VmfStats,
}

impl VmfReparam {
    /// A layer for latent dimension `dim` (the sphere is S^(dim-1)) at `kappa`.
    pub fn new(dim: usize, kappa: f64, device: &Device) -> Result<Self> {
        Ok(Self {
            sampler: DeviceSampler::new(dim, kappa, device)?,
            stats: VmfStats::new(dim, kappa)?,
        })
    }

    /// Moves to a new kappa (no work if unchanged). Returns whether the table was rebuilt.
    pub fn set_kappa(&mut self, kappa: f64) -> Result<bool> {
        if kappa == self.stats.kappa {
            return Ok(false);
        }
        let stats = VmfStats::new(self.stats.dim, kappa)?;
        self.sampler.set_kappa(kappa)?;
        self.stats = stats;
        Ok(true)
    }

    /// The current kappa.
    pub fn kappa(&self) -> f64 {
        self.stats.kappa
    }

    /// KL, A_d and log C_d at the current kappa (host constants).
    pub fn stats(&self) -> VmfStats {
        self.stats
    }

    /// Tables built so far.
    pub fn rebuilds(&self) -> usize {
        self.sampler.rebuilds()
    }

    /// z ~ vMF(mu, kappa) with the noise given (see [`LatentNoise`]).
    ///
    /// # Shapes
    /// - `mu`: `[batch, d]`, unit rows
    /// - returns `[batch, d]`, unit rows
    pub fn forward(&self, mu: Tensor<2>, noise: LatentNoise) -> Tensor<2> {
        self.sampler.sample_with(mu, noise.u, noise.e)
    }
}
