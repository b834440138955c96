//! The image data kind: MNIST-format IDX files or folders of PNG/JPEG files
//! ([`crate::data`]), the MLP or convolutional model of vmf-model's `image` module,
//! and PNG grids after each epoch.

use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use vmf_model::{ConvConfig, ImageVae, ImageVaeConfig};

pub mod pictures;

use super::view::View;
use super::{DataKind, Source, Split};
use crate::config::{PixelMode, TrainConfig};
use crate::data::{self, ImageSet, Splits, image_folder};
use crate::error::TrainError;
use crate::output;
use crate::seeds::{self, HostNoise};
use pictures::Pictures;

/// Loaded image splits with the settings that shape their batches.
pub struct Images {
    splits: Splits,
    config: TrainConfig,
    /// The training pixels once uploaded (`[n, pixels]`).
    train_x: Option<Tensor<2>>,
}

/// One epoch: a seeded permutation of the training images, cut into full batches.
pub struct ImageEpoch {
    order: Tensor<1, Int>,
    batches: usize,
    batch_size: usize,
}

impl Images {
    /// The images of `split`, if configured.
    fn set(&self, split: Split) -> Option<&ImageSet> {
        match split {
            Split::Test => Some(&self.splits.test),
            Split::Validation => self.splits.valid.as_ref(),
        }
    }

    /// The loaded splits.
    pub fn splits(&self) -> &Splits {
        &self.splits
    }

    /// The model for these images.
    pub fn model_config(&self, config: &TrainConfig) -> ImageVaeConfig {
        ImageVaeConfig {
            kind: config.model.kind,
            input_dim: self.splits.train.dim,
            hidden: config.model.hidden.clone(),
            latent_dim: config.model.latent_dim,
            blocks: config.model.latent_blocks(),
            loss: config.model.loss,
            kappa: config.kappa_mode(),
            block_kappa_init: config.block_kappa_init(),
            conv: config
                .model
                .conv_channels()
                .map(|channels| ConvConfig::new(self.splits.train.shape, channels)),
        }
    }
}

/// The order of epoch `epoch` (a pure function of seed and epoch).
fn epoch_order(seed: u64, epoch: usize, n: usize) -> Vec<i32> {
    let mut order: Vec<i32> = (0..n as i32).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seeds::derive(
        seed,
        "data-order",
        epoch as u64,
    )));
    order
}

/// The inputs as the model sees them: with dynamic binarisation, one seeded Bernoulli
/// draw for the whole evaluation (static binarisation is applied at load).
pub fn eval_inputs(set: &ImageSet, pixels: PixelMode, seed: u64, device: &Device) -> Tensor<2> {
    let mut values = set.pixels.clone();
    if pixels == PixelMode::DynamicBinary {
        let mut noise = HostNoise::new(seed, "eval-binarisation", 0);
        let rng = noise.rng();
        values
            .iter_mut()
            .for_each(|p| *p = f32::from(u8::from(rng.random::<f32>() < *p)));
    }
    Tensor::from_data(TensorData::new(values, [set.len(), set.dim]), device)
}

impl DataKind for Images {
    type Model = ImageVae;
    type Epoch = ImageEpoch;
    const UNITS: &'static str = "images";

    fn load(config: &TrainConfig) -> Result<Self, TrainError> {
        let splits = data::load(&config.data, config.seed)?;
        let images = Self {
            splits,
            config: config.clone(),
            train_x: None,
        };
        // The conv layers' sizes can only be checked against the loaded images.
        if let Some(conv) = images.model_config(config).conv {
            conv.check().map_err(|e| TrainError::Data {
                file: config.data.folder(),
                message: format!(
                    "model.arch = \"conv\" with model.channels = {:?}: {e}",
                    conv.channels
                ),
            })?;
        }
        Ok(images)
    }

    fn replace_test(&mut self, source: &Source, limit: Option<usize>) -> Result<(), TrainError> {
        let shape = self.splits.train.shape;
        let (mut set, classes, from) = match source {
            Source::Config { config, split } => {
                let mut data = config.data.clone();
                // Binarised below as the run's own images were.
                data.pixels = PixelMode::Grey;
                let mut other = data::load(&data, config.seed)?;
                let set = match split {
                    Split::Test => other.test,
                    Split::Validation => other.valid.take().ok_or_else(|| {
                        TrainError::Usage(format!(
                            "--split valid: {} has no validation split (data.validation = 0)",
                            config.run_dir.display()
                        ))
                    })?,
                };
                (set, other.classes, data.folder())
            }
            Source::Path(dir) => {
                let (set, classes) = image_folder::load_all(dir, shape, limit)?;
                (set, classes, dir.clone())
            }
        };
        if set.shape != shape {
            let [c, h, w] = set.shape;
            let [rc, rh, rw] = shape;
            return Err(TrainError::Data {
                file: from,
                message: format!(
                    "images of {c} channel(s), {h}x{w} pixels, but the run's model reads {rc}                      channel(s), {rh}x{rw}: set data.channels and data.size in that config,                      or pass the image folder itself (it is then converted)"
                ),
            });
        }
        if let Some(n) = limit.filter(|&n| n < set.len()) {
            set.split_off(n);
        }
        if self.config.data.pixels == PixelMode::StaticBinary {
            data::images::binarise(&mut [&mut set], self.config.seed);
        }
        self.splits.test = set;
        self.splits.classes = classes;
        self.splits.valid = None;
        Ok(())
    }

