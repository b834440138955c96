//! Tables over a range of kappa, for a kappa that is learned (one per model, or one
//! per example): the quantiles of theta and the KL as smooth functions of
//! s = ln kappa, with their exact s-derivatives, so that a device can evaluate them
//! at any kappa of the range and differentiate them (DESIGN.md section 6.3).
//!
//! Both are cubic Hermite interpolants in s of exact values and exact slopes (from
//! [`crate::kappa_grad`], never differences), so value and first derivative are
//! continuous in kappa everywhere: a jump in slope would pin a learned kappa at it.
//! The quantile table is linear in u between its probability entries, as
//! [`crate::QuantileTable`] is.

use crate::error::{KAPPA_MAX, Result, VmfError, check_params};
use crate::family::Family;
use crate::kappa_grad::QuantileGradient;
use crate::table::QuantileTable;

/// Default s-step of the quantile table: 10 per e-fold of kappa. The quantiles vary
/// like kappa^(-1/2) at large kappa, so the Hermite error is ~h^4/384 x theta/16: 1e-8.
pub const DEFAULT_LOG_KAPPA_STEP: f64 = 0.1;
/// Default probability entries per kappa (the u-direction error is below 1/(M - 1)).
pub const DEFAULT_PROBABILITIES: usize = 2049;
/// s-step of the KL table: its slope, the Hermite interpolant's derivative, errs by
/// ~h^3 KL'''' / 24, and KL ~ kappa^2 / (2d) for small kappa (KL'''' = 16 KL in s).
pub const KL_LOG_KAPPA_STEP: f64 = 0.01;

/// The cubic Hermite interpolant through values f0, f1 with s-slopes d0, d1 at the
/// ends of a cell of width `h`, at position t in [0, 1] of the cell: its value and
/// its s-derivative.
fn hermite(f0: f64, d0: f64, f1: f64, d1: f64, t: f64, h: f64) -> (f64, f64) {
    let (t2, t3) = (t * t, t * t * t);
    let value = f0 * (2.0 * t3 - 3.0 * t2 + 1.0)
        + h * d0 * (t3 - 2.0 * t2 + t)
        + f1 * (3.0 * t2 - 2.0 * t3)
        + h * d1 * (t3 - t2);
    let slope = (f1 - f0) * (6.0 * t - 6.0 * t2) / h
        + d0 * (3.0 * t2 - 4.0 * t + 1.0)
        + d1 * (3.0 * t2 - 2.0 * t);
    (value, slope)
}

/// A grid of s = ln kappa covering [kappa_min, kappa_max] with step at most `step`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogKappaGrid {
    /// s of the first point.
    pub s0: f64,
    /// Spacing.
    pub step: f64,
    /// Number of points (at least 2).
    pub points: usize,
}

impl LogKappaGrid {
    /// The grid over [kappa_min, kappa_max] (0 < kappa_min < kappa_max).
    pub fn new(dim: usize, kappa_min: f64, kappa_max: f64, step: f64) -> Result<Self> {
        check_params(dim, kappa_min)?;
        check_params(dim, kappa_max)?;
        if !(kappa_min > 0.0 && kappa_max > kappa_min) {
            return Err(VmfError::KappaRange {
                min: kappa_min,
                max: kappa_max,
            });
        }
        let (s0, s1) = (kappa_min.ln(), kappa_max.ln());
        let intervals = ((s1 - s0) / step).ceil().max(1.0) as usize;
        Ok(Self {
            s0,
            step: (s1 - s0) / intervals as f64,
            points: intervals + 1,
        })
    }

    /// kappa at point j (exp rounds ln 1e5 back to 1e5 + 2e-10: kept in range).
    pub fn kappa(&self, j: usize) -> f64 {
        (self.s0 + j as f64 * self.step).exp().min(KAPPA_MAX)
    }

    /// The cell of `kappa` (clamped into the grid) and the position t in [0, 1] in it.
    pub fn locate(&self, kappa: f64) -> (usize, f64) {
        let pos = ((kappa.ln() - self.s0) / self.step).clamp(0.0, (self.points - 1) as f64);
        let j = (pos.floor() as usize).min(self.points - 2);
        (j, pos - j as f64)
    }
}

