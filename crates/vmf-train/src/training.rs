//! The training loop: Adam on the reconstruction loss, kappa from the schedule,
//! seeded counter-based randomness, metrics, checkpoints and exact resume. It is
//! written once for every data kind ([`crate::modality::DataKind`]): batches, model
//! and per-epoch outputs come from the kind, and nothing here asks which it is.
//!
//! All randomness is drawn on the host from counter-based seeds ([`crate::seeds`]),
//! so a run is bit-reproducible, resumes exactly, and gives the same trajectory on
//! every backend up to floating-point differences of the kernels.

use std::fs;
use std::path::PathBuf;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::Tensor;
use indicatif::{ProgressBar, ProgressStyle};
use vmf_model::{Rows, VaeModel, VmfReparam};

use crate::backend::{self, Backend};
use crate::checkpoint::{self, MODEL_FILE, OPTIM_FILE, TrainState};
use crate::config::TrainConfig;
use crate::durable;
use crate::error::TrainError;
use crate::evaluation::{EvalCuts, EvalMetrics, evaluate, log_likelihood};
use crate::latent_stats::{collect_codes, latent_stats};
use crate::modality::{self, DataKind, Split, WithKind};
use crate::optim;
use crate::output;
use crate::run_folder::{self, Start};
use crate::schedule::Schedule;
use crate::seeds;
use crate::seeds::HostNoise;
use crate::step;

/// Where to resume from.
#[derive(Debug, Clone, PartialEq)]
pub enum Resume {
    /// The newest valid checkpoint of the run folder (a fresh start if there is none).
    Auto,
    /// This checkpoint folder.
    Path(PathBuf),
}

/// Options of one invocation (not part of the config).
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Resume instead of starting fresh.
    pub resume: Option<Resume>,
    /// Resume even if the checkpoint's config hash differs.
    pub force: bool,
    /// Stop (with a checkpoint) once this many steps are done in total: an interruption.
    pub stop_at_step: Option<u64>,
    /// Show progress bars.
    pub progress: bool,
    /// The backend to train on (default: [`Backend::default_compiled`]).
    pub backend: Option<Backend>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Steps done in total.
    pub steps: u64,
    /// Mean training loss of the last logged window.
    pub last_loss: Option<f64>,
    /// Evaluation after the last completed epoch.
    pub last_eval: Option<EvalMetrics>,
    /// The last checkpoint written.
    pub last_checkpoint: Option<PathBuf>,
    /// The checkpoint with the best validation ELBO (with `data.validation`).
    pub best_checkpoint: Option<PathBuf>,
    /// Training throughput over the run (units per second, steps only).
    pub units_per_sec: f64,
    /// What throughput counts (`images`, `tokens`).
    pub units: &'static str,
}

/// Trains as configured; docs/usage.md describes the run folder it fills.
pub fn train(config: &TrainConfig, opts: &TrainOptions) -> Result<TrainSummary, TrainError> {
    config.validate().map_err(|message| TrainError::Config {
        file: "(in memory)".into(),
        message,
    })?;
    modality::dispatch(config, Train { config, opts })
}

struct Train<'a> {
    config: &'a TrainConfig,
    opts: &'a TrainOptions,
}

impl WithKind for Train<'_> {
    type Output = Result<TrainSummary, TrainError>;

    fn run<K: DataKind>(self) -> Self::Output {
        train_kind::<K>(self.config, self.opts)
    }
}

