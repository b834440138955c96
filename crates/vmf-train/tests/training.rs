//! End-to-end behaviour of the training framework on small slices of MNIST.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use vmf_model::{ImageVaeConfig, ModelKind, ReconLoss};
use vmf_train::checkpoint;
use vmf_train::evaluation::evaluate_checkpoint;
use vmf_train::modality::DataKind;
use vmf_train::modality::image::Images;
use vmf_train::{Resume, TrainConfig, TrainError, TrainOptions, train};

fn tmp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vmf-train-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn small_config(run_dir: &Path, extra: &str) -> TrainConfig {
    let text = format!(
        r#"
seed = 3
run_dir = "{}"
[data]
dataset = "mnist"
train_limit = 1000
test_limit = 500
{extra}
[model]
latent_dim = 8
hidden = [64]
[kappa]
schedule = "constant"
value = 20.0
[training]
epochs = 3
batch_size = 50
log_every = 5
images = false
# As the shipped configs: the parallel step is what resumes exactly and learns here.
shards = 2
"#,
        run_dir.display()
    );
    TrainConfig::parse(&text, Path::new("test.toml")).unwrap()
}

fn quiet() -> TrainOptions {
    TrainOptions::default()
}

/// The values of the column named `name` in a CSV file with a header.
fn csv_column(path: &Path, name: &str) -> Vec<f64> {
    vmf_train::output::read_csv_column(path, name)
        .unwrap()
        .into_iter()
        .map(|v| v.expect("a number"))
        .collect()
}

#[test]
fn training_learns_and_fills_the_run_folder() {
    let dir = tmp_dir("learns");
    let mut config = small_config(&dir, "");
    config.training.images = true;
    config.training.eval_samples = 20;
    let summary = train(&config, &quiet()).unwrap();
    assert_eq!(summary.steps, 60);

    let recon = csv_column(&dir.join("eval.csv"), "recon_sampled");
    assert_eq!(recon.len(), 3);
    // The test reconstruction falls every epoch, far below the ~543 nats of an untrained decoder.
    assert!(
        recon[0] < 520.0 && recon[1] < recon[0] && recon[2] < recon[1] - 30.0,
        "test recon per epoch: {recon:?}"
    );
    let loss = csv_column(&dir.join("metrics.csv"), "loss");
    assert!(
        loss.windows(2).all(|w| w[1] < w[0]) && loss[loss.len() - 1] < 0.75 * loss[0],
        "train loss {loss:?}"
    );
    let e = summary.last_eval.unwrap();
    assert!((e.elbo + e.recon_sampled + e.kl).abs() < 1e-9);
    assert!((e.kl - vmf_core::kl_to_uniform(8, 20.0).unwrap()).abs() < 1e-12);

    // The run folder explains itself.
    let saved = TrainConfig::load(&dir.join("config.toml")).unwrap();
    assert_eq!(saved, config);
    let ckpts = checkpoint::list(&dir);
    assert_eq!(ckpts.len(), 3, "keep = 3: {ckpts:?}");
    for c in &ckpts {
        checkpoint::load_state(c).unwrap();
    }
    // Each epoch's importance-sampled NLL lies below the ELBO's (LL_K rises above
    // LL_1 = ELBO), and the last equals the `eval` binary's at the same K on the same
    // checkpoint up to the draws (another seed).
    let nll = csv_column(&dir.join("eval.csv"), "nll_is");
    let elbo = csv_column(&dir.join("eval.csv"), "elbo");
    assert_eq!(nll.len(), 3);
    assert!(
        nll.iter().zip(&elbo).all(|(n, e)| *n < -e),
        "{nll:?} vs ELBO {elbo:?}"
    );
    let by_eval = vmf_train::evaluation::evaluate_checkpoint(ckpts.last().unwrap(), 20, 9, None)
        .unwrap()
        .log_likelihood;
    assert!(
        (nll[2] + by_eval).abs() < 0.5,
        "{} vs eval's {}",
        nll[2],
        -by_eval
    );
    for f in ["recon-epoch-003.png", "samples-epoch-003.png"] {
        let img = image::open(dir.join("images").join(f)).unwrap();
        assert!(img.width() > 28 && img.height() > 28);
    }

    // Embeddings out: mu of every test image, unit rows, with the labels; after 60
    // steps the digits already cluster on the sphere (0.41 seen; chance ~10%, and
    // labels out of step with the rows would give that).
    use vmf_train::encode::{Metric, encode_checkpoint, knn_accuracy};
    let e = encode_checkpoint(
        ckpts.last().unwrap(),
        vmf_train::modality::Split::Test,
        None,
    )
    .unwrap();
    assert_eq!((e.len(), e.dim), (500, 8));
    assert!(e.kappa.is_none() && e.texts.is_none());
    for row in e.location.chunks(8) {
        let norm: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    }
    assert_eq!(e.labels.as_ref().map(Vec::len), Some(500));
    let acc = knn_accuracy(&e, 5, Metric::Cosine).unwrap();
    assert!(acc > 0.3, "5-NN accuracy {acc}");
}

#[test]
fn the_gaussian_baseline_learns_with_its_kl_warmup() {
    let dir = tmp_dir("gaussian");
    let text = format!(
        "run_dir = \"{}\"\n[data]\ndataset = \"mnist\"\ntrain_limit = 1000\ntest_limit = 500\n\
         [model]\nkind = \"gaussian\"\nlatent_dim = 4\nhidden = [64]\nkl_warmup_steps = 40\n\
         [training]\nepochs = 3\nbatch_size = 50\nlog_every = 5\nimages = true\nshards = 2\n",
        dir.display()
    );
    let config = TrainConfig::parse(&text, Path::new("gaussian.toml")).unwrap();
    let summary = train(&config, &quiet()).unwrap();
    assert_eq!(summary.steps, 60);

    // No kappa: its column is empty; the KL is the model's own, positive and moving.
    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert!(
        metrics
            .lines()
            .skip(1)
            .all(|l| l.split(',').nth(2) == Some(""))
    );
    let kl = csv_column(&dir.join("metrics.csv"), "kl");
    assert!(
        kl.iter().all(|&k| k > 0.0) && kl.windows(2).any(|w| w[0] != w[1]),
        "{kl:?}"
    );
    let recon = csv_column(&dir.join("eval.csv"), "recon_sampled");
    assert!(
        recon[0] < 520.0 && recon[2] < recon[0] - 20.0,
        "test recon per epoch: {recon:?}"
    );
    let e = summary.last_eval.unwrap();
    assert!(
        e.kl > 0.1 && (e.elbo + e.recon_sampled + e.kl).abs() < 1e-9,
        "{e:?}"
    );

    // The warm-up is part of the trajectory: without it the run differs.
    let mut no_warmup = config.clone();
    no_warmup.model.kl_warmup_steps = 0;
    no_warmup.run_dir = tmp_dir("gaussian-no-warmup");
    no_warmup.training.images = false;
    let other = train(&no_warmup, &quiet()).unwrap();
    assert_ne!(other.last_loss, summary.last_loss);
}

