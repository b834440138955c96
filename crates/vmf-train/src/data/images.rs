//! The in-memory image splits that every image source fills (MNIST-format IDX files,
//! folders of PNG/JPEG files), with burn-dataset's [`Dataset`] trait, and the one
//! loader that picks the source from the config and applies what all sources share:
//! static binarisation and the validation hold-out.

use burn::data::dataset::{Dataset, DatasetError};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::{idx, image_folder};
use crate::config::{DataConfig, DatasetKind, Modality, PixelMode};
use crate::error::TrainError;

/// One labelled image (pixels in [0, 1]).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageItem {
    /// Values in [0, 1], channel planes one after the other.
    pub pixels: Vec<f32>,
    /// Class label.
    pub label: u8,
}

/// A split held in memory: `len` images of `dim` values each.
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// Values in [0, 1], `len * dim` of them: image after image, each as its
    /// channel planes one after the other (channels, then rows, then columns; Burn's
    /// NCHW layout).
    pub pixels: Vec<f32>,
    /// Class labels (all 0 in a data set without classes).
    pub labels: Vec<u8>,
    /// Values per image: channels x height x width.
    pub dim: usize,
    /// Channels (1 grey, 3 RGB), height and width.
    pub shape: [usize; 3],
    /// Each image's file, relative to the data folder, where images come from files
    /// of their own (image folders); empty otherwise.
    pub names: Vec<String>,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Removes the images from `at` on and returns them.
    pub fn split_off(&mut self, at: usize) -> ImageSet {
        ImageSet {
            pixels: self.pixels.split_off(at * self.dim),
            labels: self.labels.split_off(at),
            dim: self.dim,
            shape: self.shape,
            names: if self.names.is_empty() {
                Vec::new()
            } else {
                self.names.split_off(at)
            },
        }
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

impl Dataset<ImageItem> for ImageSet {
    fn get(&self, index: usize) -> Result<ImageItem, DatasetError> {
        if index >= self.len() {
            let msg = format!("index {index} out of bounds for {} images", self.len());
            return Err(DatasetError::new(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                msg,
            )));
        }
        Ok(ImageItem {
            pixels: self.pixels[index * self.dim..(index + 1) * self.dim].to_vec(),
            label: self.labels[index],
        })
    }

    fn len(&self) -> usize {
        self.labels.len()
    }
}

/// Train and test splits.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Training images.
    pub train: ImageSet,
    /// Validation images: the last `data.validation` of the training file's images
    /// (after `train_limit`), held out of training.
    pub valid: Option<ImageSet>,
    /// Test images.
    pub test: ImageSet,
    /// The names of the classes the labels index (`None`: the images have no
    /// classes, and every label is 0).
    pub classes: Option<Vec<String>>,
}

/// Static binarisation: each pixel becomes 1 with its grey level as probability, one
/// draw for the run (seeded by the run's `seed`), `sets` in order.
pub fn binarise(sets: &mut [&mut ImageSet], seed: u64) {
    let mut rng = StdRng::seed_from_u64(crate::seeds::derive(seed, "static-binarisation", 0));
    for set in sets {
        set.pixels
            .iter_mut()
            .for_each(|p| *p = f32::from(u8::from(rng.random::<f32>() < *p)));
    }
}

/// Loads both splits as configured; static binarisation is applied here (once, seeded
/// by the run's `seed`).
pub fn load(config: &DataConfig, seed: u64) -> Result<Splits, TrainError> {
    let dir = config.folder();
    if config.dataset.modality() != Modality::Images {
        return Err(TrainError::Data {
            file: dir,
            message: "holds sentences, not images: this tool works on image data sets".into(),
        });
    }
    if !dir.is_dir() {
        let hint = match config.dataset {
            DatasetKind::FashionMnist => {
                "install Debian's package dataset-fashion-mnist (apt-get install dataset-fashion-mnist), or set data.dir"
            }
            DatasetKind::ImageFolder => "data.dir must name a folder of PNG or JPEG images",
            _ => {
                "the MNIST files ship in datasets/mnist of this repository; set data.dir to that folder"
            }
        };
        return Err(TrainError::Data {
            file: dir,
            message: format!("folder not found: {hint}"),
        });
    }
    let (mut train, mut test, classes) = match config.dataset {
        DatasetKind::ImageFolder => {
            let f = image_folder::load(&dir, config)?;
            (f.train, f.test, f.classes)
        }
        _ => {
            let (train, test) = idx::load_splits(&dir, config)?;
            (train, test, Some((0..10).map(|c| c.to_string()).collect()))
        }
    };
    if config.pixels == PixelMode::StaticBinary {
        binarise(&mut [&mut train, &mut test], seed);
    }
    let valid = match config.validation {
        0 => None,
        n if n >= train.len() => {
            return Err(TrainError::Data {
                file: dir.clone(),
                message: format!(
                    "data.validation = {n} leaves no training images (the training split has {}); \
                     hold out fewer",
                    train.len()
                ),
            });
        }
        n => Some(train.split_off(train.len() - n)),
    };
    Ok(Splits {
        train,
        valid,
        test,
        classes,
    })
}
