//! The latent families, shared by every data kind: the vMF posterior on the sphere
//! with a uniform prior (the default), the Power Spherical on the sphere with the same
//! prior, or the Gaussian baseline with a standard normal prior. An encoder of any data
//! kind ends in a head of [`ModelKind::head_width`] features, which
//! [`ModelKind::posterior`] turns into q(z | x); training, evaluation and pictures then
//! use only [`Posterior`] and [`PosteriorDraw`], so they never need to know which
//! posterior and prior are in play.
//!
//! On the sphere the latent may be a product of G spheres ([`Blocks`]; Davidson,
//! Tomczak & Gavves 2019, "Increasing expressivity of a hyperspherical VAE"): z in R^d
//! is G blocks, block j of m_j columns on S^(m_j - 1) with its own direction and kappa,
//! the prior the product of uniforms; the KL and log p(z) - log q(z | x) are sums over
//! the blocks. Each block is drawn by the layer of its size as a row of its own.

use burn::tensor::{Tensor, TensorData};
use rand::{Rng, RngExt};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use vmf_core::Family;

use crate::blocks::Blocks;
use crate::gaussian::{gaussian_kl, gaussian_log_ratio, gaussian_sample};
use crate::kappa::{KappaHead, KappaRange};
use crate::reparam::{LatentNoise, VmfReparam};
use crate::vae::Rows;

/// Rows with a norm below this are not rescaled further (keeps mu finite for a zero row).
const NORM_EPS: f64 = 1e-12;

/// Which posterior and prior.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// q = vMF(mu(x), kappa) on S^(d-1), p = uniform on the sphere.
    #[default]
    Vmf,
    /// q = Power Spherical(mu(x), kappa) on S^(d-1) (De Cao & Aziz 2020), p = uniform
    /// on the sphere: the vMF's head, kappa settings and sampler, another law of
    /// <mu, z>.
    PowerSpherical,
    /// q = N(mean(x), diag sigma^2(x)) on R^d, p = N(0, I).
    Gaussian,
    /// No latent: the decoder alone, a language model (text only). z is a point at 0
    /// that the decoder does not read; the KL is 0.
    Lm,
}

impl ModelKind {
    /// The hyperspherical family of q (`None` for the Gaussian and the language model).
    pub fn family(self) -> Option<Family> {
        match self {
            Self::Vmf => Some(Family::Vmf),
            Self::PowerSpherical => Some(Family::PowerSpherical),
            Self::Gaussian | Self::Lm => None,
        }
    }

    /// Whether latents live on the unit sphere (paths between them are great circles).
    pub fn on_sphere(self) -> bool {
        self.family().is_some()
    }

    /// Features of the encoder head that parameterise q(z | x) in dimension `d`: mu
    /// before normalisation (d) or mean and log-variance (2 d).
    pub fn head_width(self, d: usize) -> usize {
        match self {
            Self::Vmf | Self::PowerSpherical => d,
            Self::Gaussian => 2 * d,
            Self::Lm => 0,
        }
    }

    /// q(z | x) from the encoder head's output: mu = h / |h| for vMF (with a
    /// per-example kappa, the head's last column is `kappa`'s); for the Gaussian the
    /// first d columns are the mean, the last d the log-variance; for the language
    /// model, which has no head, `h` is the point itself (zeros).
    ///
    /// # Shapes
    /// - `h`: `[batch, head_width(d) + kappa.mode().head_columns()]`
    pub fn posterior(self, h: Tensor<2>, kappa: &KappaHead) -> Posterior {
        // On the sphere the head is mu's d columns and kappa's (the blocks are ignored
        // off it).
        let d = h.dims()[1].saturating_sub(kappa.mode().head_columns());
        self.posterior_of_product(h, kappa, &Blocks::one(d))
    }

