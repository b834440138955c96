//! The latent family as orchestration sees it: the one place in vmf-train that asks
//! which posterior a run has (a family on the sphere, the vMF or the Power Spherical,
//! with a scheduled or learned kappa; the Gaussian; or no latent at all for the
//! language model).
//!
//! vmf-model owns the family's mathematics on the device (the posterior from the
//! encoder's head, its draw, KL and density ratio: `vmf_model::ModelKind` and
//! `vmf_model::Posterior`). What is left for training is set here: the sampling layer a
//! model needs ([`sampling_layer`]), the concentration at each step and the figures a
//! learned one reports ([`StepLatent`]), and the text and CSV fields that name it
//! ([`kappa_field`], [`StepLatent::setting`]). The loop, the evaluation and the latent
//! statistics call these and never match on the family themselves.

use burn::tensor::Device;
use vmf_core::Family;
use vmf_model::{ModelKind, VaeModel, VmfReparam};

use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::schedule::Schedule;

/// The sampling layer `model` needs at `kappa` (used only where kappa is scheduled):
/// its family's table on the sphere (for a product of spheres, on each block's), or
/// `None` for the families that sample without one (Gaussian, no latent).
pub fn sampling_layer<M: VaeModel>(
    model: &M,
    kappa: f64,
    device: &Device,
) -> Result<Option<VmfReparam>, TrainError> {
    Ok(match model.kind().family() {
        Some(family) => Some(VmfReparam::for_blocks(
            family,
            &model.latent_blocks(),
            model.kappa_mode(),
            kappa,
            device,
        )?),
        None => None,
    })
}

/// Whether a model of this kind has a concentration to report (a `kappa` field).
pub fn has_kappa(kind: ModelKind) -> bool {
    kind.family().is_some()
}

/// The `kappa` field of a CSV row: empty where the family has none.
pub fn kappa_field(has_kappa: bool, kappa: f64) -> String {
    if has_kappa {
        kappa.to_string()
    } else {
        String::new()
    }
}

/// The latent family of a run as the loop drives it, step by step: its sampling layer,
/// how its concentration is set (a schedule, a KL budget, or learned by the model),
/// and what it reports.
pub struct StepLatent {
    family: Family,
    d: usize,
    schedule: Option<Schedule>,
    learned: bool,
    layer: Option<VmfReparam>,
    /// The KL budget's last solved (budget, kappa).
    kl_memo: Option<(f64, f64)>,
}

impl StepLatent {
    /// The run's latent at step `step` (a resumed run's first step) on `device`.
    pub fn new(config: &TrainConfig, step: u64, device: &Device) -> Result<Self, TrainError> {
        // A product of spheres samples block by block: the layer is a block's (with
        // one for each other block size).
        let (family, d) = (config.family(), config.model.sphere_dim());
        let layer = match config.kappa.as_ref() {
            Some(k) => Some(VmfReparam::for_blocks(
                family,
                &config.model.latent_blocks(),
                config.kappa_mode(),
                k.value_at(step, family, d)?,
                device,
            )?),
            None => None,
        };
        Ok(Self {
            family,
            d,
            schedule: config.kappa.clone(),
            learned: config.kappa.as_ref().is_some_and(Schedule::is_learned),
            layer,
            kl_memo: None,
        })
    }

    /// The kappa a fresh run records before its first step (0 without one).
    pub fn initial_kappa(config: &TrainConfig) -> Result<f64, TrainError> {
        Ok(match config.kappa.as_ref() {
            Some(k) => k.value_at(0, config.family(), config.model.sphere_dim())?,
            None => 0.0,
        })
    }

    /// Whether the model learns its kappa (the step reports ln kappa's spread).
    pub fn learned(&self) -> bool {
        self.learned
    }

    /// Whether the family has a concentration (a `kappa` column with values).
    pub fn has_kappa(&self) -> bool {
        self.layer.is_some()
    }

    /// The layer the step samples with.
    pub fn layer(&self) -> Option<&VmfReparam> {
        self.layer.as_ref()
    }

    /// Sets the concentration of step `step` and returns it: the schedule's (or the KL
    /// budget's) value, or, where kappa is learned, `current` (the geometric mean of the
    /// last logged window); 0 without a kappa.
    pub fn at_step(&mut self, step: u64, current: f64) -> Result<f64, TrainError> {
        match (&self.schedule, self.layer.as_mut()) {
            (Some(_), Some(_)) if self.learned => Ok(current),
            (Some(k), Some(layer)) => {
                let kappa = k.kappa_at(step, self.family, self.d, &mut self.kl_memo)?;
                layer.set_kappa(kappa)?;
                Ok(kappa)
            }
            _ => Ok(0.0),
        }
    }

    /// The KL to show between logged windows: a scheduled family's exact constant (free
    /// on the host), else the last window's.
    pub fn shown_kl(&self, last_window: f64) -> f64 {
        self.layer
            .as_ref()
            .and_then(VmfReparam::stats)
            .map_or(last_window, |s| s.kl)
    }

    /// What sets the concentration at a step, for progress and error messages.
    pub fn setting(&self, kappa: f64, beta: f64) -> String {
        match (self.has_kappa(), self.learned) {
            (true, false) => format!("kappa = {kappa:.4}"),
            (true, true) => format!("kappa ~ {kappa:.4} (learned), KL weight = {beta:.4}"),
            (false, _) => format!("KL weight = {beta:.4}"),
        }
    }
}