/// The quantiles of theta at probabilities i / (M - 1) for every kappa of a
/// [`LogKappaGrid`], with their exact derivatives in s = ln kappa.
#[derive(Debug, Clone, PartialEq)]
pub struct KappaQuantileTable {
    dim: usize,
    grid: LogKappaGrid,
    probabilities: usize,
    /// theta[j * M + i]: kappa point j, probability i / (M - 1).
    theta: Vec<f64>,
    /// dtheta/ds at the same places (= kappa dtheta/dkappa, <= 0).
    slope: Vec<f64>,
}

impl KappaQuantileTable {
    /// The table over [kappa_min, kappa_max] with the default steps.
    pub fn new(dim: usize, kappa_min: f64, kappa_max: f64) -> Result<Self> {
        Self::with_steps(
            dim,
            kappa_min,
            kappa_max,
            DEFAULT_LOG_KAPPA_STEP,
            DEFAULT_PROBABILITIES,
        )
    }

    /// The vMF's table with s-step at most `step` and `probabilities` entries per kappa.
    pub fn with_steps(
        dim: usize,
        kappa_min: f64,
        kappa_max: f64,
        step: f64,
        probabilities: usize,
    ) -> Result<Self> {
        Self::of(Family::Vmf, dim, kappa_min, kappa_max, step, probabilities)
    }

    /// The table of `family` with s-step at most `step` and `probabilities` entries per
    /// kappa ([`DEFAULT_LOG_KAPPA_STEP`] and [`DEFAULT_PROBABILITIES`] by default).
    pub fn of(
        family: Family,
        dim: usize,
        kappa_min: f64,
        kappa_max: f64,
        step: f64,
        probabilities: usize,
    ) -> Result<Self> {
        let grid = LogKappaGrid::new(dim, kappa_min, kappa_max, step)?;
        if probabilities < 2 {
            return Err(VmfError::TableSize(probabilities));
        }
        let mut theta = Vec::with_capacity(grid.points * probabilities);
        let mut slope = Vec::with_capacity(grid.points * probabilities);
        for j in 0..grid.points {
            let kappa = grid.kappa(j);
            let table = QuantileTable::of(family, dim, kappa, probabilities)?;
            let dtheta =
                QuantileGradient::of(family, dim, kappa)?.dtheta_dkappa_sorted(table.theta());
            theta.extend_from_slice(table.theta());
            slope.extend(dtheta.iter().map(|d| kappa * d));
        }
        Ok(Self {
            dim,
            grid,
            probabilities,
            theta,
            slope,
        })
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The kappa grid.
    pub fn grid(&self) -> LogKappaGrid {
        self.grid
    }

    /// Entries per kappa (M).
    pub fn probabilities(&self) -> usize {
        self.probabilities
    }

    /// The angles, kappa-major: `[points * M]`.
    pub fn theta(&self) -> &[f64] {
        &self.theta
    }

    /// dtheta/ds at the same places.
    pub fn slope(&self) -> &[f64] {
        &self.slope
    }

    /// Bytes on a device in f32 (angles, their differences between kappa points, and
    /// slopes).
    pub fn device_bytes(&self) -> usize {
        3 * 4 * self.theta.len()
    }

    /// theta at probability `u` and `kappa`, as the device computes it (Hermite in s,
    /// linear in u), in f64; and its derivative in kappa.
    pub fn theta_at(&self, u: f64, kappa: f64) -> (f64, f64) {
        let m = self.probabilities;
        let (j, t) = self.grid.locate(kappa);
        let pos = u.clamp(0.0, 1.0) * (m - 1) as f64;
        let i = (pos.floor() as usize).min(m - 2);
        let f = pos - i as f64;
        let at = |ii: usize| self.entry(j, t, ii);
        let ((v0, d0), (v1, d1)) = (at(i), at(i + 1));
        (v0 + f * (v1 - v0), (d0 + f * (d1 - d0)) / kappa)
    }

    /// The angle drawn for `u` at `kappa` and ln of the density of theta that the
    /// table draws from there (u's cell: probability 1/(M - 1) spread evenly between
    /// its two interpolated angles), as [`crate::QuantileTable::log_sampler_density`].
    pub fn log_sampler_density(&self, u: f64, kappa: f64) -> (f64, f64) {
        let m = self.probabilities;
        let (j, t) = self.grid.locate(kappa);
        let pos = u.clamp(0.0, 1.0) * (m - 1) as f64;
        let i = (pos.floor() as usize).min(m - 2);
        let (v0, v1) = (self.entry(j, t, i).0, self.entry(j, t, i + 1).0);
        let width = v1 - v0;
        (
            v0 + (pos - i as f64) * width,
            -((m - 1) as f64 * width).ln(),
        )
    }

    /// ln of the density of theta that the table draws from at `kappa`, at an angle
    /// `theta` that it need not have drawn (the inverse of
    /// [`KappaQuantileTable::log_sampler_density`]); -inf outside the angles it draws
    /// at that kappa. The entries at `kappa` are interpolated in s as the device does.
    pub fn log_sampler_density_at(&self, theta: f64, kappa: f64) -> f64 {
        let (j, t) = self.grid.locate(kappa);
        crate::table::log_cell_density(self.probabilities, theta, |i| self.entry(j, t, i).0)
    }

    /// Probability entry `i` at position `t` of the s-cell `j` (from `grid.locate`): its
    /// angle, the Hermite interpolant in s of the two grid kappas' entries, and its
    /// s-derivative.
    fn entry(&self, j: usize, t: f64, i: usize) -> (f64, f64) {
        let m = self.probabilities;
        let (a, b) = (j * m + i, (j + 1) * m + i);
        let (th, sl) = (&self.theta, &self.slope);
        hermite(th[a], sl[a], th[b], sl[b], t, self.grid.step)
    }
}

/// KL(q(., kappa) || uniform) of a family over a [`LogKappaGrid`] with its exact s-derivative,
/// for a smooth KL of a learned kappa.
#[derive(Debug, Clone, PartialEq)]
pub struct KlTable {
    grid: LogKappaGrid,
    kl: Vec<f64>,
    /// dKL/ds = kappa dKL/dkappa.
    slope: Vec<f64>,
}

impl KlTable {
    /// The vMF's table over [kappa_min, kappa_max] with step [`KL_LOG_KAPPA_STEP`].
    pub fn new(dim: usize, kappa_min: f64, kappa_max: f64) -> Result<Self> {
        Self::of(Family::Vmf, dim, kappa_min, kappa_max)
    }