    /// [`ModelKind::posterior`] for a latent on a product of spheres (one block: one
    /// sphere): mu is normalised block by block, and a per-example kappa takes one head
    /// column per block. `blocks` sums to d; it is ignored off the sphere.
    ///
    /// # Shapes
    /// - `h`: `[batch, head_width(d) + blocks.count() * kappa.mode().head_columns()]`
    pub fn posterior_of_product(
        self,
        h: Tensor<2>,
        kappa: &KappaHead,
        blocks: &Blocks,
    ) -> Posterior {
        match self {
            Self::Vmf | Self::PowerSpherical => {
                let [batch, width] = h.dims();
                let factors = blocks.count();
                let (h, column) = match kappa.mode().head_columns() * factors {
                    0 => (h, None),
                    extra => {
                        let d = width - extra;
                        let column = h.clone().slice([0..batch, d..width]);
                        (h.slice([0..batch, 0..d]), Some(column))
                    }
                };
                // Each run of equal blocks is normalised as rows of its own.
                let mu = match blocks.groups().as_slice() {
                    [g] if g.count == 1 => l2_normalise(h),
                    groups => Tensor::cat(
                        groups
                            .iter()
                            .map(|g| {
                                let cols = g.columns.clone();
                                let part = h.clone().slice([0..batch, cols.clone()]);
                                l2_normalise(part.reshape([batch * g.count, g.dim]))
                                    .reshape([batch, cols.len()])
                            })
                            .collect(),
                        1,
                    ),
                };
                Posterior::Sphere {
                    mu,
                    log_kappa: kappa.log_kappa(column, batch * factors),
                    blocks: blocks.clone(),
                }
            }
            Self::Gaussian => {
                let [batch, two_d] = h.dims();
                let d = two_d / 2;
                Posterior::Gaussian {
                    mean: h.clone().slice([0..batch, 0..d]),
                    logvar: h.slice([0..batch, d..two_d]),
                }
            }
            Self::Lm => Posterior::Point { z: h },
        }
    }

    /// log q(z | x) of one example on the host, in f64, up to a constant that is the
    /// same for every example of a model (what the mutual information's estimator
    /// needs: it cancels there). `location` is mu or the mean; on the sphere `kappa`
    /// and `log_normaliser` are the example's (ln C(kappa) of the family), for the
    /// Gaussian `logvar` its log-variances; the language model's q is one point, the
    /// same for every x.
    pub fn host_log_q(
        self,
        location: &[f64],
        kappa: f64,
        log_normaliser: f64,
        logvar: &[f64],
        z: &[f64],
    ) -> f64 {
        let dot = || location.iter().zip(z).map(|(m, v)| m * v).sum::<f64>();
        match (self.family(), self) {
            // ln C(kappa) + kappa s(<mu, z>)
            (Some(family), _) => log_normaliser + family.log_kernel(kappa, dot()),
            // log N(z; m, diag e^lv) + (d/2) log 2 pi
            (None, Self::Gaussian) => {
                -0.5 * (0..location.len())
                    .map(|u| logvar[u] + (z[u] - location[u]).powi(2) * (-logvar[u]).exp())
                    .sum::<f64>()
            }
            (None, _) => 0.0,
        }
    }

    /// E_q\[z\] of an example is this factor times its location: E\[<mu, z>\] (`mean_w`,
    /// the family's at the example's kappa) on the sphere, 1 for the Gaussian's mean
    /// and the language model's point.
    pub fn mean_factor(self, mean_w: f64) -> f64 {
        if self.on_sphere() { mean_w } else { 1.0 }
    }

    /// Whether q(z | x) is a distribution (false for the language model, whose z is one
    /// fixed point: an importance-sampled likelihood needs one draw).
    pub fn has_latent(self) -> bool {
        self != Self::Lm
    }

    /// One draw from the prior p(z), in f64 on the host.
    pub fn prior_sample<R: Rng + ?Sized>(self, rng: &mut R, d: usize) -> Vec<f64> {
        self.prior_sample_of_product(rng, &Blocks::one(d))
    }

