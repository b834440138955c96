//! Your own images: a folder of PNG or JPEG files (`data.dataset = "image_folder"`).
//!
//! Layout (`data.dir`):
//! - `train/` and `test/` subfolders give the splits; without them the images of the
//!   folder are split at random, `data.test_fraction` (default 0.1) of them to test,
//!   drawn with `data.split_seed`;
//! - inside a split (or the folder), one subfolder per class gives labels (classes
//!   sorted by name, the training split's classes define the labels); images directly
//!   in it have no class. Not both: images beside class folders are refused.
//!
//! Files ending in `.png`, `.jpg` or `.jpeg` (any case) are images, decoded by the
//! `image` crate from their content; hidden entries are ignored, other files are
//! counted and skipped. Every image becomes `data.channels` channels (1 grey, 3 RGB;
//! alpha is dropped; default: grey if the first training image is grey, else RGB) of
//! `data.size` pixels (resized with a triangle filter where it differs; default: the
//! first training image's size, which every image must then have). Each split's order
//! is a seeded shuffle (`data.split_seed`), so that `data.validation`'s tail and the
//! `*_limit` heads mix the classes. A file that cannot be read or decoded is named in
//! the error.

use std::path::{Path, PathBuf};

use image::DynamicImage;
use image::imageops::FilterType;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use super::ImageSet;
use crate::config::{DEFAULT_TEST_FRACTION, DataConfig};
use crate::error::TrainError;
use crate::seeds;

/// The splits of an image folder.
#[derive(Debug, Clone)]
pub struct Folder {
    /// Training images.
    pub train: ImageSet,
    /// Test images.
    pub test: ImageSet,
    /// Class names (the training split's class folders, sorted), if any.
    pub classes: Option<Vec<String>>,
}

/// The most classes a label (one byte) can index.
const MAX_CLASSES: usize = 256;

/// The image files of one split: paths with their class folder's name, if any.
struct Listing {
    root: PathBuf,
    files: Vec<(PathBuf, Option<String>)>,
    classes: Vec<String>,
    skipped: usize,
}

fn data_err(file: &Path, message: impl Into<String>) -> TrainError {
    TrainError::Data {
        file: file.to_path_buf(),
        message: message.into(),
    }
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str()))
}

