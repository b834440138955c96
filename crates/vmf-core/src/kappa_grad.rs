//! Derivatives in kappa, for a learned kappa (DESIGN.md section 6.3): A_d'(kappa),
//! dKL/dkappa = kappa A_d'(kappa), and the derivative of the quantile function,
//! dw/dkappa at a fixed probability u, the exact reparameterisation gradient of the
//! inverse-CDF sampler.
//!
//! A_d' = 1 - A_d^2 - (d-1) A_d / kappa is a difference of numbers near 1 at large
//! kappa (6.4e-9 at d = 9, kappa = 25000): where that formula would lose more than
//! about 4 of the 16 digits, A_d' is computed as what it also is, the variance of
//! w = <mu, z>, by quadrature of the centred second moment E[((1 - w) - (1 - A_d))^2]
//! on the theta-marginal, with 1 - w = 2 sin^2(theta / 2): no cancellation.
//!
//! The quantile's derivative comes from implicit differentiation of F(Q(u)) = u:
//! dw/dkappa = -(dF/dkappa)(w) / p(w), and since dp/dkappa = p(t) (t - A_d),
//! -(dF/dkappa)(w) = int_{-1}^{w} (A_d - t) p(t) dt. In theta (w = cos theta) with the
//! theta-density q(phi) = p(cos phi) sin phi, the normaliser cancels:
//! dw/dkappa = sin(theta) int_0^theta (cos phi - A_d) q(phi) / q(theta) dphi
//!           = sin(theta) int_theta^pi (A_d - cos phi) q(phi) / q(theta) dphi
//! (the two agree because `E[w]` = A_d); each theta uses the side that does not cancel.
//!
//! The Power Spherical's quantile has the same form with the statistic whose
//! expectation is d(-ln C)/dkappa: dp/dkappa = p(t) (s(t) - E\[s\]), s(t) = ln(1 + t) =
//! ln 2 + 2 ln cos(phi / 2), so cos phi - A_d becomes 2 ln cos(phi / 2) minus its mean.

use std::f64::consts::PI;

use crate::error::{Result, check_params};
use crate::family::Family;
use crate::marginal::ThetaMarginal;
use crate::stats::mean_resultant_length;

/// The direct formula for A_d' is used while its terms are at most this many times
/// A_d' (A_d has ~1e-14 relative error, so A_d' keeps ~1e-10).
const MAX_CANCELLATION: f64 = 1e4;

/// 1 - cos t = 2 sin^2(t / 2), exact to rounding near t = 0.
fn one_minus_cos(t: f64) -> f64 {
    let s = (0.5 * t).sin();
    2.0 * s * s
}

/// dA_d/dkappa = d `E[w]` / dkappa = Var(w) = 1 - A_d^2 - (d - 1) A_d / kappa (1/d at
/// kappa = 0), to ~1e-10 relative over 2 <= d <= 4096, 0 <= kappa <= 1e5.
pub fn mean_w_derivative(dim: usize, kappa: f64) -> Result<f64> {
    check_params(dim, kappa)?;
    if kappa == 0.0 {
        return Ok(1.0 / dim as f64);
    }
    let a = mean_resultant_length(dim, kappa)?;
    let d1 = (dim - 1) as f64;
    let direct = 1.0 - a * a - d1 * a / kappa;
    if direct > 0.0 && (1.0 + a * a + d1 * a / kappa) < MAX_CANCELLATION * direct {
        return Ok(direct);
    }
    QuantileGradient::new(dim, kappa).map(|g| g.variance_w())
}

/// dKL(vMF(., kappa) || uniform) / dkappa = kappa A_d'(kappa) (the A_d terms of
/// d/dkappa [kappa A_d + log C_d(kappa)] cancel, since d log C_d / dkappa = -A_d).
pub fn kl_derivative(dim: usize, kappa: f64) -> Result<f64> {
    Ok(kappa * mean_w_derivative(dim, kappa)?)
}

/// Angles this close to a pole get the slope 0 (see `neg_dtheta_sorted`); table
/// entries meant to be 0 come out of the inversion as ~1e-17.
const POLE: f64 = 1e-12;

/// The kappa-derivative of the quantile function of w = <mu, z> for one family and
/// (d, kappa): see the module docs.
#[derive(Debug, Clone)]
pub struct QuantileGradient {
    marginal: ThetaMarginal,
    /// E[s] of the family's statistic s (see [`QuantileGradient::statistic`]) by the same
    /// quadrature as the integrals below, so that the two sides of
    /// [`QuantileGradient::dw_dkappa`] agree to rounding: -(1 - A_d) for the vMF.
    center: f64,
    /// The integral of the peak-normalised theta-density.
    mass: f64,
}

impl QuantileGradient {
    /// The vMF's derivative for dimension `dim` and concentration `kappa`.
    pub fn new(dim: usize, kappa: f64) -> Result<Self> {
        Self::of(Family::Vmf, dim, kappa)
    }

