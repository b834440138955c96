//! The training configuration (TOML). Unknown keys are rejected by serde with their
//! name and line; [`TrainConfig::validate`] rejects bad values naming the key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vmf_model::{Blocks, KappaMode, ModelKind, ReconLoss};

use crate::data::text::LongSentences;
use crate::error::TrainError;
use crate::schedule::Schedule;

/// Everything a run needs; saved as `config.toml` in the run folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Seed of every random choice (data order, binarisation, sampler, initialisation).
    #[serde(default)]
    pub seed: u64,
    /// Folder of the run's outputs (config, metrics, checkpoints, images).
    pub run_dir: PathBuf,
    /// Dataset and pixel handling.
    pub data: DataConfig,
    /// Model shape and likelihood.
    pub model: ModelConfig,
    /// The kappa schedule: required for the vMF model, refused for the Gaussian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kappa: Option<Schedule>,
    /// Adam settings.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// Loop length and batching.
    pub training: LoopConfig,
    /// Checkpoint cadence and retention.
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
}

/// Which data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// MNIST digits (shipped in `datasets/mnist`).
    Mnist,
    /// Fashion-MNIST (Debian package `dataset-fashion-mnist`).
    FashionMnist,
    /// The Penn Treebank sentences (shipped in `datasets/ptb`).
    Ptb,
    /// Your own sentences: `data.dir` holds train.txt, valid.txt and test.txt.
    Text,
    /// Your own images: `data.dir` holds PNG/JPEG files (see
    /// [`crate::data::image_folder`]).
    #[serde(rename = "image_folder", alias = "image-folder")]
    ImageFolder,
}

/// What a data set's examples are: each is trained by one data kind of
/// [`crate::modality`]. Code that depends on it matches on it, so that a new kind of
/// data is a compile error at every such place, never a silent "not text, so images".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modality {
    /// Images (MNIST-format files or image folders).
    Images,
    /// Sentences (one per line).
    Sentences,
}

impl DatasetKind {
    /// What the data set's examples are.
    pub fn modality(self) -> Modality {
        match self {
            Self::Mnist | Self::FashionMnist | Self::ImageFolder => Modality::Images,
            Self::Ptb | Self::Text => Modality::Sentences,
        }
    }
}

/// How pixels become model inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PixelMode {
    /// Grey levels in [0, 1] (the article's setup).
    Grey,
    /// One Bernoulli draw per pixel, fixed for the whole run.
    StaticBinary,
    /// A fresh Bernoulli draw per pixel at every step (S-VAE experiments).
    DynamicBinary,
}

/// `[data]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// `mnist`, `fashion-mnist`, `image_folder`, `ptb` or `text`.
    pub dataset: DatasetKind,
    /// The data folder: for MNIST the four IDX files (default `datasets/mnist`; for
    /// Fashion-MNIST `/usr/share/datasets/fashion-mnist`); required for
    /// `image_folder` and `text`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Image folder: 1 (grey) or 3 (RGB) channels (default: those of the first
    /// training image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<usize>,
    /// Image folder: `[height, width]` every image is resized to (default: the size
    /// of the first training image, which all must share).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<[usize; 2]>,
    /// Image folder without `train/` and `test/` subfolders: the share of the images
    /// held out as the test split (default 0.1), drawn with `split_seed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_fraction: Option<f64>,
    /// Image folder: the seed of the images' order and of the `test_fraction` split
    /// (not the run's seed, so that runs with different seeds share one test split).
    #[serde(default, skip_serializing_if = "is_default")]
    pub split_seed: u64,
    /// `grey`, `static_binary` or `dynamic_binary`.
    #[serde(default = "default_pixels")]
    pub pixels: PixelMode,
    /// Use only the first N training images (quick experiments, tests).
    #[serde(default)]
    pub train_limit: Option<usize>,
    /// Use only the first N test images.
    #[serde(default)]
    pub test_limit: Option<usize>,
    /// Hold out the last N training images as a validation set (evaluated every
    /// epoch into `valid.csv`; early stopping with `training.patience`). Images only:
    /// text data sets have their own validation file.
    #[serde(default, skip_serializing_if = "is_default")]
    pub validation: usize,
    /// Text: keep at most this many word types, the most frequent of the training
    /// split (default: all that pass `min_count`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab_size: Option<usize>,
    /// Text: keep word types seen at least this often in the training split (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_count: Option<usize>,
    /// Text: the longest sentence in words, end token not counted (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// Text: `truncate` (default) or `drop` sentences longer than `max_length`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_sentences: Option<LongSentences>,
}

impl DataConfig {
    /// The data folder: `data.dir`, or where the data set lives by default.
    pub fn folder(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| crate::data::default_dir(self.dataset))
    }
}

/// Default of `data.max_length`.
pub const DEFAULT_MAX_LENGTH: usize = 100;

