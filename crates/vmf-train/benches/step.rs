//! Where a training step's time goes: forward + loss, backward, optimiser (the fused
//! Adam of the training loop, and Burn's Adam on a twin model in the same steps), for
//! the default MNIST model (MLP 784-256-8-256-784, kappa 20) on random grey images.
//!
//! `cargo bench -p vmf-train --bench step [-- BACKEND [BATCH [SHARDS]]]`
//! (BACKEND among those compiled in, default the CPU one; BATCH default 100), then
//! the whole step as the loop runs it with 1..=SHARDS shards (default 2), for kappa
//! scheduled (20), learned (one kappa) and per example, the three interleaved step by
//! step so that their ratio comes from the same minutes of the machine.
//! Each phase is timed with a device sync after it, so on an asynchronous backend
//! (wgpu) the figures include the wait for the kernels, not just their launch.

use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::Device;
use vmf_model::{ImageVaeConfig, KappaMode, KappaRange, ModelKind, ReconLoss, Rows, VmfReparam};
use vmf_train::backend::{self, Backend};
use vmf_train::config::OptimizerConfig;
use vmf_train::seeds::HostNoise;
use vmf_train::step;

const WARMUP: usize = 30;
const STEPS: usize = 300;

fn sync(device: &Device) {
    device.sync().expect("device sync");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    vmf_train::keep_freed_memory();
    println!("{}", vmf_train::cpu::flush_denormals());
    // `cargo bench` appends `--bench`; positional arguments are ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let backend = match args.first() {
        Some(name) => Backend::parse(name).unwrap_or_else(|e| panic!("{e}")),
        None => Backend::default_compiled(),
    };
    let batch: usize = args.get(1).map_or(100, |b| b.parse().expect("batch size"));
    let max_shards: usize = args.get(2).map_or(2, |b| b.parse().expect("shards"));
    let device = backend.device().unwrap_or_else(|e| panic!("{e}"));
    println!("{}", backend::describe(backend, &device));
    let ad = device.clone().autodiff();

    let d = 8;
    let config = |kappa| ImageVaeConfig {
        kind: ModelKind::Vmf,
        input_dim: 784,
        hidden: vec![256],
        latent_dim: d,
        blocks: vmf_model::Blocks::one(d),
        loss: ReconLoss::Bernoulli,
        kappa,
        block_kappa_init: Vec::new(),
        conv: None,
    };
    let mut model = config(KappaMode::Scheduled).init(&ad);
    let mut optim = vmf_train::optim::adam(&OptimizerConfig::default());
    // Burn's own Adam on a twin, interleaved step by step with the fused one.
    let mut twin = model.clone();
    let mut burn_optim = AdamConfig::new().with_epsilon(1e-8).init();
    let mut burn_opt = vec![];
    let reparam = VmfReparam::new(d, 20.0, &ad).expect("table");
    let x = HostNoise::new(0, "bench-data", 0).uniform([batch, 784], &ad);

    let (mut fwd, mut bwd, mut opt, mut total) = (vec![], vec![], vec![], vec![]);
    for step in 0..WARMUP + STEPS {
        let mut noise = HostNoise::new(0, "bench-step", step as u64);
        sync(&ad);
        let t0 = Instant::now();
        let noise = noise.latent(batch, d, &ad);
        let (objective, _) = step::vae_sums(&model, &x, noise, Some(&reparam), 1.0);
        let loss = objective.div_scalar(batch as f64);
        sync(&ad);
        let t1 = Instant::now();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        sync(&ad);
        let t2 = Instant::now();
        model = optim.step(1e-3, model, grads);
        sync(&ad);
        let t3 = Instant::now();
        let noise = HostNoise::new(0, "bench-step", step as u64).latent(batch, d, &ad);
        let (objective, _) = step::vae_sums(&twin, &x, noise, Some(&reparam), 1.0);
        let grads = GradientsParams::from_grads(objective.backward(), &twin);
        sync(&ad);
        let t4 = Instant::now();
        twin = burn_optim.step(1e-3, twin, grads);
        sync(&ad);
        if step >= WARMUP {
            burn_opt.push(t4.elapsed().as_secs_f64());
            fwd.push((t1 - t0).as_secs_f64());
            bwd.push((t2 - t1).as_secs_f64());
            opt.push((t3 - t2).as_secs_f64());
            total.push((t3 - t0).as_secs_f64());
        }
    }
    let step = median(total);
    println!("batch {batch}, median of {STEPS} steps:");
    for (name, v) in [
        ("forward + loss", fwd),
        ("backward", bwd),
        ("optimiser", opt),
    ] {
        let m = median(v);
        println!("  {name:<15} {:7.3} ms  {:5.1}%", m * 1e3, 100.0 * m / step);
    }
    println!(
        "  (Burn's Adam on the twin model: {:.3} ms)",
        median(burn_opt) * 1e3
    );
    println!(
        "  {:<15} {:7.3} ms  ({:.0} images/s)",
        "step",
        step * 1e3,
        batch as f64 / step
    );

    // The whole step as the training loop runs it, for 1..=SHARDS shards and each way
    // of setting kappa.
    let range = KappaRange {
        init: 20.0,
        min: 1.0,
        max: 1e4,
    };
    let modes = [
        ("scheduled", KappaMode::Scheduled),
        ("learned", KappaMode::Learned(range)),
        ("per_example", KappaMode::PerExample(range)),
    ];
    for shards in 1..=max_shards {
        let mut runs: Vec<_> = modes
            .iter()
            .map(|&(_, mode)| {
                let model = config(mode).init(&ad);
                let reparam = VmfReparam::for_mode(d, mode, 20.0, &ad).expect("tables");
                let optim = vmf_train::optim::adam(&OptimizerConfig::default());
                (model, optim, reparam, vec![])
            })
            .collect();
        for s in 0..WARMUP + STEPS {
            let nz = HostNoise::new(0, "bench-step", s as u64).latent(batch, d, &ad);
            for (model, optim, reparam, total) in &mut runs {
                sync(&ad);
                let t0 = Instant::now();
                // As the training loop's step.
                let (reports, grads) = step::gradients(&*model, batch, shards, |m, rows| {
                    let xs = x.slice_rows(rows.clone());
                    step::vae_sums(m, &xs, nz.rows(rows), Some(&*reparam), 1.0)
                });
                let _figures = step::combine(reports, batch);
                *model = optim.step(1e-3, model.clone(), grads);
                sync(&ad);
                if s >= WARMUP {
                    total.push(t0.elapsed().as_secs_f64());
                }
            }
        }
        let base = median(runs[0].3.clone());
        for ((name, _), (.., total)) in modes.iter().zip(runs) {
            let t = median(total);
            println!(
                "shards {shards}, kappa {name:<11}: step {:.3} ms ({:.0} images/s, {:.2}x the scheduled step)",
                t * 1e3,
                batch as f64 / t,
                t / base
            );
        }
    }
}