    fn init_model(&self, config: &TrainConfig, device: &Device) -> ImageVae {
        self.model_config(config).init(device)
    }

    fn load_weights(fresh: ImageVae, path: &Path) -> Result<ImageVae, String> {
        fresh.load_weights(path).map_err(|e| e.to_string())
    }

    fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let s = &self.splits;
        for set in [Some(&s.train), s.valid.as_ref(), Some(&s.test)] {
            let Some(set) = set else {
                h.update(b"none");
                continue;
            };
            h.update(format!("{:?} {}", set.shape, set.len()).as_bytes());
            // One update over the buffer (per value, MNIST's 40M would take seconds).
            h.update(bytemuck::cast_slice::<f32, u8>(&set.pixels));
            h.update(&set.labels);
        }
        format!("{:x}", h.finalize())
    }

    fn upload_training(&mut self, device: &Device) {
        // The host copy is not kept: 188 MB for MNIST's training set.
        let set = &mut self.splits.train;
        let pixels = std::mem::take(&mut set.pixels);
        self.train_x = Some(Tensor::from_data(
            TensorData::new(pixels, [set.len(), set.dim]),
            device,
        ));
    }

    fn epoch(&self, seed: u64, epoch: usize, device: &Device) -> ImageEpoch {
        let n = self.splits.train.len();
        let batch_size = self.config.training.batch_size;
        let order = epoch_order(seed, epoch, n);
        ImageEpoch {
            order: Tensor::from_data(TensorData::new(order, [n]), device),
            batches: n / batch_size, // the last partial batch is dropped
            batch_size,
        }
    }

    fn batches(epoch: &ImageEpoch) -> usize {
        epoch.batches
    }

    fn train_batch(
        &self,
        epoch: &ImageEpoch,
        b: usize,
        noise: &mut HostNoise,
        device: &Device,
    ) -> Tensor<2> {
        let train_x = self
            .train_x
            .as_ref()
            .expect("upload_training runs before the first batch");
        let bs = epoch.batch_size;
        let idx = epoch.order.clone().slice(b * bs..(b + 1) * bs);
        let x = train_x.clone().select(0, idx); // [batch, pixels]
        if self.config.data.pixels == PixelMode::DynamicBinary {
            noise.uniform(x.dims(), device).lower(x).float()
        } else {
            x
        }
    }

    fn eval_batches(&self, split: Split, seed: u64, device: &Device) -> Option<Vec<Tensor<2>>> {
        let set = self.set(split)?;
        Some(vec![eval_inputs(
            set,
            self.config.data.pixels,
            seed,
            device,
        )])
    }

    fn labels(&self, split: Split) -> Option<Vec<u8>> {
        self.splits.classes.as_ref()?;
        self.set(split).map(|s| s.labels.clone())
    }

    /// The image's file (relative to the data folder), for image folders.
    fn example_text(&self, split: Split, i: usize) -> Option<String> {
        self.set(split)?.names.get(i).cloned()
    }

    fn epoch_outputs(
        &self,
        model: &ImageVae,
        config: &TrainConfig,
        epoch: usize,
        device: &Device,
    ) -> Result<(), TrainError> {
        if config.training.images {
            write_images(model, &self.splits.test, config, epoch, device)
        } else {
            Ok(())
        }
    }

    fn view(
        &self,
        model: &ImageVae,
        view: View,
        out: Option<&Path>,
        device: &Device,
    ) -> Result<(), TrainError> {
        let out = out.ok_or_else(|| {
            TrainError::Usage("--out is required for an image checkpoint: a PNG file".into())
        })?;
        Pictures::new(model.clone(), self.splits.test.clone(), device.clone()).view(view, out)
    }
}

/// `images/recon-epoch-E.png` (test images over their reconstructions at the
/// posterior's location) and `images/samples-epoch-E.png` (decoded prior samples).
fn write_images(
    model: &ImageVae,
    test: &ImageSet,
    config: &TrainConfig,
    epoch: usize,
    device: &Device,
) -> Result<(), TrainError> {
    use burn::tensor::activation::sigmoid;
    use vmf_model::VaeModel;
    let dir = config.run_dir.join("images");
    std::fs::create_dir_all(&dir).map_err(TrainError::io("creating", &dir))?;
    let k = 10.min(test.len());
    let x = Tensor::<2>::from_data(
        TensorData::new(test.pixels[..k * test.dim].to_vec(), [k, test.dim]),
        device,
    );
    let recon = sigmoid(model.decode(model.locate(x.clone())));
    let mut grid = output::rows(x)?;
    grid.extend(output::rows(recon)?);
    output::save_grid(
        &dir.join(format!("recon-epoch-{epoch:03}.png")),
        &grid,
        test.shape,
        k,
    )?;

    let d = config.model.latent_dim;
    let mut rng = StdRng::seed_from_u64(seeds::derive(config.seed, "prior-samples", 0));
    let z: Vec<f32> = (0..100)
        .flat_map(|_| {
            model
                .kind()
                .prior_sample_of_product(&mut rng, &model.latent_blocks())
        })
        .map(|v| v as f32)
        .collect();
    let z = Tensor::<2>::from_data(TensorData::new(z, [100, d]), device);
    let samples = output::rows(sigmoid(model.decode(z)))?;
    output::save_grid(
        &dir.join(format!("samples-epoch-{epoch:03}.png")),
        &samples,
        test.shape,
        10,
    )
}
