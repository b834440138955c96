//! The phases of a run, for the driver in `training.rs`: [`Run::start`] (set up or
//! resume), [`Run::step`], [`Run::log_window`], [`Run::save`] and [`Run::end_epoch`]
//! (evaluation, validation, early stopping, rate decay, checkpoint).

use std::fs;
use std::path::PathBuf;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use vmf_model::{ModelKind, Rows};

use super::{TrainOptions, TrainSummary};
use crate::backend::{self, Backend};
use crate::checkpoint::{self, MODEL_FILE, OPTIM_FILE, TrainState};
use crate::config::TrainConfig;
use crate::durable;
use crate::error::TrainError;
use crate::evaluation::{
    EvalCuts, EvalMetrics, ImportanceSampling, ReportSeeds, evaluate, test_report,
};
use crate::family::{self, StepLatent};
use crate::modality::{Batch, DataKind, Split};
use crate::optim;
use crate::output;
use crate::ranks::Ranks;
use crate::records::{EvalColumns, EvalRecord, TrainColumns, TrainRecord};
use crate::run_folder::{self, Start};
use crate::schedule::Schedule;
use crate::seeds;
use crate::seeds::HostNoise;
use crate::step::{self, ShardPlan};

/// The figures of the steps since the last logged row, kept on the device until read.
struct Window {
    /// The steps' figures (step::combine) merged.
    figures: Option<Tensor<1>>,
    /// With clipping: the steps' gradient norms (before clipping) summed.
    norms: Option<Tensor<1>>,
    steps: u64,
    units: u64,
    start: Instant,
}

/// One run of data kind `K` between its phases: everything the loop carries from step
/// to step except the model, which each step consumes and returns (so that the
/// optimiser can update its parameters in place).
pub(super) struct Run<'a, K: DataKind> {
    config: &'a TrainConfig,
    run_dir: PathBuf,
    /// The processes of the run: rank 0 writes the run folder and evaluates.
    pub(super) ranks: Ranks,
    pub(super) kind: K,
    device: Device,
    pub(super) ad: Device,
    optim: burn::optim::ModuleOptimizer,
    pub(super) state: TrainState,
    latent: StepLatent,
    train_columns: TrainColumns,
    eval_columns: EvalColumns,
    valid_columns: EvalColumns,
    test_x: Vec<Batch<K>>,
    valid_x: Option<Vec<Batch<K>>>,
    /// Steps after which the run stops (an interruption, or `training.max_steps`).
    pub(super) stop_at: u64,
    pub(super) bar: ProgressBar,
    show_progress: bool,
    window: Window,
    /// The concentration and KL weight of the last step, for messages.
    setting: (f64, f64),
    trained_units: u64,
    train_secs: f64,
    last_loss: Option<f64>,
    last_ips: f64,
    last_kl: f64,
    last_eval: Option<EvalMetrics>,
    last_checkpoint: Option<PathBuf>,
}

