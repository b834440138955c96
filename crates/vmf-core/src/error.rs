//! Typed errors and the supported parameter range.

use thiserror::Error;

/// Smallest supported ambient dimension d (the circle S^1).
pub const DIM_MIN: usize = 2;
/// Largest supported ambient dimension d.
pub const DIM_MAX: usize = 4096;
/// Largest supported concentration kappa.
pub const KAPPA_MAX: f64 = 1e5;

/// Everything that can go wrong in vmf-core: each message names the value and the
/// allowed range, so a user can fix the input without reading the code.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum VmfError {
    /// The dimension is outside `DIM_MIN..=DIM_MAX`.
    #[error("dimension d = {0} is outside the supported range {DIM_MIN} <= d <= {DIM_MAX}")]
    Dim(usize),
    /// kappa is NaN or infinite.
    #[error("kappa = {0} is not a finite number; kappa must satisfy 0 <= kappa <= {KAPPA_MAX}")]
    KappaNotFinite(f64),
    /// kappa is negative.
    #[error("kappa = {0} is negative; kappa must satisfy 0 <= kappa <= {KAPPA_MAX}")]
    KappaNegative(f64),
    /// kappa is above the supported maximum.
    #[error(
        "kappa = {0} exceeds the supported maximum; kappa must satisfy 0 <= kappa <= {KAPPA_MAX}"
    )]
    KappaTooLarge(f64),
    /// The quantile table needs at least two entries (w at probability 0 and 1).
    #[error("table size M = {0} is too small; the quantile table needs M >= 2 entries")]
    TableSize(usize),
    /// The KL budget cannot be met by any kappa in range.
    #[error(
        "KL target {target} nats is outside what d = {dim} allows: 0 <= KL <= {max} nats \
         (the KL at kappa = {KAPPA_MAX})"
    )]
    KlTarget {
        /// Requested KL in nats.
        target: f64,
        /// Dimension.
        dim: usize,
        /// KL at the largest supported kappa.
        max: f64,
    },
    /// A kappa range that is empty or reaches 0 (tables over ln kappa need
    /// 0 < min < max).
    #[error(
        "kappa range [{min}, {max}] is not usable: a learned kappa needs 0 < min < max <= \
         {KAPPA_MAX}"
    )]
    KappaRange {
        /// Lower end.
        min: f64,
        /// Upper end.
        max: f64,
    },
    /// A mean direction or point of the wrong length.
    #[error("vector has {got} entries but the dimension is d = {dim}")]
    Length {
        /// Entries given.
        got: usize,
        /// Expected entries.
        dim: usize,
    },
    /// A mean direction that cannot be normalised (zero, NaN or infinite entries).
    #[error("mean direction mu cannot be normalised: {0}")]
    BadDirection(String),
}

/// Result alias of vmf-core.
pub type Result<T> = std::result::Result<T, VmfError>;

/// Checks `DIM_MIN <= d <= DIM_MAX`.
pub fn check_dim(d: usize) -> Result<()> {
    if (DIM_MIN..=DIM_MAX).contains(&d) {
        Ok(())
    } else {
        Err(VmfError::Dim(d))
    }
}

/// Checks `0 <= kappa <= KAPPA_MAX` and that kappa is finite.
pub fn check_kappa(kappa: f64) -> Result<()> {
    if !kappa.is_finite() {
        Err(VmfError::KappaNotFinite(kappa))
    } else if kappa < 0.0 {
        Err(VmfError::KappaNegative(kappa))
    } else if kappa > KAPPA_MAX {
        Err(VmfError::KappaTooLarge(kappa))
    } else {
        Ok(())
    }
}

/// Checks both parameters.
pub fn check_params(d: usize, kappa: f64) -> Result<()> {
    check_dim(d)?;
    check_kappa(kappa)
}