    /// One draw from the prior of a latent on a product of spheres (each block
    /// uniform on its own sphere; one block draws as [`ModelKind::prior_sample`]).
    pub fn prior_sample_of_product<R: Rng + ?Sized>(
        self,
        rng: &mut R,
        blocks: &Blocks,
    ) -> Vec<f64> {
        let d = blocks.total();
        match self {
            Self::Vmf | Self::PowerSpherical => blocks
                .dims()
                .iter()
                .flat_map(|&m| vmf_core::uniform_sphere(rng, m))
                .collect(),
            Self::Gaussian => (0..d).map(|_| rng.sample(StandardNormal)).collect(),
            Self::Lm => vec![0.0; d],
        }
    }
}

/// q(z | x) for a batch: its parameters per row.
// One short-lived value per batch: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Posterior {
    /// A hyperspherical q(mu, kappa) (the family is the sampling layer's): mean
    /// directions `[batch, d]` (unit rows); kappa is the layer's when scheduled, else
    /// learned: ln kappa per row.
    Sphere {
        /// Mean directions (for a product, each block a unit vector).
        mu: Tensor<2>,
        /// ln kappa per row and block, `[batch * G]` for G blocks (row i's blocks at
        /// i G ..), for a learned kappa.
        log_kappa: Option<Tensor<1>>,
        /// The spheres the latent is a product of (one block: one sphere S^(d-1)).
        blocks: Blocks,
    },
    /// N(mean, diag exp(logvar)): both `[batch, d]`.
    Gaussian {
        /// Means.
        mean: Tensor<2>,
        /// Log-variances.
        logvar: Tensor<2>,
    },
    /// A point mass (the language model's z, which the decoder does not read).
    Point {
        /// The point: `[batch, d]`.
        z: Tensor<2>,
    },
}

/// One draw z ~ q(z | x) per row, with what losses and importance weights need.
#[derive(Debug, Clone)]
pub struct PosteriorDraw {
    /// The posterior's location, mu (unit rows) or the mean: `[batch, d]`.
    pub location: Tensor<2>,
    /// The draw: `[batch, d]`.
    pub z: Tensor<2>,
    /// KL(q(z | x) || p(z)) per row (a constant on the sphere at fixed kappa): `[batch]`.
    pub kl: Tensor<1>,
    /// ln kappa per row and block for a learned kappa: `[batch * G]` for G blocks
    /// (`[batch]` on one sphere).
    pub log_kappa: Option<Tensor<1>>,
    /// What [`PosteriorDraw::log_ratio`] needs beyond location and z.
    ratio: RatioParts,
    /// The equal spheres of a product latent drawn in one go (1 otherwise).
    factors: usize,
}

/// Only the importance-sampled evaluation needs log p(z) - log q(z|x): it is
/// computed on demand, not on the training step.
// One per draw, short-lived: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum RatioParts {
    /// The family, kappa and the f64 constant of [`sphere_constant`].
    Sphere {
        family: Family,
        kappa: f64,
        constant: f64,
    },
    /// ln kappa per row (detached) of a learned kappa, clamped into `range` as the
    /// sampler clamps it; the constants are made on the host per row.
    SpherePerRow {
        family: Family,
        log_kappa: Tensor<1>,
        dim: usize,
        range: KappaRange,
    },
    /// The standard normals of the draw and the log-variances.
    Gaussian { eps: Tensor<2>, logvar: Tensor<2> },
    /// A product whose blocks differ in size: the draw of each run of equal blocks.
    Product(Vec<PosteriorDraw>),
    /// q = p: the ratio is 0.
    Point,
}

impl PosteriorDraw {
    /// log p(z) - log q(z | x) per row: `[batch]` (on a product of spheres, the sum
    /// over its blocks).
    pub fn log_ratio(&self) -> Tensor<1> {
        let per_block = match &self.ratio {
            RatioParts::Sphere {
                family,
                kappa,
                constant,
            } => sphere_ratio(*family, self.one_minus_w())
                .mul_scalar(*kappa)
                .add_scalar(*constant),
            RatioParts::SpherePerRow {
                family,
                log_kappa,
                dim,
                range,
            } => {
                let (kappa, constant) = per_row_constants(*family, log_kappa, *dim, *range);
                sphere_ratio(*family, self.one_minus_w())
                    .mul(kappa)
                    .add(constant)
            }
            RatioParts::Gaussian { eps, logvar } => {
                gaussian_log_ratio(self.z.clone(), eps.clone(), logvar.clone())
            }
            RatioParts::Point => self.kl.zeros_like(),
            RatioParts::Product(parts) => {
                return parts
                    .iter()
                    .map(PosteriorDraw::log_ratio)
                    .reduce(|a, b| a + b)
                    .expect("a product has blocks");
            }
        };
        sum_blocks(per_block, self.factors)
    }
}