impl<'a, K: DataKind> Run<'a, K> {
    /// Sets up a run: its data, its model (fresh from the seed, or the checkpoint's
    /// weights when resuming), the optimiser, the run folder and the evaluation inputs.
    pub(super) fn start(
        config: &'a TrainConfig,
        opts: &TrainOptions,
    ) -> Result<(Self, K::Model), TrainError> {
        let run_dir = config.run_dir.clone();
        let ranks = opts.ranks;
        let backend = opts.backend.unwrap_or_else(Backend::default_compiled);
        let device = backend.device_of(&ranks)?;
        let ad = device.clone().autodiff();
        eprintln!("{}", backend::describe(backend, &device));

        let mut kind = K::load(config)?;
        if ranks.size() > 1 {
            let options = format!(
                "resume {:?}, force {}, stop at {:?}, backend {backend}",
                opts.resume, opts.force, opts.stop_at_step
            );
            ranks.check_same(&[
                ("config", config.to_toml()),
                ("options", options),
                ("data", kind.fingerprint()),
                ("binary", crate::ranks::binary_digest()?),
            ])?;
            if ranks.is_root() {
                eprintln!(
                    "{} ranks: rank 0 writes {} and evaluates",
                    ranks.size(),
                    run_dir.display()
                );
            }
        }
        let learned = config.kappa.as_ref().is_some_and(Schedule::is_learned);
        let train_columns = TrainColumns {
            units: K::UNITS,
            learned_kappa: learned,
            clipped: config.optimizer.clip_norm.is_some(),
        };
        let eval_columns = EvalColumns {
            per_unit: K::PER_UNIT,
            latent: K::LATENT_STATS,
            accuracy: K::ACCURACY,
            learned_kappa: learned,
            sampled_nll: config.training.eval_samples > 0,
        };
        let valid_columns = EvalColumns {
            latent: false,
            accuracy: false,
            sampled_nll: false,
            ..eval_columns
        };
        let mut model = init_model(&kind, config, backend, &ad)?;
        let mut optim = optim::adam(&config.optimizer);
        let hash = config.identity_hash();
        let mut state = TrainState {
            step: 0,
            epoch: 0,
            batch_in_epoch: 0,
            kappa: StepLatent::initial_kappa(config)?,
            config_hash: hash.clone(),
            model_sha256: String::new(),
            optim_sha256: String::new(),
            best_valid_elbo: None,
            best_step: None,
            epochs_since_best: 0,
            counted_elbo: None,
            lr_decays: 0,
        };

        let mut last_checkpoint = None;
        if let Start::Checkpoint(path, st) = open_run_folder(&ranks, config, opts)? {
            let bad = |e: String| TrainError::Checkpoint {
                path: path.clone(),
                message: e,
            };
            model = K::load_weights(model, &path.join(MODEL_FILE))
                .map_err(|e| bad(format!("model: {e}")))?;
            optim = optim::adam(&config.optimizer)
                .load(path.join(OPTIM_FILE))
                .map_err(|e| bad(format!("optimiser: {e}")))?;
            if ranks.is_root() {
                eprintln!(
                    "resuming from {} at step {} (epoch {}, batch {})",
                    path.display(),
                    st.step,
                    st.epoch,
                    st.batch_in_epoch
                );
            }
            // Rows of the steps the checkpoint holds: training rows up to its step, and
            // evaluation rows of the epochs it completed (a checkpoint at an epoch's last
            // batch, which older versions wrote, precedes that epoch's evaluation rows,
            // which carry the same step).
            let trained = |row: &str| output::csv_field::<u64>(row, 0).is_none_or(|s| s <= st.step);
            let evaluated = |row: &str| {
                trained(row) && output::csv_field::<usize>(row, 1).is_none_or(|e| e <= st.epoch)
            };
            let csv = |name: &str| run_dir.join(name);
            if ranks.is_root() {
                output::resume_csv(&csv("metrics.csv"), &train_columns.header(), trained)?;
                output::resume_csv(&csv("eval.csv"), &eval_columns.header(), evaluated)?;
                output::resume_csv(&csv("valid.csv"), &valid_columns.header(), evaluated)?;
            }
            state = TrainState {
                config_hash: hash,
                ..st
            };
            last_checkpoint = Some(path);
        } else if let Some(source) = &config.model.decoder_from {
            eprintln!("decoder from {}", source.display());
            model = kind
                .with_decoder_from(model, source, &ad)?
                .map(&mut checkpoint::StableParamIds::default());
            // A language model's optimiser holds Adam moments for exactly the parts it
            // trained, the ones taken (the rest never had a gradient), under the same
            // stable ids: carried over, the decoder continues where the LM's Adam was
            // when it is released, instead of restarting from zero moments, whose first
            // steps move every weight by about the learning rate.
            if checkpoint::open(source)?.config.model.kind == ModelKind::Lm {
                optim = optim::adam(&config.optimizer)
                    .load(source.join(OPTIM_FILE))
                    .map_err(|e| TrainError::Checkpoint {
                        path: source.clone(),
                        message: format!("model.decoder_from: optimiser: {e}"),
                    })?;
            }
        }

        // Written only now: a refused resume must leave the run's own config in place.
        if ranks.is_root() {
            kind.check_run_folder(&run_dir, last_checkpoint.is_some())?;
            fs::create_dir_all(&run_dir).map_err(TrainError::io("creating", &run_dir))?;
            durable::replace(&run_dir.join("config.toml"), config.to_toml().as_bytes())?;
        }

        kind.upload_training(&ad);
        // Only rank 0 evaluates.
        let (test_x, valid_x) = if ranks.is_root() {
            let test_x = kind
                .eval_batches(Split::Test, config.seed, &device)
                .expect("every data kind has a test split");
            let valid_seed = seeds::derive(config.seed, "valid", 0);
            (
                test_x,
                kind.eval_batches(Split::Validation, valid_seed, &device),
            )
        } else {
            (Vec::new(), None)
        };
        let max_steps = config.training.max_steps.unwrap_or(u64::MAX);
        let latent = StepLatent::new(config, state.step, &ad)?;
        let run = Self {
            config,
            run_dir,
            ranks,
            kind,
            device,
            ad,
            optim,
            state,
            latent,
            train_columns,
            eval_columns,
            valid_columns,
            test_x,
            valid_x,
            stop_at: opts.stop_at_step.unwrap_or(u64::MAX).min(max_steps),
            bar: ProgressBar::hidden(),
            show_progress: opts.progress && ranks.is_root(),
            window: Window {
                figures: None,
                norms: None,
                steps: 0,
                units: 0,
                start: Instant::now(),
            },
            setting: (0.0, 1.0),
            trained_units: 0,
            train_secs: 0.0,
            last_loss: None,
            last_ips: 0.0,
            last_kl: f64::NAN,
            last_eval: None,
            last_checkpoint,
        };
        Ok((run, model))
    }

