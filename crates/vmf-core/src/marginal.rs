//! The marginal of the angle theta = arccos(<mu, z>) and the quadrature route.
//!
//! For the vMF, theta has density proportional to exp(kappa cos theta) sin^(d-2) theta
//! on [0, pi] (DESIGN.md section 1: the substitution w = cos theta removes the d = 2
//! endpoint singularity, and 1 - w = 2 sin^2(theta/2) keeps full precision near
//! w = 1). For the Power Spherical it is proportional to (1 + cos theta)^kappa
//! sin^(d-2) theta = const cos^(2 kappa + d - 2)(theta/2) sin^(d-2)(theta/2).
//!
//! This module gives the exact CDF (adaptive Gauss-Kronrod, split at the mode and
//! at multiples of the width) of either family, and, for the vMF, the *quadrature
//! route* to log C_d, A_d and the KL, the independent check of the Bessel route in
//! [`crate::stats`].

use std::f64::consts::PI;

use crate::error::{Result, check_params};
use crate::family::Family;
use crate::quad::adaptive;

/// Where the density has fallen by e^-60 relative to its peak: beyond it the mass
/// is below 1e-24 and is left out of the table.
const CUT_LOG_DENSITY: f64 = 60.0;

/// Distribution of theta = arccos(<mu, z>) for z ~ vMF(mu, kappa) or Power
/// Spherical(mu, kappa) on S^(d-1).
#[derive(Debug, Clone)]
pub struct ThetaMarginal {
    family: Family,
    dim: usize,
    kappa: f64,
    mode: f64,
    /// vMF: sin of the mode. Power Spherical: sin and cos of half the mode.
    sin_ref: f64,
    cos_ref: f64,
    width: f64,
    lo: f64,
    hi: f64,
}

impl ThetaMarginal {
    /// The vMF marginal for dimension `dim` and concentration `kappa` (validated).
    pub fn new(dim: usize, kappa: f64) -> Result<Self> {
        Self::of(Family::Vmf, dim, kappa)
    }

    /// The marginal of `family` for dimension `dim` and concentration `kappa`
    /// (validated).
    pub fn of(family: Family, dim: usize, kappa: f64) -> Result<Self> {
        check_params(dim, kappa)?;
        let (mode, sin_ref, cos_ref, width) = match family {
            Family::Vmf => Self::vmf_peak(dim, kappa),
            Family::PowerSpherical => Self::power_spherical_peak(dim, kappa),
        };
        let mut m = Self {
            family,
            dim,
            kappa,
            mode,
            sin_ref,
            cos_ref,
            width,
            lo: 0.0,
            hi: PI,
        };
        m.lo = m.crossing(0.0, mode);
        m.hi = m.crossing(PI, mode);
        Ok(m)
    }

    /// The Power Spherical's mode, sin and cos of its half, and width. With
    /// phi = theta / 2 the log density is A ln cos phi + B ln sin phi, A = 2 kappa +
    /// d - 2, B = d - 2: its mode has tan^2 phi = B / A, and -l''(theta) =
    /// (A / cos^2 phi + B / sin^2 phi) / 4 there.
    fn power_spherical_peak(dim: usize, kappa: f64) -> (f64, f64, f64, f64) {
        let b = (dim - 2) as f64;
        let a = 2.0 * kappa + b;
        if a == 0.0 {
            // d = 2, kappa = 0: uniform in theta.
            return (0.5 * PI, 1.0, 0.0, PI);
        }
        // sin and cos of phi* from tan^2 = B / A, without cancellation.
        let (s, c) = ((b / (a + b)).sqrt(), (a / (a + b)).sqrt());
        let curvature = 0.25 * (a / (c * c) + if b > 0.0 { b / (s * s) } else { 0.0 });
        (2.0 * s.atan2(c), s, c, (1.0 / curvature.sqrt()).min(PI))
    }

