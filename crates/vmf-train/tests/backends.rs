//! One code path on every backend: selection, and every other compiled-in backend
//! (ndarray, wgpu) against flex, on the sampler and on a short training.
//! Build with `--all-features` to compile them all (the README's test command does).

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use vmf_core::DeviceSampler;
use vmf_train::backend::Backend;
use vmf_train::{TrainConfig, TrainOptions, train};

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

/// The compiled-in backends other than flex whose device opens. In CI every
/// compiled backend must open (.ci/run installs a software Vulkan device); elsewhere
/// a machine without a Vulkan driver skips wgpu with a message.
fn others() -> Vec<(Backend, Device)> {
    Backend::compiled()
        .into_iter()
        .filter(|b| *b != Backend::Flex)
        .filter_map(|b| match b.device() {
            Ok(d) => Some((b, d)),
            Err(e) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI must be able to open {b}: {e}"
                );
                eprintln!("skipped {b}: {e}");
                None
            }
        })
        .collect()
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

#[test]
fn the_sampler_gives_the_same_points_on_every_backend() {
    let (n, d) = (1024, 16);
    // Awkward directions (+-e_i) and fixed noise.
    let mu: Vec<f32> = (0..n * d)
        .map(|i| {
            if i % d == (i / d) % d {
                if (i / d) % 3 == 0 { -1.0 } else { 1.0 }
            } else {
                0.0
            }
        })
        .collect();
    let u: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.618_034).fract()).collect();
    let e: Vec<f32> = (0..n * d).map(|i| ((i as f32) * 0.7).sin() * 1.3).collect();
    let run = |device: &Device| {
        let s = DeviceSampler::new(d, 20.0, device).unwrap();
        let t = |v: &Vec<f32>| Tensor::<2>::from_data(TensorData::new(v.clone(), [n, d]), device);
        let u = Tensor::<1>::from_data(TensorData::new(u.clone(), [n]), device);
        values(s.sample_with(t(&mu), u, t(&e)))
    };
    let reference = run(&Device::flex());
    for (b, device) in others() {
        let got = run(&device);
        for (r, (ra, rb)) in reference.chunks(d).zip(got.chunks(d)).enumerate() {
            let norm = rb.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!(
                rb.iter().all(|x| x.is_finite()) && (norm - 1.0).abs() < 1e-5,
                "{b} row {r}: |z| = {norm}"
            );
            for (x, y) in ra.iter().zip(rb) {
                assert!((x - y).abs() < 1e-5, "row {r}: flex {x} vs {b} {y}");
            }
        }
    }
}

/// An empty folder of this process for one test run on `backend`.
fn fresh_dir(tag: &str, backend: Backend) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "vmf-backends-{tag}-{}-{backend}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// One epoch of 500 MNIST images (10 steps of 50) with the given `[model]` and `[kappa]`
/// sections, on `backend`.
fn short_mnist_run(
    tag: &str,
    seed: u64,
    model_and_kappa: &str,
    backend: Backend,
) -> (Vec<f64>, vmf_train::EvalMetrics) {
    let text = format!(
        "seed = {seed}\nrun_dir = \"{}\"\n[data]\ndataset = \"mnist\"\npixels = \"dynamic_binary\"\ntrain_limit = 500\ntest_limit = 200\n\
         {model_and_kappa}\
         [training]\nepochs = 1\nbatch_size = 50\nlog_every = 1\nimages = false\n",
        fresh_dir(tag, backend).display()
    );
    run_losses(&text, backend)
}

fn short_run(backend: Backend) -> (Vec<f64>, vmf_train::EvalMetrics) {
    short_mnist_run(
        "mnist",
        5,
        "[model]\nlatent_dim = 8\nhidden = [64]\n\
         [kappa]\nschedule = \"linear\"\nstart = 5.0\nend = 30.0\nsteps = 10\n",
        backend,
    )
}

/// Trains the config `text` on `backend`: the loss of every logged step and the last
/// evaluation.
fn run_losses(text: &str, backend: Backend) -> (Vec<f64>, vmf_train::EvalMetrics) {
    let config = TrainConfig::parse(text, Path::new("backends.toml")).unwrap();
    let s = train(
        &config,
        &TrainOptions {
            backend: Some(backend),
            ..Default::default()
        },
    )
    .unwrap();
    let csv = std::fs::read_to_string(config.run_dir.join("metrics.csv")).unwrap();
    let losses = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(4).unwrap().parse().unwrap())
        .collect();
    (losses, s.last_eval.unwrap())
}

