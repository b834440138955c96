//! The vMF quantities that depend on (d, kappa), by the Bessel route:
//! log C_d(kappa), A_d(kappa) = `E[<mu, z>]`, KL(vMF || uniform), the log-density,
//! and the kappa that spends a given KL budget.
//!
//! With v = d/2 - 1 and I_v(kappa) = (kappa/2)^v / Gamma(v+1) * S_v(kappa):
//!   log C_d(kappa) - log C_d(0) = -ln S_v(kappa)
//!   A_d(kappa) = I_{v+1}(kappa) / I_v(kappa)
//!   KL = kappa A_d + log C_d(kappa) - log C_d(0).
//! Small kappa uses the S_v form (KL ~ kappa^2/(2d) keeps its digits); large kappa
//! the exponentially scaled log I_v (no kappa-sized terms cancel).

use std::f64::consts::{LN_2, PI};

use crate::bessel::{Regime, bessel_i_ratio, log_bessel_i_scaled, regime, series_tail};
use crate::error::{KAPPA_MAX, Result, VmfError, check_dim, check_params};

/// The order v = d/2 - 1 of the Bessel function in C_d.
fn order(dim: usize) -> f64 {
    0.5 * dim as f64 - 1.0
}

/// log C_d(0) = log(1 / |S^(d-1)|) = lnGamma(d/2) - ln 2 - (d/2) ln pi: the log-density
/// of the uniform distribution on S^(d-1).
pub fn log_normaliser_uniform(dim: usize) -> Result<f64> {
    check_dim(dim)?;
    let h = 0.5 * dim as f64;
    Ok(libm::lgamma(h) - LN_2 - h * PI.ln())
}

/// log C_d(kappa), the log normalising constant of vMF(mu, kappa) on S^(d-1).
pub fn log_normaliser(dim: usize, kappa: f64) -> Result<f64> {
    check_params(dim, kappa)?;
    let v = order(dim);
    if kappa == 0.0 {
        return log_normaliser_uniform(dim);
    }
    if regime(v, kappa) == Regime::Series {
        Ok(log_normaliser_uniform(dim)? - series_tail(v, kappa).ln_1p())
    } else {
        Ok(v * kappa.ln() - (v + 1.0) * (2.0 * PI).ln() - log_bessel_i_scaled(v, kappa) - kappa)
    }
}

/// A_d(kappa) = `E[<mu, z>]` = I_{d/2}(kappa) / I_{d/2-1}(kappa), the mean resultant length.
pub fn mean_resultant_length(dim: usize, kappa: f64) -> Result<f64> {
    check_params(dim, kappa)?;
    Ok(bessel_i_ratio(order(dim), kappa))
}

/// KL(vMF(mu, kappa) || uniform on S^(d-1)) in nats: a constant in mu, 0 at kappa = 0
/// and strictly increasing in kappa.
pub fn kl_to_uniform(dim: usize, kappa: f64) -> Result<f64> {
    check_params(dim, kappa)?;
    let v = order(dim);
    if kappa == 0.0 {
        return Ok(0.0);
    }
    if regime(v, kappa) == Regime::Series {
        let tail = series_tail(v, kappa);
        let a = bessel_i_ratio(v, kappa);
        Ok(kappa * a - tail.ln_1p())
    } else {
        let ls = log_bessel_i_scaled(v, kappa);
        let a_minus_one = (log_bessel_i_scaled(v + 1.0, kappa) - ls).exp_m1();
        Ok(kappa * a_minus_one + v * kappa.ln()
            - (v + 1.0) * (2.0 * PI).ln()
            - ls
            - log_normaliser_uniform(dim)?)
    }
}

/// All (d, kappa) quantities at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VmfStats {
    /// Dimension d of the ambient space (the sphere is S^(d-1)).
    pub dim: usize,
    /// Concentration.
    pub kappa: f64,
    /// KL(vMF || uniform) in nats.
    pub kl: f64,
    /// A_d(kappa) = `E[w]`.
    pub mean_w: f64,
    /// log C_d(kappa).
    pub log_normaliser: f64,
}

impl VmfStats {
    /// Computes the statistics of vMF(., kappa) on S^(dim-1).
    pub fn new(dim: usize, kappa: f64) -> Result<Self> {
        Ok(Self {
            dim,
            kappa,
            kl: kl_to_uniform(dim, kappa)?,
            mean_w: mean_resultant_length(dim, kappa)?,
            log_normaliser: log_normaliser(dim, kappa)?,
        })
    }
}

/// log f(x; mu, kappa) = log C_d(kappa) + kappa <mu, x> for unit vectors mu and x.
pub fn log_density(mu: &[f64], x: &[f64], kappa: f64) -> Result<f64> {
    let dim = mu.len();
    if x.len() != dim {
        return Err(VmfError::Length { got: x.len(), dim });
    }
    let dot: f64 = mu.iter().zip(x).map(|(a, b)| a * b).sum();
    Ok(log_normaliser(dim, kappa)? + kappa * dot)
}

/// The kappa whose KL(vMF(., kappa) || uniform) on S^(dim-1) equals `target_kl` nats.
///
/// The KL is 0 at kappa = 0 and increasing, so bisection on log kappa over
/// (0, KAPPA_MAX] finds the unique root (to ~1e-15 relative).
pub fn kappa_for_kl(dim: usize, target_kl: f64) -> Result<f64> {
    solve_kappa_for_kl(dim, target_kl, |k| kl_to_uniform(dim, k))
}

/// The bisection of [`kappa_for_kl`] for any family's KL (0 at kappa = 0, increasing).
pub(crate) fn solve_kappa_for_kl(
    dim: usize,
    target_kl: f64,
    kl_to_uniform: impl Fn(f64) -> Result<f64>,
) -> Result<f64> {
    check_dim(dim)?;
    let max = kl_to_uniform(KAPPA_MAX)?;
    if !target_kl.is_finite() || target_kl < 0.0 || target_kl > max {
        return Err(VmfError::KlTarget {
            target: target_kl,
            dim,
            max,
        });
    }
    if target_kl == 0.0 {
        return Ok(0.0);
    }
    // KL ~ kappa^2 / (2d) for small kappa: start the bracket well below that.
    let mut lo = ((2.0 * dim as f64 * target_kl).sqrt() * 1e-3)
        .ln()
        .max(-700.0);
    let mut hi = KAPPA_MAX.ln();
    while kl_to_uniform(lo.exp())? > target_kl {
        lo -= 10.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if kl_to_uniform(mid.exp())? < target_kl {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(hi.exp().min(KAPPA_MAX))
}
