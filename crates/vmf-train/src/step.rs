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
//! through floating-point rounding (the sum over the batch is split differently). The
//! same holds across processes: the ranks of an MPI job compute shares of one
//! [`ShardPlan`] and add all its shards in the same order ([`crate::ranks`]).

use std::ops::Range;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::Tensor;
use rayon::prelude::*;
use vmf_model::{LatentNoise, VaeModel, VmfReparam};

use crate::ranks::Ranks;

/// Rows of shard `k` of `shards` over `batch` rows (sizes differ by at most one).
pub fn shard_rows(batch: usize, shards: usize, k: usize) -> Range<usize> {
    k * batch / shards..(k + 1) * batch / shards
}

/// Entries of the report of [`vae_sums`]: sums of -log p(x|z), KL and ln kappa over
/// the rows (a product of spheres: the mean over its blocks), then the smallest and the
/// largest ln kappa (0 for a scheduled kappa).
pub const REPORT: usize = 5;

/// The VAE objective over the rows `x`, in the form [`gradients`] takes: the sum of
/// -log p(x|z) + beta KL (tracked) and the report of [`REPORT`] entries (detached).
/// At a scheduled kappa the vMF KL is a constant: it shifts the objective, not the
/// gradient; a learned kappa gets its gradient from the KL and from the draws.
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
    let spread = match draw.log_kappa {
        Some(s) => {
            let s = s.detach();
            // A product of spheres has a ln kappa per row and block: their per-row mean
            // keeps the report's first entries sums over rows.
            let sum = match model.latent_factors() {
                1 => s.clone().sum(),
                g => s.clone().sum().div_scalar(g as f64),
            };
            vec![sum, s.clone().min(), s.max()]
        }
        None => vec![Tensor::zeros([3], &kl.device())],
    };
    let mut report = vec![recon.detach(), kl.detach()];
    report.extend(spread);
    (objective, Tensor::cat(report, 0))
}

/// One step's figures from the shards' reports of [`vae_sums`] over `batch` rows:
/// the batch means of -log p(x|z), KL and ln kappa, and ln kappa's min and max.
pub fn combine(parts: Vec<Tensor<1>>, batch: usize) -> Tensor<1> {
    let total = parts.into_iter().reduce(merge).expect("at least one shard");
    let means = total.clone().slice(0..3).mul_scalar(1.0 / batch as f64);
    Tensor::cat(vec![means, total.slice(3..REPORT)], 0)
}

/// Two reports of [`REPORT`] entries in one: the first three added, the min of the
/// fourth, the max of the fifth (shards of a step, or steps of a logging window).
pub fn merge(a: Tensor<1>, b: Tensor<1>) -> Tensor<1> {
    let sums = a.clone().slice(0..3) + b.clone().slice(0..3);
    let lo = a.clone().slice(3..4).min_pair(b.clone().slice(3..4));
    let hi = a.slice(4..5).max_pair(b.slice(4..5));
    Tensor::cat(vec![sums, lo, hi], 0)
}

/// Which shards of a step's batch this process computes: the batch is cut into
/// `total` shards ([`shard_rows`]) and this process computes `mine` of them (all, in
/// one process; a contiguous share on each rank of an MPI job, see [`crate::ranks`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPlan {
    /// Shards of the batch over all processes.
    pub total: usize,
    /// The shards this process computes.
    pub mine: Range<usize>,
}

impl ShardPlan {
    /// `per_process` shards on each of `ranks`' processes over a batch of `rows`: as
    /// many shards as one process with `per_process` x ranks shards would cut (at most
    /// one per row), rank r taking its share of them in order.
    pub fn new(rows: usize, per_process: usize, ranks: &Ranks) -> Self {
        let total = (per_process.max(1) * ranks.size()).min(rows).max(1);
        Self {
            total,
            mine: shard_rows(total, ranks.size(), ranks.rank()),
        }
    }
}

/// Gradients of the batch-mean objective with respect to `model`'s parameters, and
/// each shard's report (detached, as `sums` gave it), in one process.
///
/// `sums(model, rows)` computes, with `model`, for those rows of the batch: the *sum*
/// of the per-example objective (`[1]`, tracked) and whatever is to be reported
/// (`[k]`, detached); the objective's mean is taken here.
pub fn gradients<M, F>(
    model: &M,
    batch: usize,
    shards: usize,
    sums: F,
) -> (Vec<Tensor<1>>, GradientsParams)
where
    M: Module + Sync,
    F: Fn(&M, Range<usize>) -> (Tensor<1>, Tensor<1>) + Sync,
{
    let plan = ShardPlan::new(batch, shards, &Ranks::single());
    sum_shards(model, shard_gradients(model, batch, &plan, sums))
}

/// Each of `plan.mine`'s shards' report and gradients (of its share of the batch-mean
/// objective), in shard order; see [`gradients`] for `sums`.
pub fn shard_gradients<M, F>(
    model: &M,
    batch: usize,
    plan: &ShardPlan,
    sums: F,
) -> Vec<(Tensor<1>, GradientsParams)>
where
    M: Module + Sync,
    F: Fn(&M, Range<usize>) -> (Tensor<1>, Tensor<1>) + Sync,
{
    let scale = 1.0 / batch as f64;
    if plan.total <= 1 {
        if plan.mine.is_empty() {
            return vec![];
        }
        let (objective, report) = sums(model, 0..batch);
        let grads = GradientsParams::from_grads(objective.mul_scalar(scale).backward(), model);
        return vec![(report, grads)];
    }
    plan.mine
        .clone()
        .into_par_iter()
        .map(|k| {
            let leaves = model.valid().train();
            let (objective, report) = sums(&leaves, shard_rows(batch, plan.total, k));
            let grads =
                GradientsParams::from_grads(objective.mul_scalar(scale).backward(), &leaves);
            (report, grads)
        })
        .collect()
}

