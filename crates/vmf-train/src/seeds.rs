//! Counter-based randomness, drawn on the host.
//!
//! Every random stream of a run is a pure function of (run seed, purpose, counter),
//! e.g. the data order of epoch e or the noise of step s. So a checkpoint restores
//! all RNG state by storing the step and epoch; and because the noise is drawn on
//! the host and uploaded (a few hundred floats per step), a run is the same on every
//! backend and is not disturbed by other work on the same device (Burn's device RNG
//! is one stream per device and process, and differs between backends).

use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};
use rand_distr::StandardNormal;
use vmf_model::LatentNoise;

/// A 64-bit seed for `purpose` at `counter` (SplitMix64 finaliser over the inputs).
pub fn derive(seed: u64, purpose: &str, counter: u64) -> u64 {
    let mut h = seed ^ 0x9e37_79b9_7f4a_7c15;
    for b in purpose.bytes().chain(counter.to_le_bytes()) {
        h = mix(h ^ u64::from(b));
    }
    h
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A host RNG for one (seed, purpose, counter) that uploads its draws as tensors.
pub struct HostNoise {
    rng: StdRng,
}

impl HostNoise {
    /// The stream of `purpose` at `counter` of the run seeded with `seed`.
    pub fn new(seed: u64, purpose: &str, counter: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(derive(seed, purpose, counter)),
        }
    }

    /// Uniforms in [0, 1): `[rows, cols]`.
    pub fn uniform(&mut self, [rows, cols]: [usize; 2], device: &Device) -> Tensor<2> {
        let v: Vec<f32> = (0..rows * cols).map(|_| self.rng.random::<f32>()).collect();
        Tensor::from_data(TensorData::new(v, [rows, cols]), device)
    }

    /// Noise for `batch` posterior draws in dimension `dim` (see [`LatentNoise`]).
    pub fn latent(&mut self, batch: usize, dim: usize, device: &Device) -> LatentNoise {
        self.latent_of_product(batch, dim, 1, device)
    }

    /// Noise for `batch` draws of a latent on a product of `factors` spheres: one
    /// uniform per row and block (1: as [`HostNoise::latent`], the same draws).
    pub fn latent_of_product(
        &mut self,
        batch: usize,
        dim: usize,
        factors: usize,
        device: &Device,
    ) -> LatentNoise {
        let n = batch * factors;
        let u: Vec<f32> = (0..n).map(|_| self.rng.random::<f32>()).collect();
        let e: Vec<f32> = (0..batch * dim)
            .map(|_| self.rng.sample(StandardNormal))
            .collect();
        LatentNoise {
            u: Tensor::from_data(TensorData::new(u, [n]), device),
            e: Tensor::from_data(TensorData::new(e, [batch, dim]), device),
        }
    }

    /// The underlying RNG, for host-side draws.
    pub fn rng(&mut self) -> &mut impl Rng {
        &mut self.rng
    }
}