    /// Whether another epoch is due: within the epoch budget (`epochs = 0`: none, and
    /// `max_steps` decides) and the step budget, and not stopped early (a run that
    /// stopped early stays stopped when resumed).
    pub(super) fn epochs_left(&self) -> bool {
        let epochs = match self.config.training.epochs {
            0 => usize::MAX,
            e => e,
        };
        self.state.epoch < epochs && self.state.step < self.stop_at && !self.stopped_early()
    }

    /// No better validation ELBO (by more than `training.min_delta`) in
    /// `training.patience` epochs, after the burn-in.
    pub(super) fn stopped_early(&self) -> bool {
        let t = &self.config.training;
        t.patience > 0
            && self.state.epochs_since_best >= t.patience
            && self.state.epoch >= t.burn_in
    }

    pub(super) fn begin_epoch(&mut self, per_epoch: usize) {
        self.bar = progress_bar(self.show_progress, per_epoch, self.state.epoch);
        self.bar.set_position(self.state.batch_in_epoch as u64);
    }

    /// One optimiser step on the epoch's next batch, its latent noise drawn from the
    /// step's own stream.
    pub(super) fn step(
        &mut self,
        model: K::Model,
        plan: &K::Epoch,
    ) -> Result<K::Model, TrainError> {
        let (config, st) = (self.config, &mut self.state);
        let mut noise = HostNoise::new(config.seed, "step", st.step);
        let kappa = self.latent.at_step(st.step, st.kappa)?;
        let beta = config.kl_weight(st.step);
        self.setting = (kappa, beta);
        let x = self
            .kind
            .train_batch(plan, st.batch_in_epoch, &mut noise, &self.ad);
        let rows = x.rows();
        let latent = noise.latent_of_product(
            rows,
            config.model.latent_dim,
            config.model.latent_blocks().count(),
            &self.ad,
        );
        let plan = ShardPlan::new(rows, config.training.shards, &self.ranks);
        let layer = self.latent.layer();
        let mine = step::shard_gradients(&model, rows, &plan, |m, part| {
            let xs = x.slice_rows(part.clone());
            step::vae_sums(m, &xs, latent.rows(part), layer, beta)
        });
        let parts = self
            .ranks
            .gather_shards(&model, mine, &self.device, &self.ad);
        let (reports, grads) = step::sum_shards(&model, parts);
        let grads = if st.step < config.model.freeze_decoder_steps {
            step::without_pretrained_decoder(&model, grads)
        } else {
            grads
        };
        let figures = step::combine(reports, rows);
        let w = &mut self.window;
        w.figures = Some(match w.figures.take() {
            Some(sum) => step::merge(sum, figures),
            None => figures,
        });
        let grads = match config.optimizer.clip_norm {
            Some(max_norm) => {
                let (grads, norm) = optim::clip_global_norm(&model, grads, max_norm);
                if let Some(n) = norm {
                    w.norms = Some(match w.norms.take() {
                        Some(sum) => sum + n,
                        None => n,
                    });
                }
                grads
            }
            None => grads,
        };
        let lr = config.optimizer.lr_at(st.step, st.lr_decays);
        let model = self.optim.step(lr, model, grads);
        st.step += 1;
        st.batch_in_epoch += 1;
        if !self.latent.learned() {
            st.kappa = kappa;
        }
        w.steps += 1;
        w.units += K::units(&x) as u64;
        Ok(model)
    }

