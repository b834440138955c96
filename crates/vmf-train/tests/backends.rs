//! One code path on every backend: selection, and (with the `wgpu` feature) the
//! sampler and a short training agreeing between the CPU backend and wgpu.

use vmf_train::backend::Backend;

#[test]
fn backend_selection_names_what_is_compiled_in() {
    assert_eq!(
        Backend::compiled().first(),
        Some(&Backend::default_compiled())
    );
    assert_eq!(
        Backend::default_compiled(),
        Backend::Flex,
        "the default build trains on flex"
    );
    let e = Backend::parse("cuda").unwrap_err().to_string();
    assert!(
        e.contains("unknown backend") && e.contains("flex, ndarray, wgpu"),
        "{e}"
    );
    for b in [Backend::Ndarray, Backend::Wgpu] {
        let r = Backend::parse(&b.to_string());
        if Backend::compiled().contains(&b) {
            assert_eq!(r.unwrap(), b);
        } else {
            let e = r.unwrap_err().to_string();
            assert!(e.contains(&format!("--features {b}")), "{e}");
        }
    }
}

#[cfg(feature = "wgpu")]
mod wgpu {
    use std::path::Path;

    use burn::tensor::{Device, Tensor, TensorData};
    use vmf_core::DeviceSampler;
    use vmf_train::backend::Backend;
    use vmf_train::{TrainConfig, TrainOptions, train};

    /// The wgpu device; outside CI a machine without a Vulkan driver skips.
    fn wgpu_device() -> Option<Device> {
        match Backend::Wgpu.device() {
            Ok(d) => Some(d),
            Err(e) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI must provide a Vulkan device (see .ci/run): {e}"
                );
                eprintln!("skipped: {e}");
                None
            }
        }
    }

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn the_sampler_gives_the_same_points_on_flex_and_wgpu() {
        let Some(gpu) = wgpu_device() else { return };
        let cpu = Device::flex();
        let (n, d) = (1024, 16);
        let mu: Vec<f32> = (0..n * d)
            .map(|i| {
                if i % d == (i / d) % d {
                    if i % 3 == 0 { -1.0 } else { 1.0 }
                } else {
                    0.0
                }
            })
            .collect();
        let mut rng_u = 0.5f32;
        let u: Vec<f32> = (0..n)
            .map(|_| {
                rng_u = (rng_u * 997.0 + 0.123).fract();
                rng_u
            })
            .collect();
        let e: Vec<f32> = (0..n * d).map(|i| ((i as f32) * 0.7).sin() * 1.3).collect();
        let run = |device: &Device| {
            let s = DeviceSampler::new(d, 20.0, device).unwrap();
            let t = |v: &Vec<f32>, shape: [usize; 2]| {
                Tensor::<2>::from_data(TensorData::new(v.clone(), shape), device)
            };
            let u1 = Tensor::<1>::from_data(TensorData::new(u.clone(), [n]), device);
            values(s.sample_with(t(&mu, [n, d]), u1, t(&e, [n, d])))
        };
        let (a, b) = (run(&cpu), run(&gpu));
        for (r, (ra, rb)) in a.chunks(d).zip(b.chunks(d)).enumerate() {
            let norm = rb.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!(
                rb.iter().all(|x| x.is_finite()) && (norm - 1.0).abs() < 1e-5,
                "row {r}: |z| = {norm}"
            );
            for (x, y) in ra.iter().zip(rb) {
                assert!((x - y).abs() < 1e-5, "row {r}: flex {x} vs wgpu {y}");
            }
        }
    }

    #[test]
    fn a_short_training_follows_the_same_losses_on_flex_and_wgpu() {
        if wgpu_device().is_none() {
            return;
        }
        let run = |backend: Backend| {
            let dir =
                std::env::temp_dir().join(format!("vmf-backends-{}-{backend}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let text = format!(
                "seed = 5\nrun_dir = \"{}\"\n[data]\ndataset = \"mnist\"\npixels = \"dynamic_binary\"\ntrain_limit = 500\ntest_limit = 200\n\
                 [model]\nlatent_dim = 8\nhidden = [64]\n[kappa]\nschedule = \"linear\"\nstart = 5.0\nend = 30.0\nsteps = 10\n\
                 [training]\nepochs = 1\nbatch_size = 50\nlog_every = 1\nimages = false\n",
                dir.display()
            );
            let config = TrainConfig::parse(&text, Path::new("backends.toml")).unwrap();
            let s = train(
                &config,
                &TrainOptions {
                    backend: Some(backend),
                    ..Default::default()
                },
            )
            .unwrap();
            let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
            let losses: Vec<f64> = csv
                .lines()
                .skip(1)
                .map(|l| l.split(',').nth(4).unwrap().parse().unwrap())
                .collect();
            (losses, s.last_eval.unwrap())
        };
        let (cpu, cpu_eval) = run(Backend::Flex);
        let (gpu, gpu_eval) = run(Backend::Wgpu);
        assert_eq!(cpu.len(), 10);
        // Same initial weights, data, noise and schedule: only kernel rounding differs.
        // Stated tolerance: 1e-4 relative per step over 10 Adam steps, 1e-3 on the test figures.
        for (step, (a, b)) in cpu.iter().zip(&gpu).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * a.abs(),
                "step {}: flex {a} vs wgpu {b}",
                step + 1
            );
        }
        assert!(
            (cpu_eval.recon_sampled - gpu_eval.recon_sampled).abs()
                <= 1e-3 * cpu_eval.recon_sampled.abs()
        );
        assert!(
            (cpu_eval.recon_mean - gpu_eval.recon_mean).abs() <= 1e-3 * cpu_eval.recon_mean.abs()
        );
    }
}
