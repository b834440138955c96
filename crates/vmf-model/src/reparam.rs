//! The reparameterisation layer of a hyperspherical family (the vMF, or the Power
//! Spherical: vmf-core's [`Family`]): z = w mu + sqrt(1 - w^2) nu with w drawn from the
//! family's quantile table held on the device (vmf-core's [`DeviceSampler`]), or, for a
//! learned kappa, from its tables over a kappa range (vmf-core's [`DeviceKappaTable`]).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use burn::tensor::{Device, Tensor};
use vmf_core::kappa_table::{DEFAULT_LOG_KAPPA_STEP, DEFAULT_PROBABILITIES};
use vmf_core::{
    DEFAULT_TABLE_SIZE, DeviceKappaTable, DeviceKlTable, DeviceSampler, Family, KappaQuantileTable,
    KlTable, Result,
};

use crate::blocks::Blocks;
use crate::kappa::{KappaMode, KappaRange};

/// The randomness of one posterior draw per row: drawn by the caller (e.g. on the
/// host from a counter-based seed, which makes runs identical across backends).
#[derive(Debug, Clone)]
pub struct LatentNoise {
    /// Uniforms in [0, 1) that pick the vMF angle: `[batch]`, or `[batch * factors]` for
    /// a product of spheres (unused by the Gaussian).
    pub u: Tensor<1>,
    /// Standard normals: the direction orthogonal to mu (vMF) or eps (Gaussian):
    /// `[batch, d]`.
    pub e: Tensor<2>,
}

impl LatentNoise {
    /// The rows `rows` of the noise (a shard of the batch), with their blocks'
    /// uniforms for a product of spheres.
    pub fn rows(&self, rows: std::ops::Range<usize>) -> Self {
        let blocks = self.u.dims()[0] / self.e.dims()[0].max(1);
        Self {
            u: self.u.clone().slice(rows.start * blocks..rows.end * blocks),
            e: self.e.clone().slice(rows),
        }
    }
}

/// The vMF reparameterisation of a model: for a scheduled kappa it holds the table
/// constant for the current kappa and rebuilds it only when kappa changes, so a
/// constant schedule uploads one table for the whole run; for a learned kappa it holds
/// the tables over the kappa range ([`VmfReparam::learned`]). Not a
/// [`burn::module::Module`]: it has no trainable parameters (a learned kappa's are the
/// model's [`crate::KappaHead`]), and its state is (dim, kappa) or (dim, range), which
/// the config records. A product of spheres whose blocks differ in size holds one
/// layer per size ([`VmfReparam::for_blocks`], [`VmfReparam::at_dim`]).
#[derive(Debug, Clone)]
pub struct VmfReparam {
    family: Family,
    dim: usize,
    sampling: Sampling,
    /// The layers of a product's other block sizes (empty for one size).
    others: Vec<VmfReparam>,
}

/// The host constants of a scheduled layer at its kappa.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerStats {
    /// The family.
    pub family: Family,
    /// Dimension d (the sphere is S^(d-1)).
    pub dim: usize,
    /// The concentration.
    pub kappa: f64,
    /// KL(q || uniform), a constant of (d, kappa).
    pub kl: f64,
    /// ln C: the log-density is `log_normaliser + kappa s(<mu, z>)` (s(t) = t for the
    /// vMF, ln(1 + t) for the Power Spherical).
    pub log_normaliser: f64,
}

impl LayerStats {
    fn new(family: Family, dim: usize, kappa: f64) -> Result<Self> {
        Ok(Self {
            family,
            dim,
            kappa,
            kl: family.kl(dim, kappa)?,
            log_normaliser: family.log_normaliser(dim, kappa)?,
        })
    }
}

/// A learned kappa's host tables: quantiles and KL.
type HostTables = (KappaQuantileTable, KlTable);

// One per model, built once: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Sampling {
    /// One kappa for every row, set from outside.
    Fixed {
        sampler: DeviceSampler,
        stats: LayerStats,
    },
    /// Any kappa of the range on any row, differentiable in ln kappa.
    Learned {
        quantiles: DeviceKappaTable,
        kl: DeviceKlTable,
        range: KappaRange,
    },
}

/// The host tables of a learned kappa, built once per (d, min, max) and process:
/// training, each epoch's evaluation and the tools all upload the same ones, and a
/// build takes ~0.3-3 s (vmf-core's `KappaQuantileTable`, `KlTable`).
fn host_tables(family: Family, dim: usize, range: KappaRange) -> Result<Arc<HostTables>> {
    type Key = (Family, usize, u64, u64);
    static TABLES: LazyLock<Mutex<HashMap<Key, Arc<HostTables>>>> = LazyLock::new(Default::default);
    let key = (family, dim, range.min.to_bits(), range.max.to_bits());
    let mut map = TABLES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(t) = map.get(&key) {
        return Ok(t.clone());
    }
    let tables = Arc::new((
        KappaQuantileTable::of(
            family,
            dim,
            range.min,
            range.max,
            DEFAULT_LOG_KAPPA_STEP,
            DEFAULT_PROBABILITIES,
        )?,
        KlTable::of(family, dim, range.min, range.max)?,
    ));
    map.insert(key, tables.clone());
    Ok(tables)
}

