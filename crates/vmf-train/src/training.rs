//! The training loop: Adam on the reconstruction loss, kappa from the schedule,
//! seeded counter-based randomness, metrics, checkpoints and exact resume. It is
//! written once for every data kind ([`crate::modality::DataKind`]): batches, model
//! and per-epoch outputs come from the kind, and nothing here asks which it is; the
//! latent family is asked through [`crate::family`].
//!
//! This file is the driver: the order of the phases (set up or resume, a step, a
//! logged window, a mid-epoch checkpoint, the end of an epoch, the early stop). What
//! each phase does is in `run.rs`, one method each.
//!
//! All randomness is drawn on the host from counter-based seeds ([`crate::seeds`]),
//! so a run is bit-reproducible, resumes exactly, and gives the same trajectory on
//! every backend up to floating-point differences of the kernels.

mod run;

use std::path::PathBuf;

use crate::backend::Backend;
use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::evaluation::EvalMetrics;
use crate::modality::{self, DataKind, WithKind};
use crate::ranks::Ranks;

use run::Run;

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
    /// The processes that train the run together (default: this one alone).
    pub ranks: Ranks,
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

/// The loop, for data kind `K`: the driver over the phases of [`Run`].
fn train_kind<K: DataKind>(
    config: &TrainConfig,
    opts: &TrainOptions,
) -> Result<TrainSummary, TrainError> {
    let (mut run, mut model) = Run::<K>::start(config, opts)?;
    'epochs: while run.epochs_left() {
        let plan = run.kind.epoch(config.seed, run.state.epoch, &run.ad);
        let per_epoch = K::batches(&plan);
        run.begin_epoch(per_epoch);
        while run.state.batch_in_epoch < per_epoch {
            if run.state.step >= run.stop_at {
                run.bar.abandon();
                break 'epochs;
            }
            model = run.step(model, &plan)?;
            let checkpoint_due = run.checkpoint_due();
            if run.state.step.is_multiple_of(config.training.log_every)
                || checkpoint_due
                || run.state.step >= run.stop_at
                || run.state.batch_in_epoch == per_epoch
            {
                run.log_window()?;
            }
            run.show_progress();
            // At the epoch's last batch the end of the epoch saves this step (after
            // its evaluation): one checkpoint per step, never one replaced in place.
            if (checkpoint_due || run.state.step >= run.stop_at)
                && run.state.batch_in_epoch < per_epoch
            {
                run.save(&model)?;
            }
        }
        run.end_epoch(&model)?;
        if run.stopped_early() && run.ranks.is_root() {
            eprintln!(
                "early stop: {} in {} epochs; the best checkpoint is step {}",
                config.training.no_improvement(),
                config.training.patience,
                run.state.best_step.unwrap_or(0)
            );
        }
        if run.stopped_early() {
            break;
        }
    }
    Ok(run.summary())
}