/// A run that early stopping ends: a large learning rate makes the validation ELBO
/// wobble, and patience 2 stops it well within its 40 epochs.
fn stops_early(dir: &Path) -> TrainConfig {
    let mut config = small_config(dir, "validation = 200");
    config.optimizer.lr = 2e-2;
    config.training.epochs = 40;
    config.training.patience = 2;
    config
}

#[test]
fn early_stopping_on_the_validation_elbo_keeps_the_best_checkpoint() {
    let dir = tmp_dir("early-stop");
    let mut config = stops_early(&dir);
    config.checkpoint.keep = 1;
    let summary = train(&config, &quiet()).unwrap();

    let elbo = csv_column(&dir.join("valid.csv"), "elbo");
    let steps = csv_column(&dir.join("valid.csv"), "step");
    // 1000 training images minus 200 held out, 50 per batch: 16 steps per epoch.
    assert_eq!(summary.steps, 16 * elbo.len() as u64);
    assert!(elbo.len() < 40, "stopped early: {elbo:?}");
    let best = (0..elbo.len()).fold(0, |b, i| if elbo[i] > elbo[b] { i } else { b });
    assert_eq!(
        best,
        elbo.len() - 3,
        "two epochs without improvement after the best"
    );
    // The best checkpoint survives keep = 1 and is the one the state names.
    let best_ckpt = summary.best_checkpoint.unwrap();
    let state = checkpoint::load_state(&best_ckpt).unwrap();
    assert_eq!(state.step as f64, steps[best]);
    assert_eq!(state.best_valid_elbo, Some(elbo[best]));
    assert_eq!(checkpoint::list(&dir).len(), 2, "the newest and the best");
    // Resuming an early-stopped run trains nothing more.
    let again = train(
        &config,
        &TrainOptions {
            resume: Some(Resume::Auto),
            ..quiet()
        },
    )
    .unwrap();
    assert_eq!(again.steps, summary.steps);

    // A burn-in lets early stopping end a run only after that many epochs: resumed with
    // a burn-in 3 epochs past its stop, the run trains on to it (further if the ELBO
    // improves meanwhile) and stops again at the first epoch that satisfies both.
    let n = elbo.len();
    let mut burnt = config.clone();
    burnt.training.burn_in = n + 3;
    let more = train(
        &burnt,
        &TrainOptions {
            resume: Some(Resume::Auto),
            ..quiet()
        },
    )
    .unwrap();
    let elbo = csv_column(&dir.join("valid.csv"), "elbo");
    let best = (0..elbo.len()).fold(0, |b, i| if elbo[i] > elbo[b] { i } else { b });
    assert_eq!(elbo.len(), (n + 3).max(best + 3), "{elbo:?}");
    assert_eq!(more.steps, 16 * elbo.len() as u64);

    // Early stopping without a validation set is a config error naming both keys.
    let mut bad = small_config(&tmp_dir("early-stop-bad"), "");
    bad.training.patience = 2;
    let e = train(&bad, &quiet()).unwrap_err().to_string();
    assert!(
        e.contains("training.patience") && e.contains("data.validation"),
        "{e}"
    );
    // A burn-in without early stopping is one too.
    let mut bad = small_config(&tmp_dir("burn-in-bad"), "validation = 200");
    bad.training.burn_in = 5;
    let e = train(&bad, &quiet()).unwrap_err().to_string();
    assert!(
        e.contains("training.burn_in = 5") && e.contains("training.patience"),
        "{e}"
    );
}

/// `training.min_delta`: only improvements by more than it reset the patience (and the
/// plateau decay's count), while the best checkpoint still follows the highest ELBO.
#[test]
fn a_min_delta_counts_only_larger_improvements_and_survives_a_resume() {
    // No ELBO beats the first by a million nats: whatever the column does, patience 2
    // ends the run after epoch 3. Trained in two parts (2 epochs, then resumed), so the
    // reference ELBO must come back from the checkpoint: lost, epoch 3 would count and
    // the run go on to epoch 5.
    let dir = tmp_dir("min-delta");
    let mut config = stops_early(&dir);
    config.training.min_delta = 1e6;
    config.training.epochs = 2;
    train(&config, &quiet()).unwrap();
    config.training.epochs = 40;
    let resume = TrainOptions {
        resume: Some(Resume::Auto),
        ..quiet()
    };
    let summary = train(&config, &resume).unwrap();
    let elbo = csv_column(&dir.join("valid.csv"), "elbo");
    let steps = csv_column(&dir.join("valid.csv"), "step");
    assert_eq!(elbo.len(), 3, "{elbo:?}");
    let best = (0..3).fold(0, |b, i| if elbo[i] > elbo[b] { i } else { b });
    let state = checkpoint::load_state(&summary.best_checkpoint.unwrap()).unwrap();
    assert_eq!(state.step as f64, steps[best]);
    assert_eq!(state.best_valid_elbo, Some(elbo[best]));
    let newest = checkpoint::load_state(&checkpoint::list(&dir).pop().unwrap()).unwrap();
    // To the bit, through the resume that read it back from state.json.
    assert_eq!(newest.counted_elbo, Some(elbo[0]));
    assert_eq!(newest.epochs_since_best, 2);

    // A moderate one, with the plateau decay: the stop and the decays replayed from the
    // run's own column by the rule as documented.
    let dir = tmp_dir("min-delta-decay");
    let mut config = stops_early(&dir);
    let (delta, patience) = (1.0, 3);
    config.training.min_delta = delta;
    config.training.patience = patience;
    config.optimizer.lr_decay = 0.5;
    config.optimizer.lr_patience = 1;
    train(&config, &quiet()).unwrap();
    let elbo = csv_column(&dir.join("valid.csv"), "elbo");
    let (mut last, mut best) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let (mut since, mut decays, mut stop, mut small) = (0, 0, None, false);
    for (e, &v) in elbo.iter().enumerate() {
        if v > last + delta {
            (last, since) = (v, 0);
        } else {
            (since, decays) = (since + 1, decays + 1);
            // A new best that did not count: without min_delta it would have.
            small |= v > best;
        }
        best = best.max(v);
        if since >= patience {
            stop = Some(e + 1);
            break;
        }
    }
    assert_eq!(Some(elbo.len()), stop, "{elbo:?}");
    assert!(small, "no new best below delta, so nothing shown: {elbo:?}");
    let newest = checkpoint::load_state(&checkpoint::list(&dir).pop().unwrap()).unwrap();
    assert_eq!(newest.lr_decays, decays, "{elbo:?}");
}

