//! Test-set evaluation: reconstruction, KL and ELBO each epoch, and the
//! importance-sampled marginal log-likelihood
//! log p(x) ~= logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K,
//! z_k ~ q(z|x) = vMF(mu(x), kappa), p(z) = uniform on the sphere.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use rand::RngExt;
use serde::Serialize;
use vmf_model::loss::reconstruction_per_example;
use vmf_model::{VmfReparam, VmfVae};

use crate::backend::Backend;
use crate::checkpoint;
use crate::config::{PixelMode, TrainConfig};
use crate::data::{self, ImageSet};
use crate::error::TrainError;
use crate::seeds::HostNoise;

/// Reads a one-element tensor back to the host.
pub(crate) fn read_scalar(t: Tensor<1>) -> Result<f32, TrainError> {
    Ok(crate::output::read_back(t)?[0])
}

/// Test-set metrics (nats per image).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EvalMetrics {
    /// -log p(x|z) with z ~ vMF(mu(x), kappa).
    pub recon_sampled: f64,
    /// -log p(x|z) at z = mu(x).
    pub recon_mean: f64,
    /// KL(vMF(mu, kappa) || uniform), a constant.
    pub kl: f64,
    /// ELBO = -(recon_sampled + KL).
    pub elbo: f64,
}

/// Test-set reconstruction (sampled z and z = mu), KL and ELBO, in nats per image,
/// on inputs prepared by [`test_inputs`]; `seed` seeds the draws of z.
pub fn evaluate(
    model: &VmfVae,
    test_x: &Tensor<2>,
    config: &TrainConfig,
    kappa: f64,
    seed: u64,
    device: &Device,
) -> Result<EvalMetrics, TrainError> {
    let d = config.model.latent_dim;
    let reparam = VmfReparam::new(d, kappa, device)?;
    let [n, _] = test_x.dims();
    let bs = config.training.eval_batch_size;
    let (mut sampled, mut mean) = (0.0f64, 0.0f64);
    for (i, start) in (0..n).step_by(bs).enumerate() {
        let x = test_x.clone().slice(start..(start + bs).min(n));
        let [b, _] = x.dims();
        let mu = model.encode(x.clone());
        let noise = HostNoise::new(seed, "eval", i as u64).vmf(b, d, device);
        let z = reparam.forward(mu.clone(), noise);
        let r_s = reconstruction_per_example(config.model.loss, model.decode(z), x.clone()).sum();
        let r_m = reconstruction_per_example(config.model.loss, model.decode(mu), x).sum();
        sampled += f64::from(read_scalar(r_s)?);
        mean += f64::from(read_scalar(r_m)?);
    }
    let kl = reparam.stats().kl;
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
/// z_k ~ vMF(mu(x), kappa) per image:
/// logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K, where
/// log p(z) - log q(z|x) = log C_d(0) - log C_d(kappa) - kappa <mu, z> (vmf-core).
///
/// Deterministic for a given (seed, samples, rows of x). With the Gaussian loss,
/// log p(x|z) omits its constant -D/2 log(2 pi), so the figure is up to that constant.
///
/// # Shapes
/// - `x`: `[n, features]` (already binarised if the model expects binary pixels)
pub fn log_likelihood(
    model: &VmfVae,
    x: &Tensor<2>,
    config: &TrainConfig,
    kappa: f64,
    samples: usize,
    seed: u64,
    device: &Device,
) -> Result<Vec<f64>, TrainError> {
    let d = config.model.latent_dim;
    let reparam = VmfReparam::new(d, kappa, device)?;
    let log_ratio_const =
        vmf_core::log_normaliser_uniform(d)? - vmf_core::log_normaliser(d, kappa)?;
    let samples = samples.max(1);
    let chunk = samples.min(LL_ROWS_PER_CALL); // samples per call
    let per_call = (LL_ROWS_PER_CALL / chunk).max(1); // images per call
    let [n, features] = x.dims();
    let mut out = Vec::with_capacity(n);
    for (call, start) in (0..n).step_by(per_call).enumerate() {
        let b = per_call.min(n - start);
        let xb = x.clone().slice(start..start + b); // [b, features]
        let mu = model.encode(xb.clone()); // [b, d]
        // Running logsumexp per image, in f64 on the host.
        let mut acc = vec![f64::NEG_INFINITY; b];
        let mut done = 0;
        let mut part = 0u64;
        while done < samples {
            let k = chunk.min(samples - done);
            let counter = ((call as u64) << 32) | part;
            let mu_rep = mu
                .clone()
                .unsqueeze_dim::<3>(1)
                .repeat_dim(1, k)
                .reshape([b * k, d]);
            let x_rep = xb
                .clone()
                .unsqueeze_dim::<3>(1)
                .repeat_dim(1, k)
                .reshape([b * k, features]);
            let noise = HostNoise::new(seed, "log-likelihood", counter).vmf(b * k, d, device);
            let z = reparam.forward(mu_rep.clone(), noise); // [b * k, d]
            let dot = (mu_rep * z.clone()).sum_dim(1).squeeze_dim::<1>(1); // [b * k]
            let log_px =
                reconstruction_per_example(config.model.loss, model.decode(z), x_rep).neg();
            let log_w = log_px - dot.mul_scalar(kappa);
            let log_w = crate::output::read_back(log_w)?;
            for (i, row) in log_w.chunks(k).enumerate() {
                for &lw in row {
                    acc[i] = log_add_exp(acc[i], f64::from(lw) + log_ratio_const);
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
    /// kappa at that step.
    pub kappa: f64,
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
        kappa: state.kappa,
        test_images: ll.len(),
        metrics,
        samples,
        seed,
        log_likelihood: mean,
        log_likelihood_se: (var / n).sqrt(),
    })
}