/// Same initial weights, data, noise and schedule: only kernel rounding (or, for a
/// fused op, its fallback's arithmetic) differs. Stated tolerance: 1e-4 relative per
/// step, 1e-3 on the test reconstruction.
fn assert_same_run(
    reference: &(Vec<f64>, vmf_train::EvalMetrics),
    other: &(Vec<f64>, vmf_train::EvalMetrics),
    b: Backend,
) {
    for (step, (a, x)) in reference.0.iter().zip(&other.0).enumerate() {
        assert!(
            (a - x).abs() <= 1e-4 * a.abs(),
            "step {}: flex {a} vs {b} {x}",
            step + 1
        );
    }
    for (a, x) in [
        (reference.1.recon_sampled, other.1.recon_sampled),
        (reference.1.recon_mean, other.1.recon_mean),
    ] {
        assert!(
            (a - x).abs() <= 1e-3 * a.abs(),
            "test recon: flex {a} vs {b} {x}"
        );
    }
}

#[test]
fn a_short_training_follows_the_same_losses_on_every_backend() {
    let reference = short_run(Backend::Flex);
    assert_eq!(reference.0.len(), 10);
    for (b, _) in others() {
        assert_same_run(&reference, &short_run(b), b);
    }
}

/// A kappa per example (the S-VAE configs): the encoder's kappa head, the device
/// tables' lookups in ln kappa and the exact kappa gradient, on both spherical
/// families. With the same weights, data and noise only kernel rounding differs.
fn short_per_example_run(kind: &str, backend: Backend) -> (Vec<f64>, vmf_train::EvalMetrics) {
    short_mnist_run(
        kind,
        7,
        &format!(
            "[model]\nkind = \"{kind}\"\nlatent_dim = 8\nhidden = [64]\nloss = \"bernoulli\"\n\
             [kappa]\nschedule = \"per_example\"\ninit = 10.0\nmin = 1.0\nmax = 10000.0\n"
        ),
        backend,
    )
}

#[test]
fn a_kappa_per_example_trains_the_same_on_every_backend() {
    for kind in ["vmf", "power_spherical"] {
        let reference = short_per_example_run(kind, Backend::Flex);
        assert_eq!(reference.0.len(), 10);
        for (b, _) in others() {
            assert_same_run(&reference, &short_per_example_run(kind, b), b);
        }
    }
}

/// The text model on each backend: flex runs the fused LSTM layer and cross-entropy,
/// every other backend their tensor-op fallbacks, so this compares the two paths
/// through a whole training (dropout and word dropout on). It catches a wrong forward
/// or a gradient of the wrong sign (checked: a flipped output-gate term fails at step
/// 3); Adam's normalised first steps hide a gradient off by 1%, which the fused ops'
/// own tests (gradients against Burn's autodiff) catch.
fn short_text_run(backend: Backend) -> (Vec<f64>, vmf_train::EvalMetrics) {
    let dir = fresh_dir("text", backend);
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    // Sentences of two topics, 4 or 5 words: few distinct shapes, as wgpu compiles a
    // kernel per shape (on CI's software Vulkan, seconds each).
    let corpus = |n: usize, seed: usize| -> String {
        (0..n)
            .map(|i| {
                let k = (i * 7 + seed * 13) % 11;
                let topic = if (i + seed).is_multiple_of(2) {
                    "a"
                } else {
                    "b"
                };
                (0..4 + k % 2)
                    .map(|j| format!("{topic}{}", (j * 3 + k) % 9))
                    .collect::<Vec<_>>()
                    .join(" ")
                    + "\n"
            })
            .collect()
    };
    for (name, n, seed) in [("train", 120, 1), ("valid", 20, 2), ("test", 20, 3)] {
        std::fs::write(data.join(format!("{name}.txt")), corpus(n, seed)).unwrap();
    }
    let text = format!(
        "seed = 5\nrun_dir = \"{}\"\n[data]\ndataset = \"text\"\ndir = \"{}\"\n\
         [model]\nlatent_dim = 4\nhidden = [16]\nembed_dim = 8\ndropout = 0.3\nword_dropout = 0.2\n\
         [kappa]\nschedule = \"constant\"\nvalue = 10.0\n\
         [training]\nepochs = 1\nbatch_size = 20\nlog_every = 1\nimages = false\n\
         eval_batch_size = 20\n",
        dir.join("run").display(),
        data.display()
    );
    run_losses(&text, backend)
}

#[test]
fn the_text_model_follows_the_same_losses_on_every_backend() {
    let reference = short_text_run(Backend::Flex);
    assert_eq!(reference.0.len(), 6);
    for (b, _) in others() {
        assert_same_run(&reference, &short_text_run(b), b);
    }
}
