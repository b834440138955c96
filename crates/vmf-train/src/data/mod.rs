//! Datasets: image splits ([`images`]) read from MNIST-format IDX files ([`idx`]) or
//! from folders of PNG/JPEG files ([`image_folder`]), and sentences, one per line
//! ([`text`]). Each validates its files and names the file (and the line, where one
//! is to blame) in its errors.

pub mod idx;
pub mod image_folder;
pub mod images;
pub mod text;

pub use idx::{Idx, read_idx};
pub use images::{ImageItem, ImageSet, Splits, load};

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::config::DatasetKind;
use crate::error::TrainError;

/// Where a dataset lives by default: `datasets/<name>` of this repository (MNIST,
/// the Penn Treebank), or Debian's folder (Fashion-MNIST); `data.dir` for your own
/// images and text (required there: the current folder stands in).
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
        DatasetKind::Text | DatasetKind::ImageFolder => PathBuf::from("."),
    }
}

/// The bytes of a data file, gunzipped when it starts with the gzip magic; errors name
/// the file (`hint` is added to the message of a corrupt stream).
pub fn read_maybe_gzip(path: &Path, hint: &str) -> Result<Vec<u8>, TrainError> {
    let err = |message: String| TrainError::Data {
        file: path.to_path_buf(),
        message,
    };
    let raw = std::fs::read(path).map_err(|e| err(format!("cannot read it: {e}")))?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .map_err(|e| err(format!("corrupt or truncated gzip stream ({e}){hint}")))?;
    Ok(out)
}
