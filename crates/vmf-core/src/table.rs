//! The inverse-CDF (quantile) table of theta = arccos(<mu, z>), built on the host in f64.
//!
//! Entry i is the quantile of theta at probability i / (M - 1); between entries the
//! table interpolates linearly, so the sampled theta is a continuous, monotone
//! function of one uniform u. Tabulating the *angle* rather than w keeps the
//! precision near w = 1: for kappa = 1e5, 1 - w ~ 1e-5, which f32 cannot hold next
//! to 1, while theta ~ 3e-3 and sin(theta) = sqrt(1 - w^2) are exact to f32 rounding.
//!
//! Build: the density is evaluated on [lo, hi] (where it is above e^-60 of its
//! peak, see [`ThetaMarginal::support`]) on a uniform grid of panels; each panel's
//! mass comes from 5-point Gauss-Legendre, and within a panel the CDF is the cubic
//! Hermite interpolant of the exact CDF values and densities at its ends, inverted
//! by safeguarded Newton. About 12k density evaluations: well under a millisecond.

use crate::error::{Result, VmfError, check_params};
use crate::family::Family;
use crate::marginal::ThetaMarginal;
use crate::quad::{GL5_W, GL5_X};

/// Default number of table entries. The table's Kolmogorov-Smirnov distance to the
/// exact CDF is below 1 / (M - 1) = 6.1e-5 even where the quantile function is
/// steepest (the tails at d = 4096); it is ~1e-9 in the bulk.
pub const DEFAULT_TABLE_SIZE: usize = 16385;

/// Panels of the build grid over [lo, hi].
const PANELS: usize = 2048;

/// Quantiles of theta for one family and (d, kappa).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantileTable {
    family: Family,
    dim: usize,
    kappa: f64,
    theta: Vec<f64>,
}

impl QuantileTable {
    /// The vMF's table with [`DEFAULT_TABLE_SIZE`] entries.
    pub fn new(dim: usize, kappa: f64) -> Result<Self> {
        Self::with_size(dim, kappa, DEFAULT_TABLE_SIZE)
    }

    /// The vMF's table with `size` entries (at least 2).
    pub fn with_size(dim: usize, kappa: f64, size: usize) -> Result<Self> {
        Self::of(Family::Vmf, dim, kappa, size)
    }

