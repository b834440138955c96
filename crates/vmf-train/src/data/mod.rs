//! Datasets, one module per data kind: MNIST-format IDX images ([`idx`]) and
//! sentences, one per line ([`text`]). Each validates its files and names the file
//! (and the line, where one is to blame) in its errors.

pub mod idx;
pub mod text;

pub use idx::{Idx, ImageItem, ImageSet, Splits, default_dir, load, read_idx};

use std::io::Read;
use std::path::Path;

use crate::error::TrainError;

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
