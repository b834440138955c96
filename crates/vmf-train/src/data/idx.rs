//! Images: a validating IDX reader (raw or gzip) and the in-memory image sets of
//! MNIST and Fashion-MNIST, with burn-dataset's [`Dataset`] trait.

use std::path::{Path, PathBuf};

use burn::data::dataset::{Dataset, DatasetError};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::config::{DataConfig, DatasetKind, PixelMode};
use crate::error::TrainError;

/// The contents of one IDX file of unsigned bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Idx {
    /// Dimensions, outermost first (`[n, 28, 28]` for images, `[n]` for labels).
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// Reads an IDX file of `u8` (type code 0x08), gzip-compressed when it starts with
/// the gzip magic. Checks the magic number, the dimensions and the exact length.
pub fn read_idx(path: &Path) -> Result<Idx, TrainError> {
    let err = |message: String| TrainError::Data {
        file: path.to_path_buf(),
        message,
    };
    let bytes = super::read_maybe_gzip(path, "; restore the file from datasets/")?;
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(err(
            "not an IDX file (the magic number must start with two zero bytes)".into(),
        ));
    }
    if bytes[2] != 0x08 {
        return Err(err(format!(
            "IDX type code 0x{:02x} is not 0x08 (unsigned bytes)",
            bytes[2]
        )));
    }
    let ndim = bytes[3] as usize;
    if ndim == 0 || bytes.len() < 4 + 4 * ndim {
        return Err(err(format!(
            "header truncated: {ndim} dimensions announced, file has {} bytes",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let expected: usize = dims.iter().product();
    let data = &bytes[4 + 4 * ndim..];
    if data.len() < expected {
        return Err(err(format!(
            "truncated: dimensions {dims:?} need {expected} bytes of data, found {}",
            data.len()
        )));
    }
    if data.len() > expected {
        return Err(err(format!(
            "{} unexpected trailing bytes after the {expected} of dimensions {dims:?}",
            data.len() - expected
        )));
    }
    Ok(Idx {
        dims,
        data: data.to_vec(),
    })
}

/// One labelled image (pixels in [0, 1]).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageItem {
    /// Row-major pixels.
    pub pixels: Vec<f32>,
    /// Class label.
    pub label: u8,
}

/// A split held in memory: `len` images of `dim` pixels.
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// Row-major pixels in [0, 1], `len * dim` values.
    pub pixels: Vec<f32>,
    /// Labels.
    pub labels: Vec<u8>,
    /// Pixels per image.
    pub dim: usize,
    /// Image height and width.
    pub shape: [usize; 2],
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
}

/// Where a dataset lives by default: `datasets/<name>` of this repository (MNIST,
/// the Penn Treebank), or Debian's folder (Fashion-MNIST); `data.dir` for own text.
pub fn default_dir(kind: DatasetKind) -> PathBuf {
    let shipped = |name: &str| {
        let local = Path::new("datasets").join(name);
        if local.exists() {
            local
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../datasets")
                .join(name)
        }
    };
    match kind {
        DatasetKind::Mnist => shipped("mnist"),
        DatasetKind::Ptb => shipped("ptb"),
        DatasetKind::FashionMnist => PathBuf::from("/usr/share/datasets/fashion-mnist"),
        DatasetKind::Text => PathBuf::from("."),
    }
}

/// The file of `stem` in `dir`, raw or `.gz`.
fn find_file(dir: &Path, stem: &str) -> Result<PathBuf, TrainError> {
    for name in [format!("{stem}.gz"), stem.to_string()] {
        let p = dir.join(name);
        if p.exists() {
            return Ok(p);
        }
    }
    Err(TrainError::Data {
        file: dir.join(format!("{stem}.gz")),
        message: format!(
            "missing (neither {stem} nor {stem}.gz is in {})",
            dir.display()
        ),
    })
}

/// The classes of an MNIST-format label file (MNIST and Fashion-MNIST have ten).
const CLASSES: u8 = 10;

/// One split and the path of its image file.
fn load_split(
    dir: &Path,
    prefix: &str,
    limit: Option<usize>,
) -> Result<(ImageSet, PathBuf), TrainError> {
    let img_path = find_file(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let lab_path = find_file(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let images = read_idx(&img_path)?;
    let labels = read_idx(&lab_path)?;
    if images.dims.len() != 3 {
        return Err(TrainError::Data {
            file: img_path,
            message: format!(
                "images need 3 dimensions [n, rows, cols], found {:?}",
                images.dims
            ),
        });
    }
    if labels.dims.len() != 1 {
        return Err(TrainError::Data {
            file: lab_path,
            message: format!("labels need 1 dimension [n], found {:?}", labels.dims),
        });
    }
    if images.dims[0] != labels.dims[0] {
        return Err(TrainError::Data {
            file: lab_path,
            message: format!(
                "{} labels for {} images in {}: the files do not belong together",
                labels.dims[0],
                images.dims[0],
                img_path.display()
            ),
        });
    }
    if let Some(i) = labels.data.iter().position(|&l| l >= CLASSES) {
        return Err(TrainError::Data {
            file: lab_path,
            message: format!(
                "label {} at index {i}: MNIST-format labels are classes 0 to {}; the file is \
                 corrupt or belongs to another data set",
                labels.data[i],
                CLASSES - 1
            ),
        });
    }
    let n = limit.map_or(images.dims[0], |l| l.min(images.dims[0]));
    let dim = images.dims[1] * images.dims[2];

    let set = ImageSet {
        pixels: images.data[..n * dim]
            .iter()
            .map(|&p| f32::from(p) / 255.0)
            .collect(),
        labels: labels.data[..n].to_vec(),
        dim,
        shape: [images.dims[1], images.dims[2]],
    };
    Ok((set, img_path))
}

/// Loads both splits as configured; static binarisation is applied here (once, seeded).
pub fn load(config: &DataConfig, seed: u64) -> Result<Splits, TrainError> {
    let dir = config
        .dir
        .clone()
        .unwrap_or_else(|| default_dir(config.dataset));
    if config.dataset.is_text() {
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
            _ => {
                "the MNIST files ship in datasets/mnist of this repository; set data.dir to that folder"
            }
        };
        return Err(TrainError::Data {
            file: dir,
            message: format!("folder not found: {hint}"),
        });
    }
    let (mut train, train_path) = load_split(&dir, "train", config.train_limit)?;
    let (mut test, test_path) = load_split(&dir, "t10k", config.test_limit)?;
    if test.shape != train.shape {
        return Err(TrainError::Data {
            file: test_path,
            message: format!(
                "images of {}x{} pixels, but the training images in {} are {}x{}: both \
                 splits need one size",
                test.shape[0],
                test.shape[1],
                train_path.display(),
                train.shape[0],
                train.shape[1]
            ),
        });
    }
    if config.pixels == PixelMode::StaticBinary {
        let mut rng = StdRng::seed_from_u64(crate::seeds::derive(seed, "static-binarisation", 0));
        for set in [&mut train, &mut test] {
            set.pixels
                .iter_mut()
                .for_each(|p| *p = f32::from(u8::from(rng.random::<f32>() < *p)));
        }
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
    Ok(Splits { train, valid, test })
}