impl PosteriorDraw {
    /// 1 - <mu, z> per row and block, `[batch * factors]`.
    fn one_minus_w(&self) -> Tensor<1> {
        let [batch, d] = self.location.dims();
        (self.location.clone() * self.z.clone())
            .reshape([batch * self.factors, d / self.factors])
            .sum_dim(1)
            .squeeze_dim::<1>(1)
            .neg()
            .add_scalar(1.0)
    }
}

/// log p(z) - log q(z | x) = log C_d(0) - log C(kappa) - kappa s(w) on the sphere,
/// written as kappa g(1 - w) + constant so that the large terms cancel in f64 on the
/// host, not in f32 on the device: the vMF's s(w) = w gives g(x) = x and the constant
/// log C_d(0) - log C(kappa) - kappa; the Power Spherical's s(w) = ln(1 + w) = ln 2 +
/// ln(1 - (1 - w)/2) gives g(x) = -ln(1 - x/2) and log C_d(0) - log C(kappa) - kappa
/// ln 2.
fn sphere_constant(family: Family, dim: usize, kappa: f64, log_normaliser: f64) -> f64 {
    let log_c0 = vmf_core::log_normaliser_uniform(dim).expect("d was checked by the layer");
    let shift = match family {
        Family::Vmf => kappa,
        Family::PowerSpherical => kappa * std::f64::consts::LN_2,
    };
    log_c0 - log_normaliser - shift
}

/// Per row, the sum of its `factors` consecutive entries: `[batch * factors]` ->
/// `[batch]` (the identity for one sphere).
fn sum_blocks(t: Tensor<1>, factors: usize) -> Tensor<1> {
    if factors == 1 {
        return t;
    }
    let [n] = t.dims();
    t.reshape([n / factors, factors])
        .sum_dim(1)
        .squeeze_dim::<1>(1)
}

/// g(1 - w) of [`sphere_constant`], on the device.
fn sphere_ratio(family: Family, one_minus_w: Tensor<1>) -> Tensor<1> {
    match family {
        Family::Vmf => one_minus_w,
        Family::PowerSpherical => one_minus_w.mul_scalar(-0.5).log1p().neg(),
    }
}

impl Posterior {
    /// The location: mu or the mean, `[batch, d]`.
    pub fn location(&self) -> Tensor<2> {
        match self {
            Self::Sphere { mu, .. } => mu.clone(),
            Self::Gaussian { mean, .. } => mean.clone(),
            Self::Point { z } => z.clone(),
        }
    }

    /// ln kappa per row where the model learns a kappa per example (`[batch]`), else
    /// `None` (a scheduled or global kappa, the Gaussian, no latent).
    pub fn log_kappa_per_row(&self) -> Option<Tensor<1>> {
        match self {
            Self::Sphere { log_kappa, .. } => log_kappa.clone(),
            _ => None,
        }
    }

    /// The log-variances per row and dimension of a Gaussian q (`[batch, d]`), else
    /// `None`.
    pub fn log_variance(&self) -> Option<Tensor<2>> {
        match self {
            Self::Gaussian { logvar, .. } => Some(logvar.clone()),
            _ => None,
        }
    }