/// The loop, for data kind `K`.
fn train_kind<K: DataKind>(
    config: &TrainConfig,
    opts: &TrainOptions,
) -> Result<TrainSummary, TrainError> {
    let run_dir = config.run_dir.clone();
    let backend = opts.backend.unwrap_or_else(Backend::default_compiled);
    let device = backend.device()?;
    let ad = device.clone().autodiff();
    eprintln!("{}", backend::describe(backend, &device));

    let mut kind = K::load(config)?;
    let learned = config.kappa.as_ref().is_some_and(Schedule::is_learned);
    let clip = config.optimizer.clip_norm;
    let train_header = output::train_header(K::UNITS, learned, clip.is_some());
    let is_samples = config.training.eval_samples;
    let eval_header = output::eval_header(
        K::PER_UNIT,
        K::LATENT_STATS,
        K::ACCURACY,
        learned,
        is_samples > 0,
    );
    let valid_header = output::eval_header(K::PER_UNIT, false, false, learned, false);

    let d = config.model.latent_dim;
    // Initialised on the host device from the seed, then moved: the same initial
    // weights on every backend.
    let mut model: K::Model = {
        // Burn's initialisers draw from the device RNG, one stream per device and
        // process: hold it while seeding and drawing, against concurrent runs.
        static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
        let init_device = backend.host_device()?.autodiff();
        init_device.seed(seeds::derive(config.seed, "init", 0));
        // Parameters initialise lazily (a to_device would move the initialiser, not
        // the values): take the record to draw them here, then load it on `ad`.
        let record = kind.init_model(config, &init_device).into_record();
        kind.init_model(config, &ad)
            .try_load_record(record)
            .map_err(|e| {
                TrainError::Backend(format!("moving the initial weights to {backend}: {e}"))
            })?
            .map(&mut checkpoint::StableParamIds::default())
    };
    let o = &config.optimizer;
    let mut optim = optim::adam(o);
    let hash = config.identity_hash();
    let mut state = TrainState {
        step: 0,
        epoch: 0,
        batch_in_epoch: 0,
        kappa: match config.kappa.as_ref() {
            Some(k) => k.value_at(0, d)?,
            None => 0.0,
        },
        config_hash: hash.clone(),
        model_sha256: String::new(),
        optim_sha256: String::new(),
        best_valid_elbo: None,
        best_step: None,
        epochs_since_best: 0,
        lr_decays: 0,
    };

    let resume_from = match run_folder::open(&run_dir, config, opts.resume.as_ref(), opts.force)? {
        Start::Fresh => None,
        Start::Checkpoint(path, st) => Some((path, st)),
    };
    let mut last_checkpoint = None;
    if let Some((path, st)) = resume_from {
        let bad = |e: String| TrainError::Checkpoint {
            path: path.clone(),
            message: e,
        };
        model = K::load_weights(model, &path.join(MODEL_FILE))
            .map_err(|e| bad(format!("model: {e}")))?;
        optim = optim::adam(o)
            .load(path.join(OPTIM_FILE))
            .map_err(|e| bad(format!("optimiser: {e}")))?;
        eprintln!(
            "resuming from {} at step {} (epoch {}, batch {})",
            path.display(),
            st.step,
            st.epoch,
            st.batch_in_epoch
        );
        // Rows of the steps the checkpoint holds: training rows up to its step, and
        // evaluation rows of the epochs it completed (a checkpoint at an epoch's last
        // batch, which older versions wrote, precedes that epoch's evaluation rows,
        // which carry the same step).
        let trained = |row: &str| output::csv_field::<u64>(row, 0).is_none_or(|s| s <= st.step);
        let evaluated = |row: &str| {
            trained(row) && output::csv_field::<usize>(row, 1).is_none_or(|e| e <= st.epoch)
        };
        output::resume_csv(&run_dir.join("metrics.csv"), &train_header, trained)?;
        output::resume_csv(&run_dir.join("eval.csv"), &eval_header, evaluated)?;
        output::resume_csv(&run_dir.join("valid.csv"), &valid_header, evaluated)?;
        state = TrainState {
            config_hash: hash.clone(),
            ..st
        };
        last_checkpoint = Some(path);
    }

    // Written only now: a refused resume must leave the run's own config in place.
    kind.check_run_folder(&run_dir, last_checkpoint.is_some())?;
    fs::create_dir_all(&run_dir).map_err(TrainError::io("creating", &run_dir))?;
    durable::replace(&run_dir.join("config.toml"), config.to_toml().as_bytes())?;

    kind.upload_training(&ad);
    let test_x = kind
        .eval_batches(Split::Test, config.seed, &device)
        .expect("every data kind has a test split");
    let valid_x = kind.eval_batches(
        Split::Validation,
        seeds::derive(config.seed, "valid", 0),
        &device,
    );
    let eval_rows = config.training.eval_batch_size;
    let per_call = |b: &_| kind.rows_per_call(b);
    let cuts = EvalCuts {
        max_rows: eval_rows,
        rows_per_call: &per_call,
        units: &K::units,
    };
    let max_steps = config.training.max_steps.unwrap_or(u64::MAX);
    let stop_at = opts.stop_at_step.unwrap_or(u64::MAX).min(max_steps);
    // The vMF tables (None for the Gaussian model).
    let mut reparam = match config.kappa.as_ref() {
        Some(k) => Some(VmfReparam::for_mode(
            d,
            config.kappa_mode(),
            k.value_at(state.step, d)?,
            &ad,
        )?),
        None => None,
    };
    let log_every = config.training.log_every;
    let mut kl_memo = None;

    // The steps' figures (step::combine) merged, read back every log_every steps.
    let mut window: Option<Tensor<1>> = None;
    // With clipping: the steps' gradient norms (before clipping) summed, read with it.
    let mut norm_window: Option<Tensor<1>> = None;
    let (mut window_steps, mut window_units) = (0u64, 0u64);
    let mut window_start = Instant::now();
    let (mut trained_units, mut train_secs) = (0u64, 0.0f64);
    let mut last_loss = None;
    let mut last_ips = 0.0;
    let mut last_kl = f64::NAN;
    let mut last_eval = None;

    let save = |model: &K::Model, optim: &burn::optim::ModuleOptimizer, state: &TrainState| {
        checkpoint::save(&run_dir, state.clone(), config.checkpoint.keep, |tmp| {
            model
                .clone()
                .save_file(tmp.join(MODEL_FILE))
                .map_err(|e| e.to_string())?;
            optim.save(tmp.join(OPTIM_FILE)).map_err(|e| e.to_string())
        })
    };

    // epochs = 0 means no epoch limit (max_steps decides; validation requires one of them).
    let epochs = match config.training.epochs {
        0 => usize::MAX,
        e => e,
    };
    // A run that stopped early stays stopped when resumed.
    let (patience, burn_in) = (config.training.patience, config.training.burn_in);
    let stopped_early =
        |st: &TrainState| patience > 0 && st.epochs_since_best >= patience && st.epoch >= burn_in;
    'epochs: while state.epoch < epochs && state.step < stop_at && !stopped_early(&state) {
        let plan = kind.epoch(config.seed, state.epoch, &ad);
        let per_epoch = K::batches(&plan);
        let bar = progress_bar(opts.progress, per_epoch, state.epoch);
        bar.set_position(state.batch_in_epoch as u64);
        while state.batch_in_epoch < per_epoch {
            if state.step >= stop_at {
                bar.abandon();
                break 'epochs;
            }
            let mut noise = HostNoise::new(config.seed, "step", state.step);
            // A learned kappa: the geometric mean of the last logged window.
            let kappa = match (config.kappa.as_ref(), reparam.as_mut()) {
                (Some(_), Some(_)) if learned => state.kappa,
                (Some(k), Some(r)) => {
                    let kappa = k.kappa_at(state.step, d, &mut kl_memo)?;
                    r.set_kappa(kappa)?;
                    kappa
                }
                _ => 0.0,
            };
            let beta = config.kl_weight(state.step);
            let x = kind.train_batch(&plan, state.batch_in_epoch, &mut noise, &ad);
            let rows = x.rows();
            let latent = noise.latent(rows, d, &ad);
            let shards = config.training.shards.min(rows);
            let (reports, grads) = step::gradients(&model, rows, shards, |m, part| {
                let xs = x.slice_rows(part.clone());
                step::vae_sums(m, &xs, latent.rows(part), reparam.as_ref(), beta)
            });
            let figures = step::combine(reports, rows);
            window = Some(match window.take() {
                Some(w) => step::merge(w, figures),
                None => figures,
            });
            let grads = match clip {
                Some(max_norm) => {
                    let (grads, norm) = optim::clip_global_norm(&model, grads, max_norm);
                    if let Some(n) = norm {
                        norm_window = Some(match norm_window.take() {
                            Some(w) => w + n,
                            None => n,
                        });
                    }
                    grads
                }
                None => grads,
            };
            model = optim.step(o.lr_after(state.lr_decays), model, grads);
            state.step += 1;
            state.batch_in_epoch += 1;
            if !learned {
                state.kappa = kappa;
            }
            window_steps += 1;
            window_units += K::units(&x) as u64;

            let checkpoint_due = config.checkpoint.every_steps > 0
                && state.step.is_multiple_of(config.checkpoint.every_steps);
            if state.step.is_multiple_of(log_every)
                || checkpoint_due
                || state.step >= stop_at
                || state.batch_in_epoch == per_epoch
            {
                let w = output::read_back(window.take().expect("a step since the last log"))?;
                let per_step = |v: f32| v / window_steps as f32;
                let (mean, kl) = (per_step(w[0]), per_step(w[1]));
                if !(mean.is_finite() && kl.is_finite()) {
                    bar.abandon();
                    let bad = if mean.is_finite() { kl } else { mean };
                    let setting = setting(reparam.is_some(), learned, kappa, beta);
                    return Err(non_finite(
                        "loss",
                        state.step,
                        bad,
                        setting,
                        &last_checkpoint,
                    ));
                }
                let mut columns = String::new();
                if learned {
                    let s_mean = f64::from(per_step(w[2]));
                    state.kappa = s_mean.exp();
                    columns = format!(",{s_mean},{},{}", w[3], w[4]);
                }
                if clip.is_some() {
                    let norm = match norm_window.take() {
                        Some(n) => per_step(output::read_back(n)?[0]),
                        None => 0.0,
                    };
                    if !norm.is_finite() {
                        bar.abandon();
                        let setting = setting(reparam.is_some(), learned, kappa, beta);
                        let (step, last) = (state.step, &last_checkpoint);
                        return Err(non_finite("gradient norm", step, norm, setting, last));
                    }
                    columns += &format!(",{norm}");
                }
                let kl = f64::from(kl);
                let secs = window_start.elapsed().as_secs_f64();
                let ips = window_units as f64 / secs.max(1e-9);
                trained_units += window_units;
                train_secs += secs;
                let kappa_txt = kappa_column(reparam.is_some(), state.kappa);
                output::append_csv(
                    &run_dir.join("metrics.csv"),
                    &train_header,
                    &format!(
                        "{},{},{kappa_txt},{kl},{mean},{}{columns},{ips:.1}",
                        state.step,
                        state.epoch,
                        -(f64::from(mean) + kl)
                    ),
                )?;
                last_loss = Some(f64::from(mean));
                last_kl = kl;
                last_ips = ips;
                (window_steps, window_units) = (0, 0);
                window_start = Instant::now();
            }
            // A scheduled vMF KL is a host constant, shown every step at no device
            // cost; the others are those of the last logged window.
            if opts.progress {
                let kl = reparam
                    .as_ref()
                    .and_then(VmfReparam::stats)
                    .map_or(last_kl, |s| s.kl);
                let loss_txt = last_loss.map_or("-".into(), |l| format!("{l:.2}"));
                bar.set_message(format!(
                    "loss {loss_txt} {} KL {kl:.3} {last_ips:.0} {}/s",
                    setting(reparam.is_some(), learned, state.kappa, beta),
                    K::UNITS
                ));
            }
            bar.inc(1);
            // At the epoch's last batch the end of the epoch saves this step (after
            // its evaluation): one checkpoint per step, never one replaced in place.
            if (checkpoint_due || state.step >= stop_at) && state.batch_in_epoch < per_epoch {
                last_checkpoint = Some(save(&model, &optim, &state)?);
            }
        }
        bar.finish();
        state.epoch += 1;
        state.batch_in_epoch = 0;
        let eval_model = model.valid();
        let row = |m: &EvalMetrics| {
            let kappa = m.log_kappa.map_or(state.kappa, |s| s.mean.exp());
            let mut r = format!(
                "{},{},{},{},{},{},{}",
                state.step,
                state.epoch,
                kappa_column(reparam.is_some(), kappa),
                m.kl,
                m.recon_sampled,
                m.recon_mean,
                m.elbo
            );
            if K::PER_UNIT {
                r += &format!(",{}", m.elbo_perplexity());
            }
            if let Some(l) = &m.latent {
                r += &format!(
                    ",{},{},{}",
                    l.mutual_information, l.active_units, l.components_90
                );
            }
            if let Some(a) = m.recon_accuracy {
                r += &format!(",{a}");
            }
            if let Some(s) = &m.log_kappa {
                r += &format!(",{},{},{}", s.mean, s.min, s.max);
            }
            r
        };
        let mut metrics = evaluate(
            &eval_model,
            &test_x,
            &cuts,
            state.kappa,
            seeds::derive(config.seed, "eval", state.epoch as u64),
            &device,
        )?;
        if K::LATENT_STATS {
            let codes = collect_codes(
                &eval_model,
                &test_x,
                eval_rows,
                state.kappa,
                seeds::derive(config.seed, "latent-stats", state.epoch as u64),
                &device,
            )?;
            metrics.latent = Some(latent_stats(eval_model.kind(), &codes));
        }
        metrics.recon_accuracy = kind.recon_accuracy(&eval_model, Split::Test, &device)?;
        let mut test_row = row(&metrics);
        let mut sampled = String::new();
        if is_samples > 0 {
            let ll = log_likelihood(
                &eval_model,
                &test_x,
                per_call,
                state.kappa,
                is_samples,
                seeds::derive(config.seed, "eval-is", state.epoch as u64),
                &device,
            )?;
            let nll = -ll.iter().sum::<f64>() / ll.len() as f64;
            test_row += &format!(",{nll}");
            sampled = format!(", NLL (IS, K = {is_samples}) {nll:.3}");
            if K::PER_UNIT {
                let ppl = (nll / metrics.units_per_example).exp();
                test_row += &format!(",{ppl}");
                sampled += &format!(", perplexity (IS) {ppl:.2}");
            }
        }
        output::append_csv(&run_dir.join("eval.csv"), &eval_header, &test_row)?;
        eprintln!(
            "epoch {} step {}: test recon {:.3} (at the posterior's location {:.3}), KL {:.3}, \
             ELBO {:.3}{}{sampled}",
            state.epoch,
            state.step,
            metrics.recon_sampled,
            metrics.recon_mean,
            metrics.kl,
            metrics.elbo,
            extras(&metrics, K::PER_UNIT)
        );
        if let Some(valid_x) = &valid_x {
            let v = evaluate(
                &eval_model,
                valid_x,
                &cuts,
                state.kappa,
                seeds::derive(config.seed, "eval-valid", state.epoch as u64),
                &device,
            )?;
            output::append_csv(&run_dir.join("valid.csv"), &valid_header, &row(&v))?;
            if state.best_valid_elbo.is_none_or(|best| v.elbo > best) {
                state.best_valid_elbo = Some(v.elbo);
                state.best_step = Some(state.step); // the checkpoint saved below
                state.epochs_since_best = 0;
            } else {
                state.epochs_since_best += 1;
            }
            eprintln!(
                "  validation ELBO {:.3} (best {:.3} at step {})",
                v.elbo,
                state.best_valid_elbo.unwrap_or(f64::NAN),
                state.best_step.unwrap_or(0)
            );
            if o.decays_after(state.epochs_since_best) {
                state.lr_decays += 1;
                eprintln!(
                    "  no better validation ELBO in {} epochs: learning rate now {:e}",
                    state.epochs_since_best,
                    o.lr_after(state.lr_decays)
                );
            }
        }
        kind.epoch_outputs(&eval_model, config, state.epoch, &device)?;
        last_eval = Some(metrics);
        last_checkpoint = Some(save(&model, &optim, &state)?);
        window_start = Instant::now();
        if stopped_early(&state) {
            eprintln!(
                "early stop: no better validation ELBO in {patience} epochs; the best checkpoint \
                 is step {}",
                state.best_step.unwrap_or(0)
            );
            break;
        }
    }

    Ok(TrainSummary {
        steps: state.step,
        last_loss,
        last_eval,
        last_checkpoint,
        best_checkpoint: state
            .best_step
            .map(|s| checkpoint::dir(&run_dir).join(checkpoint::folder_name(s))),
        units_per_sec: trained_units as f64 / train_secs.max(1e-9),
        units: K::UNITS,
    })
}

