//! Sampling on a Burn device: the quantile table lives on the device as a tensor
//! constant, uploaded once per kappa, and each call is a handful of element-wise
//! kernels plus two gathers.

use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

use crate::error::Result;
use crate::table::{DEFAULT_TABLE_SIZE, QuantileTable};

/// Smallest norm of e - <e, mu> mu before normalising (a zero vector has probability 0;
/// the clamp only keeps the arithmetic finite).
const MIN_NORM: f64 = 1e-12;

/// The quantile table of one (d, kappa) on a device.
#[derive(Debug, Clone)]
pub struct DeviceTable {
    dim: usize,
    kappa: f64,
    size: usize,
    /// theta at probabilities i / (M - 1), i < M - 1: [M - 1]
    theta: Tensor<1>,
    /// theta[i + 1] - theta[i], differenced in f64 before the cast: [M - 1]
    step: Tensor<1>,
}

impl DeviceTable {
    /// Uploads a host table to `device`.
    pub fn new(table: &QuantileTable, device: &Device) -> Self {
        let th = table.theta();
        let lower: Vec<f32> = th[..th.len() - 1].iter().map(|&t| t as f32).collect();
        let step: Vec<f32> = th.windows(2).map(|w| (w[1] - w[0]) as f32).collect();
        let n = lower.len();
        Self {
            dim: table.dim(),
            kappa: table.kappa(),
            size: th.len(),
            theta: Tensor::from_data(TensorData::new(lower, [n]), device),
            step: Tensor::from_data(TensorData::new(step, [n]), device),
        }
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Concentration kappa.
    pub fn kappa(&self) -> f64 {
        self.kappa
    }

    /// `n` angles theta = arccos(<mu, z>) from the device's RNG.
    ///
    /// # Shapes
    /// returns `[n]`
    pub fn sample_theta(&self, n: usize) -> Tensor<1> {
        let u = Tensor::<1>::random([n], Distribution::Default, &self.theta.device());
        self.theta_from_uniform(u)
    }

    /// The angles for given uniforms `u` in [0, 1): the table lookup itself (index,
    /// two gathers, linear interpolation).
    ///
    /// # Shapes
    /// - `u`: `[n]` -> `[n]`
    pub fn theta_from_uniform(&self, u: Tensor<1>) -> Tensor<1> {
        let pos = u.mul_scalar((self.size - 1) as f64);
        let idx: Tensor<1, Int> = pos.clone().floor().int().clamp(0, self.size as i64 - 2);
        let frac = pos - idx.clone().float();
        self.theta.clone().select(0, idx.clone()) + frac * self.step.clone().select(0, idx)
    }

    /// `n` values of w = <mu, z>.
    ///
    /// # Shapes
    /// returns `[n]`
    pub fn sample_w(&self, n: usize) -> Tensor<1> {
        self.sample_theta(n).cos()
    }

    /// One z ~ vMF(mu_i, kappa) per row of `mu`, whose rows must be unit vectors,
    /// with noise from the device's RNG. w does not depend on mu, so gradients reach
    /// mu through z = w mu + sqrt(1 - w^2) nu.
    ///
    /// # Shapes
    /// - `mu`: `[batch, d]`
    /// - returns `[batch, d]`
    pub fn sample(&self, mu: Tensor<2>) -> Tensor<2> {
        let [batch, dim] = mu.dims();
        let device = mu.device();
        let u = Tensor::<1>::random([batch], Distribution::Default, &device);
        let e = Tensor::<2>::random([batch, dim], Distribution::Normal(0.0, 1.0), &device);
        self.sample_with(mu, u, e)
    }

    /// [`DeviceTable::sample`] with the noise given: `u` uniform in [0, 1) picks the
    /// angle, `e` standard normal picks the direction orthogonal to mu. Noise drawn
    /// on the host makes runs identical across backends.
    ///
    /// # Shapes
    /// - `mu`: `[batch, d]`, `u`: `[batch]`, `e`: `[batch, d]`
    /// - returns `[batch, d]`
    pub fn sample_with(&self, mu: Tensor<2>, u: Tensor<1>, e: Tensor<2>) -> Tensor<2> {
        let [batch, dim] = mu.dims();
        debug_assert_eq!(dim, self.dim);
        let theta = self.theta_from_uniform(u).reshape([batch, 1]); // [batch, 1]
        let along = (e.clone() * mu.clone()).sum_dim(1); // [batch, 1]
        let perp = e - mu.clone() * along;
        // Twice: when e is nearly parallel to mu, f32 rounding leaves a component along
        // mu of ~1e-7 |e|, large next to a small |perp|; then nu is not orthogonal to mu
        // and |z| drifts from 1 (by 1.7e-5 seen at d = 2). A second pass removes it.
        let along = (perp.clone() * mu.clone()).sum_dim(1);
        let perp = perp - mu.clone() * along;
        let norm = perp
            .clone()
            .powi_scalar(2)
            .sum_dim(1)
            .sqrt()
            .clamp_min(MIN_NORM);
        let nu = perp / norm; // [batch, d], unit, orthogonal to mu
        mu * theta.clone().cos() + nu * theta.sin()
    }
}

/// A device sampler whose kappa can change: it keeps the uploaded table while kappa
/// stays the same and rebuilds it (host build + one upload) only when kappa changes.
#[derive(Debug, Clone)]
pub struct DeviceSampler {
    table_size: usize,
    device: Device,
    table: DeviceTable,
    rebuilds: usize,
}

impl DeviceSampler {
    /// A sampler for (dim, kappa) on `device` with the default table size.
    pub fn new(dim: usize, kappa: f64, device: &Device) -> Result<Self> {
        Self::with_table_size(dim, kappa, DEFAULT_TABLE_SIZE, device)
    }

    /// A sampler with `table_size` entries.
    pub fn with_table_size(
        dim: usize,
        kappa: f64,
        table_size: usize,
        device: &Device,
    ) -> Result<Self> {
        let host = QuantileTable::with_size(dim, kappa, table_size)?;
        Ok(Self {
            table_size,
            device: device.clone(),
            table: DeviceTable::new(&host, device),
            rebuilds: 1,
        })
    }

    /// Sets kappa, rebuilding the table only if it changed. Returns whether it rebuilt.
    pub fn set_kappa(&mut self, kappa: f64) -> Result<bool> {
        if kappa == self.table.kappa() {
            return Ok(false);
        }
        let host = QuantileTable::with_size(self.table.dim(), kappa, self.table_size)?;
        self.table = DeviceTable::new(&host, &self.device);
        self.rebuilds += 1;
        Ok(true)
    }

    /// The current table.
    pub fn table(&self) -> &DeviceTable {
        &self.table
    }

    /// How many tables were built so far (1 after construction).
    pub fn rebuilds(&self) -> usize {
        self.rebuilds
    }

    /// See [`DeviceTable::sample`].
    pub fn sample(&self, mu: Tensor<2>) -> Tensor<2> {
        self.table.sample(mu)
    }

    /// See [`DeviceTable::sample_with`].
    pub fn sample_with(&self, mu: Tensor<2>, u: Tensor<1>, e: Tensor<2>) -> Tensor<2> {
        self.table.sample_with(mu, u, e)
    }
}
