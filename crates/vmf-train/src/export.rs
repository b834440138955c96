//! Weights for other stacks: a checkpoint's model as a safetensors file (burn-store's
//! `SafetensorsStore`). Tensor names are the module paths, stable across versions of
//! this code: for the image model `encoder.layers.{i}.weight` / `.bias` and
//! `decoder.layers.{i}...`; Burn's linear weights are `[in, out]` (y = x W + b), and
//! the encoder's hidden layers are followed by ReLU.

use std::path::Path;

use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use vmf_model::{Rows, VaeModel};

use crate::backend::Backend;
use crate::checkpoint::{self, Opened};
use crate::error::TrainError;
use crate::modality::{self, DataKind, Split, WithKind};

/// What [`export_checkpoint`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    /// The posterior's location (mu, or the Gaussian's mean) of the first test
    /// example, computed by the checkpoint's model: a value to check a reader against.
    pub first_location: Vec<f32>,
}

/// Writes the model of the checkpoint folder `path` to the safetensors file `out`
/// (replacing it).
pub fn export_checkpoint(path: &Path, out: &Path) -> Result<Exported, TrainError> {
    let opened = checkpoint::open(path)?;
    let config = opened.config.clone();
    modality::dispatch(
        &config,
        Export {
            opened: &opened,
            out,
        },
    )
}

/// The model of checkpoint `opened` with the weights of the safetensors file `file`
/// loaded over a fresh initialisation: the round trip of [`export_checkpoint`].
pub fn load_exported<K: DataKind>(
    kind: &K,
    opened: &Opened,
    file: &Path,
    device: &Device,
) -> Result<K::Model, TrainError> {
    let mut model = kind.init_model(&opened.config, device);
    let bad = |e: String| TrainError::Data {
        file: file.to_path_buf(),
        message: format!("cannot load as this run's model: {e}"),
    };
    let result = model
        .load_from(&mut SafetensorsStore::from_file(file))
        .map_err(|e| bad(e.to_string()))?;
    if !result.missing.is_empty() {
        return Err(bad(format!("missing tensors {:?}", result.missing)));
    }
    Ok(model)
}

/// The posterior location of the first example of the test file (the evaluation
/// batches may hold it elsewhere: text sorts them by length).
pub fn first_location<K: DataKind>(
    kind: &K,
    model: &K::Model,
    device: &Device,
) -> Result<Vec<f32>, TrainError> {
    let batches = kind
        .eval_batches(Split::Test, 0, device)
        .expect("every data kind has a test split");
    let mut row = kind
        .file_order(Split::Test)
        .and_then(|order| order.iter().position(|&i| i == 0))
        .unwrap_or(0);
    for batch in &batches {
        if row < batch.rows() {
            let first = batch.slice_rows(row..row + 1);
            return crate::output::read_back(model.posterior(&first).location());
        }
        row -= batch.rows();
    }
    Err(TrainError::Usage(
        "the test split is empty: no first example to report".into(),
    ))
}

struct Export<'a> {
    opened: &'a Opened,
    out: &'a Path,
}

impl WithKind for Export<'_> {
    type Output = Result<Exported, TrainError>;

    fn run<K: DataKind>(self) -> Self::Output {
        let device = Backend::default_compiled().device()?;
        let (kind, model) = K::from_checkpoint(self.opened, &self.opened.config, &device)?;
        model
            .save_into(&mut SafetensorsStore::from_file(self.out).overwrite(true))
            .map_err(|e| TrainError::Io {
                what: "writing safetensors",
                path: self.out.to_path_buf(),
                source: std::io::Error::other(e.to_string()),
            })?;
        Ok(Exported {
            first_location: first_location(&kind, &model, &device)?,
        })
    }
}
