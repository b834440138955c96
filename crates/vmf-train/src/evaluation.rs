//! Evaluation, for every data kind: reconstruction, KL and ELBO each epoch, and the
//! importance-sampled marginal log-likelihood
//! log p(x) ~= logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K,
//! z_k ~ q(z|x): vMF(mu(x), kappa) with p(z) uniform on the sphere, or the Gaussian
//! baseline's N(mean(x), sigma^2(x)) with p(z) = N(0, I) (see vmf_model::Posterior).
//! Written against [`VaeModel`]: it never asks what a batch holds.

use std::path::Path;

use burn::tensor::{Device, Tensor};
use serde::Serialize;
use vmf_model::{Rows, VaeModel, VmfReparam};

use crate::backend::Backend;
use crate::checkpoint::{self, Opened};
use crate::error::TrainError;
use crate::family::{self, sampling_layer};
use crate::latent_stats::{LatentStats, collect_codes, latent_stats};
use crate::modality::{self, Batch, DataKind, Split, WithKind};
use crate::seeds::HostNoise;

/// Evaluation metrics (nats per example).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EvalMetrics {
    /// -log p(x|z) with z ~ q(z|x).
    pub recon_sampled: f64,
    /// -log p(x|z) at the posterior's location (z = mu(x), or the mean).
    pub recon_mean: f64,
    /// KL(q(z|x) || p(z)) averaged over the test set (for vMF a constant of kappa).
    pub kl: f64,
    /// ELBO = -(recon_sampled + KL).
    pub elbo: f64,
    /// Units per example on average (tokens, end token counted, per sentence; 1 per
    /// image).
    pub units_per_example: f64,
    /// Mutual information and active units, where the data kind reports them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latent: Option<LatentStats>,
    /// The greedy reconstruction's accuracy, where the data kind reports it
    /// ([`DataKind::recon_accuracy`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recon_accuracy: Option<f64>,
    /// ln kappa over the examples, where kappa is learned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_kappa: Option<KappaSpread>,
}

/// Mean, smallest and largest ln kappa over a set of examples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KappaSpread {
    /// Mean of ln kappa (its exp: the geometric mean of kappa).
    pub mean: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl EvalMetrics {
    /// exp(-ELBO / units per example): the ELBO-based perplexity of text (Xu & Durrett's
    /// figure), an upper bound on the perplexity.
    pub fn elbo_perplexity(&self) -> f64 {
        (-self.elbo / self.units_per_example).exp()
    }
}

/// How a data kind's batches are cut and counted in the evaluation.
pub struct EvalCuts<'a, B> {
    /// At most this many examples per device call (`training.eval_batch_size`).
    pub max_rows: usize,
    /// The data kind's memory bound on the rows of one call, per batch.
    pub rows_per_call: &'a dyn Fn(&B) -> usize,
    /// The units (images, tokens) of a batch.
    pub units: &'a dyn Fn(&B) -> usize,
}

