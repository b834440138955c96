//! vmf-core benchmark: table build time, host and device sampling throughput.
//! Prints markdown tables. Run: `cargo bench -p vmf-core --bench sampler`; `scripts/bench.sh`
//! puts them into BENCHMARKS.md.

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;
use vmf_core::{DeviceTable, HostSampler, KappaQuantileTable, KlTable, QuantileTable};

/// Median seconds of `reps` runs of `f`.
fn median_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[reps / 2]
}

fn main() {
    println!(
        "## Table build (M = {}, median of 7)\n",
        vmf_core::DEFAULT_TABLE_SIZE
    );
    let kappas = [0.0, 1e-3, 1.0, 20.0, 1e3, 1e5];
    print!("| d \\ kappa |");
    kappas.iter().for_each(|k| print!(" {k:e} |"));
    println!("\n|---|{}", "---|".repeat(kappas.len()));
    let mut worst = 0.0_f64;
    for d in [2, 3, 4, 16, 128, 1024, 4096] {
        print!("| {d} |");
        for k in kappas {
            let t = median_secs(7, || {
                std::hint::black_box(QuantileTable::new(d, k).unwrap());
            });
            worst = worst.max(t);
            print!(" {:.2} ms |", t * 1e3);
        }
        println!();
    }
    println!("\nslowest build: {:.2} ms\n", worst * 1e3);

    println!("## Tables for a learned kappa over [1e-2, 1e5] (one build each)\n");
    println!("| d | quantiles: build | quantiles: device memory | KL: build |\n|---|---|---|---|");
    for d in [2, 50, 1024] {
        let s = Instant::now();
        let q = KappaQuantileTable::new(d, 1e-2, 1e5).unwrap();
        let tq = s.elapsed().as_secs_f64();
        let s = Instant::now();
        std::hint::black_box(KlTable::new(d, 1e-2, 1e5).unwrap());
        let tk = s.elapsed().as_secs_f64();
        println!(
            "| {d} | {tq:.2} s | {:.1} MB ({} kappas x {} probabilities) | {tk:.2} s |",
            q.device_bytes() as f64 / 1e6,
            q.grid().points,
            q.probabilities()
        );
    }
    println!();

    let table = QuantileTable::new(16, 20.0).unwrap();
    let host = HostSampler::new(table.clone());
    let mut rng = StdRng::seed_from_u64(0);
    let n = 4_000_000;
    let t = median_secs(3, || {
        let mut acc = 0.0;
        for _ in 0..n {
            acc += host.sample_w(&mut rng);
        }
        std::hint::black_box(acc);
    });
    println!("## Sampling throughput (d = 16, kappa = 20 unless stated)\n");
    println!("| what | rate |\n|---|---|");
    println!("| host w, 1 thread | {:.1} M/s |", n as f64 / t / 1e6);

    let device = Device::flex();
    device.seed(0);
    let dev = DeviceTable::new(&table, &device);
    for n in [1 << 16, 1 << 20, 1 << 22] {
        let t = median_secs(5, || {
            std::hint::black_box(dev.sample_w(n).into_data());
        });
        println!(
            "| device (flex) w, n = {n} | {:.1} M/s |",
            n as f64 / t / 1e6
        );
    }
    // The gather alone: what a PyTorch table lookup does (u -> index -> value).
    for d in [16, 256] {
        let dev = DeviceTable::new(&QuantileTable::new(d, 20.0).unwrap(), &device);
        for batch in [128, 65536] {
            let mu = Tensor::<2>::random([batch, d], Distribution::Normal(0.0, 1.0), &device);
            let mu = mu.clone() / mu.powi_scalar(2).sum_dim(1).sqrt();
            let reps = if batch == 128 { 2001 } else { 21 };
            let t = median_secs(reps, || {
                std::hint::black_box(dev.sample(mu.clone()).into_data());
            });
            println!(
                "| device (flex) z, d = {d}, batch = {batch} | {:.2} M points/s |",
                batch as f64 / t / 1e6
            );
        }
    }
}