    /// The derivative's quadrature for `family` at (dim, kappa).
    pub fn of(family: Family, dim: usize, kappa: f64) -> Result<Self> {
        let marginal = ThetaMarginal::of(family, dim, kappa)?;
        let mass = marginal.integrate(|_| 1.0, 0.0, PI);
        let mut g = Self {
            marginal,
            center: 0.0,
            mass,
        };
        g.center = g.marginal.integrate(|t| g.statistic(t), 0.0, PI) / mass;
        Ok(g)
    }

    /// The statistic whose centred value is d ln p / dkappa, up to a constant, as a
    /// decreasing function of the angle that keeps its digits near 0: -(1 - cos t)
    /// (vMF), 2 ln cos(t / 2) (Power Spherical).
    fn statistic(&self, t: f64) -> f64 {
        match self.marginal.family() {
            Family::Vmf => -one_minus_cos(t),
            Family::PowerSpherical => 2.0 * (0.5 * t).cos().max(0.0).ln(),
        }
    }

    /// 1 - A_d(kappa), by quadrature (the vMF's).
    pub fn one_minus_mean_w(&self) -> f64 {
        debug_assert_eq!(self.marginal.family(), Family::Vmf);
        -self.center
    }

    /// Var(w) = A_d'(kappa): the centred second moment of 1 - w, integrated relative
    /// to (1 - A_d)^2 so that the quadrature's tolerance stays relative (the vMF's).
    pub fn variance_w(&self) -> f64 {
        let e = self.one_minus_mean_w();
        let centred = |t: f64| {
            let r = one_minus_cos(t) / e - 1.0;
            r * r
        };
        self.marginal.integrate(centred, 0.0, PI) / self.mass * e * e
    }

    /// dw/dkappa at the angle `theta` (w = cos theta) with its probability held
    /// fixed: > 0 inside (0, pi), where the quantiles rise with kappa.
    pub fn dw_dkappa(&self, theta: f64) -> f64 {
        self.dw_dkappa_sorted(&[theta])[0]
    }

    /// dtheta/dkappa at `theta` with its probability held fixed (-dw/dkappa / sin
    /// theta; < 0: the angles shrink as kappa grows).
    pub fn dtheta_dkappa(&self, theta: f64) -> f64 {
        self.dtheta_dkappa_sorted(&[theta])[0]
    }

    /// dw/dkappa at each of the sorted angles `thetas` (e.g. a quantile table's
    /// entries), with one quadrature sweep from each end instead of one per angle.
    pub fn dw_dkappa_sorted(&self, thetas: &[f64]) -> Vec<f64> {
        thetas
            .iter()
            .zip(self.neg_dtheta_sorted(thetas))
            .map(|(&t, n)| t.clamp(0.0, PI).sin() * n)
            .collect()
    }

    /// dtheta/dkappa at each of the sorted angles `thetas`, in one sweep from each end.
    pub fn dtheta_dkappa_sorted(&self, thetas: &[f64]) -> Vec<f64> {
        self.neg_dtheta_sorted(thetas).iter().map(|n| -n).collect()
    }

    /// -dtheta/dkappa = int_0^theta (cos phi - A_d) q(phi) / q(theta) dphi at sorted
    /// angles, each from the side of theta on which the integrand keeps one sign.
    fn neg_dtheta_sorted(&self, thetas: &[f64]) -> Vec<f64> {
        let c = self.center;
        let split = thetas.partition_point(|&t| t <= self.sign_change());
        let (left, right) = thetas.split_at(split);
        let mut out = self
            .marginal
            .integrate_sorted(|p| self.statistic(p) - c, left, false);
        out.extend(
            self.marginal
                .integrate_sorted(|p| c - self.statistic(p), right, true),
        );
        thetas
            .iter()
            .zip(out)
            .map(|(&t, i)| {
                // Near a pole the quantile's slope is proportional to its distance from
                // it (theta ~ u^(1 / (d - 1)) times a function of kappa), so within
                // POLE it is 0 to f64 rounding, while the formula there is 0 / 0 for
                // d >= 3 (the density vanishes at the poles).
                if t <= POLE || t >= PI - POLE {
                    0.0
                } else {
                    i * (-self.marginal.log_density_rel(t)).exp()
                }
            })
            .collect()
    }

    /// Where the centred statistic changes sign: theta_A = arccos A_d for the vMF,
    /// 2 arccos exp(E[s] / 2) for the Power Spherical.
    fn sign_change(&self) -> f64 {
        match self.marginal.family() {
            Family::Vmf => 2.0 * (-0.5 * self.center).sqrt().min(1.0).asin(),
            Family::PowerSpherical => 2.0 * (0.5 * self.center).exp().min(1.0).acos(),
        }
    }
}
