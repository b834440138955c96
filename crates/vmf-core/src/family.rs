//! Which hyperspherical family a marginal, a table or a sampler is of: both have a
//! direction mu, a concentration kappa >= 0 and the uniform prior on S^(d-1), and both
//! draw z = t mu + sqrt(1 - t^2) v from the law of t = <mu, z> (here through the angle
//! theta = arccos t), so the tables, samplers and the rotation are shared; what differs
//! is the law of theta ([`crate::marginal::ThetaMarginal`]) and the closed forms
//! ([`crate::stats`], [`crate::power_spherical`]).

use crate::error::Result;

/// A hyperspherical family with a concentration kappa (the default: the vMF).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Family {
    /// von Mises-Fisher: density proportional to exp(kappa <mu, z>).
    #[default]
    Vmf,
    /// Power Spherical (De Cao & Aziz 2020): density proportional to
    /// (1 + <mu, z>)^kappa; (t + 1) / 2 ~ Beta((d - 1)/2 + kappa, (d - 1)/2).
    PowerSpherical,
}

/// What training and evaluation ask of a family at one (d, kappa).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FamilyStats {
    /// KL(q || uniform on S^(d-1)).
    pub kl: f64,
    /// E\[t\] = E\[<mu, z>\].
    pub mean_w: f64,
    /// ln C: the log-density at z is `log_normaliser + kappa s(<mu, z>)`, with s(t) = t
    /// (vMF) or ln(1 + t) (Power Spherical).
    pub log_normaliser: f64,
    /// dKL/dkappa.
    pub dkl_dkappa: f64,
    /// dE\[t\]/dkappa.
    pub dmean_w_dkappa: f64,
}

impl Family {
    /// Its name in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Family::Vmf => "vmf",
            Family::PowerSpherical => "power_spherical",
        }
    }

    /// KL(q || uniform on S^(dim-1)) at kappa.
    pub fn kl(self, dim: usize, kappa: f64) -> Result<f64> {
        match self {
            Family::Vmf => crate::stats::kl_to_uniform(dim, kappa),
            Family::PowerSpherical => {
                crate::power_spherical::power_spherical_stats(dim, kappa).map(|s| s.kl)
            }
        }
    }

    /// ln C at kappa: the log-density at z is `log_normaliser + kappa s(<mu, z>)`, with
    /// s(t) = t (vMF) or ln(1 + t) (Power Spherical).
    pub fn log_normaliser(self, dim: usize, kappa: f64) -> Result<f64> {
        match self {
            Family::Vmf => crate::stats::log_normaliser(dim, kappa),
            Family::PowerSpherical => {
                crate::power_spherical::power_spherical_log_normaliser(dim, kappa)
            }
        }
    }

    /// The kernel of the log-density at t = <mu, z>, kappa s(t): the log-density at z
    /// is `log_normaliser + log_kernel`, with s(t) = t (vMF) or ln(1 + t) (Power
    /// Spherical). At kappa = 0 it is 0 for every t (the uniform law), t = -1 included.
    pub fn log_kernel(self, kappa: f64, t: f64) -> f64 {
        if kappa == 0.0 {
            return 0.0;
        }
        match self {
            Family::Vmf => kappa * t,
            Family::PowerSpherical => kappa * t.ln_1p(),
        }
    }

    /// ln of the exact density of theta = arccos <mu, z> on [0, pi] at `theta`, in f64,
    /// given `log_normaliser` = ln C at (dim, kappa): ln C + kernel + ln |S^(d-2)| +
    /// (d - 2) ln sin theta (z's density times the area of the directions at that
    /// angle; |S^0| = 2 points on the circle). A table sampler's draws are compared
    /// with it ([`crate::QuantileTable::log_sampler_density`]).
    pub fn log_theta_density(self, dim: usize, kappa: f64, log_normaliser: f64, theta: f64) -> f64 {
        let ring = if dim <= 2 {
            std::f64::consts::LN_2
        } else {
            // ln |S^(d-2)| = -ln C_(d-1)(0); dim - 1 >= 2 is in range.
            -crate::stats::log_normaliser_uniform(dim - 1).unwrap_or(f64::NAN)
                + (dim - 2) as f64 * theta.sin().ln()
        };
        log_normaliser + self.log_kernel(kappa, theta.cos()) + ring
    }

    /// E\[t\] = E\[<mu, z>\] at kappa: A_d(kappa) for the vMF, kappa / (d - 1 + kappa) for
    /// the Power Spherical.
    pub fn mean_w(self, dim: usize, kappa: f64) -> Result<f64> {
        match self {
            Family::Vmf => crate::stats::mean_resultant_length(dim, kappa),
            Family::PowerSpherical => {
                crate::error::check_params(dim, kappa)?;
                Ok(kappa / (dim as f64 - 1.0 + kappa))
            }
        }
    }

    /// dKL/dkappa at kappa.
    pub fn kl_derivative(self, dim: usize, kappa: f64) -> Result<f64> {
        match self {
            Family::Vmf => crate::kappa_grad::kl_derivative(dim, kappa),
            Family::PowerSpherical => {
                crate::power_spherical::power_spherical_stats(dim, kappa).map(|s| s.dkl_dkappa)
            }
        }
    }

    /// The kappa whose KL equals `target_kl` nats (bisection on ln kappa: the KL is 0
    /// at kappa = 0 and increasing); an error names a budget out of reach.
    pub fn kappa_for_kl(self, dim: usize, target_kl: f64) -> Result<f64> {
        crate::stats::solve_kappa_for_kl(dim, target_kl, |k| self.kl(dim, k))
    }

    /// The statistics at (dim, kappa), in f64 (see [`FamilyStats`]); an error names a
    /// parameter out of range.
    pub fn stats(self, dim: usize, kappa: f64) -> Result<FamilyStats> {
        match self {
            Family::Vmf => {
                let s = crate::stats::VmfStats::new(dim, kappa)?;
                Ok(FamilyStats {
                    kl: s.kl,
                    mean_w: s.mean_w,
                    log_normaliser: s.log_normaliser,
                    dkl_dkappa: crate::kappa_grad::kl_derivative(dim, kappa)?,
                    dmean_w_dkappa: crate::kappa_grad::mean_w_derivative(dim, kappa)?,
                })
            }
            Family::PowerSpherical => {
                let s = crate::power_spherical::power_spherical_stats(dim, kappa)?;
                Ok(FamilyStats {
                    kl: s.kl,
                    mean_w: s.mean_t,
                    log_normaliser: s.log_normaliser,
                    dkl_dkappa: s.dkl_dkappa,
                    dmean_w_dkappa: s.dmean_t_dkappa,
                })
            }
        }
    }
}