impl VmfReparam {
    /// A vMF layer for latent dimension `dim` (the sphere is S^(dim-1)) at `kappa`.
    pub fn new(dim: usize, kappa: f64, device: &Device) -> Result<Self> {
        Self::of(Family::Vmf, dim, kappa, device)
    }

    /// A layer of `family` for latent dimension `dim` at `kappa`.
    pub fn of(family: Family, dim: usize, kappa: f64, device: &Device) -> Result<Self> {
        Ok(Self {
            family,
            dim,
            sampling: Sampling::Fixed {
                sampler: DeviceSampler::of(family, dim, kappa, DEFAULT_TABLE_SIZE, device)?,
                stats: LayerStats::new(family, dim, kappa)?,
            },
            others: Vec::new(),
        })
    }

    /// A vMF layer for a learned kappa in `range`: draws and KL at a different kappa
    /// on every row, with gradients in ln kappa ([`VmfReparam::forward_at`]).
    pub fn learned(dim: usize, range: KappaRange, device: &Device) -> Result<Self> {
        Self::learned_of(Family::Vmf, dim, range, device)
    }

    /// A layer of `family` for a learned kappa in `range`.
    pub fn learned_of(
        family: Family,
        dim: usize,
        range: KappaRange,
        device: &Device,
    ) -> Result<Self> {
        let tables = host_tables(family, dim, range)?;
        Ok(Self {
            family,
            dim,
            sampling: Sampling::Learned {
                quantiles: DeviceKappaTable::new(&tables.0, device),
                kl: DeviceKlTable::new(&tables.1, device),
                range,
            },
            others: Vec::new(),
        })
    }

    /// The vMF layer a model whose kappa is set by `mode` needs: at `kappa` for a
    /// scheduled kappa, over the range for a learned one.
    pub fn for_mode(dim: usize, mode: KappaMode, kappa: f64, device: &Device) -> Result<Self> {
        Self::for_family(Family::Vmf, dim, mode, kappa, device)
    }

    /// [`VmfReparam::for_mode`] for `family`.
    pub fn for_family(
        family: Family,
        dim: usize,
        mode: KappaMode,
        kappa: f64,
        device: &Device,
    ) -> Result<Self> {
        match mode.range() {
            None => Self::of(family, dim, kappa, device),
            Some(range) => Self::learned_of(family, dim, range, device),
        }
    }

    /// [`VmfReparam::for_family`] for a latent on the spheres of `blocks`: the layer of
    /// the first block's size, holding one for each other size ([`VmfReparam::at_dim`]).
    pub fn for_blocks(
        family: Family,
        blocks: &Blocks,
        mode: KappaMode,
        kappa: f64,
        device: &Device,
    ) -> Result<Self> {
        let sizes = blocks.sizes();
        let mut layer = Self::for_family(family, sizes[0], mode, kappa, device)?;
        layer.others = sizes[1..]
            .iter()
            .map(|&m| Self::for_family(family, m, mode, kappa, device))
            .collect::<Result<_>>()?;
        Ok(layer)
    }

    /// The layer that draws blocks of ambient dimension `dim`: this one, or one of a
    /// product's other sizes.
    ///
    /// # Panics
    /// If the layer holds no table of that size (a programming error: it was built
    /// for other blocks).
    pub fn at_dim(&self, dim: usize) -> &Self {
        if dim == self.dim {
            return self;
        }
        self.others
            .iter()
            .find(|l| l.dim == dim)
            .unwrap_or_else(|| panic!("no sampling layer for blocks of dimension {dim}"))
    }

    /// The family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Moves a scheduled layer to a new kappa (no work if unchanged). Returns whether
    /// the table was rebuilt; a learned layer is left as it is (false).
    pub fn set_kappa(&mut self, kappa: f64) -> Result<bool> {
        for other in &mut self.others {
            other.set_kappa(kappa)?;
        }
        let Sampling::Fixed { sampler, stats } = &mut self.sampling else {
            return Ok(false);
        };
        if kappa == stats.kappa {
            return Ok(false);
        }
        let new = LayerStats::new(self.family, self.dim, kappa)?;
        sampler.set_kappa(kappa)?;
        *stats = new;
        Ok(true)
    }

