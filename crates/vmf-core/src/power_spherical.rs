//! The Power Spherical distribution PS(mu, kappa) on S^(d-1) (De Cao & Aziz 2020), the
//! second hyperspherical posterior beside the vMF: density C (1 + <mu, z>)^kappa
//! against the surface measure, t = <mu, z> with (t + 1)/2 ~ Beta(alpha, beta),
//! alpha = (d - 1)/2 + kappa, beta = (d - 1)/2. No Bessel functions: everything here
//! is Gamma and its derivatives, in f64, for the same ranges as the vMF (2 <= d <= 4096,
//! 0 <= kappa <= 1e5).
//!
//! The KL to the uniform prior has the closed form (b = beta, k = kappa)
//!
//! `KL = lnG(2b + k) - lnG(b + k) + k (psi(b + k) - psi(2b + k)) - (d - 2) ln 2 + ln(pi)/2 - lnG(d/2)`
//!
//! (lnG = ln Gamma; it vanishes at k = 0 by the duplication formula), which equals
//!
//! `KL = int_0^k s (psi'(b + s) - psi'(2b + s)) ds`,
//!
//! an integral of a positive function. The closed form's terms are of size k ln b
//! while the KL is about k^2 / (2 (d - 1)) for k << d, so below k = b the integral is
//! summed instead (adaptive Gauss-Kronrod, relative accuracy); above, the closed form
//! loses at most a factor ~ln(b) / 0.1 of round-off.

use crate::error::{Result, check_params};
use crate::quad;
use crate::special::{digamma, trigamma};

/// Everything about PS(mu, kappa) that training and evaluation ask of a family.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerSphericalStats {
    /// ln C_d(kappa): the log-density at z is `log_normaliser + kappa ln(1 + <mu, z>)`.
    pub log_normaliser: f64,
    /// KL(PS(mu, kappa) || uniform on S^(d-1)).
    pub kl: f64,
    /// E\[t\] = E\[<mu, z>\] = kappa / (d - 1 + kappa).
    pub mean_t: f64,
    /// dKL/dkappa = kappa (psi'(alpha) - psi'(alpha + beta)) = kappa Var[ln(1 + t)].
    pub dkl_dkappa: f64,
    /// dE\[t\]/dkappa = (d - 1) / (d - 1 + kappa)^2.
    pub dmean_t_dkappa: f64,
}

/// ln C_d(kappa) of PS(mu, kappa) on S^(dim-1) alone (no quadrature): the log-density
/// at z is `ln C + kappa ln(1 + <mu, z>)`.
pub fn power_spherical_log_normaliser(dim: usize, kappa: f64) -> Result<f64> {
    check_params(dim, kappa)?;
    let b = (dim as f64 - 1.0) / 2.0;
    let a = b + kappa;
    let (ln2, ln_pi) = (std::f64::consts::LN_2, std::f64::consts::PI.ln());
    Ok(-((a + b) * ln2 + b * ln_pi + libm::lgamma(a) - libm::lgamma(a + b)))
}

/// The statistics of PS(mu, kappa) on S^(dim-1); an error names a parameter out of range.
pub fn power_spherical_stats(dim: usize, kappa: f64) -> Result<PowerSphericalStats> {
    let log_normaliser = power_spherical_log_normaliser(dim, kappa)?;
    let b = (dim as f64 - 1.0) / 2.0;
    let a = b + kappa;
    let ln2 = std::f64::consts::LN_2;
    let ln_pi = std::f64::consts::PI.ln();
    let gap = |s: f64| trigamma(b + s) - trigamma(2.0 * b + s);
    let kl = if kappa <= b {
        // Relative accuracy: a piece is accepted at 1e-15 of its own value.
        quad::adaptive(&|s: f64| s * gap(s), 0.0, kappa, 0.0)
    } else {
        libm::lgamma(2.0 * b + kappa) - libm::lgamma(a)
            + kappa * (digamma(a) - digamma(2.0 * b + kappa))
            - (dim as f64 - 2.0) * ln2
            + 0.5 * ln_pi
            - libm::lgamma(dim as f64 / 2.0)
    };
    let n = dim as f64 - 1.0;
    Ok(PowerSphericalStats {
        log_normaliser,
        kl,
        mean_t: kappa / (n + kappa),
        dkl_dkappa: kappa * gap(kappa),
        dmean_t_dkappa: n / ((n + kappa) * (n + kappa)),
    })
}
