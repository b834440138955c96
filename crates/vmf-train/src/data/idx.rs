//! MNIST-format images: a validating IDX reader (raw or gzip) and the splits of
//! MNIST and Fashion-MNIST.

use std::path::{Path, PathBuf};

use super::ImageSet;
use crate::config::DataConfig;
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
        shape: [1, images.dims[1], images.dims[2]],
        names: Vec::new(),
    };
    Ok((set, img_path))
}

/// The training and test splits of the MNIST-format folder `dir`; errors name the
/// file to blame (a test split whose images differ in size from the training ones
/// included).
pub fn load_splits(dir: &Path, config: &DataConfig) -> Result<(ImageSet, ImageSet), TrainError> {
    let (train, train_path) = load_split(dir, "train", config.train_limit)?;
    let (test, test_path) = load_split(dir, "t10k", config.test_limit)?;
    if test.shape != train.shape {
        return Err(TrainError::Data {
            file: test_path,
            message: format!(
                "images of {}x{} pixels, but the training images in {} are {}x{}: both \
                 splits need one size",
                test.shape[1],
                test.shape[2],
                train_path.display(),
                train.shape[1],
                train.shape[2]
            ),
        });
    }
    Ok((train, test))
}
