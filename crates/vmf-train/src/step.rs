//! The gradients of one training step, optionally data-parallel over shards of the
//! batch.
//!
//! Why shards: on a CPU backend the matmuls of this model are small (100 x 784 x 256
//! at batch 100), so splitting each one over threads costs more in wake-ups than it
//! gains (measured: one rayon thread is faster than two). Running the forward and
//! backward of two half-batches side by side keeps both cores busy instead: 1.6-1.75x
//! the images/s at batch 100 on 2 cores (`cargo bench -p vmf-train --bench step`).
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

/// Rows of shard `k` of `shards` over `batch` rows (sizes differ by at most one).
pub fn shard_rows(batch: usize, shards: usize, k: usize) -> Range<usize> {
    k * batch / shards..(k + 1) * batch / shards
}

/// The mean loss over the batch (detached, `[1]`) and its gradients with respect to
/// `model`'s parameters.
///
/// `loss_sum(model, rows)` must return the *sum* of the per-example losses of those
/// rows of the batch (`[1]`), computed with `model`; the mean is taken here.
pub fn gradients<M, F>(
    model: &M,
    batch: usize,
    shards: usize,
    loss_sum: F,
) -> (Tensor<1>, GradientsParams)
where
    M: Module + Sync,
    F: Fn(&M, Range<usize>) -> Tensor<1> + Sync,
{
    let scale = 1.0 / batch as f64;
    if shards <= 1 {
        let loss = loss_sum(model, 0..batch).mul_scalar(scale);
        let grads = GradientsParams::from_grads(loss.backward(), model);
        return (loss.detach(), grads);
    }
    let parts: Vec<(Tensor<1>, GradientsParams)> = (0..shards)
        .into_par_iter()
        .map(|k| {
            let leaves = model.valid().train();
            let loss = loss_sum(&leaves, shard_rows(batch, shards, k)).mul_scalar(scale);
            let grads = GradientsParams::from_grads(loss.backward(), &leaves);
            (loss.detach(), grads)
        })
        .collect();
    let mut acc = GradientsAccumulator::<M>::new();
    let mut total: Option<Tensor<1>> = None;
    for (loss, grads) in parts {
        acc.accumulate(model, grads);
        total = Some(match total {
            Some(t) => t + loss,
            None => loss,
        });
    }
    (total.expect("at least one shard"), acc.grads())
}

#[cfg(test)]
mod tests {
    use burn::module::{ModuleVisitor, Param};
    use burn::tensor::{Device, Tensor};
    use vmf_model::loss::reconstruction_per_example;
    use vmf_model::{ReconLoss, VmfNoise, VmfReparam, VmfVae, VmfVaeConfig};

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

    fn run(model: &VmfVae, shards: usize) -> (f32, Vec<Vec<f32>>) {
        let device = Device::flex().autodiff();
        let batch = 10;
        let mut noise = HostNoise::new(3, "test", 0);
        let x = noise.uniform([batch, 12], &device);
        let vmf = noise.vmf(batch, 3, &device);
        let reparam = VmfReparam::new(3, 5.0, &device).unwrap();
        let (loss, grads) = gradients(model, batch, shards, |m, rows| {
            let xs = x.clone().slice(rows.clone());
            let n = VmfNoise {
                u: vmf.u.clone().slice(rows.clone()),
                e: vmf.e.clone().slice(rows),
            };
            let out = m.forward(xs.clone(), &reparam, n);
            reconstruction_per_example(ReconLoss::Bernoulli, out.logits, xs).sum()
        });
        let mut c = Collect(&grads, vec![]);
        model.visit(&mut c);
        (loss.into_scalar(), c.1)
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
        let device = Device::flex().autodiff();
        device.seed(1);
        let model = VmfVaeConfig::new(12, vec![6], 3).init(&device);
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
                    assert!((x - y).abs() <= 1e-5 * scale, "{shards} shards: {y} vs {x}");
                }
            }
        }
    }
}
