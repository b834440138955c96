//! Datasets, one module per data kind: MNIST-format IDX images ([`idx`]) and
//! sentences, one per line ([`text`]). Each validates its files and names the file
//! (and the line, where one is to blame) in its errors.

pub mod idx;
pub mod text;

pub use idx::{Idx, ImageItem, ImageSet, Splits, default_dir, load, read_idx};
