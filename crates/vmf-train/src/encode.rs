//! Embeddings out: the posterior's location (mu on the sphere, or the Gaussian's
//! mean) of every example of a split, and a learned kappa where there is one, in the
//! split's file order; written as `.npy`; searched by cosine similarity (nearest
//! neighbours, and the leave-one-out k-NN label accuracy of a labelled split).

use std::io::Write;
use std::path::Path;

use burn::tensor::Device;
use vmf_model::{ModelKind, Rows, VaeModel};

use crate::backend::Backend;
use crate::checkpoint::{self, Opened};
use crate::config::{Modality, TrainConfig};
use crate::error::TrainError;
use crate::modality::{self, DataKind, Source, Split, WithKind};
use crate::output::read_back;

/// The codes of a split, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// The latent family.
    pub kind: ModelKind,
    /// Latent dimension d.
    pub dim: usize,
    /// mu (unit rows) or the mean: `[n, d]` row-major.
    pub location: Vec<f32>,
    /// Each example's kappa, where kappa is learned: `[n]`, or `[n, factors]` row-major
    /// for a product of spheres (a kappa per block).
    pub kappa: Option<Vec<f32>>,
    /// The labels, where the data has them.
    pub labels: Option<Vec<u8>>,
    /// Each example as one line: its sentence, or its image file (image folders).
    pub texts: Option<Vec<String>>,
}

impl Embeddings {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.location.len() / self.dim.max(1)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.location.is_empty()
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.location[i * self.dim..(i + 1) * self.dim]
    }
}

/// How neighbours are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Cosine similarity (for mu, the inner product), larger is nearer.
    Cosine,
    /// Euclidean distance, smaller is nearer (reported negated, so larger is nearer).
    Euclidean,
}

/// Encodes `split` (the test set, or the validation set where the config has one) with
/// the model of the checkpoint folder `path`; `limit` keeps the first N test examples.
pub fn encode_checkpoint(
    path: &Path,
    split: Split,
    limit: Option<usize>,
) -> Result<Embeddings, TrainError> {
    let opened = checkpoint::open(path)?;
    let mut config = opened.config.clone();
    config.data.test_limit = limit.or(config.data.test_limit);
    modality::dispatch(
        &config,
        Encode {
            opened: &opened,
            config: &config,
            split,
            source: None,
        },
    )
}

/// Encodes data from outside the run with the model of the checkpoint folder `path`:
/// `data` is a config file (`.toml`; its data section's `split`, which must hold the
/// same kind of data as the run's), or a folder of images (image runs) or a file of
/// sentences (text runs), all of it in file order. The examples are read as the run's
/// own data (its image shape and pixel mode, its vocabulary); `limit` keeps the
/// first N.
pub fn encode_data(
    path: &Path,
    data: &Path,
    split: Split,
    limit: Option<usize>,
) -> Result<Embeddings, TrainError> {
    let opened = checkpoint::open(path)?;
    let config = &opened.config;
    let is_config = data.is_file() && data.extension().is_some_and(|e| e == "toml");
    let source = if is_config {
        let other = TrainConfig::load(data)?;
        let (ours, theirs) = (config.data.dataset, other.data.dataset);
        if ours.modality() != theirs.modality() {
            return Err(TrainError::Config {
                file: data.to_path_buf(),
                message: format!(
                    "data.dataset = {}, but the checkpoint's run trained on {}: give data of \
                     the run's kind ({})",
                    toml_name(theirs),
                    toml_name(ours),
                    match ours.modality() {
                        Modality::Sentences => "sentences",
                        Modality::Images => "images",
                    }
                ),
            });
        }
        Source::Config {
            config: Box::new(other),
            split,
        }
    } else {
        if split != Split::Test {
            return Err(TrainError::Usage(
                "--split applies to a config given to --data; a folder or file is encoded \
                 whole"
                    .into(),
            ));
        }
        if !data.exists() {
            return Err(TrainError::Data {
                file: data.to_path_buf(),
                message: "not found: --data takes a config (.toml), a folder of images or \
                          a file of sentences"
                    .into(),
            });
        }
        Source::Path(data.to_path_buf())
    };
    modality::dispatch(
        config,
        Encode {
            opened: &opened,
            config,
            split: Split::Test,
            source: Some((source, limit)),
        },
    )
}