    /// The vMF's mode, the sin of the mode, and width.
    fn vmf_peak(dim: usize, kappa: f64) -> (f64, f64, f64, f64) {
        let dm2 = (dim - 2) as f64;
        // Mode: kappa sin^2 = (d-2) cos, solved for cos without cancellation.
        let (mode, sin_mode, width) = if dim == 2 {
            if kappa > 0.0 {
                (0.0, 0.0, (1.0 / kappa.sqrt()).min(PI))
            } else {
                (0.5 * PI, 1.0, PI)
            }
        } else {
            let c = if kappa > 0.0 {
                2.0 * kappa / (dm2 + (dm2 * dm2 + 4.0 * kappa * kappa).sqrt())
            } else {
                0.0
            };
            let s = if kappa > 0.0 {
                (dm2 * c / kappa).sqrt().min(1.0)
            } else {
                1.0
            };
            let curvature = kappa * c + dm2 / (s * s);
            (s.atan2(c), s, (1.0 / curvature.sqrt()).min(PI))
        };
        (mode, sin_mode, 0.0, width)
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

    /// The mode of theta.
    pub fn mode(&self) -> f64 {
        self.mode
    }

    /// The width 1/sqrt(-l''(mode)) of the peak (capped at pi).
    pub fn width(&self) -> f64 {
        self.width
    }

    /// The interval [lo, hi] outside which the density is below e^-60 of its peak.
    pub fn support(&self) -> (f64, f64) {
        (self.lo, self.hi)
    }

    /// log density minus its value at the mode (<= 0), accurate in the tails and at
    /// the peak: kappa (cos t - cos t*) and sin t - sin t* are written as products of
    /// sines, so no term is a difference of nearby numbers. (With ln(sin t / sin t*)
    /// the ratio's rounding, times d - 2 = 1022, put 1e-13 of noise on the density at
    /// d = 1024: more than the quadrature's round-off floor, which then never met its
    /// tolerance.)
    ///
    /// The Power Spherical's, in phi = theta / 2, is A ln(cos phi / cos phi*) + B
    /// ln(sin phi / sin phi*), each ratio written the same way.
    pub fn log_density_rel(&self, theta: f64) -> f64 {
        if self.family == Family::PowerSpherical {
            return self.power_spherical_log_density_rel(theta);
        }
        let (half_sum, half_diff) = (0.5 * (theta + self.mode), 0.5 * (theta - self.mode));
        let a = -2.0 * self.kappa * half_sum.sin() * half_diff.sin();
        if self.dim == 2 {
            a
        } else {
            // sin t - sin t* = 2 cos((t + t*)/2) sin((t - t*)/2)
            let rel = 2.0 * half_sum.cos() * half_diff.sin() / self.sin_ref;
            // rel >= -1 (sin t >= 0); rounding at t = 0 or pi must not make it less.
            a + (self.dim - 2) as f64 * rel.max(-1.0).ln_1p()
        }
    }

    fn power_spherical_log_density_rel(&self, theta: f64) -> f64 {
        let b = (self.dim - 2) as f64;
        let a = 2.0 * self.kappa + b;
        if a == 0.0 {
            return 0.0;
        }
        let (phi, phi_ref) = (0.5 * theta, 0.5 * self.mode);
        let (half_sum, half_diff) = (0.5 * (phi + phi_ref), 0.5 * (phi - phi_ref));
        // cos p - cos p* = -2 sin((p + p*)/2) sin((p - p*)/2); cos p >= 0 on [0, pi/2].
        let cos_rel = -2.0 * half_sum.sin() * half_diff.sin() / self.cos_ref;
        let mut l = a * cos_rel.max(-1.0).ln_1p();
        if b > 0.0 {
            let sin_rel = 2.0 * half_sum.cos() * half_diff.sin() / self.sin_ref;
            l += b * sin_rel.max(-1.0).ln_1p();
        }
        l
    }

    /// log of the peak of exp(kappa cos t) sin^(d-2) t, minus kappa (vMF).
    fn log_peak_minus_kappa(&self) -> f64 {
        debug_assert_eq!(self.family, Family::Vmf);
        let s = (0.5 * self.mode).sin();
        let a = -2.0 * self.kappa * s * s;
        if self.dim == 2 {
            a
        } else {
            a + (self.dim - 2) as f64 * self.sin_ref.ln()
        }
    }

    /// The point between `edge` and the mode where the log density crosses -60
    /// (or `edge` itself when the density never falls that low). The log density is
    /// monotone on either side of the mode, so bisection is safe.
    fn crossing(&self, edge: f64, mode: f64) -> f64 {
        if self.log_density_rel(edge) >= -CUT_LOG_DENSITY {
            return edge;
        }
        let (mut out, mut inn) = (edge, mode);
        for _ in 0..200 {
            let mid = 0.5 * (out + inn);
            if mid == out || mid == inn {
                break;
            }
            if self.log_density_rel(mid) < -CUT_LOG_DENSITY {
                out = mid;
            } else {
                inn = mid;
            }
        }
        out
    }

    /// Points where the integrand changes character: the mode, multiples of the
    /// width around it, and the support ends, inside [0, pi] and sorted.
    fn breakpoints(&self) -> Vec<f64> {
        let mut pts = vec![0.0, PI, self.mode, self.lo, self.hi];
        for k in [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0] {
            pts.push(self.mode - k * self.width);
            pts.push(self.mode + k * self.width);
        }
        if self.family == Family::PowerSpherical && self.dim == 2 {
            // At d = 2 the density vanishes like (pi - t)^(2 kappa) at pi: a cusp for
            // kappa < 1 that Gauss-Kronrod meets only on ever smaller pieces. Pieces
            // graded geometrically towards pi give each a smooth integrand.
            pts.extend((1..=60).map(|j| PI - PI * 0.5f64.powi(j)));
        }
        pts.retain(|t| (0.0..=PI).contains(t));
        pts.sort_by(f64::total_cmp);
        pts.dedup();
        pts
    }

    /// The integral of g(t) exp(l(t) - l(mode)) over [a, b], split at the breakpoints.
    pub fn integrate(&self, g: impl Fn(f64) -> f64, a: f64, b: f64) -> f64 {
        let f = |t: f64| g(t) * self.log_density_rel(t).exp();
        let tol = 1e-17 * self.width;
        let mut cuts: Vec<f64> = self
            .breakpoints()
            .into_iter()
            .filter(|&t| t > a && t < b)
            .collect();
        cuts.insert(0, a);
        cuts.push(b);
        cuts.windows(2).map(|w| adaptive(&f, w[0], w[1], tol)).sum()
    }

    /// The exact CDF P(theta <= t), by adaptive quadrature of both sides.
    pub fn cdf_theta(&self, t: f64) -> f64 {
        let t = t.clamp(0.0, PI);
        let left = self.integrate(|_| 1.0, 0.0, t);
        let right = self.integrate(|_| 1.0, t, PI);
        left / (left + right)
    }

    /// The exact CDF at many sorted points in one pass (each stretch between
    /// consecutive points and breakpoints integrated once).
    pub fn cdf_theta_sorted(&self, ts: &[f64]) -> Vec<f64> {
        let mut out = self.integrate_sorted(|_| 1.0, ts, false);
        let last = ts.last().map_or(0.0, |&t| t.clamp(0.0, PI));
        let total = out.last().copied().unwrap_or(0.0) + self.integrate(|_| 1.0, last, PI);
        out.iter_mut().for_each(|v| *v /= total);
        out
    }

    /// The integrals of g(t) exp(l(t) - l(mode)) from 0 to each of the sorted points
    /// `ts` (`from_pi`: from each point to pi), in one sweep: each stretch between
    /// consecutive points and breakpoints is integrated once.
    pub fn integrate_sorted(&self, g: impl Fn(f64) -> f64, ts: &[f64], from_pi: bool) -> Vec<f64> {
        debug_assert!(ts.windows(2).all(|w| w[0] <= w[1]));
        let f = |t: f64| g(t) * self.log_density_rel(t).exp();
        let tol = 1e-17 * self.width;
        let bps = self.breakpoints();
        let mut out = vec![0.0; ts.len()];
        let mut acc = 0.0;
        if from_pi {
            let (mut pos, mut b) = (PI, bps.len());
            for (i, &t) in ts.iter().enumerate().rev() {
                let t = t.clamp(0.0, PI);
                while b > 0 && bps[b - 1] > t {
                    acc += adaptive(&f, bps[b - 1], pos, tol);
                    pos = bps[b - 1];
                    b -= 1;
                }
                acc += adaptive(&f, t, pos, tol);
                pos = t;
                out[i] = acc;
            }
        } else {
            let (mut pos, mut b) = (0.0, 0);
            for (i, &t) in ts.iter().enumerate() {
                let t = t.clamp(0.0, PI);
                while b < bps.len() && bps[b] < t {
                    acc += adaptive(&f, pos, bps[b], tol);
                    pos = bps[b];
                    b += 1;
                }
                acc += adaptive(&f, pos, t, tol);
                pos = t;
                out[i] = acc;
            }
        }
        out
    }

    /// The exact CDF of w = cos(theta): P(w' <= w).
    pub fn cdf_w(&self, w: f64) -> f64 {
        1.0 - self.cdf_theta(w.clamp(-1.0, 1.0).acos())
    }
}

/// log C_d(kappa), A_d(kappa) and the KL computed by quadrature of the w-marginal,
/// independently of any Bessel function (DESIGN.md section 2):
/// KL = kappa `E[w]` - log Z(kappa) + log Z(0), Z(kappa) = int exp(kappa w)(1-w^2)^((d-3)/2) dw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuadratureStats {
    /// log C_d(kappa).
    pub log_normaliser: f64,
    /// `E[w]` = A_d(kappa).
    pub mean_w: f64,
    /// KL(vMF(mu, kappa) || uniform).
    pub kl: f64,
}

