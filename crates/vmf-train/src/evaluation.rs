//! Test-set evaluation: reconstruction, KL and ELBO each epoch, and the
//! importance-sampled marginal log-likelihood
//! log p(x) ~= logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K,
//! z_k ~ q(z|x): vMF(mu(x), kappa) with p(z) uniform on the sphere, or the Gaussian
//! baseline's N(mean(x), sigma^2(x)) with p(z) = N(0, I) (see vmf_model::Vae::draw).

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use rand::RngExt;
use serde::Serialize;
use vmf_model::loss::reconstruction_per_example;
use vmf_model::{Vae, VmfReparam};

use crate::backend::Backend;
use crate::checkpoint;
use crate::config::{PixelMode, TrainConfig};
use crate::data::{self, ImageSet};
use crate::error::TrainError;
use crate::seeds::HostNoise;

/// Test-set metrics (nats per image).
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
}

/// The vMF layer a model needs at `kappa` (None for the Gaussian).
fn reparam_for(
    model: &Vae,
    d: usize,
    kappa: f64,
    device: &Device,
) -> Result<Option<VmfReparam>, TrainError> {
    Ok(match model.kind() {
        vmf_model::ModelKind::Vmf => Some(VmfReparam::new(d, kappa, device)?),
        vmf_model::ModelKind::Gaussian => None,
    })
}

/// Test-set reconstruction (sampled z and at the posterior's location), KL and ELBO,
/// in nats per image, on inputs prepared by [`test_inputs`]; `seed` seeds the draws.
/// `kappa` is ignored by the Gaussian model.
pub fn evaluate(
    model: &Vae,
    test_x: &Tensor<2>,
    config: &TrainConfig,
    kappa: f64,
    seed: u64,
    device: &Device,
) -> Result<EvalMetrics, TrainError> {
    let d = config.model.latent_dim;
    let reparam = reparam_for(model, d, kappa, device)?;
    let [n, _] = test_x.dims();
    let bs = config.training.eval_batch_size;
    let (mut sampled, mut mean, mut kl) = (0.0f64, 0.0f64, 0.0f64);
    for (i, start) in (0..n).step_by(bs).enumerate() {
        let x = test_x.clone().slice(start..(start + bs).min(n));
        let [b, _] = x.dims();
        let noise = HostNoise::new(seed, "eval", i as u64).latent(b, d, device);
        let draw = model.draw(x.clone(), noise, reparam.as_ref());
        let r_s = reconstruction_per_example(config.model.loss, model.decode(draw.z), x.clone());
        let r_m = reconstruction_per_example(config.model.loss, model.decode(draw.location), x);
        let sums = Tensor::cat(vec![r_s.sum(), r_m.sum(), draw.kl.sum()], 0);
        let sums = crate::output::read_back(sums)?;
        sampled += f64::from(sums[0]);
        mean += f64::from(sums[1]);
        kl += f64::from(sums[2]);
    }
    // vMF: the exact constant rather than its f32 sum over the test set.
    let kl = reparam.as_ref().map_or(kl / n as f64, |r| r.stats().kl);
    let recon_sampled = sampled / n as f64;
    Ok(EvalMetrics {
        recon_sampled,
        recon_mean: mean / n as f64,
        kl,
        elbo: -(recon_sampled + kl),
    })
}

/// Rows (image x sample pairs) decoded per device call in [`log_likelihood`].
const LL_ROWS_PER_CALL: usize = 10_000;

