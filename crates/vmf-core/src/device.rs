//! Sampling on a Burn device: the quantile table lives on the device as a tensor
//! constant, uploaded once per kappa, and each call is a handful of element-wise
//! kernels plus two gathers.

use std::sync::Arc;

use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

use crate::error::Result;
use crate::family::Family;
use crate::kappa_table::{KappaQuantileTable, KlTable, LogKappaGrid};
use crate::table::{DEFAULT_TABLE_SIZE, QuantileTable};

/// Smallest norm of e - <e, mu> mu before normalising (a zero vector has probability 0;
/// the clamp only keeps the arithmetic finite).
const MIN_NORM: f64 = 1e-12;

/// The quantile table of one (d, kappa) on a device.
#[derive(Debug, Clone)]
pub struct DeviceTable {
    family: Family,
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
            family: table.family(),
            dim: table.dim(),
            kappa: table.kappa(),
            size: th.len(),
            theta: Tensor::from_data(TensorData::new(lower, [n]), device),
            step: Tensor::from_data(TensorData::new(step, [n]), device),
        }
    }

    /// The family.
    pub fn family(&self) -> Family {
        self.family
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
        rotate(mu, self.theta_from_uniform(u).reshape([batch, 1]), e)
    }
}

/// z = cos(theta) mu + sin(theta) nu, nu the unit direction of `e`'s component
/// orthogonal to mu: the point at angle theta from mu in the direction `e` picks.
///
/// # Shapes
/// - `mu`: `[batch, d]` (unit rows), `theta`: `[batch, 1]`, `e`: `[batch, d]`
/// - returns `[batch, d]`
pub fn rotate(mu: Tensor<2>, theta: Tensor<2>, e: Tensor<2>) -> Tensor<2> {
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

/// A device sampler whose kappa can change: it keeps the uploaded table while kappa
/// stays the same and rebuilds it (host build + one upload) only when kappa changes.
#[derive(Debug, Clone)]
pub struct DeviceSampler {
    table_size: usize,
    device: Device,
    /// The host table the device one was uploaded from: what the sampler draws, for
    /// its density ([`QuantileTable::log_sampler_density`]) without a rebuild.
    host: Arc<QuantileTable>,
    table: DeviceTable,
    rebuilds: usize,
}

impl DeviceSampler {
    /// A vMF sampler for (dim, kappa) on `device` with the default table size.
    pub fn new(dim: usize, kappa: f64, device: &Device) -> Result<Self> {
        Self::with_table_size(dim, kappa, DEFAULT_TABLE_SIZE, device)
    }

    /// A vMF sampler with `table_size` entries.
    pub fn with_table_size(
        dim: usize,
        kappa: f64,
        table_size: usize,
        device: &Device,
    ) -> Result<Self> {
        Self::of(Family::Vmf, dim, kappa, table_size, device)
    }

    /// A sampler of `family` with `table_size` entries.
    pub fn of(
        family: Family,
        dim: usize,
        kappa: f64,
        table_size: usize,
        device: &Device,
    ) -> Result<Self> {
        let host = QuantileTable::of(family, dim, kappa, table_size)?;
        Ok(Self {
            table_size,
            device: device.clone(),
            table: DeviceTable::new(&host, device),
            host: Arc::new(host),
            rebuilds: 1,
        })
    }

    /// Sets kappa, rebuilding the table only if it changed. Returns whether it rebuilt.
    pub fn set_kappa(&mut self, kappa: f64) -> Result<bool> {
        if kappa == self.table.kappa() {
            return Ok(false);
        }
        let t = &self.table;
        let host = QuantileTable::of(t.family(), t.dim(), kappa, self.table_size)?;
        self.table = DeviceTable::new(&host, &self.device);
        self.host = Arc::new(host);
        self.rebuilds += 1;
        Ok(true)
    }

    /// The current table.
    pub fn table(&self) -> &DeviceTable {
        &self.table
    }

    /// The host table the current device table was uploaded from.
    pub fn host(&self) -> &QuantileTable {
        &self.host
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

/// A [`KappaQuantileTable`] on a device: angles at any kappa of its range, a different
/// kappa on every row, differentiable in ln kappa (cubic Hermite in s = ln kappa of
/// exact values and slopes, linear in u): the reparameterisation gradient of a
/// learned kappa. Eight gathers and a few element-wise kernels per call.
#[derive(Debug, Clone)]
pub struct DeviceKappaTable {
    dim: usize,
    grid: LogKappaGrid,
    probabilities: usize,
    /// The angles, kappa-major (`[points * M]`), a kappa point apart = M entries.
    theta: HermiteColumns,
}

impl DeviceKappaTable {
    /// Uploads a host table to `device` (f32: [`KappaQuantileTable::device_bytes`]).
    pub fn new(table: &KappaQuantileTable, device: &Device) -> Self {
        let m = table.probabilities();
        Self {
            dim: table.dim(),
            grid: table.grid(),
            probabilities: m,
            theta: HermiteColumns::new(table.theta(), table.slope(), m, table.grid(), device),
        }
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The angle for uniform `u` at concentration exp(`log_kappa`), row by row;
    /// gradients reach `log_kappa` (outside the table's range it is clamped, and the
    /// gradient there is 0).
    ///
    /// # Shapes
    /// - `u`, `log_kappa`: `[n]` -> `[n]`
    pub fn theta(&self, u: Tensor<1>, log_kappa: Tensor<1>) -> Tensor<1> {
        let m = self.probabilities as i64;
        let (j, weights) = locate(&self.grid, log_kappa);
        let pos_u = u.mul_scalar((m - 1) as f64);
        let i: Tensor<1, Int> = pos_u.clone().floor().int().clamp(0, m - 2);
        let f = pos_u - i.clone().float();
        let base = j.mul_scalar(m) + i;
        // The Hermite interpolant in s at probability entries i and i + 1.
        let lo = self.theta.at(&base, &weights);
        let hi = self.theta.at(&base.add_scalar(1), &weights);
        lo.clone() + f * (hi - lo)
    }

    /// One z ~ vMF(mu_i, exp(log_kappa_i)) per row with the noise given (as
    /// [`DeviceTable::sample_with`]); gradients reach mu and `log_kappa`.
    ///
    /// # Shapes
    /// - `mu`: `[batch, d]` (unit rows), `log_kappa`, `u`: `[batch]`, `e`: `[batch, d]`
    /// - returns `[batch, d]`
    pub fn sample_with(
        &self,
        mu: Tensor<2>,
        log_kappa: Tensor<1>,
        u: Tensor<1>,
        e: Tensor<2>,
    ) -> Tensor<2> {
        let [batch, dim] = mu.dims();
        debug_assert_eq!(dim, self.dim);
        rotate(mu, self.theta(u, log_kappa).reshape([batch, 1]), e)
    }
}

/// A [`KlTable`] on a device: KL(vMF(., kappa) || uniform) at any kappa of its range,
/// row by row, with a continuous first derivative in ln kappa.
#[derive(Debug, Clone)]
pub struct DeviceKlTable {
    grid: LogKappaGrid,
    kl: HermiteColumns,
}

impl DeviceKlTable {
    /// Uploads a host table to `device`.
    pub fn new(table: &KlTable, device: &Device) -> Self {
        Self {
            grid: table.grid(),
            kl: HermiteColumns::new(table.kl(), table.slope(), 1, table.grid(), device),
        }
    }

    /// The KL at concentration exp(`log_kappa`), differentiable in `log_kappa`.
    ///
    /// # Shapes
    /// - `log_kappa`: `[n]` -> `[n]`
    pub fn kl(&self, log_kappa: Tensor<1>) -> Tensor<1> {
        let (j, weights) = locate(&self.grid, log_kappa);
        self.kl.at(&j, &weights)
    }
}

/// Values on a ln-kappa grid with their s-slopes, in the difference form that the
/// device interpolates: f0 + w1 h d0 + w2 (f1 - f0) + w3 h d1. The difference f1 - f0
/// is taken in f64 before the cast, so neither value nor slope subtracts nearby f32
/// numbers (the slope of small angles was 1.5e-3 off otherwise).
#[derive(Debug, Clone)]
struct HermiteColumns {
    value: Tensor<1>,
    /// The value at the next kappa point minus this one (0 on the last point).
    delta: Tensor<1>,
    /// Grid step times the slope.
    slope: Tensor<1>,
    /// Entries from one kappa point to the next.
    stride: i64,
}

impl HermiteColumns {
    fn new(
        values: &[f64],
        slopes: &[f64],
        stride: usize,
        grid: LogKappaGrid,
        device: &Device,
    ) -> Self {
        let n = values.len();
        let delta: Vec<f64> = (0..n)
            .map(|k| {
                if k + stride < n {
                    values[k + stride] - values[k]
                } else {
                    0.0
                }
            })
            .collect();
        let slope: Vec<f64> = slopes.iter().map(|&d| grid.step * d).collect();
        let upload = |v: &[f64]| {
            let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            Tensor::from_data(TensorData::new(v, [n]), device)
        };
        Self {
            value: upload(values),
            delta: upload(&delta),
            slope: upload(&slope),
            stride: stride as i64,
        }
    }

    /// The interpolant between entry `base` (at the lower kappa point) and the entry a
    /// kappa point on, with the weights of [`locate`].
    fn at(&self, base: &Tensor<1, Int>, [w1, w2, w3]: &[Tensor<1>; 3]) -> Tensor<1> {
        let pick =
            |t: &Tensor<1>, offset: i64| t.clone().select(0, base.clone().add_scalar(offset));
        pick(&self.value, 0)
            + pick(&self.slope, 0) * w1.clone()
            + pick(&self.delta, 0) * w2.clone()
            + pick(&self.slope, self.stride) * w3.clone()
    }
}

/// The grid cell j of each ln kappa (clamped into the grid) and the Hermite weights
/// (w1, w2, w3) of its position t in the cell; gradients reach `log_kappa` through t.
fn locate(grid: &LogKappaGrid, log_kappa: Tensor<1>) -> (Tensor<1, Int>, [Tensor<1>; 3]) {
    let points = grid.points as i64;
    let pos = log_kappa
        .sub_scalar(grid.s0)
        .div_scalar(grid.step)
        .clamp(0.0, (points - 1) as f64);
    let j: Tensor<1, Int> = pos.clone().floor().int().clamp(0, points - 2);
    let t = pos - j.clone().float();
    let t2 = t.clone() * t.clone();
    let t3 = t2.clone() * t.clone();
    let weights = [
        t3.clone() - t2.clone().mul_scalar(2.0) + t,
        t2.clone().mul_scalar(3.0) - t3.clone().mul_scalar(2.0),
        t3 - t2,
    ];
    (j, weights)
}