    /// Latent dimension d (for a product, the first block's size).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// KL and log C at the current kappa (host constants); `None` when kappa is
    /// learned.
    pub fn stats(&self) -> Option<LayerStats> {
        match &self.sampling {
            Sampling::Fixed { stats, .. } => Some(*stats),
            Sampling::Learned { .. } => None,
        }
    }

    /// The range of a learned kappa (`None` when scheduled).
    pub fn range(&self) -> Option<KappaRange> {
        match &self.sampling {
            Sampling::Fixed { .. } => None,
            Sampling::Learned { range, .. } => Some(*range),
        }
    }

    /// Tables built so far (scheduled kappa; 1 for a learned one).
    pub fn rebuilds(&self) -> usize {
        match &self.sampling {
            Sampling::Fixed { sampler, .. } => sampler.rebuilds(),
            Sampling::Learned { .. } => 1,
        }
    }

    /// ln q(z | x) - ln r(z | x) at each draw made from the uniforms `u` (host copies of
    /// [`LatentNoise::u`], one per row): the family's exact density over the density of
    /// the table sampler that drew it (vmf-core's `log_sampler_density`), with kappa
    /// per row from `log_kappa` for a learned kappa (clamped into the range as the
    /// sampler clamps it; `None` for a scheduled one). The two agree in the bulk of the
    /// table, but its end cells spread their probability evenly out to where q is
    /// e^-60 of its peak, so far in them r is many orders of magnitude above or below
    /// q. An importance weight p(x, z) / q(z) over these draws is therefore biased
    /// (upward, measured: 0.18 nats of log p(x) at d = 21, kappa up to 800); adding
    /// this to its log makes it p(x, z) / r(z), the unbiased weight of the draws made.
    ///
    /// # Errors
    /// If a kappa is out of range.
    ///
    /// # Panics
    /// If `log_kappa` is given for a scheduled layer, missing for a learned one, or of
    /// another length than `u` (a programming error).
    pub fn log_exact_over_sampler(&self, u: &[f32], log_kappa: Option<&[f32]>) -> Result<Vec<f64>> {
        let (family, dim) = (self.family, self.dim);
        match (&self.sampling, log_kappa) {
            (Sampling::Fixed { sampler, stats }, None) => {
                let table = sampler.host();
                Ok(u.iter()
                    .map(|&ui| {
                        let (theta, log_r) = table.log_sampler_density(f64::from(ui));
                        family.log_theta_density(dim, stats.kappa, stats.log_normaliser, theta)
                            - log_r
                    })
                    .collect())
            }
            (Sampling::Learned { range, .. }, Some(s)) if s.len() == u.len() => {
                let tables = host_tables(family, dim, *range)?;
                let mut last: Option<(f32, f64, f64)> = None;
                let mut out = Vec::with_capacity(u.len());
                for (&ui, &si) in u.iter().zip(s) {
                    // Rows come in runs of one example's draws: one ln C per run.
                    let (kappa, log_c) = match last {
                        Some((prev, k, c)) if prev.to_bits() == si.to_bits() => (k, c),
                        _ => {
                            let k = range.kappa_at(f64::from(si));
                            (k, family.log_normaliser(dim, k)?)
                        }
                    };
                    last = Some((si, kappa, log_c));
                    let (theta, log_r) = tables.0.log_sampler_density(f64::from(ui), kappa);
                    out.push(family.log_theta_density(dim, kappa, log_c, theta) - log_r);
                }
                Ok(out)
            }
            _ => self.misuse("log_exact_over_sampler", "uniforms", u.len(), log_kappa),
        }
    }

    /// [`VmfReparam::log_exact_over_sampler`] for draws of a latent on the spheres of
    /// `blocks`, summed per row over its blocks: `u` and `log_kappa` hold one value per
    /// row and block (row i's G blocks at i G ..), each block weighed by the layer of
    /// its size. One block: as [`VmfReparam::log_exact_over_sampler`].
    ///
    /// # Errors
    /// If a kappa is out of range.
    ///
    /// # Panics
    /// As [`VmfReparam::log_exact_over_sampler`], or if the layer lacks a block size.
    pub fn log_exact_over_sampler_of(
        &self,
        blocks: &Blocks,
        u: &[f32],
        log_kappa: Option<&[f32]>,
    ) -> Result<Vec<f64>> {
        let g = blocks.count();
        if g == 1 {
            return self.log_exact_over_sampler(u, log_kappa);
        }
        let mut out = vec![0.0; u.len() / g];
        for (j, &m) in blocks.dims().iter().enumerate() {
            // Block j of every row: a row's repeated draws stay side by side, so the
            // per-run cache of ln C keeps working.
            let column = |v: &[f32]| v.iter().skip(j).step_by(g).copied().collect::<Vec<_>>();
            let s = log_kappa.map(column);
            let terms = self
                .at_dim(m)
                .log_exact_over_sampler(&column(u), s.as_deref())?;
            for (o, t) in out.iter_mut().zip(terms) {
                *o += t;
            }
        }
        Ok(out)
    }

