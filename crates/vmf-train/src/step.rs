//! The gradients of one training step, optionally data-parallel over shards of the
//! batch.
//!
//! Why shards: on a CPU backend the matmuls of this model are small (100 x 784 x 256
//! at batch 100), so splitting each one over threads costs more in wake-ups than it
//! gains (measured: one rayon thread is faster than two). Running the forward and
//! backward of two half-batches side by side keeps both cores busy instead: 1.3-1.75x
//! the images/s at batch 100 on 2 cores over several runs (`cargo bench -p vmf-train
//! --bench step`; `train`, 1200 steps: 16.5-17.6k -> 23.2-23.8k images/s).
//! Each shard works on its own copy of the parameter leaves (`valid().train()`, same
//! `ParamId`s, shared storage), because Burn's autodiff merges graphs that share
//! leaves under one lock and would run the backwards one after the other.
//!
//! The result does not depend on the number of threads: shard k always gets the same
//! rows, and the shard gradients are added in shard order. It depends on `shards` only
//! through floating-point rounding (the sum over the batch is split differently).

use std::ops::Range;

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::Tensor;
use rayon::prelude::*;
use vmf_model::{LatentNoise, VaeModel, VmfReparam};

/// Rows of shard `k` of `shards` over `batch` rows (sizes differ by at most one).
pub fn shard_rows(batch: usize, shards: usize, k: usize) -> Range<usize> {
    k * batch / shards..(k + 1) * batch / shards
}

/// The VAE objective over the rows `x`, in the form [`gradients`] takes: the sum of
/// -log p(x|z) + beta KL (tracked) and the sums of [-log p(x|z), KL] (detached). The
/// vMF KL is a constant of kappa: it shifts the objective, not the gradient.
pub fn vae_sums<M: VaeModel>(
    model: &M,
    x: &M::Batch,
    noise: LatentNoise,
    reparam: Option<&VmfReparam>,
    beta: f64,
) -> (Tensor<1>, Tensor<1>) {
    let draw = model.posterior(x).draw(noise, reparam);
    let recon = model.neg_log_likelihood(x, draw.z).sum();
    let kl = draw.kl.sum();
    let objective = recon.clone() + kl.clone().mul_scalar(beta);
    (objective, Tensor::cat(vec![recon.detach(), kl.detach()], 0))
}

/// Gradients of the batch-mean objective with respect to `model`'s parameters, and
/// the batch means of the reported quantities (detached).
///
/// `sums(model, rows)` computes, with `model`, for those rows of the batch: the *sum*
/// of the per-example objective (`[1]`, tracked) and the sums of whatever is to be
/// reported (`[k]`, detached); the means are taken here.
pub fn gradients<M, F>(
    model: &M,
    batch: usize,
    shards: usize,
    sums: F,
) -> (Tensor<1>, GradientsParams)
where
    M: Module + Sync,
    F: Fn(&M, Range<usize>) -> (Tensor<1>, Tensor<1>) + Sync,
{
    let scale = 1.0 / batch as f64;
    if shards <= 1 {
        let (objective, report) = sums(model, 0..batch);
        let grads = GradientsParams::from_grads(objective.mul_scalar(scale).backward(), model);
        return (report.mul_scalar(scale), grads);
    }
    let parts: Vec<(Tensor<1>, GradientsParams)> = (0..shards)
        .into_par_iter()
        .map(|k| {
            let leaves = model.valid().train();
            let (objective, report) = sums(&leaves, shard_rows(batch, shards, k));
            let grads =
                GradientsParams::from_grads(objective.mul_scalar(scale).backward(), &leaves);
            (report, grads)
        })
        .collect();
    let mut acc = GradientsAccumulator::<M>::new();
    let mut total: Option<Tensor<1>> = None;
    for (report, grads) in parts {
        acc.accumulate(model, grads);
        total = Some(match total {
            Some(t) => t + report,
            None => report,
        });
    }
    let total = total.expect("at least one shard");
    (total.mul_scalar(scale), acc.grads())
}

#[cfg(test)]
mod tests {
    use burn::module::{ModuleVisitor, Param};
    use burn::tensor::{Device, Tensor};
    use vmf_model::{ImageVae, ImageVaeConfig, ModelKind, ReconLoss, Rows};

    use super::*;
    use crate::seeds::HostNoise;

    /// Every parameter's gradient, flattened, in visiting order.
    struct Collect<'a>(&'a GradientsParams, Vec<Vec<f32>>);

    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let g = self
                .0
                .get::<D>(param.id)
                .expect("a gradient for every parameter");
            self.1.push(g.into_data().try_to_vec::<f32>().unwrap());
        }
    }

    fn run(model: &ImageVae, shards: usize) -> (f32, Vec<Vec<f32>>) {
        let device = Device::flex().autodiff();
        let batch = 10;
        let mut noise = HostNoise::new(3, "test", 0);
        let x = noise.uniform([batch, 12], &device);
        let latent = noise.latent(batch, 3, &device);
        let reparam = VmfReparam::new(3, 5.0, &device).unwrap();
        let (report, grads) = gradients(model, batch, shards, |m, rows| {
            let xs = x.slice_rows(rows.clone());
            let noise = latent.rows(rows);
            vae_sums(m, &xs, noise, Some(&reparam), 1.0)
        });
        let mut c = Collect(&grads, vec![]);
        model.visit(&mut c);
        // Mean reconstruction + mean KL.
        (report.sum().into_scalar(), c.1)
    }

    #[test]
    fn shards_cover_the_batch_once() {
        for (batch, shards) in [(10, 3), (100, 2), (7, 7), (5, 1)] {
            let rows: Vec<usize> = (0..shards)
                .flat_map(|k| shard_rows(batch, shards, k))
                .collect();
            assert_eq!(rows, (0..batch).collect::<Vec<_>>());
        }
    }

    #[test]
    fn sharded_gradients_equal_the_whole_batch_ones() {
        for kind in [ModelKind::Vmf, ModelKind::Gaussian] {
            check_shards(kind);
        }
    }

    fn check_shards(kind: ModelKind) {
        let device = Device::flex().autodiff();
        device.seed(1);
        let model = ImageVaeConfig {
            kind,
            input_dim: 12,
            hidden: vec![6],
            latent_dim: 3,
            loss: ReconLoss::Bernoulli,
        }
        .init(&device);
        let (loss1, g1) = run(&model, 1);
        assert_eq!(
            g1.len(),
            8,
            "2 layers x (weight, bias) in encoder and decoder"
        );
        for shards in [2, 3] {
            let (loss, g) = run(&model, shards);
            assert!(
                (loss - loss1).abs() <= 1e-5 * loss1.abs(),
                "{loss} vs {loss1}"
            );
            for (a, b) in g1.iter().zip(&g) {
                let scale = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                for (x, y) in a.iter().zip(b) {
                    assert!(
                        (x - y).abs() <= 1e-5 * scale,
                        "{kind:?}, {shards} shards: {y} vs {x}"
                    );
                }
            }
        }
    }
}
