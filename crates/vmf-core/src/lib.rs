//! # vmf-core
//!
//! The von Mises-Fisher distribution vMF(mu, kappa) on the unit sphere S^(d-1), for
//! 2 <= d <= 4096 and 0 <= kappa <= 1e5:
//!
//! - [`stats`]: log C_d(kappa), A_d(kappa) = `E[<mu, z>]`, KL(vMF || uniform), the
//!   log-density, and the kappa for a KL budget (Bessel route, f64);
//! - [`marginal`]: the law of theta = arccos(<mu, z>): exact CDF by adaptive
//!   quadrature, and the independent quadrature route to the same statistics;
//! - [`kappa_grad`]: derivatives in kappa for a learned kappa: A_d', dKL/dkappa and
//!   the quantile's dw/dkappa (the exact reparameterisation gradient);
//! - [`kappa_table`]: the quantiles and the KL over a range of kappa, smooth in
//!   ln kappa with exact slopes (for a learned, per-example kappa);
//! - [`table`]: the inverse-CDF table of theta, built in f64 in well under a millisecond;
//! - [`host`]: host sampling with `rand`; [`device`]: sampling on a Burn device with
//!   the table held as a tensor constant;
//! - [`power_spherical`]: the Power Spherical distribution's normaliser, KL to the
//!   uniform, E\[t\] and their kappa-derivatives (no Bessel functions: [`special`]'s
//!   digamma and trigamma).
//!
//! Outside the supported range every function returns a [`VmfError`] naming the value.
//!
//! ```
//! use rand::SeedableRng;
//! // The KL of vMF(mu, 20) on S^7 against the uniform prior, and its kappa-derivative.
//! let kl = vmf_core::kl_to_uniform(8, 20.0)?;
//! assert!((kl - 4.485985873856137).abs() < 1e-12);
//! assert!(vmf_core::kl_derivative(8, 20.0)? > 0.0);
//! // A point of vMF(mu, 50) on S^2, drawn by the inverse-CDF table.
//! let sampler = vmf_core::HostSampler::new(vmf_core::QuantileTable::new(3, 50.0)?);
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let z = sampler.sample_z(&mut rng, &[0.0, 0.0, 1.0])?;
//! assert!((z.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-12);
//! # Ok::<(), vmf_core::VmfError>(())
//! ```

pub mod bessel;
pub mod device;
pub mod error;
pub mod family;
pub mod host;
pub mod kappa_grad;
pub mod kappa_table;
pub mod marginal;
pub mod power_spherical;
mod quad;
pub mod special;
pub mod stats;
pub mod table;

pub use device::{DeviceKappaTable, DeviceKlTable, DeviceSampler, DeviceTable};
pub use error::{DIM_MAX, DIM_MIN, KAPPA_MAX, Result, VmfError};
pub use family::{Family, FamilyStats};
pub use host::{HostSampler, normalise, uniform_sphere};
pub use kappa_grad::{QuantileGradient, kl_derivative, mean_w_derivative};
pub use kappa_table::{KappaQuantileTable, KlTable, LogKappaGrid};
pub use marginal::{QuadratureStats, ThetaMarginal, quadrature_stats};
pub use power_spherical::{
    PowerSphericalStats, power_spherical_log_normaliser, power_spherical_stats,
};
pub use stats::{
    VmfStats, kappa_for_kl, kl_to_uniform, log_density, log_normaliser, log_normaliser_uniform,
    mean_resultant_length,
};
pub use table::{DEFAULT_TABLE_SIZE, QuantileTable};