/// A data set kind as a config writes it, e.g. `"ptb"`.
fn toml_name(kind: crate::config::DatasetKind) -> String {
    serde_json::to_string(&kind).unwrap_or_else(|_| format!("{kind:?}"))
}

struct Encode<'a> {
    opened: &'a Opened,
    config: &'a TrainConfig,
    split: Split,
    /// Examples from elsewhere, put in the test split's place.
    source: Option<(Source, Option<usize>)>,
}

impl WithKind for Encode<'_> {
    type Output = Result<Embeddings, TrainError>;

    fn run<K: DataKind>(self) -> Self::Output {
        let device = Backend::default_compiled().device()?;
        let (mut kind, model) = K::from_checkpoint(self.opened, self.config, &device)?;
        if let Some((source, limit)) = &self.source {
            kind.replace_test(source, *limit)?;
        }
        encode(
            &kind,
            &model,
            self.split,
            self.config.training.eval_batch_size,
            &device,
        )
    }
}

/// [`encode_checkpoint`] for a loaded data kind and model, `rows` examples a call.
pub fn encode<K: DataKind>(
    kind: &K,
    model: &K::Model,
    split: Split,
    rows: usize,
    device: &Device,
) -> Result<Embeddings, TrainError> {
    let batches = kind.eval_batches(split, 0, device).ok_or_else(|| {
        TrainError::Usage("this run has no validation split (data.validation = 0)".into())
    })?;
    let d = model.latent_dim();
    let (mut location, mut log_kappa) = (Vec::new(), Vec::new());
    for batch in &batches {
        let n = batch.rows();
        for start in (0..n).step_by(rows.max(1)) {
            let x = batch.slice_rows(start..(start + rows.max(1)).min(n));
            let posterior = model.posterior(&x);
            if let Some(s) = posterior.log_kappa_per_row() {
                log_kappa.extend(read_back(s)?);
            }
            location.extend(read_back(posterior.location())?);
        }
    }
    // Back to file order.
    let order = kind.file_order(split);
    let location = modality::to_file_order(location, d, order.as_deref());
    let log_kappa = if log_kappa.is_empty() {
        log_kappa
    } else {
        modality::to_file_order(log_kappa, model.latent_factors(), order.as_deref())
    };
    let n = location.len() / d.max(1);
    let texts: Option<Vec<String>> = (0..n).map(|i| kind.example_text(split, i)).collect();
    Ok(Embeddings {
        kind: model.kind(),
        dim: d,
        location,
        kappa: model.kappa_mode().range().map(|range| {
            log_kappa
                .iter()
                .map(|&s| range.kappa_at(f64::from(s)) as f32)
                .collect()
        }),
        labels: kind.labels(split),
        texts,
    })
}