    pub(super) fn checkpoint_due(&self) -> bool {
        let every = self.config.checkpoint.every_steps;
        every > 0 && self.state.step.is_multiple_of(every)
    }

    /// Reads the window's figures back, refuses non-finite ones (nothing written is
    /// lost: the last checkpoint stays), and appends the row of metrics.csv.
    pub(super) fn log_window(&mut self) -> Result<(), TrainError> {
        let w = &mut self.window;
        let figures = output::read_back(w.figures.take().expect("a step since the last log"))?;
        let steps = w.steps;
        let per_step = |v: f32| v / steps as f32;
        let (mean, kl) = (per_step(figures[0]), per_step(figures[1]));
        if !(mean.is_finite() && kl.is_finite()) {
            let bad = if mean.is_finite() { kl } else { mean };
            return Err(self.non_finite("loss", bad));
        }
        let mut log_kappa = None;
        if self.latent.learned() {
            let s_mean = f64::from(per_step(figures[2]));
            self.state.kappa = s_mean.exp();
            log_kappa = Some((s_mean, figures[3], figures[4]));
        }
        let mut grad_norm = None;
        if self.config.optimizer.clip_norm.is_some() {
            let norm = match self.window.norms.take() {
                Some(n) => per_step(output::read_back(n)?[0]),
                None => 0.0,
            };
            if !norm.is_finite() {
                return Err(self.non_finite("gradient norm", norm));
            }
            grad_norm = Some(norm);
        }
        let w = &mut self.window;
        let kl = f64::from(kl);
        let secs = w.start.elapsed().as_secs_f64();
        let ips = w.units as f64 / secs.max(1e-9);
        self.trained_units += w.units;
        self.train_secs += secs;
        let record = TrainRecord {
            step: self.state.step,
            epoch: self.state.epoch,
            kappa: family::kappa_field(self.latent.has_kappa(), self.state.kappa),
            kl,
            loss: mean,
            log_kappa,
            grad_norm,
            per_sec: ips,
        };
        if self.ranks.is_root() {
            let header = self.train_columns.header();
            let path = self.run_dir.join("metrics.csv");
            output::append_csv(&path, &header, &self.train_columns.row(&record))?;
        }
        self.last_loss = Some(f64::from(mean));
        self.last_kl = kl;
        self.last_ips = ips;
        let w = &mut self.window;
        (w.steps, w.units) = (0, 0);
        w.start = Instant::now();
        Ok(())
    }

    /// A non-finite figure at the current step: the error, with the bar abandoned.
    fn non_finite(&self, what: &'static str, value: f32) -> TrainError {
        self.bar.abandon();
        let (kappa, beta) = self.setting;
        non_finite(
            what,
            self.state.step,
            value,
            self.latent.setting(kappa, beta),
            &self.last_checkpoint,
        )
    }

    /// The progress bar's message and position after a step.
    pub(super) fn show_progress(&self) {
        if self.show_progress {
            let kl = self.latent.shown_kl(self.last_kl);
            let loss = self.last_loss.map_or("-".into(), |l| format!("{l:.2}"));
            let beta = self.setting.1;
            self.bar.set_message(format!(
                "loss {loss} {} KL {kl:.3} {:.0} {}/s",
                self.latent.setting(self.state.kappa, beta),
                self.last_ips,
                K::UNITS
            ));
        }
        self.bar.inc(1);
    }

    /// Writes a checkpoint of the current step (rank 0; every rank holds the same).
    pub(super) fn save(&mut self, model: &K::Model) -> Result<(), TrainError> {
        if !self.ranks.is_root() {
            return Ok(());
        }
        let optim = &self.optim;
        let path = checkpoint::save(
            &self.run_dir,
            self.state.clone(),
            self.config.checkpoint.keep,
            |tmp| {
                model
                    .clone()
                    .save_file(tmp.join(MODEL_FILE))
                    .map_err(|e| e.to_string())?;
                optim.save(tmp.join(OPTIM_FILE)).map_err(|e| e.to_string())
            },
        )?;
        self.last_checkpoint = Some(path);
        Ok(())
    }