    /// The table of `family` over [kappa_min, kappa_max] with step [`KL_LOG_KAPPA_STEP`].
    pub fn of(family: Family, dim: usize, kappa_min: f64, kappa_max: f64) -> Result<Self> {
        let grid = LogKappaGrid::new(dim, kappa_min, kappa_max, KL_LOG_KAPPA_STEP)?;
        let mut kl = Vec::with_capacity(grid.points);
        let mut slope = Vec::with_capacity(grid.points);
        for j in 0..grid.points {
            let kappa = grid.kappa(j);
            kl.push(family.kl(dim, kappa)?);
            slope.push(kappa * family.kl_derivative(dim, kappa)?);
        }
        Ok(Self { grid, kl, slope })
    }

    /// The kappa grid.
    pub fn grid(&self) -> LogKappaGrid {
        self.grid
    }

    /// KL at the grid points.
    pub fn kl(&self) -> &[f64] {
        &self.kl
    }

    /// dKL/ds at the grid points.
    pub fn slope(&self) -> &[f64] {
        &self.slope
    }

    /// The interpolated KL at `kappa` and its kappa-derivative, in f64.
    pub fn kl_at(&self, kappa: f64) -> (f64, f64) {
        let (j, t) = self.grid.locate(kappa);
        let (kl, sl) = (&self.kl, &self.slope);
        let (value, ds) = hermite(kl[j], sl[j], kl[j + 1], sl[j + 1], t, self.grid.step);
        (value, ds / kappa)
    }
}