    /// ln r(z | x) - ln p(z) at points z that this layer need not have drawn, given by
    /// their angles `theta` = arccos <mu, z> to the row's mean direction: the density of
    /// the table sampler (the one it draws from, see
    /// [`VmfReparam::log_exact_over_sampler`]) over the uniform prior's, both as
    /// densities of theta (the directions at one angle carry the same area under
    /// both). -inf where the table never draws. A mixture proposal of r and the prior
    /// needs it at the prior's draws. Kappa per row from `log_kappa` for a learned
    /// kappa (clamped into the range), `None` for a scheduled one.
    ///
    /// # Errors
    /// If a kappa is out of range.
    ///
    /// # Panics
    /// As [`VmfReparam::log_exact_over_sampler`].
    pub fn log_sampler_over_prior_at(
        &self,
        theta: &[f64],
        log_kappa: Option<&[f32]>,
    ) -> Result<Vec<f64>> {
        let dim = self.dim;
        let log_uniform = vmf_core::stats::log_normaliser_uniform(dim)?;
        let prior = |t: f64| Family::Vmf.log_theta_density(dim, 0.0, log_uniform, t);
        match (&self.sampling, log_kappa) {
            (Sampling::Fixed { sampler, .. }, None) => {
                let table = sampler.host();
                Ok(theta
                    .iter()
                    .map(|&t| table.log_sampler_density_at(t) - prior(t))
                    .collect())
            }
            (Sampling::Learned { range, .. }, Some(s)) if s.len() == theta.len() => {
                let tables = host_tables(self.family, dim, *range)?;
                Ok(theta
                    .iter()
                    .zip(s)
                    .map(|(&t, &si)| {
                        let kappa = range.kappa_at(f64::from(si));
                        tables.0.log_sampler_density_at(t, kappa) - prior(t)
                    })
                    .collect())
            }
            _ => self.misuse(
                "log_sampler_over_prior_at",
                "angles",
                theta.len(),
                log_kappa,
            ),
        }
    }

    /// The panic of a host-side density call whose ln kappa values do not fit the
    /// layer (given for a scheduled one, missing for a learned one, or of another
    /// length than the `n` rows): a programming error.
    fn misuse(&self, call: &str, rows: &str, n: usize, log_kappa: Option<&[f32]>) -> ! {
        panic!(
            "{call}: {n} {rows} with {} ln kappa values for a {} layer",
            log_kappa.map_or("no".to_string(), |s| s.len().to_string()),
            if self.range().is_some() {
                "learned-kappa"
            } else {
                "scheduled"
            }
        )
    }

    /// z ~ q(mu, kappa) of the family at the scheduled kappa, with the noise given (see
    /// [`LatentNoise`]).
    ///
    /// # Shapes
    /// - `mu`: `[batch, d]`, unit rows
    /// - returns `[batch, d]`, unit rows
    ///
    /// # Panics
    /// If the layer is a learned one (use [`VmfReparam::forward_at`]).
    pub fn forward(&self, mu: Tensor<2>, noise: LatentNoise) -> Tensor<2> {
        match &self.sampling {
            Sampling::Fixed { sampler, .. } => sampler.sample_with(mu, noise.u, noise.e),
            Sampling::Learned { .. } => panic!("a learned-kappa layer draws with forward_at"),
        }
    }

    /// z ~ q(mu_i, exp(log_kappa_i)) of the family row by row and each row's KL, for a learned
    /// kappa: gradients reach mu and `log_kappa` through both (ln kappa outside the
    /// range is clamped to it).
    ///
    /// # Shapes
    /// - `mu`: `[batch, d]` unit rows, `log_kappa`: `[batch]`
    /// - returns z `[batch, d]` and the KL `[batch]`
    ///
    /// # Panics
    /// If the layer is a scheduled one (use [`VmfReparam::forward`]).
    pub fn forward_at(
        &self,
        mu: Tensor<2>,
        log_kappa: Tensor<1>,
        noise: LatentNoise,
    ) -> (Tensor<2>, Tensor<1>) {
        match &self.sampling {
            Sampling::Learned { quantiles, kl, .. } => (
                quantiles.sample_with(mu, log_kappa.clone(), noise.u, noise.e),
                kl.kl(log_kappa),
            ),
            Sampling::Fixed { .. } => panic!("a scheduled-kappa layer draws with forward"),
        }
    }
}