/// The sum of every shard's gradients, added in shard order (so the result does not
/// depend on which process computed which shard), and the shards' reports.
pub fn sum_shards<M: Module>(
    model: &M,
    parts: Vec<(Tensor<1>, GradientsParams)>,
) -> (Vec<Tensor<1>>, GradientsParams) {
    if parts.len() == 1 {
        let (report, grads) = parts.into_iter().next().expect("one part");
        return (vec![report], grads);
    }
    let mut acc = GradientsAccumulator::<M>::new();
    let mut reports = Vec::with_capacity(parts.len());
    for (report, grads) in parts {
        acc.accumulate(model, grads);
        reports.push(report);
    }
    (reports, acc.grads())
}

/// `grads` without the gradients of the model's pretrained decoder
/// ([`VaeModel::visit_pretrained_decoder`]): the optimiser leaves a parameter without a
/// gradient as it is, moments included, so those parts stay fixed
/// (`model.freeze_decoder_steps`) and their Adam moments start when they are released.
pub fn without_pretrained_decoder<M: VaeModel>(
    model: &M,
    mut grads: GradientsParams,
) -> GradientsParams {
    struct Forget<'a>(&'a mut GradientsParams);
    impl ModuleVisitor for Forget<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.remove::<D>(param.id);
        }
    }
    model.visit_pretrained_decoder(&mut Forget(&mut grads));
    grads
}

#[cfg(test)]
mod tests {
    use burn::module::{ModuleVisitor, Param};
    use burn::tensor::{Device, Tensor};
    use vmf_core::Family;
    use vmf_model::{
        Blocks, ImageVae, ImageVaeConfig, KappaMode, KappaRange, ModelKind, ReconLoss, Rows,
    };

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

    fn run(model: &ImageVae, shards: usize) -> (Vec<f32>, Vec<Vec<f32>>) {
        let device = Device::flex().autodiff();
        let batch = 10;
        let (d, blocks) = (model.latent_dim(), model.latent_blocks());
        let mut noise = HostNoise::new(3, "test", 0);
        let x = noise.uniform([batch, 12], &device);
        let latent = noise.latent_of_product(batch, d, blocks.count(), &device);
        let reparam =
            VmfReparam::for_blocks(Family::Vmf, &blocks, model.kappa_mode(), 5.0, &device).unwrap();
        let (reports, grads) = gradients(model, batch, shards, |m, rows| {
            let xs = x.slice_rows(rows.clone());
            let noise = latent.rows(rows);
            vae_sums(m, &xs, noise, Some(&reparam), 1.0)
        });
        assert_eq!(reports.len(), shards);
        let mut c = Collect(&grads, vec![]);
        model.visit(&mut c);
        let figures = combine(reports, batch)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        (figures, c.1)
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
        let range = KappaRange {
            init: 5.0,
            min: 1.0,
            max: 100.0,
        };
        let one = Blocks::one(3);
        for (kind, kappa, params, blocks) in [
            (ModelKind::Vmf, KappaMode::Scheduled, 8, one.clone()),
            (ModelKind::Gaussian, KappaMode::Scheduled, 8, one.clone()),
            (ModelKind::Vmf, KappaMode::Learned(range), 9, one.clone()),
            (ModelKind::Vmf, KappaMode::PerExample(range), 8, one),
            // Three circles, a kappa per example and circle: each shard must take its
            // rows' uniforms, three per row.
            (
                ModelKind::Vmf,
                KappaMode::PerExample(range),
                8,
                Blocks::equal(6, 3),
            ),
            // S^2 x S^1: two sizes, each drawn by its own layer.
            (
                ModelKind::Vmf,
                KappaMode::PerExample(range),
                8,
                Blocks::of(vec![3, 2]),
            ),
        ] {
            check_shards(kind, kappa, params, blocks);
        }
    }

    fn check_shards(kind: ModelKind, kappa: KappaMode, params: usize, blocks: Blocks) {
        let device = Device::flex().autodiff();
        device.seed(1);
        let model = ImageVaeConfig {
            kind,
            input_dim: 12,
            hidden: vec![6],
            latent_dim: blocks.total(),
            blocks,
            loss: ReconLoss::Bernoulli,
            kappa,
            block_kappa_init: Vec::new(),
            conv: None,
        }
        .init(&device);
        let (figures1, g1) = run(&model, 1);
        // 2 layers x (weight, bias) in encoder and decoder, and a global kappa.
        assert_eq!(g1.len(), params, "{kind:?} {kappa:?}");
        let spread = &figures1[2..];
        if kappa == KappaMode::Scheduled {
            assert_eq!(spread, [0.0; 3]);
        } else {
            let (mean, lo, hi) = (spread[0], spread[1], spread[2]);
            assert!(
                lo <= mean && mean <= hi && lo >= 0.0 && hi <= 100f32.ln(),
                "{spread:?}"
            );
            // One global kappa is the same on every row; the head's differ.
            assert_eq!(
                lo == hi,
                matches!(kappa, KappaMode::Learned(_)),
                "{spread:?}"
            );
        }
        for shards in [2, 3] {
            let (figures, g) = run(&model, shards);
            for (a, b) in figures1.iter().zip(&figures) {
                assert!(
                    (a - b).abs() <= 1e-5 * a.abs().max(1.0),
                    "{figures:?} vs {figures1:?}"
                );
            }
            for (a, b) in g1.iter().zip(&g) {
                let scale = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                assert!(
                    scale > 0.0,
                    "{kind:?} {kappa:?}: a parameter without gradient"
                );
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
