//! Sampling on the host (f64, `rand`): w, points z ~ vMF(mu, kappa), uniform points.

use rand::{Rng, RngExt};
use rand_distr::StandardNormal;

use crate::error::{Result, VmfError};
use crate::table::QuantileTable;

/// A uniformly distributed point on S^(dim-1) (a normalised standard normal vector).
pub fn uniform_sphere<R: Rng + ?Sized>(rng: &mut R, dim: usize) -> Vec<f64> {
    loop {
        let e: Vec<f64> = (0..dim).map(|_| rng.sample(StandardNormal)).collect();
        let norm = e.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 1e-150 {
            return e.into_iter().map(|x| x / norm).collect();
        }
    }
}

/// `mu / |mu|`, or an error naming the problem when that is not a unit vector.
pub fn normalise(mu: &[f64]) -> Result<Vec<f64>> {
    if let Some(bad) = mu.iter().find(|x| !x.is_finite()) {
        return Err(VmfError::BadDirection(format!(
            "it has a non-finite entry {bad}"
        )));
    }
    let norm = mu.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return Err(VmfError::BadDirection(format!("its norm is {norm}")));
    }
    Ok(mu.iter().map(|x| x / norm).collect())
}

/// Draws from vMF(., kappa) on the host with a [`QuantileTable`].
#[derive(Debug, Clone)]
pub struct HostSampler {
    table: QuantileTable,
}

impl HostSampler {
    /// A sampler for the table's (d, kappa).
    pub fn new(table: QuantileTable) -> Self {
        Self { table }
    }

    /// The table it samples from.
    pub fn table(&self) -> &QuantileTable {
        &self.table
    }

    /// One angle theta = arccos(<mu, z>).
    pub fn sample_theta<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        self.table.theta_at(rng.random::<f64>())
    }

    /// One w = <mu, z>.
    pub fn sample_w<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        self.sample_theta(rng).cos()
    }

    /// One point z ~ vMF(mu / |mu|, kappa): z = cos(theta) mu + sin(theta) nu with nu
    /// uniform on the unit sphere orthogonal to mu.
    pub fn sample_z<R: Rng + ?Sized>(&self, rng: &mut R, mu: &[f64]) -> Result<Vec<f64>> {
        let dim = self.table.dim();
        if mu.len() != dim {
            return Err(VmfError::Length { got: mu.len(), dim });
        }
        let mu = normalise(mu)?;
        let theta = self.sample_theta(rng);
        let nu = orthogonal_direction(rng, &mu);
        let (s, c) = theta.sin_cos();
        Ok(mu.iter().zip(&nu).map(|(m, n)| c * m + s * n).collect())
    }
}

/// A uniform unit vector orthogonal to the unit vector `mu`.
fn orthogonal_direction<R: Rng + ?Sized>(rng: &mut R, mu: &[f64]) -> Vec<f64> {
    loop {
        let mut e: Vec<f64> = (0..mu.len()).map(|_| rng.sample(StandardNormal)).collect();
        // Project twice: one Gram-Schmidt pass leaves ~eps |e| along mu.
        for _ in 0..2 {
            let dot: f64 = e.iter().zip(mu).map(|(a, b)| a * b).sum();
            e.iter_mut().zip(mu).for_each(|(a, b)| *a -= dot * b);
        }
        let norm = e.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 1e-150 {
            return e.into_iter().map(|x| x / norm).collect();
        }
    }
}