    /// Each row repeated `k` times in place (row i becomes rows i k .. i k + k - 1),
    /// for k draws per example.
    pub fn repeat_rows(&self, k: usize) -> Self {
        match self {
            Self::Sphere {
                mu,
                log_kappa,
                blocks,
            } => Self::Sphere {
                mu: mu.repeat_rows(k),
                log_kappa: log_kappa.as_ref().map(|s| {
                    let [n] = s.dims();
                    let g = blocks.count();
                    s.clone()
                        .reshape([n / g, 1, g])
                        .repeat_dim(1, k)
                        .reshape([n * k])
                }),
                blocks: blocks.clone(),
            },
            Self::Gaussian { mean, logvar } => Self::Gaussian {
                mean: mean.repeat_rows(k),
                logvar: logvar.repeat_rows(k),
            },
            Self::Point { z } => Self::Point {
                z: z.repeat_rows(k),
            },
        }
    }

    /// One draw per row with `noise` (the Gaussian uses only its normals `e`; a
    /// product of G spheres one uniform per row and block, `u` of `[batch * G]`);
    /// `reparam` holds the family's tables (for a product, in each block size:
    /// [`VmfReparam::at_dim`]) and the scheduled kappa.
    ///
    /// # Panics
    /// If this is a posterior on the sphere and `reparam` is `None` or lacks a block
    /// size, or is a scheduled layer for a learned kappa or the reverse (programming
    /// errors).
    pub fn draw(&self, noise: LatentNoise, reparam: Option<&VmfReparam>) -> PosteriorDraw {
        match self {
            Self::Sphere {
                mu,
                log_kappa,
                blocks,
            } if blocks.equal_size().is_none() => {
                // Each run of equal blocks is drawn as a product of its own (by the
                // layer of its size), laid side by side; the KL and ratio are sums.
                let [batch, _] = mu.dims();
                let g = blocks.count();
                let of_blocks = |t: &Tensor<1>, idx: std::ops::Range<usize>| {
                    let n = batch * idx.len();
                    t.clone()
                        .reshape([batch, g])
                        .slice([0..batch, idx])
                        .reshape([n])
                };
                let parts: Vec<PosteriorDraw> = blocks
                    .groups()
                    .iter()
                    .map(|grp| {
                        let cols = grp.columns.clone();
                        let part = Self::Sphere {
                            mu: mu.clone().slice([0..batch, cols.clone()]),
                            log_kappa: log_kappa.as_ref().map(|s| of_blocks(s, grp.indices())),
                            blocks: Blocks::equal(cols.len(), grp.count),
                        };
                        let noise = LatentNoise {
                            u: of_blocks(&noise.u, grp.indices()),
                            e: noise.e.clone().slice([0..batch, cols]),
                        };
                        part.draw(noise, reparam.map(|r| r.at_dim(grp.dim)))
                    })
                    .collect();
                PosteriorDraw {
                    location: mu.clone(),
                    z: Tensor::cat(parts.iter().map(|p| p.z.clone()).collect(), 1),
                    kl: parts
                        .iter()
                        .map(|p| p.kl.clone())
                        .reduce(|a, b| a + b)
                        .expect("a product has blocks"),
                    log_kappa: log_kappa.clone(),
                    ratio: RatioParts::Product(parts),
                    factors: 1,
                }
            }
            Self::Sphere {
                mu,
                log_kappa,
                blocks,
            } if blocks.count() > 1 => {
                // Each block is a row of its own for the layer (in dimension m = d / G):
                // the draws are the blocks' draws laid side by side, the KL their sum.
                let [batch, d] = mu.dims();
                let factors = blocks.count();
                let (rows, m) = (batch * factors, d / factors);
                let blocks = Self::Sphere {
                    mu: mu.clone().reshape([rows, m]),
                    log_kappa: log_kappa.clone(),
                    blocks: Blocks::one(m),
                };
                let noise = LatentNoise {
                    u: noise.u,
                    e: noise.e.reshape([rows, m]),
                };
                let draw = blocks.draw(noise, reparam);
                PosteriorDraw {
                    location: mu.clone(),
                    z: draw.z.reshape([batch, d]),
                    kl: sum_blocks(draw.kl, factors),
                    log_kappa: draw.log_kappa,
                    ratio: draw.ratio,
                    factors,
                }
            }
            Self::Sphere {
                mu,
                log_kappa: Some(s),
                ..
            } => {
                let reparam = reparam.expect("a posterior on the sphere draws through its layer");
                let range = reparam
                    .range()
                    .expect("a learned kappa draws from its tables");
                let (z, kl) = reparam.forward_at(mu.clone(), s.clone(), noise);
                PosteriorDraw {
                    factors: 1,
                    kl,
                    location: mu.clone(),
                    z,
                    log_kappa: Some(s.clone()),
                    ratio: RatioParts::SpherePerRow {
                        family: reparam.family(),
                        log_kappa: s.clone().detach(),
                        dim: reparam.dim(),
                        range,
                    },
                }
            }
            Self::Sphere {
                mu,
                log_kappa: None,
                ..
            } => {
                let reparam = reparam.expect("a posterior on the sphere draws through its layer");
                let [batch, _] = mu.dims();
                let z = reparam.forward(mu.clone(), noise);
                let stats = reparam
                    .stats()
                    .expect("a scheduled kappa has its constants");
                PosteriorDraw {
                    factors: 1,
                    kl: Tensor::full([batch], stats.kl, &mu.device()),
                    location: mu.clone(),
                    z,
                    log_kappa: None,
                    ratio: RatioParts::Sphere {
                        family: stats.family,
                        kappa: stats.kappa,
                        constant: sphere_constant(
                            stats.family,
                            stats.dim,
                            stats.kappa,
                            stats.log_normaliser,
                        ),
                    },
                }
            }
            Self::Gaussian { mean, logvar } => {
                let z = gaussian_sample(mean.clone(), logvar.clone(), noise.e.clone());
                PosteriorDraw {
                    factors: 1,
                    kl: gaussian_kl(mean.clone(), logvar.clone()),
                    location: mean.clone(),
                    z,
                    log_kappa: None,
                    ratio: RatioParts::Gaussian {
                        eps: noise.e,
                        logvar: logvar.clone(),
                    },
                }
            }
            Self::Point { z } => {
                let [batch, _] = z.dims();
                PosteriorDraw {
                    factors: 1,
                    kl: Tensor::zeros([batch], &z.device()),
                    location: z.clone(),
                    z: z.clone(),
                    log_kappa: None,
                    ratio: RatioParts::Point,
                }
            }
        }
    }
}

