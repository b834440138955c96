//! What the training loop, the evaluation and the command-line tools ask of a data
//! kind, and the one place that maps a config to its kind ([`dispatch`]).
//!
//! A data kind brings its data (loading, the batches of an epoch, the evaluation
//! inputs), its model (a [`VaeModel`] over its batch type, built from the config) and
//! its outputs after each epoch (picture grids, or sentences). Everything else, the
//! loop, the kappa schedule, the sharded step, checkpoints and exact resume, metrics
//! files, the evaluation driver and the importance-sampled log-likelihood, is written
//! once against [`DataKind`] and never asks which kind it runs. Adding a kind is a
//! module here, its model in vmf-model, its loader in `data`, a variant of
//! [`Modality`] (whose every use is a `match`, so the compiler lists the places that
//! must learn about it), and one arm in [`dispatch`].

pub mod image;
pub mod text;
pub mod view;

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use vmf_model::{Rows, VaeModel};

use crate::checkpoint::{MODEL_FILE, Opened};
use crate::config::{Modality, TrainConfig};
use crate::error::TrainError;
use crate::seeds::HostNoise;
use view::View;

/// Rows (example x sample pairs) decoded per device call by default: 10,000 MNIST
/// images are 31 MB of logits. Data kinds with larger outputs bound it themselves
/// ([`DataKind::rows_per_call`]).
pub const ROWS_PER_CALL: usize = 10_000;

/// The batch type of a data kind's model.
pub type Batch<K> = <<K as DataKind>::Model as VaeModel>::Batch;

/// Which evaluation split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The held-out tail of the training file (`data.validation`).
    Validation,
    /// The test file.
    Test,
}

/// Examples from outside a trained run, for the tools that apply its model
/// (`encode --data`).
#[derive(Debug, Clone)]
pub enum Source {
    /// A split of another config's data (the same kind of data as the run's).
    Config {
        /// The config whose `[data]` section names the data.
        config: Box<TrainConfig>,
        /// Which of its splits.
        split: Split,
    },
    /// A file or folder of the kind's own examples: a folder of images (class
    /// subfolders give labels), or a file of sentences, one per line.
    Path(PathBuf),
}

/// One data kind: its data, its model and its outputs. See the module docs.
pub trait DataKind: Sized + Sync {
    /// The model this kind trains.
    type Model: VaeModel + Module + Sync;
    /// The plan of one epoch: which examples go into each batch.
    type Epoch;

    /// What throughput counts, in messages and metrics (`images`, `tokens`).
    const UNITS: &'static str;
    /// Whether per-unit figures (perplexities) mean something for this kind.
    const PER_UNIT: bool = false;
    /// Whether each epoch's evaluation reports mutual information and active units
    /// (the measures of KL collapse; O(n^2 d) on the host).
    const LATENT_STATS: bool = false;
    /// Whether [`DataKind::recon_accuracy`] reports a figure (a column of eval.csv).
    const ACCURACY: bool = false;

    /// Loads the splits the config names (for training, the loop then calls
    /// [`DataKind::upload_training`]); reports what it loaded on stderr.
    fn load(config: &TrainConfig) -> Result<Self, TrainError>;

    /// Replaces the test split by the examples of `source` (at most `limit`), read the
    /// way the run's model reads its data: its image shape and pixel mode, or its
    /// vocabulary. Errors name the source and what does not fit.
    fn replace_test(&mut self, source: &Source, limit: Option<usize>) -> Result<(), TrainError>;

    /// The model the config describes, freshly initialised on `device` (Burn's
    /// initialisers draw from the device RNG: the caller seeds it).
    fn init_model(&self, config: &TrainConfig, device: &Device) -> Self::Model;

    /// `model`, freshly initialised, with the pretrained decoder of the checkpoint
    /// folder `checkpoint` (`model.decoder_from`), whose run must have read the same
    /// vocabulary and have the same sizes; errors name the checkpoint and what does
    /// not fit. Only text takes one (config validation keeps the key out of the other
    /// kinds).
    fn with_decoder_from(
        &self,
        model: Self::Model,
        checkpoint: &Path,
        device: &Device,
    ) -> Result<Self::Model, TrainError> {
        let _ = (model, device);
        Err(TrainError::Usage(format!(
            "model.decoder_from = {}: this data kind takes no pretrained decoder",
            checkpoint.display()
        )))
    }

    /// Writes (fresh run) or checks (resumed run) the files of the run folder that
    /// belong to this kind's data, e.g. the vocabulary; none by default.
    fn check_run_folder(&self, _run_dir: &Path, _resuming: bool) -> Result<(), TrainError> {
        Ok(())
    }

    /// `fresh` with the weights of the model file `path` of a checkpoint. A kind whose
    /// checkpoints changed layout overrides this to read the old one too.
    fn load_weights(fresh: Self::Model, path: &Path) -> Result<Self::Model, String> {
        fresh.try_load_file(path).map_err(|e| e.to_string())
    }

    /// A digest of the loaded examples of every split (and of what gives them their
    /// meaning, e.g. the vocabulary): the ranks of an MPI job compare it at start.
    fn fingerprint(&self) -> String;