/// The visible entries of `dir`, sorted by name.
fn entries(dir: &Path) -> Result<Vec<PathBuf>, TrainError> {
    let read = std::fs::read_dir(dir).map_err(TrainError::io("listing", dir))?;
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.map_err(TrainError::io("listing", dir))?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// The images of the split folder `root`: class subfolders, or images directly in it.
fn list(root: &Path) -> Result<Listing, TrainError> {
    let mut listing = Listing {
        root: root.to_path_buf(),
        files: Vec::new(),
        classes: Vec::new(),
        skipped: 0,
    };
    let mut loose = Vec::new();
    for path in entries(root)? {
        if path.is_dir() {
            let class = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            for file in entries(&path)? {
                if file.is_file() && is_image(&file) {
                    listing.files.push((file, Some(class.clone())));
                } else {
                    listing.skipped += 1;
                }
            }
            listing.classes.push(class);
        } else if is_image(&path) {
            loose.push((path, None));
        } else {
            listing.skipped += 1;
        }
    }
    if !listing.classes.is_empty() && !loose.is_empty() {
        return Err(data_err(
            &loose[0].0,
            format!(
                "an image beside the class folders of {} ({}): put every image in a class \
                 folder, or remove the folders",
                root.display(),
                listing.classes.join(", ")
            ),
        ));
    }
    listing.files.extend(loose);
    Ok(listing)
}

/// The order of `files` for `split_seed` and `stream` (a seeded shuffle).
fn shuffle<T>(files: &mut [T], split_seed: u64, stream: &str) {
    files.shuffle(&mut StdRng::seed_from_u64(seeds::derive(
        split_seed, stream, 0,
    )));
}

/// How images become values: channels and size, fixed by the config or by the first
/// training image.
#[derive(Debug, Clone, Copy)]
struct Target {
    channels: usize,
    /// `[height, width]`.
    size: [usize; 2],
    /// Resize images of another size (else refuse them).
    resize: bool,
}

fn decode(path: &Path) -> Result<DynamicImage, TrainError> {
    image::ImageReader::open(path)
        .map_err(TrainError::io("reading", path))?
        .with_guessed_format()
        .map_err(TrainError::io("reading", path))?
        .decode()
        .map_err(|e| {
            data_err(
                path,
                format!("cannot decode it as an image ({e}); remove or replace the file"),
            )
        })
}

/// The values of the image at `path` (channel planes one after the other, in [0, 1]).
fn values(path: &Path, target: Target, first: &Path) -> Result<Vec<f32>, TrainError> {
    let mut img = decode(path)?;
    let [h, w] = target.size;
    if (img.height() as usize, img.width() as usize) != (h, w) {
        if !target.resize {
            return Err(data_err(
                path,
                format!(
                    "{}x{} pixels (height x width), but the first training image {} has \
                     {h}x{w}: set data.size = [height, width] to resize every image",
                    img.height(),
                    img.width(),
                    first.display()
                ),
            ));
        }
        img = img.resize_exact(w as u32, h as u32, FilterType::Triangle);
    }
    let scale = |v: u8| f32::from(v) / 255.0;
    Ok(if target.channels == 1 {
        img.to_luma8().into_raw().into_iter().map(scale).collect()
    } else {
        let rgb = img.to_rgb8().into_raw();
        (0..3)
            .flat_map(|c| rgb.iter().skip(c).step_by(3).copied().map(scale))
            .collect()
    })
}

/// Decodes `files` (in parallel) into one set.
fn decode_all(
    files: &[(PathBuf, Option<String>)],
    classes: &[String],
    target: Target,
    first: &Path,
    dir: &Path,
) -> Result<ImageSet, TrainError> {
    let images: Vec<Vec<f32>> = files
        .par_iter()
        .map(|(path, _)| values(path, target, first))
        .collect::<Result<_, _>>()?;
    let labels = files
        .iter()
        .map(|(_, class)| {
            class.as_ref().map_or(0, |c| {
                classes.iter().position(|k| k == c).expect("checked") as u8
            })
        })
        .collect();
    let [h, w] = target.size;
    Ok(ImageSet {
        pixels: images.concat(),
        labels,
        dim: target.channels * h * w,
        shape: [target.channels, h, w],
        names: files
            .iter()
            .map(|(path, _)| {
                let relative = path.strip_prefix(dir).unwrap_or(path);
                relative.to_string_lossy().into_owned()
            })
            .collect(),
    })
}

/// Every image of the folder `dir` (directly in it, or in class folders, which then
/// give the labels, classes sorted by name) as one set in file-name order, each made
/// `shape` = `[channels, height, width]` (resized where its size differs): images to
/// apply a trained model to. Returns the set and its class names, if any.
pub fn load_all(
    dir: &Path,
    shape: [usize; 3],
    limit: Option<usize>,
) -> Result<(ImageSet, Option<Vec<String>>), TrainError> {
    if !dir.is_dir() {
        return Err(data_err(dir, "folder not found"));
    }
    if dir.join("train").is_dir() && dir.join("test").is_dir() {
        return Err(data_err(
            dir,
            "has train/ and test/ subfolders, which would read as two classes: pass one of \
             them, or a config naming the folder (with its --split)",
        ));
    }
    let mut listing = list(dir)?;
    if listing.files.is_empty() {
        return Err(data_err(
            dir,
            "no images (files ending in .png, .jpg or .jpeg, directly or in class folders)",
        ));
    }
    if listing.classes.len() > MAX_CLASSES {
        return Err(data_err(
            dir,
            format!(
                "{} class folders: at most {MAX_CLASSES} classes are supported",
                listing.classes.len()
            ),
        ));
    }
    listing.files.truncate(limit.unwrap_or(usize::MAX));
    let [channels, h, w] = shape;
    let target = Target {
        channels,
        size: [h, w],
        resize: true,
    };
    let first = listing.files[0].0.clone();
    let set = decode_all(&listing.files, &listing.classes, target, &first, dir)?;
    let classes = (!listing.classes.is_empty()).then_some(listing.classes);
    Ok((set, classes))
}

/// Loads the image folder `dir` as `config` describes (see the module docs) and
/// reports what it loaded on stderr.
pub fn load(dir: &Path, config: &DataConfig) -> Result<Folder, TrainError> {
    let (train_dir, test_dir) = (dir.join("train"), dir.join("test"));
    let (mut train, mut test) = match (train_dir.is_dir(), test_dir.is_dir()) {
        (true, true) => {
            if let Some(f) = config.test_fraction {
                return Err(data_err(
                    dir,
                    format!(
                        "has train/ and test/ subfolders, which are the splits; remove \
                         data.test_fraction = {f}"
                    ),
                ));
            }
            let (train, test) = (list(&train_dir)?, list(&test_dir)?);
            if train.classes.is_empty() != test.classes.is_empty() {
                let (with, without) = if train.classes.is_empty() {
                    (&test_dir, &train_dir)
                } else {
                    (&train_dir, &test_dir)
                };
                return Err(data_err(
                    without,
                    format!(
                        "has no class folders but {} has: both splits need the same layout",
                        with.display()
                    ),
                ));
            }
            if let Some(c) = test.classes.iter().find(|c| !train.classes.contains(c)) {
                return Err(data_err(
                    &test_dir.join(c),
                    format!(
                        "class {c:?} is not among the training classes in {}",
                        train_dir.display()
                    ),
                ));
            }
            (train, test)
        }
        (true, false) | (false, true) => {
            let (have, lack) = if train_dir.is_dir() {
                ("train", "test")
            } else {
                ("test", "train")
            };
            return Err(data_err(
                dir,
                format!(
                    "has a {have}/ subfolder but no {lack}/: give both splits, or neither \
                     (then data.test_fraction of the images are held out)"
                ),
            ));
        }
        (false, false) => {
            let mut all = list(dir)?;
            let n = all.files.len();
            if n < 2 {
                return Err(data_err(
                    dir,
                    format!("{n} PNG or JPEG images: a training and a test split need at least 2"),
                ));
            }
            let fraction = config.test_fraction.unwrap_or(DEFAULT_TEST_FRACTION);
            let n_test = ((fraction * n as f64).round() as usize).clamp(1, n - 1);
            shuffle(&mut all.files, config.split_seed, "image-folder-split");
            let test_files = all.files.split_off(n - n_test);
            let test = Listing {
                root: all.root.clone(),
                files: test_files,
                classes: all.classes.clone(),
                skipped: 0,
            };
            (all, test)
        }
    };
    shuffle(&mut train.files, config.split_seed, "image-folder-train");
    shuffle(&mut test.files, config.split_seed, "image-folder-test");
    for (listing, name) in [(&train, "training"), (&test, "test")] {
        if listing.files.is_empty() {
            return Err(data_err(
                &listing.root,
                format!(
                    "no {name} images (files ending in .png, .jpg or .jpeg, directly or in \
                     class folders)"
                ),
            ));
        }
    }
    if train.classes.len() > MAX_CLASSES {
        return Err(data_err(
            &train.root,
            format!(
                "{} class folders: at most {MAX_CLASSES} classes are supported",
                train.classes.len()
            ),
        ));
    }
    train
        .files
        .truncate(config.train_limit.unwrap_or(usize::MAX));
    test.files.truncate(config.test_limit.unwrap_or(usize::MAX));

    let first = train.files[0].0.clone();
    let target = {
        let needs_first = config.channels.is_none() || config.size.is_none();
        let img = if needs_first {
            Some(decode(&first)?)
        } else {
            None
        };
        let channels = config.channels.unwrap_or_else(|| {
            let img = img.as_ref().expect("decoded");
            if img.color().has_color() { 3 } else { 1 }
        });
        let size = config.size.unwrap_or_else(|| {
            let img = img.as_ref().expect("decoded");
            [img.height() as usize, img.width() as usize]
        });
        Target {
            channels,
            size,
            resize: config.size.is_some(),
        }
    };
    let classes = train.classes.clone();
    let train_set = decode_all(&train.files, &classes, target, &first, dir)?;
    let test_set = decode_all(&test.files, &classes, target, &first, dir)?;

    let [h, w] = target.size;
    let skipped = train.skipped + test.skipped;
    eprintln!(
        "image folder {}: {} training and {} test images, {h}x{w} {}, {}{}",
        dir.display(),
        train_set.len(),
        test_set.len(),
        if target.channels == 1 { "grey" } else { "RGB" },
        if classes.is_empty() {
            "no classes".to_string()
        } else {
            format!("{} classes", classes.len())
        },
        if skipped > 0 {
            format!("; {skipped} other files skipped")
        } else {
            String::new()
        }
    );
    Ok(Folder {
        train: train_set,
        test: test_set,
        classes: (!classes.is_empty()).then_some(classes),
    })
}