    /// The table of `family` with `size` entries (at least 2; [`DEFAULT_TABLE_SIZE`]
    /// is the default).
    pub fn of(family: Family, dim: usize, kappa: f64, size: usize) -> Result<Self> {
        check_params(dim, kappa)?;
        if size < 2 {
            return Err(VmfError::TableSize(size));
        }
        let marginal = ThetaMarginal::of(family, dim, kappa)?;
        let (lo, hi) = marginal.support();
        let h = (hi - lo) / PANELS as f64;
        let node = |j: usize| if j == PANELS { hi } else { lo + j as f64 * h };
        let density = |t: f64| marginal.log_density_rel(t).exp();

        // Density at the nodes and cumulative mass at the nodes.
        let f: Vec<f64> = (0..=PANELS).map(|j| density(node(j))).collect();
        let mut cdf = Vec::with_capacity(PANELS + 1);
        cdf.push(0.0);
        let mut acc = 0.0;
        for j in 0..PANELS {
            let (a, b) = (node(j), node(j + 1));
            let (c, r) = (0.5 * (a + b), 0.5 * (b - a));
            acc += r * GL5_X
                .iter()
                .zip(GL5_W)
                .map(|(&x, w)| w * density(c + r * x))
                .sum::<f64>();
            cdf.push(acc);
        }
        let total = acc;

        let last = (size - 1) as f64;
        let mut theta = Vec::with_capacity(size);
        theta.push(lo);
        let mut j = 0;
        for i in 1..size - 1 {
            let p = i as f64 / last * total;
            while j + 1 < PANELS && cdf[j + 1] < p {
                j += 1;
            }
            let t = invert_hermite(cdf[j], cdf[j + 1], h * f[j], h * f[j + 1], p);
            theta.push(node(j) + t * (node(j + 1) - node(j)));
        }
        theta.push(hi);
        Ok(Self {
            family,
            dim,
            kappa,
            theta,
        })
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

    /// Number of entries M.
    pub fn len(&self) -> usize {
        self.theta.len()
    }

    /// Always false: a table has at least 2 entries.
    pub fn is_empty(&self) -> bool {
        self.theta.is_empty()
    }

    /// The entries: theta at probabilities i / (M - 1), increasing.
    pub fn theta(&self) -> &[f64] {
        &self.theta
    }

    /// The sampled angle for a uniform `u` in [0, 1]: linear interpolation of the table.
    pub fn theta_at(&self, u: f64) -> f64 {
        let pos = u.clamp(0.0, 1.0) * (self.theta.len() - 1) as f64;
        let i = (pos.floor() as usize).min(self.theta.len() - 2);
        let frac = pos - i as f64;
        self.theta[i] + frac * (self.theta[i + 1] - self.theta[i])
    }

    /// The angle drawn for a uniform `u` and ln of the density of theta that the table
    /// draws from there: u's cell holds probability 1/(M - 1), spread evenly over the
    /// cell's angles. In the bulk that matches the family's density to the table's
    /// accuracy; the two end cells reach out to where the density is e^-60 of its peak
    /// and spread their mass evenly up to there, so far in them the two differ by many
    /// orders of magnitude. An importance weight over the table's draws must divide by
    /// this density, not the family's ([`crate::Family::log_theta_density`]).
    pub fn log_sampler_density(&self, u: f64) -> (f64, f64) {
        let n = self.theta.len();
        let pos = u.clamp(0.0, 1.0) * (n - 1) as f64;
        let i = (pos.floor() as usize).min(n - 2);
        let width = self.theta[i + 1] - self.theta[i];
        let theta = self.theta[i] + (pos - i as f64) * width;
        (theta, -((n - 1) as f64 * width).ln())
    }

    /// ln of the density of theta that the table draws from, at an angle `theta` that
    /// it need not have drawn (the inverse of [`QuantileTable::log_sampler_density`]:
    /// the cell holding `theta`, whose probability 1/(M - 1) is spread evenly over its
    /// angles); -inf outside [theta_0, theta_(M-1)], where the table never draws. An
    /// importance weight under a mixture proposal needs the table's density at the
    /// other component's draws.
    pub fn log_sampler_density_at(&self, theta: f64) -> f64 {
        log_cell_density(self.theta.len(), theta, |i| self.theta[i])
    }

    /// The sampled w = <mu, z> for a uniform `u` (decreasing in u).
    pub fn w_at(&self, u: f64) -> f64 {
        self.theta_at(u).cos()
    }

    /// The CDF of the table's own (piecewise-uniform in theta) distribution.
    pub fn cdf_theta(&self, t: f64) -> f64 {
        let n = self.theta.len();
        if t <= self.theta[0] {
            return 0.0;
        }
        if t >= self.theta[n - 1] {
            return 1.0;
        }
        let i = self.theta.partition_point(|&x| x <= t) - 1;
        let width = self.theta[i + 1] - self.theta[i];
        let frac = if width > 0.0 {
            (t - self.theta[i]) / width
        } else {
            1.0
        };
        (i as f64 + frac) / (n - 1) as f64
    }

    /// Kolmogorov-Smirnov distance to the exact CDF (adaptive quadrature of
    /// [`ThetaMarginal`], independent of the build), checked at every entry and at
    /// `per_interval` interior points of every interval.
    pub fn ks_distance(&self, per_interval: usize) -> Result<f64> {
        let exact = ThetaMarginal::of(self.family, self.dim, self.kappa)?;
        let mut pts = Vec::with_capacity(self.theta.len() * (per_interval + 1));
        for w in self.theta.windows(2) {
            pts.push(w[0]);
            for k in 1..=per_interval {
                pts.push(w[0] + (w[1] - w[0]) * k as f64 / (per_interval + 1) as f64);
            }
        }
        pts.push(self.theta[self.theta.len() - 1]);
        let cdf = exact.cdf_theta_sorted(&pts);
        Ok(pts
            .iter()
            .zip(cdf)
            .map(|(&t, c)| (self.cdf_theta(t) - c).abs())
            .fold(0.0, f64::max))
    }
}

/// ln of the density of a table's draws at `theta`, the table having `m` increasing
/// entries `entry(i)` at probabilities i / (m - 1) and interpolating linearly between
/// them: -ln((m - 1) width) of the cell holding `theta`, -inf outside the entries.
pub(crate) fn log_cell_density(m: usize, theta: f64, entry: impl Fn(usize) -> f64) -> f64 {
    if !(theta >= entry(0) && theta <= entry(m - 1)) {
        return f64::NEG_INFINITY;
    }
    // The last i with entry(i) <= theta, kept below m - 1 (theta at the top entry is in
    // the last cell).
    let (mut lo, mut hi) = (0, m - 1);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if entry(mid) <= theta {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    -((m - 1) as f64 * (entry(lo + 1) - entry(lo))).ln()
}

/// Solves H(t) = p on [0, 1] for the cubic Hermite H with H(0) = f0, H(1) = f1,
/// H'(0) = d0, H'(1) = d1 (Newton, falling back to bisection to stay bracketed).
fn invert_hermite(f0: f64, f1: f64, d0: f64, d1: f64, p: f64) -> f64 {
    let value = |t: f64| {
        let t2 = t * t;
        let t3 = t2 * t;
        f0 * (2.0 * t3 - 3.0 * t2 + 1.0)
            + d0 * (t3 - 2.0 * t2 + t)
            + f1 * (-2.0 * t3 + 3.0 * t2)
            + d1 * (t3 - t2)
    };
    let slope = |t: f64| {
        let t2 = t * t;
        6.0 * (f1 - f0) * (t - t2) + d0 * (3.0 * t2 - 4.0 * t + 1.0) + d1 * (3.0 * t2 - 2.0 * t)
    };
    if f1 <= f0 {
        return 0.5;
    }
    let (mut a, mut b) = (0.0, 1.0);
    let mut t = ((p - f0) / (f1 - f0)).clamp(0.0, 1.0);
    for _ in 0..60 {
        let r = value(t) - p;
        if r == 0.0 {
            break;
        }
        if r > 0.0 {
            b = t;
        } else {
            a = t;
        }
        let s = slope(t);
        let newton = t - r / s;
        let next = if s > 0.0 && newton > a && newton < b {
            newton
        } else {
            0.5 * (a + b)
        };
        if (next - t).abs() <= 1e-15 {
            t = next;
            break;
        }
        t = next;
    }
    t
}