/// `training.valid_noise = "fixed"`: every epoch's validation draws the first epoch's
/// noise, so weights that stand still (Adam steps of 1e-30 move no f32 weight by a
/// representable amount where it matters) score the same to the bit every epoch, and a
/// run stops after its patience; the default's fresh noise scores them differently.
#[test]
fn a_fixed_validation_noise_scores_weights_that_stand_still_the_same_every_epoch() {
    use vmf_train::config::ValidNoise;
    let run = |name: &str, noise: ValidNoise, epochs: usize| {
        let dir = tmp_dir(name);
        let mut config = stops_early(&dir);
        config.optimizer.lr = 1e-30;
        config.training.epochs = epochs;
        config.training.valid_noise = noise;
        train(&config, &quiet()).unwrap();
        csv_column(&dir.join("valid.csv"), "elbo")
    };
    let fixed = run("valid-noise-fixed", ValidNoise::Fixed, 40);
    let fresh = run("valid-noise-fresh", ValidNoise::PerEpoch, 3);
    // Patience 2: the first epoch is the best, the next two only tie it.
    assert_eq!(fixed, vec![fixed[0]; 3]);
    assert!(fresh.iter().any(|&v| v != fresh[0]), "{fresh:?}");
    // One trajectory up to the first validation, which both draw with the same noise.
    assert_eq!(fixed[0], fresh[0]);
}

/// Copies a run folder with its checkpoints, recursively.
fn copy_run(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let dest = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_run(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).unwrap();
        }
    }
}

#[test]
fn a_run_stopped_early_continued_under_a_plateau_schedule_is_that_schedule_from_scratch() {
    // scripts/svae_protocol.sh (FROM with LR_DECAY) continues a run that an early stop of
    // patience P ended with --force, lr times the decay and a schedule of lr_patience P:
    // up to that stop the schedule's run from scratch is the same run, and its first
    // decay falls there. The continued run must be that run, byte for byte.
    let stopped_dir = tmp_dir("plateau-stopped");
    let stopped = stops_early(&stopped_dir);
    let first = train(&stopped, &quiet()).unwrap();
    assert!(first.steps < 16 * 40, "stopped early");

    // A power of two: lr * 0.5^k is the same number however the product is grouped.
    let decay = 0.5;
    let scheduled = |dir: &Path, lr: f64| {
        let mut c = stopped.clone();
        c.run_dir = dir.to_path_buf();
        c.optimizer.lr = lr;
        c.optimizer.lr_decay = decay;
        c.optimizer.lr_patience = 2;
        c.training.patience = 4;
        // Past the stop, and short: the schedule's run need not stop before it.
        c.training.epochs = 26;
        c
    };
    let scratch_dir = tmp_dir("plateau-scratch");
    let scratch = train(&scheduled(&scratch_dir, stopped.optimizer.lr), &quiet()).unwrap();
    let forked_dir = tmp_dir("plateau-forked");
    copy_run(&stopped_dir, &forked_dir);
    let forked_config = scheduled(&forked_dir, stopped.optimizer.lr * decay);
    let resume = TrainOptions {
        resume: Some(Resume::Auto),
        ..quiet()
    };
    // Its checkpoints were written under another optimiser config: refused unless forced.
    let err = train(&forked_config, &resume).unwrap_err().to_string();
    assert!(err.contains("different config"), "{err}");
    let forked = train(
        &forked_config,
        &TrainOptions {
            force: true,
            ..resume
        },
    )
    .unwrap();

    assert!(forked.steps > first.steps, "trained on past the stop");
    assert_eq!(forked.steps, scratch.steps);
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    for file in ["valid.csv", "eval.csv"] {
        assert!(
            read(scratch_dir.join(file)) == read(forked_dir.join(file)),
            "{file} differs"
        );
    }
    let (a, b) = (
        scratch.best_checkpoint.unwrap(),
        forked.best_checkpoint.unwrap(),
    );
    assert_eq!(a.file_name(), b.file_name());
    assert!(read(a.join("model.bpk")) == read(b.join("model.bpk")));
    // The schedule decayed where the first run stopped, and the continued run counts
    // that decay in its learning rate instead.
    let decays = |dir: &Path| {
        let newest = checkpoint::list(dir).pop().unwrap();
        checkpoint::load_state(&newest).unwrap().lr_decays
    };
    assert!(decays(&scratch_dir) >= 1);
    assert_eq!(decays(&forked_dir) + 1, decays(&scratch_dir));
}

/// Decoder output for a fixed input, to compare weights bit for bit.
fn fingerprint(checkpoint: &Path) -> Vec<f32> {
    fingerprint_of(checkpoint, vmf_model::KappaMode::Scheduled)
}

/// [`fingerprint`] of a model whose kappa is set by `kappa`, with its ln kappa (the
/// encoder's last layer for a per-example kappa).
fn fingerprint_of(checkpoint: &Path, kappa: vmf_model::KappaMode) -> Vec<f32> {
    use vmf_model::{Posterior, VaeModel};
    let device = burn::tensor::Device::flex();
    let model = ImageVaeConfig {
        kind: ModelKind::Vmf,
        input_dim: 784,
        hidden: vec![64],
        latent_dim: 8,
        blocks: vmf_model::Blocks::one(8),
        loss: ReconLoss::Bernoulli,
        kappa,
        block_kappa_init: Vec::new(),
        conv: None,
    }
    .init(&device);
    let model = model.load_file(checkpoint.join("model.bpk"));
    let x: Vec<f32> = (0..2 * 784)
        .map(|i| ((i * 37) % 255) as f32 / 255.0)
        .collect();
    let x = Tensor::<2>::from_data(TensorData::new(x, [2, 784]), &device);
    let floats = |t: Tensor<2>| t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    let mut out = floats(model.decode(model.locate(x.clone())));
    if let Posterior::Sphere {
        log_kappa: Some(s), ..
    } = model.posterior(&x)
    {
        out.extend(floats(s.reshape([1, 2])));
    }
    out
}