fn default_pixels() -> PixelMode {
    PixelMode::Grey
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `vmf` (the default) or `gaussian` (the baseline).
    #[serde(default, skip_serializing_if = "is_default")]
    pub kind: ModelKind,
    /// Latent dimension d: ambient for vMF (z on S^(d-1), 2..=4096), or R^d for
    /// the Gaussian (1..=4096).
    pub latent_dim: usize,
    /// Images, on the sphere with a learned kappa: the latent is a product of this many
    /// spheres, each S^(latent_dim / factors - 1) with its own direction and kappa
    /// (a kappa per example: one per block), the prior the product of uniforms
    /// (Davidson, Tomczak & Gavves 2019). Must divide latent_dim. Default 1: one sphere.
    #[serde(default = "one_factor", skip_serializing_if = "is_one_factor")]
    pub factors: usize,
    /// Images, on the sphere with a learned kappa: a product of spheres whose sizes
    /// may differ, given as each block's ambient dimension m (the block is S^(m-1)) in
    /// column order, e.g. `[15, 7]` for S^14 x S^6; they sum to latent_dim, each at
    /// least 2. Replaces `factors` (leave it at 1 or give the number of blocks).
    /// Default empty: `factors` equal blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<usize>,
    /// Encoder hidden sizes (the decoder mirrors them).
    pub hidden: Vec<usize>,
    /// `bernoulli` or `gaussian`.
    #[serde(default = "default_loss")]
    pub loss: ReconLoss,
    /// Gaussian only: the KL weight rises from ~0 to 1 over the first N steps
    /// (0: no warm-up), in the shape of `kl_anneal`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub kl_warmup_steps: u64,
    /// The shape of the KL warm-up: `linear` (default) or `logistic` (Bowman et al.
    /// 2016).
    #[serde(default, skip_serializing_if = "is_default")]
    pub kl_anneal: KlAnneal,
    /// Text: word embedding size (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embed_dim: Option<usize>,
    /// Text: the recurrent cell of encoder and decoder, `lstm` (default) or `gru`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<vmf_model::text::Cell>,
    /// Text: probability that a decoder input word is replaced by the unknown token
    /// (0 = Standard, 1 = Inputless).
    #[serde(default, skip_serializing_if = "is_default")]
    pub word_dropout: f64,
    /// Text: dropout probability in [0, 1) on the word embeddings (encoder and decoder
    /// inputs) and the decoder's outputs, during training only (Xu & Durrett use 0.5;
    /// default 0).
    #[serde(default, skip_serializing_if = "is_default")]
    pub dropout: f64,
    /// Text: a checkpoint folder of another text run (`<run>/checkpoints/step-N`,
    /// typically a language model's best) whose word embeddings, recurrent decoder and
    /// softmax layer this run starts from, with z's layers into the decoder at zero
    /// (see `TextVae::with_decoder_of`). Read once, when the run starts; a resumed run
    /// takes its weights from its own checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoder_from: Option<PathBuf>,
    /// Text, with `decoder_from`: for the first N steps the pretrained parts stay
    /// fixed and only the encoder, its heads and z's layers learn (0: all train from
    /// the first step).
    #[serde(default, skip_serializing_if = "is_default")]
    pub freeze_decoder_steps: u64,
    /// Images: `mlp` (the default) or `conv` (stride-2 convolutions before the
    /// encoder's MLP, transposed ones after the decoder's; `hidden` then sizes the
    /// MLPs between the features and the latent).
    #[serde(default, skip_serializing_if = "is_default")]
    pub arch: Arch,
    /// `arch = "conv"`: output channels of each convolutional layer (default
    /// [32, 64]); each layer halves height and width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<usize>>,
}

/// The image model's architecture (`model.arch`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// Fully connected layers (`model.hidden`).
    #[default]
    Mlp,
    /// Convolutional trunks (`model.channels`) around fully connected layers.
    Conv,
}

/// Default of `model.channels`.
pub const DEFAULT_CONV_CHANNELS: [usize; 2] = [32, 64];

/// Default of `data.test_fraction`.
pub const DEFAULT_TEST_FRACTION: f64 = 0.1;

impl ModelConfig {
    /// The dimension of each sphere of the latent (z of a block is on
    /// S^(sphere_dim - 1)): latent_dim / factors; the first block's where `blocks`
    /// gives sizes that differ (such a product learns kappa, which needs none).
    pub fn sphere_dim(&self) -> usize {
        self.latent_blocks().dims()[0]
    }

    /// The spheres of the latent: `blocks` where given, else `factors` equal blocks
    /// (one: one sphere).
    pub fn latent_blocks(&self) -> Blocks {
        if self.blocks.is_empty() {
            Blocks::equal(self.latent_dim, self.factors)
        } else {
            Blocks::of(self.blocks.clone())
        }
    }

    /// The convolutional layers' channels, `None` for the MLP.
    pub fn conv_channels(&self) -> Option<Vec<usize>> {
        (self.arch == Arch::Conv).then(|| {
            self.channels
                .clone()
                .unwrap_or_else(|| DEFAULT_CONV_CHANNELS.to_vec())
        })
    }
}