/// Importance-sampled log p(x) per row of `x` (nats), with `samples` draws
/// z_k ~ q(z|x) per image: logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)]
/// - log K, the density ratio from [`Vae::draw`] (for vMF: vmf-core's log C_d).
///
/// Deterministic for a given (seed, samples, rows of x). With the Gaussian loss,
/// log p(x|z) omits its constant -D/2 log(2 pi), so the figure is up to that constant.
///
/// # Shapes
/// - `x`: `[n, features]` (already binarised if the model expects binary pixels)
pub fn log_likelihood(
    model: &Vae,
    x: &Tensor<2>,
    config: &TrainConfig,
    kappa: f64,
    samples: usize,
    seed: u64,
    device: &Device,
) -> Result<Vec<f64>, TrainError> {
    let d = config.model.latent_dim;
    let reparam = reparam_for(model, d, kappa, device)?;
    let samples = samples.max(1);
    let chunk = samples.min(LL_ROWS_PER_CALL); // samples per call
    let per_call = (LL_ROWS_PER_CALL / chunk).max(1); // images per call
    let [n, features] = x.dims();
    let mut out = Vec::with_capacity(n);
    for (call, start) in (0..n).step_by(per_call).enumerate() {
        let b = per_call.min(n - start);
        let xb = x.clone().slice(start..start + b); // [b, features]
        let posterior = model.posterior(xb.clone());
        // Running logsumexp per image, in f64 on the host.
        let mut acc = vec![f64::NEG_INFINITY; b];
        let mut done = 0;
        let mut part = 0u64;
        while done < samples {
            let k = chunk.min(samples - done);
            let counter = ((call as u64) << 32) | part;
            let x_rep = xb
                .clone()
                .unsqueeze_dim::<3>(1)
                .repeat_dim(1, k)
                .reshape([b * k, features]);
            let noise = HostNoise::new(seed, "log-likelihood", counter).latent(b * k, d, device);
            let draw = posterior.repeat_rows(k).draw(noise, reparam.as_ref()); // [b * k, d]
            let log_ratio = draw.log_ratio();
            let log_px =
                reconstruction_per_example(config.model.loss, model.decode(draw.z), x_rep).neg();
            let log_w = crate::output::read_back(log_px + log_ratio)?;
            for (i, row) in log_w.chunks(k).enumerate() {
                for &lw in row {
                    acc[i] = log_add_exp(acc[i], f64::from(lw));
                }
            }
            done += k;
            part += 1;
        }
        out.extend(acc.into_iter().map(|a| a - (samples as f64).ln()));
    }
    Ok(out)
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
    /// kappa at that step (`None` for the Gaussian model).
    pub kappa: Option<f64>,
    /// Test images evaluated.
    pub test_images: usize,
    /// Reconstruction, KL and ELBO.
    pub metrics: EvalMetrics,
    /// Importance samples per image.
    pub samples: usize,
    /// Seed of the evaluation.
    pub seed: u64,
    /// Mean importance-sampled log p(x) (nats per image).
    pub log_likelihood: f64,
    /// Its standard error over the test images.
    pub log_likelihood_se: f64,
}

/// The test inputs as the model sees them: with dynamic binarisation, one seeded
/// Bernoulli draw for the whole evaluation (static binarisation is applied at load).
pub fn test_inputs(test: &ImageSet, config: &TrainConfig, seed: u64, device: &Device) -> Tensor<2> {
    let mut pixels = test.pixels.clone();
    if config.data.pixels == PixelMode::DynamicBinary {
        let mut noise = HostNoise::new(seed, "eval-binarisation", 0);
        let rng = noise.rng();
        pixels
            .iter_mut()
            .for_each(|p| *p = f32::from(u8::from(rng.random::<f32>() < *p)));
    }
    Tensor::from_data(TensorData::new(pixels, [test.len(), test.dim]), device)
}

/// Evaluates the checkpoint folder `path` of a run: its config comes from the run
/// folder's `config.toml`, which must match the checkpoint's config hash.
pub fn evaluate_checkpoint(
    path: &Path,
    samples: usize,
    seed: u64,
    test_limit: Option<usize>,
) -> Result<CheckpointEval, TrainError> {
    let device = Backend::default_compiled().device()?;
    let opened = checkpoint::open(path)?;
    let mut config = opened.config.clone();
    config.data.test_limit = test_limit.or(config.data.test_limit);
    let splits = data::load(&config.data, config.seed)?;
    let model = opened.model(splits.test.dim, &device)?;
    let state = opened.state;
    let x = test_inputs(&splits.test, &config, seed, &device);
    let metrics = evaluate(&model, &x, &config, state.kappa, seed, &device)?;
    let ll = log_likelihood(&model, &x, &config, state.kappa, samples, seed, &device)?;
    let n = ll.len() as f64;
    let mean = ll.iter().sum::<f64>() / n;
    let var = ll.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    Ok(CheckpointEval {
        step: state.step,
        kappa: (config.model.kind == vmf_model::ModelKind::Vmf).then_some(state.kappa),
        test_images: ll.len(),
        metrics,
        samples,
        seed,
        log_likelihood: mean,
        log_likelihood_se: (var / n).sqrt(),
    })
}