#[test]
fn resume_continues_exactly_also_mid_epoch() {
    // Dynamic binarisation and a moving kappa exercise every random stream and the schedule.
    let extra = "pixels = \"dynamic_binary\"";
    let a_dir = tmp_dir("resume-a");
    let mut a = small_config(&a_dir, extra);
    a.kappa = Some(vmf_train::schedule::Schedule::Linear {
        start: 5.0,
        end: 30.0,
        steps: 50,
    });
    let full = train(&a, &quiet()).unwrap();

    let b_dir = tmp_dir("resume-b");
    let b = TrainConfig {
        run_dir: b_dir.clone(),
        ..a.clone()
    };
    // 27 steps: epoch 2 (of 20 batches each), 7 batches in.
    let first = train(
        &b,
        &TrainOptions {
            stop_at_step: Some(27),
            ..quiet()
        },
    )
    .unwrap();
    assert_eq!(first.steps, 27);
    let state = checkpoint::load_state(&checkpoint::dir(&b_dir).join("step-00000027")).unwrap();
    assert_eq!((state.epoch, state.batch_in_epoch), (1, 7));
    let rest = train(
        &b,
        &TrainOptions {
            resume: Some(Resume::Auto),
            ..quiet()
        },
    )
    .unwrap();
    assert_eq!(rest.steps, full.steps);

    let end = "step-00000060";
    let fa = fingerprint(&checkpoint::dir(&a_dir).join(end));
    let fb = fingerprint(&checkpoint::dir(&b_dir).join(end));
    assert!(
        fa.iter().zip(&fb).all(|(x, y)| x.to_bits() == y.to_bits()),
        "weights differ after resume"
    );
    // And the logs match too (the resumed run drops rows it re-writes).
    for f in ["eval.csv", "metrics.csv"] {
        let strip = |p: &Path| -> Vec<String> {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| l.rsplit_once(',').map_or(l, |x| x.0).to_string())
                .collect()
        };
        let (la, lb) = (strip(&a_dir.join(f)), strip(&b_dir.join(f)));
        if f == "eval.csv" {
            assert_eq!(la, lb);
        } else {
            // Rows minus the throughput column. The interruption logs a partial window
            // (steps 26-27) and the first window after it is 28-30: skip those two.
            let skip = |v: Vec<String>| -> Vec<String> {
                v.into_iter()
                    .filter(|l| !l.starts_with("27,") && !l.starts_with("30,"))
                    .collect()
            };
            assert_eq!(skip(la), skip(lb));
        }
    }
    // A fresh run is not identical to a resumed one by accident: a different seed differs.
    let c_dir = tmp_dir("resume-c");
    let c = TrainConfig {
        run_dir: c_dir.clone(),
        seed: 4,
        training: vmf_train::config::LoopConfig {
            epochs: 1,
            ..a.training.clone()
        },
        ..a.clone()
    };
    train(&c, &quiet()).unwrap();
    let fc = fingerprint(&checkpoint::dir(&c_dir).join("step-00000020"));
    let fa20 = fingerprint(&checkpoint::list(&a_dir)[0]);
    assert_ne!(fc, fa20);
}