    /// The end of an epoch: the test split's evaluation, the validation (best
    /// checkpoint, early stopping, learning-rate decay), the kind's outputs, and a
    /// checkpoint.
    pub(super) fn end_epoch(&mut self, model: &K::Model) -> Result<(), TrainError> {
        self.bar.finish();
        self.state.epoch += 1;
        self.state.batch_in_epoch = 0;
        let valid_elbo = if self.ranks.is_root() {
            self.evaluate_epoch(model)?
        } else {
            None
        };
        if let Some(elbo) = share(&self.ranks, valid_elbo) {
            self.validated(elbo);
        }
        self.save(model)?;
        self.window.start = Instant::now();
        Ok(())
    }

    /// Rank 0's part of the end of an epoch: the test split's evaluation, the
    /// validation ELBO (returned, with `data.validation`) and the kind's outputs.
    fn evaluate_epoch(&mut self, model: &K::Model) -> Result<Option<f64>, TrainError> {
        let config = self.config;
        let epoch = self.state.epoch as u64;
        let eval_model = model.valid();
        let samples = config.training.eval_samples;
        let seeds = ReportSeeds {
            elbo: seeds::derive(config.seed, "eval", epoch),
            codes: seeds::derive(config.seed, "latent-stats", epoch),
            sampled: seeds::derive(config.seed, "eval-is", epoch),
        };
        let max_rows = config.training.eval_batch_size;
        let kappa = self.state.kappa;
        let (kind, device) = (&self.kind, &self.device);
        let report = test_report(
            kind,
            &eval_model,
            &self.test_x,
            max_rows,
            kappa,
            ImportanceSampling::posterior(samples),
            seeds,
            device,
        )?;
        let metrics = report.metrics;
        let nll = report.nll();
        let test_row = self.eval_columns.row(&self.record(&metrics, nll));
        let header = self.eval_columns.header();
        output::append_csv(&self.run_dir.join("eval.csv"), &header, &test_row)?;
        let mut sampled = String::new();
        if let Some(nll) = nll {
            sampled = format!(", NLL (IS, K = {samples}) {nll:.3}");
            if K::PER_UNIT {
                let ppl = (nll / metrics.units_per_example).exp();
                sampled += &format!(", perplexity (IS) {ppl:.2}");
            }
        }
        eprintln!(
            "epoch {} step {}: test recon {:.3} (at the posterior's location {:.3}), KL {:.3}, \
             ELBO {:.3}{}{sampled}",
            self.state.epoch,
            self.state.step,
            metrics.recon_sampled,
            metrics.recon_mean,
            metrics.kl,
            metrics.elbo,
            extras(&metrics, K::PER_UNIT)
        );
        let valid_elbo = match &self.valid_x {
            Some(valid_x) => {
                let per_call = |b: &Batch<K>| kind.rows_per_call(b);
                let cuts = EvalCuts {
                    max_rows,
                    rows_per_call: &per_call,
                    units: &K::units,
                };
                let noise = config.training.valid_noise.epoch(epoch);
                let seed = seeds::derive(config.seed, "eval-valid", noise);
                let v = evaluate(&eval_model, valid_x, &cuts, kappa, seed, device)?;
                let row = self.valid_columns.row(&self.record(&v, None));
                let header = self.valid_columns.header();
                output::append_csv(&self.run_dir.join("valid.csv"), &header, &row)?;
                Some(v.elbo)
            }
            None => None,
        };
        self.kind
            .epoch_outputs(&eval_model, config, self.state.epoch, &self.device)?;
        self.last_eval = Some(metrics);
        Ok(valid_elbo)
    }