/// Below this kappa, the quadrature route integrates against the uniform marginal
/// (symmetrised over theta -> pi - theta) so that KL ~ kappa^2 / (2d) keeps its digits.
const SMALL_KAPPA: f64 = 1.0;

/// The quadrature route to log C_d, A_d and the KL (see [`QuadratureStats`]).
pub fn quadrature_stats(dim: usize, kappa: f64) -> Result<QuadratureStats> {
    let m = ThetaMarginal::new(dim, kappa)?;
    let uniform = ThetaMarginal::new(dim, 0.0)?;
    let half_d1 = 0.5 * (dim as f64 - 1.0);
    // log |S^(d-2)|: the surface of the sphere orthogonal to mu.
    let log_area = std::f64::consts::LN_2 + half_d1 * PI.ln() - libm::lgamma(half_d1);
    // Z(0) = int_0^pi sin^(d-2): the uniform marginal's peak is 1, so no offset.
    let half_z0 = uniform.integrate(|_| 1.0, 0.0, 0.5 * PI);
    let log_z0 = (2.0 * half_z0).ln();
    if kappa <= SMALL_KAPPA {
        // Z(k)/Z(0) - 1 = int_0^{pi/2} (cosh(k c) - 1) s^(d-2) / half_z0, all terms >= 0.
        let r = uniform.integrate(
            |t| {
                let h = (0.5 * kappa * t.cos()).sinh();
                2.0 * h * h
            },
            0.0,
            0.5 * PI,
        ) / half_z0;
        let e_w = uniform.integrate(|t| t.cos() * (kappa * t.cos()).sinh(), 0.0, 0.5 * PI)
            / (half_z0 * (1.0 + r));
        let log_ratio = r.ln_1p();
        Ok(QuadratureStats {
            log_normaliser: -log_area - log_z0 - log_ratio,
            mean_w: e_w,
            kl: kappa * e_w - log_ratio,
        })
    } else {
        let mass = m.integrate(|_| 1.0, 0.0, PI);
        let one_minus_w = m.integrate(
            |t| {
                let s = (0.5 * t).sin();
                2.0 * s * s
            },
            0.0,
            PI,
        ) / mass;
        let log_z_minus_kappa = m.log_peak_minus_kappa() + mass.ln();
        Ok(QuadratureStats {
            log_normaliser: -log_area - log_z_minus_kappa - kappa,
            mean_w: 1.0 - one_minus_w,
            kl: -kappa * one_minus_w - log_z_minus_kappa + log_z0,
        })
    }
}