/// The shape of the KL weight's warm-up over `model.kl_warmup_steps` = N steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlAnneal {
    /// (step + 1) / N, then 1.
    #[default]
    Linear,
    /// 1 / (1 + exp(-10 (step + 1 - N / 2) / N)): 0.007 at the start, 0.5 at N / 2,
    /// 0.993 at N, then 1.
    Logistic,
}

// Keys at their default are not written, so configs (and the identity hashes of
// runs) from before a key existed stay valid.
fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn one_factor() -> usize {
    1
}

fn is_one_factor(v: &usize) -> bool {
    *v == 1
}

fn default_loss() -> ReconLoss {
    ReconLoss::Bernoulli
}

/// `[optimizer]` (Adam).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Each key omitted takes its default (the section's Default), not only the section.
#[serde(deny_unknown_fields, default)]
pub struct OptimizerConfig {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon (PyTorch's default 1e-8; Burn's is 1e-5).
    pub eps: f64,
    /// Multiply the learning rate by this factor in (0, 1] whenever the validation
    /// ELBO has not improved for `lr_patience` epochs (1: never; a plateau schedule
    /// like PyTorch's `ReduceLROnPlateau`).
    #[serde(skip_serializing_if = "is_one")]
    pub lr_decay: f64,
    /// Epochs without a better validation ELBO before each decay (default 1).
    #[serde(skip_serializing_if = "is_one_usize")]
    pub lr_patience: usize,
    /// A schedule of factors on `lr` by step (PyTorch's `LambdaLR`), e.g. a cosine
    /// from 1 to 0.01 over the run; plateau decays multiply it further. Absent: 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr_factor: Option<Schedule>,
    /// Clip the global L2 norm of all gradients to this value before each update
    /// (PyTorch's `clip_grad_norm_`; absent: no clipping). `metrics.csv` then logs
    /// the norm before clipping (`grad_norm`, the window's mean).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip_norm: Option<f64>,
}

// Keys at their default are not written (see `is_default`).
fn is_one(v: &f64) -> bool {
    *v == 1.0
}
fn is_one_usize(v: &usize) -> bool {
    *v == 1
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            lr_decay: 1.0,
            lr_patience: 1,
            lr_factor: None,
            clip_norm: None,
        }
    }
}

impl OptimizerConfig {
    /// The learning rate at `step` after `decays` plateau decays.
    pub fn lr_at(&self, step: u64, decays: u32) -> f64 {
        let factor = match &self.lr_factor {
            Some(s) => s.plain_at(step).expect("validated: a plain schedule"),
            None => 1.0,
        };
        self.lr * factor * self.lr_decay.powi(decays as i32)
    }

    /// Whether a validation that leaves `epochs_since_best` epochs without a better
    /// ELBO (0: this one was better) decays the learning rate.
    pub fn decays_after(&self, epochs_since_best: usize) -> bool {
        self.lr_decay < 1.0
            && epochs_since_best > 0
            && epochs_since_best.is_multiple_of(self.lr_patience)
    }
}

/// `[training]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Stop after this many steps in total, even mid-epoch.
    #[serde(default)]
    pub max_steps: Option<u64>,
    /// Examples per step (the last partial batch of an epoch is dropped).
    pub batch_size: usize,
    /// Read the loss back and write a metrics row every N steps.
    #[serde(default = "default_log_every")]
    pub log_every: u64,
    /// Batch size of the test-set evaluation.
    #[serde(default = "default_eval_batch")]
    pub eval_batch_size: usize,
    /// Write PNG grids after each epoch.
    #[serde(default = "default_true")]
    pub images: bool,
    /// Split each batch into this many shards whose forward and backward run in
    /// parallel threads (data parallelism inside one process; see `step.rs`). Changes
    /// the numbers only by rounding; not part of a run's identity.
    #[serde(default = "default_shards")]
    pub shards: usize,
    /// Stop when the validation ELBO has not improved for this many epochs (0: never;
    /// needs `data.validation`). The best checkpoint is kept either way.
    #[serde(default)]
    pub patience: usize,
    /// Epochs of burn-in: early stopping (`patience`) may end a run only after this
    /// many epochs (0: from the first; the S-VAE authors' later code uses 100). The
    /// best checkpoint is tracked from the first epoch either way.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub burn_in: usize,
    /// A validation ELBO counts as an improvement for `patience` and
    /// `optimizer.lr_patience` only when it beats the last one that counted by more
    /// than this many nats (0: any better value; Keras' `min_delta`, PyTorch's
    /// `threshold` in absolute mode). Without it a plateau schedule chases gains of
    /// hundredths of a nat for hundreds of epochs. The best checkpoint follows the
    /// highest validation ELBO either way.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub min_delta: f64,
    /// The latent noise of each epoch's validation ELBO: `"per-epoch"` (fresh noise,
    /// the default) or `"fixed"` (the first epoch's noise every epoch, so that two
    /// epochs differ only by their weights; see [`ValidNoise`]).
    #[serde(default, skip_serializing_if = "ValidNoise::is_per_epoch")]
    pub valid_noise: ValidNoise,
    /// Importance samples per test example for the log-likelihood of each epoch's
    /// evaluation (`eval.csv`'s `nll_is`, and `ppl_is` for text; 0: not computed).
    /// The `eval` binary's default is 500; a few keep the epochs cheap.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub eval_samples: usize,
}