/// Reconstruction (sampled z and at the posterior's location), KL and ELBO in nats
/// per example over `batches`, cut as `cuts` says; `seed` seeds the draws. `kappa` is
/// that of a scheduled vMF model (others ignore it). [`EvalMetrics::latent`] and
/// [`EvalMetrics::recon_accuracy`] are left `None`.
pub fn evaluate<M: VaeModel>(
    model: &M,
    batches: &[M::Batch],
    cuts: &EvalCuts<'_, M::Batch>,
    kappa: f64,
    seed: u64,
    device: &Device,
) -> Result<EvalMetrics, TrainError> {
    let (d, factors) = (model.latent_dim(), model.latent_factors());
    let reparam = sampling_layer(model, kappa, device)?;
    let (mut sampled, mut mean, mut kl) = (0.0f64, 0.0f64, 0.0f64);
    let mut spread: Option<(f64, f64, f64)> = None; // sum, min, max of ln kappa
    let (mut n, mut part, mut units) = (0usize, 0u64, 0usize);
    for batch in batches {
        let rows = batch.rows();
        let step = cuts.max_rows.min((cuts.rows_per_call)(batch)).max(1);
        for start in (0..rows).step_by(step) {
            let x = batch.slice_rows(start..(start + step).min(rows));
            let b = x.rows();
            let noise = HostNoise::new(seed, "eval", part).latent_of_product(b, d, factors, device);
            let draw = model.posterior(&x).draw(noise, reparam.as_ref());
            let r_s = model.neg_log_likelihood(&x, draw.z);
            let r_m = model.neg_log_likelihood(&x, draw.location);
            let mut sums = vec![r_s.sum(), r_m.sum(), draw.kl.sum()];
            if let Some(s) = draw.log_kappa {
                sums.extend([s.clone().sum(), s.clone().min(), s.max()]);
            }
            let sums = crate::output::read_back(Tensor::cat(sums, 0))?;
            sampled += f64::from(sums[0]);
            mean += f64::from(sums[1]);
            kl += f64::from(sums[2]);
            if let [s, lo, hi] = sums[3..] {
                let (s, lo, hi) = (f64::from(s), f64::from(lo), f64::from(hi));
                spread = Some(match spread {
                    None => (s, lo, hi),
                    Some((a, b, c)) => (a + s, b.min(lo), c.max(hi)),
                });
            }
            n += b;
            units += (cuts.units)(&x);
            part += 1;
        }
    }
    // A scheduled vMF: the exact constant rather than its f32 sum over the examples.
    let kl = reparam
        .as_ref()
        .and_then(VmfReparam::stats)
        .map_or(kl / n as f64, |s| s.kl);
    let recon_sampled = sampled / n as f64;
    Ok(EvalMetrics {
        recon_sampled,
        recon_mean: mean / n as f64,
        kl,
        elbo: -(recon_sampled + kl),
        units_per_example: units as f64 / n as f64,
        latent: None,
        recon_accuracy: None,
        // One ln kappa per example and block.
        log_kappa: spread.map(|(s, min, max)| KappaSpread {
            mean: s / (n * factors) as f64,
            min,
            max,
        }),
    })
}

/// How [`log_likelihood`] draws its importance samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportanceSampling {
    /// Draws per example, K.
    pub samples: usize,
    /// How many of the K are drawn from the prior p(z) instead of the posterior: the
    /// proposal is then the mixture a p(z) + (1 - a) r(z|x) with a = prior_draws / K,
    /// each draw weighed by the mixture's density (a stratified mixture, unbiased as the
    /// plain estimator is). 0 (the literature's estimator) draws every z from r.
    pub prior_draws: usize,
}

impl ImportanceSampling {
    /// K draws from the posterior, none from the prior: the usual estimator.
    pub fn posterior(samples: usize) -> Self {
        Self {
            samples,
            prior_draws: 0,
        }
    }

    /// K draws of which the share `prior_share` (in [0, 1], rounded to a whole number
    /// of draws) come from the prior.
    pub fn with_prior_share(samples: usize, prior_share: f64) -> Self {
        let prior_draws = (prior_share.clamp(0.0, 1.0) * samples as f64).round() as usize;
        Self {
            samples,
            prior_draws,
        }
    }
}