    /// The row of an evaluation at the current step.
    fn record<'m>(&self, m: &'m EvalMetrics, nll_is: Option<f64>) -> EvalRecord<'m> {
        let kappa = m.log_kappa.map_or(self.state.kappa, |s| s.mean.exp());
        EvalRecord {
            step: self.state.step,
            epoch: self.state.epoch,
            kappa: family::kappa_field(self.latent.has_kappa(), kappa),
            metrics: m,
            nll_is,
        }
    }

    /// Books a validation ELBO: the best so far (its checkpoint is the one saved at the
    /// end of this epoch), an improvement that resets the patience (any better one, or
    /// one by more than `training.min_delta`) or one more epoch without, and the
    /// learning-rate decay.
    fn validated(&mut self, elbo: f64) {
        let st = &mut self.state;
        let better = st.best_valid_elbo.is_none_or(|best| elbo > best);
        let delta = self.config.training.min_delta;
        let counts = if delta > 0.0 {
            let counts = st.counted_elbo.is_none_or(|last| elbo > last + delta);
            if counts {
                st.counted_elbo = Some(elbo);
            }
            counts
        } else {
            better
        };
        if better {
            st.best_valid_elbo = Some(elbo);
            st.best_step = Some(st.step);
        }
        if counts {
            st.epochs_since_best = 0;
        } else {
            st.epochs_since_best += 1;
        }
        let root = self.ranks.is_root();
        if root {
            eprintln!(
                "  validation ELBO {elbo:.3} (best {:.3} at step {})",
                st.best_valid_elbo.unwrap_or(f64::NAN),
                st.best_step.unwrap_or(0)
            );
        }
        let o = &self.config.optimizer;
        if o.decays_after(st.epochs_since_best) {
            st.lr_decays += 1;
            if root {
                eprintln!(
                    "  {} in {} epochs: learning rate now {:.3e}",
                    self.config.training.no_improvement(),
                    st.epochs_since_best,
                    o.lr_at(st.step, st.lr_decays)
                );
            }
        }
    }

    pub(super) fn summary(self) -> TrainSummary {
        let best = self.state.best_step;
        TrainSummary {
            steps: self.state.step,
            last_loss: self.last_loss,
            last_eval: self.last_eval,
            last_checkpoint: self.last_checkpoint,
            best_checkpoint: best
                .map(|s| checkpoint::dir(&self.run_dir).join(checkpoint::folder_name(s))),
            units_per_sec: self.trained_units as f64 / self.train_secs.max(1e-9),
            units: K::UNITS,
        }
    }
}

/// Where the run starts (see [`run_folder::open`]): rank 0 decides and readies the run
/// folder; the other ranks resume from the checkpoint it chose, verified again.
fn open_run_folder(
    ranks: &Ranks,
    config: &TrainConfig,
    opts: &TrainOptions,
) -> Result<Start, TrainError> {
    let start = if ranks.is_root() {
        Some(run_folder::open(
            &config.run_dir,
            config,
            opts.resume.as_ref(),
            opts.force,
        )?)
    } else {
        None
    };
    let chosen = match &start {
        Some(Start::Checkpoint(path, _)) => path.to_string_lossy().into_owned(),
        _ => String::new(),
    };
    let chosen = ranks.broadcast(chosen.bytes().map(u32::from).collect());
    match start {
        Some(start) => Ok(start),
        None if chosen.is_empty() => Ok(Start::Fresh),
        None => {
            let path = PathBuf::from(
                String::from_utf8_lossy(&chosen.iter().map(|&w| w as u8).collect::<Vec<u8>>())
                    .into_owned(),
            );
            let state = checkpoint::load_state(&path)?;
            Ok(Start::Checkpoint(path, state))
        }
    }
}

/// Rank 0's validation ELBO on every rank.
fn share(ranks: &Ranks, elbo: Option<f64>) -> Option<f64> {
    let bits = elbo.map_or(vec![], |e| {
        let b = e.to_bits();
        vec![b as u32, (b >> 32) as u32]
    });
    match ranks.broadcast(bits)[..] {
        [lo, hi] => Some(f64::from_bits(u64::from(lo) | (u64::from(hi) << 32))),
        _ => None,
    }
}

/// The model of `config` for data kind `kind`, initialised on the host device from the
/// seed and moved to `ad`: the same initial weights on every backend, with stable
/// parameter ids.
fn init_model<K: DataKind>(
    kind: &K,
    config: &TrainConfig,
    backend: Backend,
    ad: &Device,
) -> Result<K::Model, TrainError> {
    // Burn's initialisers draw from the device RNG, one stream per device and
    // process: hold it while seeding and drawing, against concurrent runs.
    static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
    let init_device = backend.host_device()?.autodiff();
    init_device.seed(seeds::derive(config.seed, "init", 0));
    // Parameters initialise lazily (a to_device would move the initialiser, not the
    // values): take the record to draw them here, then load it on `ad`.
    let record = kind.init_model(config, &init_device).into_record();
    Ok(kind
        .init_model(config, ad)
        .try_load_record(record)
        .map_err(|e| TrainError::Backend(format!("moving the initial weights to {backend}: {e}")))?
        .map(&mut checkpoint::StableParamIds::default()))
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