impl LoopConfig {
    /// What a stall of the validation ELBO is under `min_delta`, for messages.
    pub fn no_improvement(&self) -> String {
        if self.min_delta > 0.0 {
            format!(
                "no validation ELBO better by more than {} nats",
                self.min_delta
            )
        } else {
            "no better validation ELBO".into()
        }
    }
}

/// `training.valid_noise`: which latent noise the validation ELBO of each epoch draws.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ValidNoise {
    /// Fresh noise every epoch: each epoch's figure is an unbiased estimate of its
    /// ELBO, but two epochs also differ by the noise's scatter (about 0.04 nats sd on
    /// 10,000 MNIST images), which a plateau schedule can take for gains once the
    /// weights stand still.
    #[default]
    PerEpoch,
    /// The first epoch's noise every epoch (common random numbers): epochs compare
    /// paired, so weights that stand still give the same figure to the bit, and what
    /// improves is the weights. Each figure is still an unbiased estimate on its own.
    Fixed,
}

impl ValidNoise {
    /// The epoch whose noise the validation of `epoch` (1-based) draws.
    pub fn epoch(self, epoch: u64) -> u64 {
        match self {
            Self::PerEpoch => epoch,
            Self::Fixed => 1,
        }
    }

    fn is_per_epoch(&self) -> bool {
        *self == Self::PerEpoch
    }
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

fn is_zero_f64(v: &f64) -> bool {
    *v == 0.0
}

fn default_shards() -> usize {
    1
}

fn default_log_every() -> u64 {
    50
}
fn default_eval_batch() -> usize {
    1000
}
fn default_true() -> bool {
    true
}

/// `[checkpoint]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Each key omitted takes its default (the section's Default), not only the section.
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// Also checkpoint every N steps (0: only at the end of each epoch).
    pub every_steps: u64,
    /// How many checkpoints to keep (the newest).
    pub keep: usize,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            every_steps: 0,
            keep: 3,
        }
    }
}

/// What identifies a training trajectory: a checkpoint only resumes a run whose
/// identity hash matches. Loop length, logging and checkpoint cadence may change.
#[derive(Serialize)]
struct Identity<'a> {
    seed: u64,
    data: &'a DataConfig,
    model: &'a ModelConfig,
    kappa: &'a Option<Schedule>,
    optimizer: &'a OptimizerConfig,
    batch_size: usize,
    // It moves the plateau decays; left out at 0 so that older runs keep their hash.
    #[serde(skip_serializing_if = "is_zero_f64")]
    min_delta: f64,
    // Likewise (it moves the best epoch, the decays and the stop).
    #[serde(skip_serializing_if = "ValidNoise::is_per_epoch")]
    valid_noise: ValidNoise,
}