/// Importance-sampled log p(x) per example of `batches` (nats, in order), with K =
/// `sampling.samples` draws z_k ~ r(z|x) per example: logsumexp_k [log p(x|z_k) + log
/// p(z_k) - log r(z_k|x)] - log K. r is the posterior q as drawn: the Gaussian's exactly,
/// a sphere's through its quantile table, whose density differs from q's in the table's
/// end cells; the ratio is [`vmf_model::PosteriorDraw`]'s log p(z) - log q(z|x) (for
/// vMF: vmf-core's log C_d) plus [`VmfReparam::log_exact_over_sampler`]'s log q - log r.
///
/// With `sampling.prior_draws` > 0 that many of the K draws come from the prior and
/// every draw is weighed by the mixture a p(z) + (1 - a) r(z|x) instead of r
/// ([`ImportanceSampling`]): the weight p(x|z) / (a + (1 - a) r(z|x) / p(z)) is at most
/// p(x|z) / a, so the estimate no longer waits for r's far tail to be drawn where the
/// decoder barely depends on z (text: a sharp posterior in many dimensions draws
/// <mu, z> near 0, where the prior's mass is, once in thousands of draws; the plain
/// estimate then rises with K long after it looks settled).
///
/// Deterministic for a given (seed, sampling, batches). For a model without z (the
/// LM) it is exact and takes one draw whatever `sampling` says. With the Gaussian pixel
/// loss, log p(x|z) omits its constant -D/2 log(2 pi), so the figure is up to that constant.
pub fn log_likelihood<M: VaeModel>(
    model: &M,
    batches: &[M::Batch],
    rows_per_call: impl Fn(&M::Batch) -> usize,
    kappa: f64,
    sampling: ImportanceSampling,
    seed: u64,
    device: &Device,
) -> Result<Vec<f64>, TrainError> {
    let (d, blocks) = (model.latent_dim(), model.latent_blocks());
    let factors = blocks.count();
    let reparam = sampling_layer(model, kappa, device)?;
    if factors > 1 && sampling.prior_draws > 0 {
        // The mixture needs the proposal's density at the prior's draws, written for
        // one sphere (PosteriorOnHost); a product's images need no prior draws.
        return Err(TrainError::Usage(format!(
            "prior draws ({}) in the importance-sampled likelihood are for a latent on one \
             sphere; this model's is a product of {factors}: evaluate it without them \
             (eval --prior-share 0, the default)",
            sampling.prior_draws
        )));
    }
    // Without a latent (the LM) every importance weight is p(x): one draw is exact,
    // and K would decode each sentence K times for the same figure.
    let (samples, prior_draws) = if model.kind().has_latent() {
        let k = sampling.samples.max(1);
        (k, sampling.prior_draws.min(k))
    } else {
        (1, 0)
    };
    // ln of the mixture's weights a and 1 - a on the prior and on r.
    let share = prior_draws as f64 / samples as f64;
    let (ln_prior, ln_post) = (share.ln(), (1.0 - share).ln());
    let mut out = Vec::new();
    let mut call = 0u64;
    for batch in batches {
        let budget = rows_per_call(batch).max(1);
        let chunk = samples.min(budget); // samples per call
        let per_call = (budget / chunk).max(1); // examples per call
        let n = batch.rows();
        for start in (0..n).step_by(per_call) {
            let b = per_call.min(n - start);
            let xb = batch.slice_rows(start..start + b);
            let posterior = model.posterior(&xb);
            // Running logsumexp per example, in f64 on the host.
            let mut acc = vec![f64::NEG_INFINITY; b];
            let mut done = 0;
            let mut part = 0u64;
            while done < samples - prior_draws {
                let k = chunk.min(samples - prior_draws - done);
                let counter = (call << 32) | part;
                let x_rep = xb.repeat_rows(k);
                let noise = HostNoise::new(seed, "log-likelihood", counter).latent_of_product(
                    b * k,
                    d,
                    factors,
                    device,
                );
                let u = match &reparam {
                    Some(_) => crate::output::read_back(noise.u.clone())?,
                    None => Vec::new(),
                };
                let draw = posterior.repeat_rows(k).draw(noise, reparam.as_ref()); // [b * k, d]
                // The table sampler draws from r, which is not q in the table's end
                // cells: weigh by p(x, z) / r(z), the draws' own density (see
                // VmfReparam::log_exact_over_sampler), so the estimate is unbiased.
                let correction = match &reparam {
                    Some(layer) => {
                        let s = match &draw.log_kappa {
                            Some(s) => Some(crate::output::read_back(s.clone())?),
                            None => None,
                        };
                        // One term per block (by the layer of its size), summed per
                        // draw on a product of spheres.
                        layer.log_exact_over_sampler_of(&blocks, &u, s.as_deref())?
                    }
                    None => vec![0.0; b * k],
                };
                let log_ratio = draw.log_ratio();
                let log_px = model.neg_log_likelihood(&x_rep, draw.z).neg();
                if prior_draws == 0 {
                    let log_w = crate::output::read_back(log_px + log_ratio)?;
                    for (i, (row, fix)) in log_w.chunks(k).zip(correction.chunks(k)).enumerate() {
                        for (&lw, &c) in row.iter().zip(fix) {
                            acc[i] = log_add_exp(acc[i], f64::from(lw) + c);
                        }
                    }
                } else {
                    // ln r - ln p of each draw is -(log_ratio + correction).
                    let log_px = crate::output::read_back(log_px)?;
                    let log_ratio = crate::output::read_back(log_ratio)?;
                    for (j, ((&lp, &lr), &c)) in
                        log_px.iter().zip(&log_ratio).zip(&correction).enumerate()
                    {
                        let ell = -(f64::from(lr) + c);
                        let lw = f64::from(lp) - log_add_exp(ln_prior, ln_post + ell);
                        acc[j / k] = log_add_exp(acc[j / k], lw);
                    }
                }
                done += k;
                part += 1;
            }
            if prior_draws > 0 {
                let at = PosteriorOnHost::read(&posterior, b, d)?;
                let mut done = 0;
                let mut part = 0u64;
                while done < prior_draws {
                    let k = chunk.min(prior_draws - done);
                    let counter = (call << 32) | part;
                    let mut noise = HostNoise::new(seed, "log-likelihood-prior", counter);
                    let z: Vec<f32> = (0..b * k)
                        .flat_map(|_| model.kind().prior_sample(noise.rng(), d))
                        .map(|v| v as f32)
                        .collect();
                    let ell = at.log_proposal_over_prior(model.kind(), reparam.as_ref(), &z, k)?;
                    let z = Tensor::from_data(burn::tensor::TensorData::new(z, [b * k, d]), device);
                    let log_px = model.neg_log_likelihood(&xb.repeat_rows(k), z).neg();
                    let log_px = crate::output::read_back(log_px)?;
                    for (j, (&lp, &e)) in log_px.iter().zip(&ell).enumerate() {
                        let lw = f64::from(lp) - log_add_exp(ln_prior, ln_post + e);
                        acc[j / k] = log_add_exp(acc[j / k], lw);
                    }
                    done += k;
                    part += 1;
                }
            }
            out.extend(acc.into_iter().map(|a| a - (samples as f64).ln()));
            call += 1;
        }
    }
    Ok(out)
}