/// How near row `j` is to row `i` under `metric` (larger is nearer).
fn nearness(e: &Embeddings, i: usize, j: usize, metric: Metric) -> f64 {
    let (a, b) = (e.row(i), e.row(j));
    match metric {
        Metric::Cosine => {
            let dot: f64 = a
                .iter()
                .zip(b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            dot / (norm(a) * norm(b)).max(1e-300)
        }
        Metric::Euclidean => -a
            .iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
            .sum::<f64>()
            .sqrt(),
    }
}

/// The `k` examples nearest to example `query` (itself excluded), nearest first, with
/// their nearness (cosine similarity, or minus the distance); ties by index.
pub fn neighbours(e: &Embeddings, query: usize, k: usize, metric: Metric) -> Vec<(usize, f64)> {
    let mut all: Vec<(usize, f64)> = (0..e.len())
        .filter(|&j| j != query)
        .map(|j| (j, nearness(e, query, j, metric)))
        .collect();
    let order = |a: &(usize, f64), b: &(usize, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if k < all.len() {
        // The k nearest in O(n), then only they are sorted.
        all.select_nth_unstable_by(k, order);
        all.truncate(k);
    }
    all.sort_by(order);
    all
}

/// Leave-one-out k-NN label accuracy: each example's label predicted by the majority
/// of its `k` nearest other examples (a tie goes to the label of the nearest among
/// the tied); `None` without labels.
pub fn knn_accuracy(e: &Embeddings, k: usize, metric: Metric) -> Option<f64> {
    let labels = e.labels.as_ref()?;
    let n = e.len();
    let right = (0..n)
        .filter(|&i| {
            let near = neighbours(e, i, k, metric);
            let mut votes = [0usize; 256];
            near.iter()
                .for_each(|&(j, _)| votes[usize::from(labels[j])] += 1);
            let top = votes.iter().copied().max().unwrap_or(0);
            // Nearest first: the first neighbour whose label has the top count.
            near.iter()
                .map(|&(j, _)| labels[j])
                .find(|&l| votes[usize::from(l)] == top)
                == Some(labels[i])
        })
        .count();
    Some(right as f64 / n.max(1) as f64)
}

/// Writes `values` (row-major, `shape`) as a `.npy` file (NumPy's format 1.0,
/// little-endian f32). Hand-written: the format is a magic string, a Python-dict
/// header padded to 64 bytes and the raw values (NEP 1), and no npy crate is in this
/// build's offline registry.
pub fn write_npy(path: &Path, values: &[f32], shape: &[usize]) -> Result<(), TrainError> {
    debug_assert_eq!(values.len(), shape.iter().product::<usize>());
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape_txt = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // magic (6) + version (2) + length (2) + header + '\n', a multiple of 64.
    let pad = (64 - (10 + header.len() + 1) % 64) % 64;
    header.push_str(&" ".repeat(pad));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + 4 * values.len());
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    values
        .iter()
        .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(path)?;
        f.write_all(&bytes)?;
        f.sync_all()
    };
    write().map_err(TrainError::io("writing", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embeddings(location: Vec<f32>, dim: usize, labels: Vec<u8>) -> Embeddings {
        Embeddings {
            kind: ModelKind::Vmf,
            dim,
            location,
            kappa: None,
            labels: Some(labels),
            texts: None,
        }
    }

    #[test]
    fn neighbours_and_knn_on_constructed_points() {
        // Two clusters on the circle around angles 0 and pi/2, one point of label 1
        // sitting in cluster 0.
        let at = |t: f32| [t.cos(), t.sin()];
        let pts = [
            at(0.0),
            at(0.1),
            at(-0.1),
            at(1.5),
            at(1.6),
            at(1.7),
            at(0.05),
        ];
        let e = embeddings(pts.concat(), 2, vec![0, 0, 0, 1, 1, 1, 1]);
        let near = neighbours(&e, 0, 2, Metric::Cosine);
        assert_eq!(near.iter().map(|p| p.0).collect::<Vec<_>>(), [6, 1]);
        assert!(
            (near[0].1 - f64::from(0.05f32).cos()).abs() < 1e-6,
            "{near:?}"
        );
        let far = neighbours(&e, 3, 6, Metric::Euclidean);
        assert_eq!(far[0].0, 4);
        assert!(far.windows(2).all(|w| w[0].1 >= w[1].1));
        // k = 1: point 6 (label 1) is the nearest of 0 and 1, and 6's nearest is a 0:
        // three wrong.
        assert_eq!(knn_accuracy(&e, 1, Metric::Cosine), Some(4.0 / 7.0));
        // k = 3: the majority fixes point 0; point 6 (label 1 among 0s) stays wrong.
        assert_eq!(knn_accuracy(&e, 3, Metric::Cosine), Some(6.0 / 7.0));
        let unlabelled = Embeddings { labels: None, ..e };
        assert_eq!(knn_accuracy(&unlabelled, 1, Metric::Cosine), None);
    }

    #[test]
    fn npy_files_have_numpys_header_and_the_values() {
        let path = std::env::temp_dir().join(format!("vmf-npy-{}.npy", std::process::id()));
        write_npy(&path, &[1.0, -2.5, 3.0, 0.25, 5.0, 6.0], &[2, 3]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
        assert_eq!((10 + len) % 64, 0, "data starts on a 64-byte boundary");
        let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
        assert!(header.ends_with('\n'));
        let values: Vec<f32> = bytes[10 + len..]
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(values, [1.0, -2.5, 3.0, 0.25, 5.0, 6.0]);
        write_npy(&path, &[7.0], &[1]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(String::from_utf8_lossy(&bytes[10..]).contains("'shape': (1,)"));
        let _ = std::fs::remove_file(path);
    }
}