#[test]
fn checkpoints_from_another_config_or_corrupt_are_refused_with_a_reason() {
    let dir = tmp_dir("refuse");
    let config = small_config(&dir, "");
    let short = TrainConfig {
        training: vmf_train::config::LoopConfig {
            epochs: 2,
            ..config.training.clone()
        },
        ..config.clone()
    };
    train(&short, &quiet()).unwrap();
    // Another kappa: refused, naming what to do.
    let mut other = config.clone();
    other.kappa = Some(vmf_train::schedule::Schedule::Constant { value: 10.0 });
    let err = train(
        &other,
        &TrainOptions {
            resume: Some(Resume::Auto),
            ..quiet()
        },
    )
    .unwrap_err();
    assert!(matches!(err, TrainError::Checkpoint { .. }));
    assert!(
        err.to_string().contains("different config") && err.to_string().contains("--force"),
        "{err}"
    );
    // The refusal left the run's own config in place.
    assert_eq!(TrainConfig::load(&dir.join("config.toml")).unwrap(), short);
    // A fresh start into the same folder is refused too: it would mix two runs.
    let err = train(&short, &quiet()).unwrap_err().to_string();
    assert!(
        err.contains("already holds a run") && err.contains("--resume auto"),
        "{err}"
    );
    // ... unless forced.
    train(
        &other,
        &TrainOptions {
            resume: Some(Resume::Auto),
            force: true,
            ..quiet()
        },
    )
    .unwrap();

    // Corrupt the newest checkpoint: a named error, and `auto` falls back to the older one.
    let dir2 = tmp_dir("corrupt");
    let c2 = TrainConfig {
        run_dir: dir2.clone(),
        ..short.clone()
    };
    train(&c2, &quiet()).unwrap();
    let newest = checkpoint::list(&dir2).pop().unwrap();
    let model = newest.join("model.bpk");
    let mut bytes = std::fs::read(&model).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&model, bytes).unwrap();
    let err = checkpoint::load_state(&newest).unwrap_err().to_string();
    assert!(
        err.contains("model.bpk") && err.contains("checksum") && err.contains("step-00000040"),
        "{err}"
    );
    let err = train(
        &c2,
        &TrainOptions {
            resume: Some(Resume::Path(newest.clone())),
            ..quiet()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
    let (fallback, state) = checkpoint::newest_valid(&dir2).unwrap();
    assert_eq!(state.step, 20);
    assert!(fallback.ends_with("step-00000020"));
    // And the run goes on from it, even where keep = 1 would prune it as the older of
    // the two: the checkpoint a run resumes from is never pruned before it is read.
    let mut keep1 = c2.clone();
    keep1.checkpoint.keep = 1;
    let s = train(
        &keep1,
        &TrainOptions {
            resume: Some(Resume::Auto),
            ..quiet()
        },
    )
    .unwrap();
    assert_eq!(s.steps, 40);
    let left = checkpoint::list(&dir2);
    assert_eq!(left.len(), 1, "{left:?}");
    checkpoint::load_state(&left[0]).unwrap();
}

#[test]
fn a_diverging_run_stops_with_a_clear_error_and_keeps_its_last_good_checkpoint() {
    let dir = tmp_dir("nan");
    let mut config = small_config(&dir, "");
    config.optimizer.lr = 1e30;
    config.training.log_every = 1;
    config.checkpoint.every_steps = 1;
    let err = train(&config, &quiet()).unwrap_err();
    let TrainError::NonFinite { step, .. } = &err else {
        panic!("expected NonFinite, got {err}")
    };
    let msg = err.to_string();
    assert!(
        msg.contains("optimizer.lr") && msg.contains("last good checkpoint"),
        "{msg}"
    );
    // Every checkpoint that was kept verifies and predates the bad step.
    let kept = checkpoint::list(&dir);
    assert!(!kept.is_empty());
    for c in kept {
        assert!(checkpoint::load_state(&c).unwrap().step < *step);
    }
}

#[test]
fn config_errors_name_the_file_the_key_and_the_reason() {
    let base = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/mnist.toml"),
    )
    .unwrap();
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "latent_dim = 8",
            "latent_dim = 8\ndropout_rate = 0.1",
            &["dropout_rate", "unknown field"],
        ),
        (
            "value = 20.0",
            "value = -1.0",
            &["kappa.value", "-1", "negative"],
        ),
        ("value = 20.0", "value = 2e5", &["kappa.value", "200000"]),
        (
            "latent_dim = 8",
            "latent_dim = 1",
            &["model.latent_dim = 1", "between 2 and 4096"],
        ),
        (
            "batch_size = 100",
            "batch_size = 0",
            &["training.batch_size = 0"],
        ),
        (
            "batch_size = 100",
            "batch_size = 100\nmin_delta = -0.5",
            &["training.min_delta = -0.5", ">= 0"],
        ),
        (
            "batch_size = 100",
            "batch_size = 100\nmin_delta = 0.05",
            &[
                "training.min_delta = 0.05",
                "training.patience",
                "optimizer.lr_decay",
            ],
        ),
        (
            "batch_size = 100",
            "batch_size = 100\nvalid_noise = \"fixed\"",
            &["training.valid_noise = \"fixed\"", "data.validation"],
        ),
        (
            "batch_size = 100",
            "batch_size = 100\nvalid_noise = \"fresh\"",
            &["valid_noise", "fresh", "per-epoch", "fixed"],
        ),
        ("lr = 1e-3", "lr = -0.1", &["optimizer.lr = -0.1"]),
        (
            "lr = 1e-3",
            "lr = 1e-3\nlr_decay = 0.0",
            &["optimizer.lr_decay = 0", "(0, 1]"],
        ),
        (
            "lr = 1e-3",
            "lr = 1e-3\nlr_decay = 0.5",
            &["optimizer.lr_decay = 0.5", "data.validation"],
        ),
        (
            "lr = 1e-3",
            "lr = 1e-3\nlr_factor = { schedule = \"cosine\", start = 1.0, end = 0.0, steps = 9 }",
            &["optimizer.lr_factor.end = 0", "positive"],
        ),
        (
            "lr = 1e-3",
            "lr = 1e-3\nlr_factor = { schedule = \"learned\" }",
            &["optimizer.lr_factor", "plain schedule"],
        ),
        (
            "lr = 1e-3",
            "lr = 1e-3\nclip_norm = 0.0",
            &["optimizer.clip_norm = 0", "positive"],
        ),
        ("beta1 = 0.9", "beta1 = 1.0", &["optimizer.beta1 = 1"]),
        (
            "pixels = \"grey\"",
            "pixels = \"purple\"",
            &["pixels", "unknown variant"],
        ),
        ("keep = 3", "keep = 0", &["checkpoint.keep = 0"]),
        (
            "[kappa]\nschedule = \"constant\"\nvalue = 20.0",
            "",
            &["no [kappa] section", "vMF"],
        ),
        (
            "latent_dim = 8",
            "latent_dim = 8\nkind = \"gaussian\"",
            &["[kappa]", "gaussian", "remove"],
        ),
        (
            "latent_dim = 8",
            "latent_dim = 8\nkl_warmup_steps = 100",
            &["model.kl_warmup_steps = 100", "gaussian"],
        ),
        (
            "latent_dim = 8",
            "latent_dim = 8\nfactors = 3",
            &["model.factors = 3", "latent_dim = 8", "multiple of factors"],
        ),
        (
            "latent_dim = 8",
            "latent_dim = 8\nfactors = 0",
            &["model.factors = 0", "at least 1"],
        ),
        (
            "latent_dim = 8",
            "latent_dim = 8\nfactors = 2",
            &["model.factors = 2", "learned kappa", "per_example"],
        ),
        (
            "latent_dim = 8",
            "latent_dim = 8\nblocks = [5, 2]",
            &["model.blocks = [5, 2]", "sums to 7", "latent_dim = 8"],
        ),
        (
            "latent_dim = 8",
            "latent_dim = 8\nblocks = [7, 1]",
            &["model.blocks = [7, 1]", "block of 1", "at least 2"],
        ),
        (
            "latent_dim = 8",
            "latent_dim = 8\nfactors = 3\nblocks = [6, 2]",
            &["model.blocks = [6, 2]", "2 blocks", "model.factors = 3"],
        ),
        (
            "latent_dim = 8",
            "latent_dim = 8\nblocks = [6, 2]",
            &["model.blocks = [6, 2]", "learned kappa", "per_example"],
        ),
        (
            "latent_dim = 8\nhidden = [256]\nloss = \"bernoulli\"\n\n[kappa]\nschedule = \"constant\"\nvalue = 20.0",
            "latent_dim = 8\nblocks = [6, 2]\nhidden = [256]\nloss = \"bernoulli\"\n\n[kappa]\nschedule = \"per_example\"\nblock_init = [5.0]",
            &[
                "kappa.block_init",
                "1 starting kappas",
                "2 blocks",
                "[6, 2]",
            ],
        ),
        (
            "schedule = \"constant\"\nvalue = 20.0",
            "schedule = \"per_example\"\nblock_init = [5.0, 50.0]",
            &["kappa.block_init", "product of spheres"],
        ),
        (
            "latent_dim = 8\nhidden = [256]\nloss = \"bernoulli\"\n\n[kappa]\nschedule = \"constant\"\nvalue = 20.0",
            "latent_dim = 8\nkind = \"gaussian\"\nfactors = 2\nhidden = [256]\nloss = \"bernoulli\"\n",
            &["model.factors = 2", "on the sphere", "model.kind"],
        ),
        (
            "shards = 2",
            "shards = 101",
            &["training.shards = 101", "training.batch_size = 100"],
        ),
        (
            "schedule = \"constant\"\nvalue = 20.0",
            "schedule = \"piecewise\"\nsteps = [0, 10]\nvalues = [1.0]",
            &["piecewise"],
        ),
        (
            "schedule = \"constant\"\nvalue = 20.0",
            "schedule = \"kl_target\"\nkl = { schedule = \"constant\", value = 1e7 }",
            &["kappa.kl.value", "nats"],
        ),
        (
            "epochs = 50",
            "epochs = \"many\"",
            &["epochs", "invalid type"],
        ),
        (
            "run_dir = \"runs/mnist\"",
            "run_dir = \"\"",
            &["run_dir is empty"],
        ),
        (
            "hidden = [256]",
            "hidden = [256]\nchannels = [8]",
            &["model.channels", "model.arch = \"conv\""],
        ),
        (
            "hidden = [256]",
            "hidden = [256]\narch = \"conv\"\nchannels = [8, 0]",
            &["model.channels = [8, 0]", "positive"],
        ),
        (
            "hidden = [256]",
            "hidden = [256]\narch = \"transformer\"",
            &["arch", "unknown variant"],
        ),
        (
            "pixels = \"grey\"",
            "pixels = \"grey\"\nsize = [32, 32]",
            &["data.size", "image_folder"],
        ),
        (
            "dataset = \"mnist\"",
            "dataset = \"image_folder\"",
            &["needs data.dir"],
        ),
        (
            "dataset = \"mnist\"",
            "dataset = \"image_folder\"\ndir = \"x\"\ntest_fraction = 1.5",
            &["data.test_fraction = 1.5"],
        ),
        (
            "dataset = \"mnist\"",
            "dataset = \"image_folder\"\ndir = \"x\"\nchannels = 2",
            &["data.channels = 2", "1 (grey) or 3 (RGB)"],
        ),
    ];
    for (from, to, needles) in cases {
        assert!(base.contains(from), "{from}");
        let text = base.replacen(from, to, 1);
        let err = TrainConfig::parse(&text, Path::new("configs/broken.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("configs/broken.toml"), "{err}");
        for n in *needles {
            assert!(err.contains(n), "expected {n:?} in: {err}");
        }
    }
    // Conv layers that the images' size cannot halve are refused at load.
    let conv = base.replacen(
        "hidden = [256]",
        "hidden = [256]\narch = \"conv\"\nchannels = [8, 8, 8]",
        1,
    );
    let c = TrainConfig::parse(&conv, Path::new("conv.toml")).unwrap();
    let err = match <Images as DataKind>::load(&c) {
        Ok(_) => panic!("28x28 with three stride-2 layers was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("model.channels = [8, 8, 8]") && err.contains("divisible by 8"),
        "{err}"
    );
    let err = TrainConfig::load(Path::new("no-such-config.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no-such-config.toml") && err.contains("cannot read"),
        "{err}"
    );
    // Every documented default applies per key, not only per section.
    let partial = base
        .replacen(
            "lr = 1e-3\nbeta1 = 0.9\nbeta2 = 0.999\neps = 1e-8",
            "lr = 5e-4",
            1,
        )
        .replacen("every_steps = 0\nkeep = 3", "keep = 5", 1);
    let c = TrainConfig::parse(&partial, Path::new("partial.toml")).unwrap();
    assert_eq!(
        (
            c.optimizer.lr,
            c.optimizer.beta1,
            c.optimizer.beta2,
            c.optimizer.eps
        ),
        (5e-4, 0.9, 0.999, 1e-8)
    );
    assert_eq!((c.checkpoint.every_steps, c.checkpoint.keep), (0, 5));
    // Every shipped config parses.
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    for entry in std::fs::read_dir(&configs).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            TrainConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

#[test]
fn max_steps_alone_bounds_a_run_and_leaves_a_checkpoint_there() {
    let dir = tmp_dir("max-steps");
    let mut config = small_config(&dir, "");
    config.training.epochs = 0;
    config.training.max_steps = Some(27);
    let s = train(&config, &quiet()).unwrap();
    assert_eq!(s.steps, 27);
    let (_, state) = checkpoint::newest_valid(&dir).unwrap();
    assert_eq!((state.step, state.epoch, state.batch_in_epoch), (27, 1, 7));
}

#[test]
fn gradient_clipping_logs_the_norm_changes_nothing_below_it_and_acts_above() {
    // Ten steps three ways: without clipping, with a threshold far above every norm
    // (bit-identical weights), and with one below them (other weights).
    let run = |name: &str, clip: Option<f64>| {
        let dir = tmp_dir(name);
        let mut config = small_config(&dir, "");
        config.training.epochs = 0;
        config.training.max_steps = Some(10);
        config.optimizer.clip_norm = clip;
        train(&config, &quiet()).unwrap();
        let (checkpoint, _) = checkpoint::newest_valid(&dir).unwrap();
        (dir, fingerprint(&checkpoint))
    };
    let (plain_dir, plain) = run("clip-none", None);
    let (high_dir, high) = run("clip-high", Some(1e6));
    let norms = csv_column(&high_dir.join("metrics.csv"), "grad_norm");
    assert_eq!(norms.len(), 2, "one per window of log_every = 5 steps");
    assert!(norms.iter().all(|n| n.is_finite() && *n > 0.0), "{norms:?}");
    assert_eq!(
        high, plain,
        "a threshold above every norm leaves the run as it was"
    );
    let header = std::fs::read_to_string(plain_dir.join("metrics.csv")).unwrap();
    assert!(!header.lines().next().unwrap().contains("grad_norm"));

    let low = norms.iter().cloned().fold(f64::INFINITY, f64::min) / 10.0;
    let (_, clipped) = run("clip-low", Some(low));
    assert_ne!(clipped, plain, "clipping at {low} changed no weight");
}

#[test]
fn a_learning_rate_factor_scales_the_rate_from_its_step_on() {
    // Two oracles without the loop's bookkeeping: lr 2e-3 times a constant factor 0.5
    // is lr 1e-3 exactly in f64, so the weights are bit for bit a plain 1e-3 run's;
    // a piecewise factor of 1, then 1e-30 from step 4, leaves after 8 steps the weights
    // of a plain 4-step run (Adam's steps of ~1e-33 vanish in f32), where a plain
    // 8-step run has moved on.
    use vmf_train::schedule::Schedule;
    let run = |name: &str, lr: f64, factor: Option<Schedule>, steps: u64| {
        let dir = tmp_dir(name);
        let mut config = small_config(&dir, "");
        config.training.epochs = 0;
        config.training.max_steps = Some(steps);
        config.optimizer.lr = lr;
        config.optimizer.lr_factor = factor;
        train(&config, &quiet()).unwrap();
        fingerprint(&checkpoint::newest_valid(&dir).unwrap().0)
    };
    let halved = run("lr-half", 2e-3, Some(Schedule::Constant { value: 0.5 }), 6);
    assert_eq!(halved, run("lr-plain", 1e-3, None, 6));
    assert_ne!(
        halved,
        run("lr-double", 2e-3, None, 6),
        "the factor did nothing"
    );

    let stop_at_4 = Schedule::Piecewise {
        steps: vec![0, 4],
        values: vec![1.0, 1e-30],
    };
    let stopped = run("lr-stop", 1e-3, Some(stop_at_4), 8);
    let (four, eight) = (run("lr-4", 1e-3, None, 4), run("lr-8", 1e-3, None, 8));
    let gap = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    };
    assert!(gap(&stopped, &four) < 1e-6, "{}", gap(&stopped, &four));
    assert!(gap(&eight, &four) > 1e-4, "{}", gap(&eight, &four));
}

#[test]
fn a_learned_kappa_moves_logs_its_spread_and_resumes_exactly() {
    // Per example: the KL enters the loss, each window logs ln kappa's mean, min and
    // max, the evaluation reports them, and an interrupted run resumes bit for bit.
    let kappa = "[kappa]\nschedule = \"per_example\"\ninit = 20.0\nmin = 1.0\nmax = 1000.0\n";
    let config = |dir: &Path| {
        let mut c = small_config(dir, "");
        let text = c.to_toml();
        let text = text.replace("[kappa]\nschedule = \"constant\"\nvalue = 20.0\n", kappa);
        c = TrainConfig::parse(&text, Path::new("learned.toml")).unwrap();
        c.run_dir = dir.to_path_buf();
        c
    };
    let a_dir = tmp_dir("learned-a");
    let a = config(&a_dir);
    assert!(a.kappa.as_ref().unwrap().is_learned(), "{:?}", a.kappa);
    let full = train(&a, &quiet()).unwrap();
    let metrics = a_dir.join("metrics.csv");
    let (lo, hi) = (
        csv_column(&metrics, "log_kappa_min"),
        csv_column(&metrics, "log_kappa_max"),
    );
    let mean = csv_column(&metrics, "log_kappa_mean");
    assert!(
        (0..mean.len()).all(|i| lo[i] < mean[i] && mean[i] < hi[i] && hi[i] < 1000f64.ln()),
        "a kappa per example: {lo:?} {mean:?} {hi:?}"
    );
    // It starts at init and changes; the KL changes with it (a scheduled vMF's is
    // constant).
    assert!((mean[0] - 20f64.ln()).abs() < 0.3, "{mean:?}");
    assert!((mean[mean.len() - 1] - mean[0]).abs() > 0.01, "{mean:?}");
    let kl = csv_column(&metrics, "kl");
    assert!(kl.windows(2).all(|w| w[0] != w[1]), "{kl:?}");
    let kappa_column = csv_column(&metrics, "kappa");
    assert!((kappa_column[3] - mean[3].exp()).abs() < 1e-9 * kappa_column[3]);
    let e = full.last_eval.unwrap();
    let spread = e.log_kappa.expect("the evaluation reports a learned kappa");
    assert!(
        spread.min < spread.mean && spread.mean < spread.max,
        "{spread:?}"
    );
    assert!((e.elbo + e.recon_sampled + e.kl).abs() < 1e-9);
    let loss = csv_column(&metrics, "loss");
    assert!(loss[loss.len() - 1] < 0.75 * loss[0], "learns: {loss:?}");
    assert_eq!(
        csv_column(&a_dir.join("eval.csv"), "log_kappa_mean").len(),
        3
    );

    let b_dir = tmp_dir("learned-b");
    let b = config(&b_dir);
    let stop = TrainOptions {
        stop_at_step: Some(27),
        ..quiet()
    };
    train(&b, &stop).unwrap();
    let resume = TrainOptions {
        resume: Some(Resume::Auto),
        ..quiet()
    };
    assert_eq!(train(&b, &resume).unwrap().steps, full.steps);
    let end = "step-00000060";
    let mode = a.kappa_mode();
    let fa = fingerprint_of(&checkpoint::dir(&a_dir).join(end), mode);
    let fb = fingerprint_of(&checkpoint::dir(&b_dir).join(end), mode);
    assert_eq!(fa.len(), 2 * 784 + 2, "with each example's ln kappa");
    assert!(
        fa.iter().zip(&fb).all(|(x, y)| x.to_bits() == y.to_bits()),
        "weights differ after resume"
    );
    assert_eq!(
        std::fs::read_to_string(a_dir.join("eval.csv")).unwrap(),
        std::fs::read_to_string(b_dir.join("eval.csv")).unwrap()
    );

    // One kappa for the model: the same on every row, and learned too.
    let g_dir = tmp_dir("learned-global");
    let mut g = config(&g_dir);
    g.kappa = Some(vmf_train::schedule::Schedule::Learned(
        vmf_train::schedule::LearnedKappa {
            init: 20.0,
            min: 1.0,
            max: 1000.0,
            block_init: Vec::new(),
        },
    ));
    g.training.epochs = 1;
    // One step a row: min and max over a window of one step.
    g.training.log_every = 1;
    train(&g, &quiet()).unwrap();
    let metrics = g_dir.join("metrics.csv");
    let (lo, hi) = (
        csv_column(&metrics, "log_kappa_min"),
        csv_column(&metrics, "log_kappa_max"),
    );
    assert!(lo.iter().zip(&hi).all(|(a, b)| a == b), "{lo:?} {hi:?}");
    assert!((hi[hi.len() - 1] - hi[0]).abs() > 1e-3, "it moves: {hi:?}");
}

#[test]
fn a_folder_without_a_usable_checkpoint_starts_over_or_says_what_to_do() {
    let resume = || TrainOptions {
        resume: Some(Resume::Auto),
        ..quiet()
    };
    let dir = tmp_dir("start-over");
    let mut config = small_config(&dir, "");
    config.training.epochs = 1;
    // Killed before its first checkpoint: the config and two rows of a step no
    // checkpoint holds (one cut short).
    std::fs::create_dir_all(&dir).unwrap();
    let rows = "step,epoch,kappa,kl,loss,elbo,images_per_sec\n5,0,20,4.4,500,-504,1\n10,0,2";
    std::fs::write(dir.join("metrics.csv"), rows).unwrap();
    // Another config there: refused, naming its file and how to go on; nothing touched.
    let mut other = config.clone();
    other.seed = 9;
    std::fs::write(dir.join("config.toml"), other.to_toml()).unwrap();
    let err = train(&config, &resume()).unwrap_err().to_string();
    assert!(
        err.contains("config.toml") && err.contains("another config") && err.contains("--config"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("metrics.csv")).unwrap(),
        rows
    );
    // Its own config: the run starts over in place, its rows replaced.
    std::fs::write(dir.join("config.toml"), config.to_toml()).unwrap();
    let s = train(&config, &resume()).unwrap();
    assert_eq!(s.steps, 20);
    assert_eq!(
        csv_column(&dir.join("metrics.csv"), "step"),
        [5.0, 10.0, 15.0, 20.0]
    );

    // Every checkpoint corrupt: refused with what to do, the checkpoint kept.
    let only = checkpoint::list(&dir).pop().unwrap();
    std::fs::write(only.join("model.bpk"), b"not a model").unwrap();
    let err = train(&config, &resume()).unwrap_err().to_string();
    assert!(
        err.contains("model.bpk")
            && err.contains("no checkpoint of")
            && err.contains("remove")
            && err.contains("--run-dir"),
        "{err}"
    );
    assert!(only.join("model.bpk").exists());
}

#[path = "common/faults.rs"]
mod faults;

#[test]
fn an_image_run_survives_a_kill_at_every_write() {
    // Two epochs of four steps, a checkpoint every two (so one falls on an epoch's last
    // batch, before its evaluation), two kept (pruning), a learned kappa per example,
    // validation, importance-sampled NLL and pictures: every kind of write an image run
    // makes.
    let work = tmp_dir("faults");
    let config = r#"
seed = 5
run_dir = "unused"
[data]
dataset = "mnist"
pixels = "dynamic_binary"
train_limit = 300
test_limit = 40
validation = 100
[model]
latent_dim = 4
hidden = [16]
[kappa]
schedule = "per_example"
init = 10.0
[training]
epochs = 2
batch_size = 50
log_every = 1
eval_samples = 2
eval_batch_size = 50
images = true
shards = 1
[checkpoint]
every_steps = 2
keep = 2
"#;
    let writes = faults::every_write_survives_a_kill(&work, config);
    // config.toml (2), 8 rows, 4 checkpoints of 4 and 2 prunings, 2 x (eval, valid, 2
    // pictures x 2): 40 today.
    assert!(writes >= 30, "only {writes} writes were seen");
}

#[test]
fn the_power_spherical_trains_through_the_same_loop_with_its_own_kl() {
    // model.kind = "power_spherical": the vMF's head, schedules and sampler seam with
    // another law of <mu, z>. Its constant KL is the closed form's (checked against
    // mpmath in vmf-core), a KL budget gives the Power Spherical's kappa (not the
    // vMF's), the importance-sampled log-likelihood with K = 1 is the ELBO and rises
    // with K, and a kappa per example learns.
    use vmf_core::Family;
    let ps = Family::PowerSpherical;
    let config = |dir: &Path, kappa: &str| {
        let text = small_config(dir, "").to_toml();
        let text = text
            .replace("[model]\n", "[model]\nkind = \"power_spherical\"\n")
            .replace("[kappa]\nschedule = \"constant\"\nvalue = 20.0\n", kappa);
        let mut c = TrainConfig::parse(&text, Path::new("ps.toml")).unwrap();
        c.run_dir = dir.to_path_buf();
        c.training.epochs = 2;
        c
    };
    let fixed = tmp_dir("ps-fixed");
    train(
        &config(&fixed, "[kappa]\nschedule = \"constant\"\nvalue = 20.0\n"),
        &quiet(),
    )
    .unwrap();
    let loss = csv_column(&fixed.join("metrics.csv"), "loss");
    assert!(loss[loss.len() - 1] < 0.8 * loss[0], "{loss:?}");
    let want = ps.kl(8, 20.0).unwrap();
    assert!(want < vmf_core::kl_to_uniform(8, 20.0).unwrap() - 0.5);
    for kl in csv_column(&fixed.join("eval.csv"), "kl") {
        assert!((kl - want).abs() < 1e-5 * want, "KL {kl} vs {want}");
    }
    let ckpt = checkpoint::list(&fixed).pop().unwrap();
    let (k1, k50) = (
        evaluate_checkpoint(&ckpt, 1, 3, None).unwrap(),
        evaluate_checkpoint(&ckpt, 50, 3, None).unwrap(),
    );
    assert!(
        (k1.log_likelihood - k1.metrics.elbo).abs() < 0.5,
        "LL_1 {} vs ELBO {}",
        k1.log_likelihood,
        k1.metrics.elbo
    );
    assert!(
        k50.log_likelihood > k1.log_likelihood + 1.0,
        "{} vs {}",
        k50.log_likelihood,
        k1.log_likelihood
    );

    let budget = tmp_dir("ps-budget");
    let kl_target =
        "[kappa]\nschedule = \"kl_target\"\nkl = { schedule = \"constant\", value = 5.0 }\n";
    train(&config(&budget, kl_target), &quiet()).unwrap();
    let kappa = csv_column(&budget.join("metrics.csv"), "kappa");
    let want = ps.kappa_for_kl(8, 5.0).unwrap();
    assert!(
        kappa.iter().all(|&k| (k - want).abs() < 1e-9 * want),
        "{kappa:?} vs {want}"
    );
    assert!((want - vmf_core::kappa_for_kl(8, 5.0).unwrap()).abs() > 1.0);

    let learned = tmp_dir("ps-learned");
    let per_example = "[kappa]\nschedule = \"per_example\"\ninit = 20.0\nmin = 1.0\nmax = 1000.0\n";
    train(&config(&learned, per_example), &quiet()).unwrap();
    let (lo, hi) = (
        csv_column(&learned.join("eval.csv"), "log_kappa_min"),
        csv_column(&learned.join("eval.csv"), "log_kappa_max"),
    );
    assert!(lo.iter().zip(&hi).all(|(a, b)| a < b), "{lo:?} {hi:?}");
}

#[cfg(feature = "mpi")]
#[path = "common/mpi.rs"]
mod mpi;

/// The config of the MPI tests: 3 epochs of 100 steps (batch 20), validation,
/// importance-sampled NLL, a learned kappa per example, pictures, a checkpoint every
/// 10 steps; `shards` per process.
#[cfg(feature = "mpi")]
fn mpi_config(work: &Path, shards: usize) -> PathBuf {
    let path = work.join(format!("shards-{shards}.toml"));
    let text = format!(
        r#"
seed = 9
run_dir = "unused"
[data]
dataset = "mnist"
pixels = "dynamic_binary"
train_limit = 2000
test_limit = 40
validation = 60
[model]
latent_dim = 4
hidden = [32]
[kappa]
schedule = "per_example"
init = 10.0
[training]
epochs = 3
batch_size = 20
log_every = 7
eval_samples = 2
eval_batch_size = 50
images = true
shards = {shards}
[checkpoint]
every_steps = 10
keep = 2
"#
    );
    std::fs::create_dir_all(work).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

/// `mpirun -np 2 train` equals one process with `shards = 2`, file for file and bit
/// for bit (every weight, moment, CSV row, picture); a checkpoint of either resumes on
/// the other to the same end.
#[cfg(feature = "mpi")]
#[test]
fn two_mpi_ranks_train_as_two_shards_and_resume_across_rank_counts() {
    if !mpi::available() {
        return;
    }
    let work = tmp_dir("mpi");
    let (per_rank, one) = (mpi_config(&work, 1), mpi_config(&work, 2));
    let want = mpi::one_process_and_two_ranks(&work, &per_rank, &one, true);

    // Two ranks stopped at step 35 (a logged step: the rows stay the same), one process
    // resumes; and the reverse.
    let a = work.join("ranks-then-one");
    let o = mpi::train_ranks(2, &per_rank, &a, &["--max-steps", "35"]);
    assert!(o.status.success(), "{}", mpi::said(&o));
    let o = mpi::train(&one, &a, &["--resume", "auto"]);
    assert!(o.status.success(), "{}", mpi::said(&o));
    mpi::assert_same_run(&a, &want);
    let b = work.join("one-then-ranks");
    let o = mpi::train(&one, &b, &["--max-steps", "35"]);
    assert!(o.status.success(), "{}", mpi::said(&o));
    let o = mpi::train_ranks(2, &per_rank, &b, &["--resume", "auto"]);
    assert!(o.status.success(), "{}", mpi::said(&o));
    mpi::assert_same_run(&b, &want);
    let _ = std::fs::remove_dir_all(&work);
}

/// A rank killed with SIGKILL ends the job (no rank waits for it forever), the
/// checkpoints already written stay, and `--resume auto` on two ranks ends as the
/// uninterrupted run does; ranks started with different configs are refused before
/// anything is written.
#[cfg(feature = "mpi")]
#[test]
fn a_killed_rank_ends_the_job_and_ranks_of_different_configs_are_refused() {
    if !mpi::available() {
        return;
    }
    let work = tmp_dir("mpi-kill");
    let (per_rank, one) = (mpi_config(&work, 1), mpi_config(&work, 2));
    let want = mpi::one_process_and_two_ranks(&work, &per_rank, &one, false);

    for victim in [1, 0] {
        let run = work.join(format!("killed-{victim}"));
        let o = mpi::kill_a_rank(2, victim, &per_rank, &run);
        assert!(!o.status.success(), "{}", mpi::said(&o));
        assert!(!checkpoint::list(&run).is_empty());
        let o = mpi::train_ranks(2, &per_rank, &run, &["--resume", "auto"]);
        assert!(o.status.success(), "{}", mpi::said(&o));
        mpi::assert_same_run(&run, &want);
    }

    // Rank 1 with another seed: refused by name, nothing written.
    let other = work.join("other.toml");
    let text = std::fs::read_to_string(&per_rank).unwrap();
    std::fs::write(&other, text.replace("seed = 9", "seed = 10")).unwrap();
    let run = work.join("mismatch");
    let o = mpi::mpirun(1)
        .args(mpi::train_args(&per_rank, &run, &[]))
        .arg(":")
        .args(["-np", "1"])
        .args(mpi::train_args(&other, &run, &[]))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let said = mpi::said(&o);
    assert!(
        said.contains("not started alike") && said.contains("config (ranks 1 differ"),
        "{said}"
    );
    for same in ["options (ranks", "data (ranks", "binary (ranks"] {
        assert!(!said.contains(same), "{said}");
    }
    assert!(!run.exists(), "the refused job wrote {}", run.display());
    let _ = std::fs::remove_dir_all(&work);
}