impl TrainConfig {
    /// Reads, parses and validates a config file. A bare file name that does not
    /// exist in the current folder is looked up in `configs/`.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let path = resolve_config_path(path);
        let text = std::fs::read_to_string(&path).map_err(|e| TrainError::Config {
            file: path.clone(),
            message: format!("cannot read it: {e}"),
        })?;
        Self::parse(&text, &path)
    }

    /// Parses and validates TOML text; `file` is named in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Self, TrainError> {
        let config: Self = toml::from_str(text).map_err(|e| TrainError::Config {
            file: file.to_path_buf(),
            message: e.to_string(),
        })?;
        config.validate().map_err(|message| TrainError::Config {
            file: file.to_path_buf(),
            message,
        })?;
        Ok(config)
    }

    /// Checks every value; the message names the key and the reason.
    pub fn validate(&self) -> Result<(), String> {
        if self.run_dir.as_os_str().is_empty() {
            return Err(
                "run_dir is empty: name a folder for the run's config, metrics and \
                        checkpoints (e.g. run_dir = \"runs/mnist\", or --run-dir)"
                    .into(),
            );
        }
        let m = &self.model;
        let min_dim = match m.kind.family() {
            Some(_) => vmf_core::DIM_MIN,
            None => 1,
        };
        if !(min_dim..=vmf_core::DIM_MAX).contains(&m.latent_dim) {
            return Err(format!(
                "model.latent_dim = {}: must be between {min_dim} and {}",
                m.latent_dim,
                vmf_core::DIM_MAX
            ));
        }
        match (m.kind, &self.kappa) {
            (ModelKind::Vmf | ModelKind::PowerSpherical, None) => {
                let (name, key) = match m.kind {
                    ModelKind::Vmf => ("vMF", "vmf"),
                    _ => ("Power Spherical", "power_spherical"),
                };
                return Err(format!(
                    "no [kappa] section: the {name} model (model.kind = \"{key}\") needs a \
                     kappa schedule (e.g. [kappa] schedule = \"constant\" value = 20.0)"
                ));
            }
            (ModelKind::Gaussian | ModelKind::Lm, Some(_)) => {
                return Err(format!(
                    "[kappa] with model.kind = \"{}\": this model has no kappa; remove the \
                     [kappa] section",
                    if m.kind == ModelKind::Lm {
                        "lm"
                    } else {
                        "gaussian"
                    }
                ));
            }
            _ => {}
        }
        self.validate_factors()?;
        let kl_in_loss =
            m.kind == ModelKind::Gaussian || self.kappa.as_ref().is_some_and(|k| k.is_learned());
        if !kl_in_loss && m.kl_warmup_steps > 0 {
            return Err(format!(
                "model.kl_warmup_steps = {}: only for model.kind = \"gaussian\" or a learned \
                 kappa (at a scheduled kappa the vMF KL is a constant, schedule kappa instead; \
                 the language model has no KL)",
                m.kl_warmup_steps
            ));
        }
        if m.kl_anneal != KlAnneal::Linear && m.kl_warmup_steps == 0 {
            return Err(
                "model.kl_anneal shapes the KL warm-up: it needs model.kl_warmup_steps".into(),
            );
        }
        if m.kind == ModelKind::Lm && self.data.dataset.modality() != Modality::Sentences {
            return Err(
                "model.kind = \"lm\" is the language-model baseline of text data sets; an \
                 image model needs a latent (\"vmf\" or \"gaussian\")"
                    .into(),
            );
        }
        if let Some(i) = m.hidden.iter().position(|&h| h == 0) {
            return Err(format!(
                "model.hidden[{i}] = 0: layer sizes must be positive"
            ));
        }
        let o = &self.optimizer;
        if !(o.lr.is_finite() && o.lr > 0.0) {
            return Err(format!(
                "optimizer.lr = {}: must be a positive number",
                o.lr
            ));
        }
        for (key, b) in [("optimizer.beta1", o.beta1), ("optimizer.beta2", o.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(format!("{key} = {b}: must be in [0, 1)"));
            }
        }
        if !(o.eps.is_finite() && o.eps > 0.0) {
            return Err(format!(
                "optimizer.eps = {}: must be a positive number",
                o.eps
            ));
        }
        if !(o.lr_decay > 0.0 && o.lr_decay <= 1.0) {
            return Err(format!(
                "optimizer.lr_decay = {}: must be in (0, 1] (1: no decay)",
                o.lr_decay
            ));
        }
        if let Some(f) = &o.lr_factor {
            f.validate_factor("optimizer.lr_factor")?;
        }
        if o.lr_patience == 0 {
            return Err("optimizer.lr_patience = 0: must be at least 1 epoch".into());
        }
        if let Some(c) = o.clip_norm
            && !(c.is_finite() && c > 0.0)
        {
            return Err(format!(
                "optimizer.clip_norm = {c}: must be a positive number (leave the key out \
                 for no clipping)"
            ));
        }
        let t = &self.training;
        let has_validation = match self.data.dataset.modality() {
            // Sentences come with a validation file.
            Modality::Sentences => true,
            Modality::Images => self.data.validation > 0,
        };
        if o.lr_decay < 1.0 && !has_validation {
            return Err(format!(
                "optimizer.lr_decay = {}: the decay follows the validation ELBO; set \
                 data.validation to the number of training images to hold out",
                o.lr_decay
            ));
        }
        if t.batch_size == 0 {
            return Err("training.batch_size = 0: must be at least 1".into());
        }
        if t.patience > 0 && !has_validation {
            return Err(format!(
                "training.patience = {}: early stopping needs a validation set; set \
                 data.validation to the number of training images to hold out",
                t.patience
            ));
        }
        if t.burn_in > 0 && t.patience == 0 {
            return Err(format!(
                "training.burn_in = {}: the burn-in delays early stopping, which is off; set \
                 training.patience too",
                t.burn_in
            ));
        }
        if !(t.min_delta.is_finite() && t.min_delta >= 0.0) {
            return Err(format!(
                "training.min_delta = {}: must be a number of nats >= 0 (0: any better \
                 validation ELBO counts)",
                t.min_delta
            ));
        }
        if t.min_delta > 0.0 && t.patience == 0 && o.lr_decay == 1.0 {
            return Err(format!(
                "training.min_delta = {}: it sets what counts as an improvement for early \
                 stopping and the plateau decay, and neither is on; set training.patience \
                 or optimizer.lr_decay, or remove it",
                t.min_delta
            ));
        }
        if t.valid_noise == ValidNoise::Fixed && !has_validation {
            return Err(
                "training.valid_noise = \"fixed\": it sets the noise of the validation \
                 ELBO, and there is no validation set; set data.validation to the number \
                 of training images to hold out, or remove it"
                    .into(),
            );
        }
        if t.shards == 0 || t.shards > t.batch_size {
            return Err(format!(
                "training.shards = {}: must be between 1 and training.batch_size = {}",
                t.shards, t.batch_size
            ));
        }
        if t.eval_batch_size == 0 {
            return Err("training.eval_batch_size = 0: must be at least 1".into());
        }
        if t.log_every == 0 {
            return Err("training.log_every = 0: must be at least 1".into());
        }
        if t.epochs == 0 && t.max_steps.is_none() {
            return Err("training.epochs = 0 and no training.max_steps: nothing to train".into());
        }
        if self.checkpoint.keep == 0 {
            return Err("checkpoint.keep = 0: keep at least 1 checkpoint".into());
        }
        for (key, limit) in [
            ("data.train_limit", self.data.train_limit),
            ("data.test_limit", self.data.test_limit),
        ] {
            if limit == Some(0) {
                return Err(format!("{key} = 0: must be at least 1"));
            }
        }
        if let Some(limit) = self.data.train_limit
            && limit < t.batch_size
        {
            return Err(format!(
                "data.train_limit = {limit} is smaller than training.batch_size = {}: no full batch",
                t.batch_size
            ));
        }
        match self.data.dataset.modality() {
            Modality::Sentences => self.validate_text()?,
            Modality::Images => self.validate_images()?,
        }
        match &self.kappa {
            Some(k) => k.validate("kappa", self.family(), m.sphere_dim())?,
            None => return Ok(()),
        }
        let (inits, blocks) = (self.block_kappa_init(), self.model.latent_blocks());
        if inits.is_empty() {
            Ok(())
        } else if blocks.count() < 2 {
            Err(
                "kappa.block_init is for a product of spheres (model.blocks or \
                 model.factors); one sphere starts at kappa.init: remove block_init"
                    .into(),
            )
        } else if inits.len() != blocks.count() {
            Err(format!(
                "kappa.block_init gives {} starting kappas for the {} blocks of the latent \
                 ({:?}): give one per block, in order",
                inits.len(),
                blocks.count(),
                blocks.dims()
            ))
        } else {
            Ok(())
        }
    }

    /// `model.factors` and `model.blocks`: a product of spheres is for images, on the
    /// sphere, with a learned kappa, and its blocks are spheres of at least S^1 that
    /// fill latent_dim.
    fn validate_factors(&self) -> Result<(), String> {
        let m = &self.model;
        if !m.blocks.is_empty() {
            self.validate_blocks()?;
        }
        let (named, fix, g) = if m.blocks.is_empty() {
            let fix = "or set model.factors = 1 (one sphere)";
            (format!("model.factors = {}", m.factors), fix, m.factors)
        } else {
            let fix = "or remove model.blocks (one sphere)";
            (
                format!("model.blocks = {:?}", m.blocks),
                fix,
                m.blocks.len(),
            )
        };
        if g == 1 {
            return Ok(());
        }
        if g == 0 {
            return Err(format!("model.factors = 0: must be at least 1 ({fix})"));
        }
        if m.kind.family().is_none() {
            return Err(format!(
                "{named}: a product of spheres is a latent on the sphere; use \
                 model.kind = \"vmf\" or \"power_spherical\", {fix}"
            ));
        }
        if self.data.dataset.modality() != Modality::Images {
            return Err(format!(
                "{named}: a product of spheres is for image data sets; {fix}"
            ));
        }
        if m.blocks.is_empty()
            && (!m.latent_dim.is_multiple_of(g) || m.latent_dim / g < vmf_core::DIM_MIN)
        {
            return Err(format!(
                "model.factors = {g} with model.latent_dim = {}: the blocks must be of equal \
                 size, at least {} each (latent_dim a multiple of factors, e.g. \
                 latent_dim = {}), {fix}",
                m.latent_dim,
                vmf_core::DIM_MIN,
                g * vmf_core::DIM_MIN.max(m.latent_dim / g)
            ));
        }
        if !self.kappa.as_ref().is_some_and(|k| k.is_learned()) {
            return Err(format!(
                "{named}: a product of spheres needs a learned kappa \
                 ([kappa] schedule = \"learned\" or \"per_example\"; the KL budgets and \
                 schedules are for one sphere), {fix}"
            ));
        }
        Ok(())
    }

    /// `model.blocks`, where given: sizes of at least 2 that sum to latent_dim, and
    /// `factors` left at 1 or equal to their number.
    fn validate_blocks(&self) -> Result<(), String> {
        let m = &self.model;
        let (named, g) = (format!("model.blocks = {:?}", m.blocks), m.blocks.len());
        if m.factors != 1 && m.factors != g {
            return Err(format!(
                "{named} gives {g} blocks but model.factors = {}: set factors = {g} or \
                 leave it out",
                m.factors
            ));
        }
        if let Some(small) = m.blocks.iter().find(|&&b| b < vmf_core::DIM_MIN) {
            return Err(format!(
                "{named}: a block of {small} dimensions; each block's ambient dimension \
                 must be at least {} (a block of m dimensions is the sphere S^(m-1))",
                vmf_core::DIM_MIN
            ));
        }
        let sum: usize = m.blocks.iter().sum();
        if sum != m.latent_dim {
            return Err(format!(
                "{named} sums to {sum} but model.latent_dim = {}: the blocks fill the \
                 latent; set latent_dim = {sum}",
                m.latent_dim
            ));
        }
        Ok(())
    }

    /// The keys of the text data kind.
    fn validate_text(&self) -> Result<(), String> {
        let (d, m) = (&self.data, &self.model);
        if d.dataset == DatasetKind::Text && d.dir.is_none() {
            return Err(
                "data.dataset = \"text\" needs data.dir: a folder with train.txt, \
                        valid.txt and test.txt (one sentence per line)"
                    .into(),
            );
        }
        if d.pixels != PixelMode::Grey {
            return Err("data.pixels is for images; remove it from a text config".into());
        }
        if d.validation != 0 {
            return Err(format!(
                "data.validation = {}: text data sets have their own validation file \
                 (valid.txt); remove the key",
                d.validation
            ));
        }
        if m.loss != ReconLoss::Bernoulli {
            return Err(
                "model.loss is for images (text uses the token cross-entropy); \
                        remove it"
                    .into(),
            );
        }
        if m.hidden.len() != 1 {
            return Err(format!(
                "model.hidden = {:?}: a text model has one recurrent layer, e.g. hidden = [400]",
                m.hidden
            ));
        }
        let image_keys = [
            ("data.channels", d.channels.is_some()),
            ("data.size", d.size.is_some()),
            ("data.test_fraction", d.test_fraction.is_some()),
            ("data.split_seed", d.split_seed != 0),
            ("model.arch", m.arch != Arch::Mlp),
            ("model.channels", m.channels.is_some()),
        ];
        if let Some((key, _)) = image_keys.iter().find(|(_, set)| *set) {
            return Err(format!(
                "{key} is for image data sets; remove it from a text config"
            ));
        }
        for (key, v) in [
            ("data.vocab_size", d.vocab_size),
            ("data.min_count", d.min_count),
            ("data.max_length", d.max_length),
            ("model.embed_dim", m.embed_dim),
        ] {
            if v == Some(0) {
                return Err(format!("{key} = 0: must be at least 1"));
            }
        }
        if !(0.0..=1.0).contains(&m.word_dropout) {
            return Err(format!(
                "model.word_dropout = {}: must be a probability in [0, 1]",
                m.word_dropout
            ));
        }
        if !(0.0..1.0).contains(&m.dropout) {
            return Err(format!(
                "model.dropout = {}: must be a probability in [0, 1) (1 would drop every unit)",
                m.dropout
            ));
        }
        if m.freeze_decoder_steps > 0 && m.decoder_from.is_none() {
            return Err(format!(
                "model.freeze_decoder_steps = {}: holds a pretrained decoder fixed, and \
                 there is none; set model.decoder_from to a language model's checkpoint \
                 folder, or remove the key",
                m.freeze_decoder_steps
            ));
        }
        Ok(())
    }

    /// Refuses the text keys in an image config.
    fn validate_images(&self) -> Result<(), String> {
        let (d, m) = (&self.data, &self.model);
        let text_keys = [
            ("data.vocab_size", d.vocab_size.is_some()),
            ("data.min_count", d.min_count.is_some()),
            ("data.max_length", d.max_length.is_some()),
            ("data.long_sentences", d.long_sentences.is_some()),
            ("model.embed_dim", m.embed_dim.is_some()),
            ("model.cell", m.cell.is_some()),
            ("model.word_dropout", m.word_dropout != 0.0),
            ("model.dropout", m.dropout != 0.0),
            ("model.decoder_from", m.decoder_from.is_some()),
            ("model.freeze_decoder_steps", m.freeze_decoder_steps != 0),
        ];
        if let Some((key, _)) = text_keys.iter().find(|(_, set)| *set) {
            return Err(format!(
                "{key} is for text data sets (data.dataset = \"ptb\" or \"text\"); remove it \
                 from an image config"
            ));
        }
        let folder = d.dataset == DatasetKind::ImageFolder;
        if folder && d.dir.is_none() {
            return Err(
                "data.dataset = \"image_folder\" needs data.dir: a folder of PNG or JPEG \
                 images (with train/ and test/ subfolders, or split by data.test_fraction)"
                    .into(),
            );
        }
        let folder_keys = [
            ("data.channels", d.channels.is_some()),
            ("data.size", d.size.is_some()),
            ("data.test_fraction", d.test_fraction.is_some()),
            ("data.split_seed", d.split_seed != 0),
        ];
        if let (false, Some((key, _))) = (folder, folder_keys.iter().find(|(_, set)| *set)) {
            return Err(format!(
                "{key} is for data.dataset = \"image_folder\" (MNIST-format files fix \
                 their size and channels); remove it"
            ));
        }
        if let Some(c) = d.channels
            && c != 1
            && c != 3
        {
            return Err(format!("data.channels = {c}: must be 1 (grey) or 3 (RGB)"));
        }
        if let Some([h, w]) = d.size
            && (h == 0 || w == 0)
        {
            return Err(format!(
                "data.size = [{h}, {w}]: height and width must be positive"
            ));
        }
        if let Some(f) = d.test_fraction
            && !(f > 0.0 && f < 1.0)
        {
            return Err(format!(
                "data.test_fraction = {f}: must be between 0 and 1 (exclusive), e.g. 0.1"
            ));
        }
        if d.pixels != PixelMode::Grey && d.channels == Some(3) {
            return Err(format!(
                "data.pixels = \"{}\" binarises grey levels; RGB images (data.channels = 3) \
                 need pixels = \"grey\"",
                if d.pixels == PixelMode::StaticBinary {
                    "static_binary"
                } else {
                    "dynamic_binary"
                }
            ));
        }
        match (m.arch, &m.channels) {
            (Arch::Mlp, Some(_)) => Err(
                "model.channels sizes the convolutional layers: it needs model.arch = \"conv\""
                    .into(),
            ),
            (Arch::Conv, Some(c)) if c.is_empty() || c.contains(&0) => Err(format!(
                "model.channels = {c:?}: give each convolutional layer a positive number of \
                 channels, e.g. [32, 64]"
            )),
            _ => Ok(()),
        }
    }

    /// Hex SHA-256 of what defines the trajectory (see `Identity`).
    pub fn identity_hash(&self) -> String {
        let id = Identity {
            seed: self.seed,
            data: &self.data,
            model: &self.model,
            kappa: &self.kappa,
            optimizer: &self.optimizer,
            batch_size: self.training.batch_size,
            min_delta: self.training.min_delta,
            valid_noise: self.training.valid_noise,
        };
        let text = serde_json::to_string(&id).expect("config serialises");
        format!("{:x}", Sha256::digest(text.as_bytes()))
    }

    /// The hyperspherical family of the run's posterior (the vMF where it has none:
    /// only a model on the sphere reads it).
    pub fn family(&self) -> vmf_core::Family {
        self.model.kind.family().unwrap_or_default()
    }

    /// The KL weight at `step`: the warm-up of the Gaussian model
    /// (`model.kl_warmup_steps`, `model.kl_anneal`), 1 otherwise.
    pub fn kl_weight(&self, step: u64) -> f64 {
        let w = self.model.kl_warmup_steps;
        if w == 0 || step + 1 >= w {
            return 1.0;
        }
        let t = (step + 1) as f64 / w as f64;
        match self.model.kl_anneal {
            KlAnneal::Linear => t,
            KlAnneal::Logistic => 1.0 / (1.0 + (-10.0 * (t - 0.5)).exp()),
        }
    }

    /// How the model sets kappa (scheduled without a `[kappa]` section).
    pub fn kappa_mode(&self) -> KappaMode {
        self.kappa
            .as_ref()
            .map_or(KappaMode::Scheduled, Schedule::kappa_mode)
    }

    /// A per-example kappa's starting value per block (`kappa.block_init`; empty:
    /// `kappa.init` for every block).
    pub fn block_kappa_init(&self) -> Vec<f64> {
        self.kappa
            .as_ref()
            .map_or_else(Vec::new, |k| k.block_init().to_vec())
    }

    /// The resolved config as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }
}