    /// The data of `config` (the checkpoint's run config, or a variant with other data
    /// limits) and the model it describes on `device` with the weights of `opened`:
    /// what every tool that reads a checkpoint starts from.
    fn from_checkpoint(
        opened: &Opened,
        config: &TrainConfig,
        device: &Device,
    ) -> Result<(Self, Self::Model), TrainError> {
        let kind = Self::load(config)?;
        let fresh = kind.init_model(config, device);
        let model = Self::load_weights(fresh, &opened.path.join(MODEL_FILE)).map_err(|e| {
            TrainError::Checkpoint {
                path: opened.path.clone(),
                message: format!("model: {e}"),
            }
        })?;
        Ok((kind, model))
    }

    /// Moves the training examples to `device`, once, before the first step.
    fn upload_training(&mut self, device: &Device);

    /// The batches of epoch `epoch` (a pure function of seed and epoch, so that a
    /// resumed run sees the same order).
    fn epoch(&self, seed: u64, epoch: usize, device: &Device) -> Self::Epoch;

    /// Batches in an epoch plan.
    fn batches(epoch: &Self::Epoch) -> usize;

    /// Batch `b` of `epoch` on `device`; any per-step randomness of the inputs
    /// (dynamic binarisation, word dropout) is drawn from `noise` (the step's stream).
    fn train_batch(
        &self,
        epoch: &Self::Epoch,
        b: usize,
        noise: &mut HostNoise,
        device: &Device,
    ) -> Batch<Self>;

    /// How many [`DataKind::UNITS`] a batch holds (its rows by default).
    fn units(batch: &Batch<Self>) -> usize {
        batch.rows()
    }

    /// Rows of `batch` (examples, or example x sample pairs) that one device call of
    /// the evaluation may decode: bounds the memory of the decoder's output.
    fn rows_per_call(&self, _batch: &Batch<Self>) -> usize {
        ROWS_PER_CALL
    }

    /// The evaluation inputs of `split` on `device`, in batches (`None` when the split
    /// is not configured); `seed` fixes any randomness of the inputs.
    fn eval_batches(&self, split: Split, seed: u64, device: &Device) -> Option<Vec<Batch<Self>>>;

    /// For each row of [`DataKind::eval_batches`] (in order, batch after batch), the
    /// example's index in the split's file, where the evaluation reorders them (text
    /// sorts by length); `None` when the rows are in file order.
    fn file_order(&self, _split: Split) -> Option<Vec<usize>> {
        None
    }

    /// The examples' labels in file order, where the data has them (image classes).
    fn labels(&self, _split: Split) -> Option<Vec<u8>> {
        None
    }

    /// Example `i` of `split` (file order) as one line: its text where it is text, its
    /// file where it has a file of its own (image folders).
    fn example_text(&self, _split: Split, _i: usize) -> Option<String> {
        None
    }

    /// The share of the units of `split` that the model's greedy reconstruction from
    /// the posterior's location gets exactly right (text: tokens, end token counted,
    /// at their position), for kinds with [`DataKind::ACCURACY`]; `None` by default.
    fn recon_accuracy(
        &self,
        _model: &Self::Model,
        _split: Split,
        _device: &Device,
    ) -> Result<Option<f64>, TrainError> {
        Ok(None)
    }

    /// Renders `view` of a trained `model` of this kind into `out` (see
    /// [`View`]; the `pictures` tool calls it through [`crate::views`]).
    fn view(
        &self,
        model: &Self::Model,
        view: View,
        out: Option<&Path>,
        device: &Device,
    ) -> Result<(), TrainError>;

    /// This kind's outputs after epoch `epoch` (1-based) into the run folder, e.g.
    /// reconstructions and prior samples.
    fn epoch_outputs(
        &self,
        model: &Self::Model,
        config: &TrainConfig,
        epoch: usize,
        device: &Device,
    ) -> Result<(), TrainError>;
}

/// Something to do with a data kind chosen at run time: [`dispatch`] calls
/// [`WithKind::run`] with the kind the config names.
pub trait WithKind {
    /// What the work returns.
    type Output;
    /// Does the work with data kind `K`.
    fn run<K: DataKind>(self) -> Self::Output;
}

/// Rows of `width` values each, read in the evaluation's order, put back in file order:
/// row r goes to position `order[r]` ([`DataKind::file_order`]); `None` leaves them as
/// they are. Used wherever per-example results leave the library (embeddings,
/// per-example likelihoods).
pub fn to_file_order<T: Copy + Default>(
    rows: Vec<T>,
    width: usize,
    order: Option<&[usize]>,
) -> Vec<T> {
    let Some(order) = order else { return rows };
    let mut out = vec![T::default(); rows.len()];
    for (row, &i) in order.iter().enumerate() {
        out[i * width..(i + 1) * width].copy_from_slice(&rows[row * width..(row + 1) * width]);
    }
    out
}

/// Runs `work` with the data kind of `config`: the only place that lists the kinds.
pub fn dispatch<W: WithKind>(config: &TrainConfig, work: W) -> W::Output {
    match config.data.dataset.modality() {
        Modality::Images => work.run::<image::Images>(),
        Modality::Sentences => work.run::<text::Sentences>(),
    }
}