/// The text kinds' extra figures for the log line.
fn extras(m: &EvalMetrics, per_unit: bool) -> String {
    let mut s = String::new();
    if per_unit {
        s += &format!(", perplexity (ELBO) {:.2}", m.elbo_perplexity());
    }
    if let Some(l) = &m.latent {
        s += &format!(
            ", MI {:.3}, active units {} (90% of the variance in {})",
            l.mutual_information, l.active_units, l.components_90
        );
    }
    if let Some(a) = m.recon_accuracy {
        s += &format!(", greedy reconstruction {:.1}% right", 100.0 * a);
    }
    s
}

/// The kappa column of the CSV files: empty for the Gaussian model, which has none.
fn kappa_column(vmf: bool, kappa: f64) -> String {
    if vmf {
        kappa.to_string()
    } else {
        String::new()
    }
}

/// What the schedule set at a step (or a learned kappa's geometric mean), for messages.
fn setting(vmf: bool, learned: bool, kappa: f64, beta: f64) -> String {
    match (vmf, learned) {
        (true, false) => format!("kappa = {kappa:.4}"),
        (true, true) => format!("kappa ~ {kappa:.4} (learned), KL weight = {beta:.4}"),
        (false, _) => format!("KL weight = {beta:.4}"),
    }
}

fn non_finite(
    what: &'static str,
    step: u64,
    value: f32,
    setting: String,
    last: &Option<PathBuf>,
) -> TrainError {
    let kept = match last {
        Some(p) => format!("the last good checkpoint is {} (kept)", p.display()),
        None => "no checkpoint had been written yet".to_string(),
    };
    TrainError::NonFinite {
        what,
        step,
        value,
        setting,
        kept,
    }
}

fn progress_bar(show: bool, len: usize, epoch: usize) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix((epoch + 1).to_string());
    bar
}