/// kappa_i and the constant of [`sphere_constant`] per row, in f64 on the host (then
/// cast), for ln kappa read back and clamped into `range` as the sampler clamps it.
/// Rows repeated for importance sampling sit side by side: a row equal to the one
/// before reuses its constant.
fn per_row_constants(
    family: Family,
    log_kappa: &Tensor<1>,
    dim: usize,
    range: KappaRange,
) -> (Tensor<1>, Tensor<1>) {
    let device = log_kappa.device();
    let s: Vec<f32> = log_kappa
        .clone()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 after the conversion");
    let (mut kappa, mut constant) = (Vec::with_capacity(s.len()), Vec::with_capacity(s.len()));
    let mut last: Option<(f32, f32, f32)> = None;
    for &si in &s {
        let (k, c) = match last {
            Some((prev, k, c)) if prev.to_bits() == si.to_bits() => (k, c),
            _ => {
                let k = range.kappa_at(f64::from(si));
                let log_c = family
                    .log_normaliser(dim, k)
                    .expect("kappa in the layer's range");
                (k as f32, sphere_constant(family, dim, k, log_c) as f32)
            }
        };
        last = Some((si, k, c));
        kappa.push(k);
        constant.push(c);
    }
    let n = s.len();
    let upload = |v: Vec<f32>| Tensor::from_data(TensorData::new(v, [n]), &device);
    (upload(kappa), upload(constant))
}

/// Divides each row by its L2 norm (Burn has no normalise op).
///
/// # Shapes
/// - `x`: `[batch, d]` -> `[batch, d]`
pub fn l2_normalise(x: Tensor<2>) -> Tensor<2> {
    let norm = x
        .clone()
        .powi_scalar(2)
        .sum_dim(1)
        .sqrt()
        .clamp_min(NORM_EPS); // [batch, 1]
    x / norm
}