/// One call's posterior parameters on the host (f64), for the proposal's density at
/// the prior's draws.
struct PosteriorOnHost {
    d: usize,
    /// mu or the mean, `[b * d]`.
    location: Vec<f64>,
    /// The Gaussian's log-variances, `[b * d]` (empty on the sphere).
    logvar: Vec<f64>,
    /// ln kappa per row where it is learned per example.
    log_kappa: Option<Vec<f32>>,
}

impl PosteriorOnHost {
    fn read(posterior: &vmf_model::Posterior, b: usize, d: usize) -> Result<Self, TrainError> {
        let wide = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<_>>();
        let location = wide(crate::output::read_back(posterior.location())?);
        let logvar = match posterior.log_variance() {
            Some(t) => wide(crate::output::read_back(t)?),
            None => Vec::new(),
        };
        let log_kappa = match posterior.log_kappa_per_row() {
            Some(t) => Some(crate::output::read_back(t)?),
            None => None,
        };
        debug_assert_eq!(location.len(), b * d);
        Ok(Self {
            d,
            location,
            logvar,
            log_kappa,
        })
    }

    /// ln r(z|x) - ln p(z) at the points `z` (`[b * k, d]`, row i k + j the j-th of
    /// example i), r the proposal the posterior draws from: on the sphere the table
    /// sampler's density (at the angle to mu), for the Gaussian its exact density.
    fn log_proposal_over_prior(
        &self,
        kind: vmf_model::ModelKind,
        reparam: Option<&VmfReparam>,
        z: &[f32],
        k: usize,
    ) -> Result<Vec<f64>, TrainError> {
        let d = self.d;
        let rows = z.chunks(d).enumerate().map(|(r, zr)| {
            let i = r / k;
            (i, zr.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>())
        });
        match reparam {
            Some(layer) => {
                // The angle of each draw to its example's mu, from the f32 z the decoder
                // is given (its norm differs from 1 by rounding).
                let theta: Vec<f64> = rows
                    .map(|(i, zr)| {
                        let mu = &self.location[i * d..(i + 1) * d];
                        let norm = zr.iter().map(|v| v * v).sum::<f64>().sqrt();
                        let dot = mu.iter().zip(&zr).map(|(m, v)| m * v).sum::<f64>() / norm;
                        dot.clamp(-1.0, 1.0).acos()
                    })
                    .collect();
                let log_kappa = self
                    .log_kappa
                    .as_ref()
                    .map(|s| (0..theta.len()).map(|r| s[r / k]).collect::<Vec<f32>>());
                Ok(layer.log_sampler_over_prior_at(&theta, log_kappa.as_deref())?)
            }
            // The Gaussian: ln N(z; m, s^2) - ln N(z; 0, I), whose 2 pi terms cancel.
            None => Ok(rows
                .map(|(i, zr)| {
                    let (m, lv) = (
                        &self.location[i * d..(i + 1) * d],
                        &self.logvar[i * d..(i + 1) * d],
                    );
                    kind.host_log_q(m, 0.0, 0.0, lv, &zr)
                        + 0.5 * zr.iter().map(|v| v * v).sum::<f64>()
                })
                .collect()),
        }
    }
}