/// `mnist.toml` -> `configs/mnist.toml` when the former does not exist.
pub fn resolve_config_path(path: &Path) -> PathBuf {
    if path.exists() || path.components().count() != 1 {
        return path.to_path_buf();
    }
    let in_configs = Path::new("configs").join(path);
    if in_configs.exists() {
        return in_configs;
    }
    let in_repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs")
        .join(path);
    if in_repo.exists() {
        in_repo
    } else {
        path.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_warmup(anneal: &str) -> TrainConfig {
        let text = format!(
            "run_dir = \"r\"\n[data]\ndataset = \"mnist\"\n[model]\nkind = \"gaussian\"\n\
             latent_dim = 2\nhidden = [4]\nkl_warmup_steps = 100\nkl_anneal = \"{anneal}\"\n\
             [training]\nepochs = 1\nbatch_size = 4\n"
        );
        TrainConfig::parse(&text, Path::new("t.toml")).unwrap()
    }

    #[test]
    fn kl_warmups_have_their_shapes() {
        let lin = with_warmup("linear");
        let log = with_warmup("logistic");
        assert_eq!(lin.kl_weight(0), 0.01);
        assert_eq!(lin.kl_weight(49), 0.5);
        assert_eq!(log.kl_weight(49), 0.5);
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        assert!((log.kl_weight(0) - sig(-4.9)).abs() < 1e-15);
        assert!((log.kl_weight(98) - sig(4.9)).abs() < 1e-15);
        for c in [&lin, &log] {
            assert_eq!(c.kl_weight(99), 1.0);
            assert_eq!(c.kl_weight(10_000), 1.0);
            assert!(
                (0..99).all(|s| c.kl_weight(s) < c.kl_weight(s + 1)),
                "rising"
            );
        }
    }
}