/// Seeds of the draws of one [`test_report`]: the ELBO's, the latent statistics' and the
/// importance samples'.
#[derive(Debug, Clone, Copy)]
pub struct ReportSeeds {
    /// The ELBO's draws ([`evaluate`]).
    pub elbo: u64,
    /// The draws of the mutual information ([`collect_codes`]).
    pub codes: u64,
    /// The importance samples ([`log_likelihood`]).
    pub sampled: u64,
}

/// The test split's figures, as each epoch of a run and the `eval` tool report them.
#[derive(Debug, Clone)]
pub struct TestReport {
    /// Reconstruction, KL, ELBO, and where the data kind reports them the latent
    /// statistics and the reconstruction's accuracy.
    pub metrics: EvalMetrics,
    /// Importance-sampled log p(x) per example (with samples > 0).
    pub log_likelihood: Option<Vec<f64>>,
}

impl TestReport {
    /// The importance-sampled NLL per example (mean of -log p(x)).
    pub fn nll(&self) -> Option<f64> {
        let ll = self.log_likelihood.as_ref()?;
        Some(-ll.iter().sum::<f64>() / ll.len() as f64)
    }
}

/// Evaluates `model` on the test batches `x` of data kind `kind`: the ELBO's terms, the
/// latent statistics where the kind reports them ([`DataKind::LATENT_STATS`]), the
/// greedy reconstruction's accuracy, and with `sampling.samples` > 0 the importance-sampled
/// log-likelihood. One code path for the loop's evaluation after each epoch and for the
/// `eval` tool; `kappa` is that of a scheduled vMF (others ignore it).
#[allow(clippy::too_many_arguments)]
pub fn test_report<K: DataKind>(
    kind: &K,
    model: &K::Model,
    x: &[Batch<K>],
    max_rows: usize,
    kappa: f64,
    sampling: ImportanceSampling,
    seeds: ReportSeeds,
    device: &Device,
) -> Result<TestReport, TrainError> {
    let per_call = |b: &Batch<K>| kind.rows_per_call(b);
    let cuts = EvalCuts {
        max_rows,
        rows_per_call: &per_call,
        units: &K::units,
    };
    let mut metrics = evaluate(model, x, &cuts, kappa, seeds.elbo, device)?;
    if K::LATENT_STATS {
        let codes = collect_codes(model, x, max_rows, kappa, seeds.codes, device)?;
        metrics.latent = Some(latent_stats(model.kind(), &codes));
    }
    metrics.recon_accuracy = kind.recon_accuracy(model, Split::Test, device)?;
    let log_likelihood = if sampling.samples > 0 {
        Some(log_likelihood(
            model,
            x,
            per_call,
            kappa,
            sampling,
            seeds.sampled,
            device,
        )?)
    } else {
        None
    };
    Ok(TestReport {
        metrics,
        log_likelihood,
    })
}

/// For serde: leave a count of 0 out.
fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// log(e^a + e^b) without overflow.
fn log_add_exp(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        hi
    } else {
        hi + (lo - hi).exp().ln_1p()
    }
}

/// Everything `eval` reports for one checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointEval {
    /// The checkpoint's step.
    pub step: u64,
    /// kappa at that step (`None` for the Gaussian model; where kappa is learned, the
    /// geometric mean over the test set, see [`EvalMetrics::log_kappa`]).
    pub kappa: Option<f64>,
    /// Test examples evaluated (images, sentences).
    pub test_images: usize,
    /// Reconstruction, KL and ELBO.
    pub metrics: EvalMetrics,
    /// Importance samples per image.
    pub samples: usize,
    /// How many of them came from the prior ([`ImportanceSampling::prior_draws`]; 0:
    /// all from the posterior, the usual estimator).
    #[serde(skip_serializing_if = "is_zero")]
    pub prior_draws: usize,
    /// Seed of the evaluation.
    pub seed: u64,
    /// Mean importance-sampled log p(x) (nats per image).
    pub log_likelihood: f64,
    /// Its standard error over the test images.
    pub log_likelihood_se: f64,
    /// Text: exp(total NLL / total tokens) with the importance-sampled NLL (end tokens
    /// counted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub perplexity: Option<f64>,
    /// Each test example's importance-sampled log p(x), in the test file's order (the
    /// evaluation's batches may sort them: text by length). Two checkpoints of the same
    /// data compare example by example with these: the standard error of their paired
    /// difference is far below either mean's, which the spread of lengths dominates.
    #[serde(skip)]
    pub per_example: Vec<f64>,
}

/// Evaluates the checkpoint folder `path` of a run on its test set: its config comes
/// from the run folder's `config.toml`, which must match the checkpoint's config hash.
pub fn evaluate_checkpoint(
    path: &Path,
    samples: usize,
    seed: u64,
    test_limit: Option<usize>,
) -> Result<CheckpointEval, TrainError> {
    evaluate_checkpoint_with(
        path,
        ImportanceSampling::posterior(samples),
        seed,
        test_limit,
    )
}

/// [`evaluate_checkpoint`] with the importance samples drawn as `sampling` says (some
/// of them from the prior: [`ImportanceSampling`]).
pub fn evaluate_checkpoint_with(
    path: &Path,
    sampling: ImportanceSampling,
    seed: u64,
    test_limit: Option<usize>,
) -> Result<CheckpointEval, TrainError> {
    let opened = checkpoint::open(path)?;
    let mut config = opened.config.clone();
    config.data.test_limit = test_limit.or(config.data.test_limit);
    let work = EvalCheckpoint {
        opened: &opened,
        config: &config,
        sampling,
        seed,
    };
    modality::dispatch(&config, work)
}

struct EvalCheckpoint<'a> {
    opened: &'a Opened,
    config: &'a crate::config::TrainConfig,
    sampling: ImportanceSampling,
    seed: u64,
}

impl WithKind for EvalCheckpoint<'_> {
    type Output = Result<CheckpointEval, TrainError>;

    fn run<K: DataKind>(self) -> Self::Output {
        let Self {
            opened,
            config,
            sampling,
            seed,
        } = self;
        let device = Backend::default_compiled().device()?;
        let (kind, model) = K::from_checkpoint(opened, config, &device)?;
        let state = &opened.state;
        let x = kind
            .eval_batches(Split::Test, seed, &device)
            .expect("every data kind has a test split");
        let seeds = ReportSeeds {
            elbo: seed,
            codes: seed,
            sampled: seed,
        };
        let max_rows = config.training.eval_batch_size;
        let report = test_report(
            &kind,
            &model,
            &x,
            max_rows,
            state.kappa,
            ImportanceSampling {
                samples: sampling.samples.max(1),
                ..sampling
            },
            seeds,
            &device,
        )?;
        let metrics = report.metrics;
        let ll = report
            .log_likelihood
            .expect("the importance samples were drawn (samples >= 1)");
        let n = ll.len() as f64;
        let mean = ll.iter().sum::<f64>() / n;
        let var = ll.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        let per_example = modality::to_file_order(ll, 1, kind.file_order(Split::Test).as_deref());
        Ok(CheckpointEval {
            step: state.step,
            kappa: family::has_kappa(model.kind()).then(|| {
                metrics
                    .log_kappa
                    .map_or(state.kappa, |spread| spread.mean.exp())
            }),
            test_images: per_example.len(),
            metrics,
            samples: sampling.samples.max(1),
            prior_draws: if model.kind().has_latent() {
                sampling.prior_draws.min(sampling.samples.max(1))
            } else {
                0
            },
            seed,
            log_likelihood: mean,
            log_likelihood_se: (var / n).sqrt(),
            perplexity: K::PER_UNIT.then(|| (-mean / metrics.units_per_example).exp()),
            per_example,
        })
    }
}
