//! Pictures of a trained model (PNG): decoded samples from the prior, test
//! reconstructions, interpolations between test images (great circles for vMF,
//! straight lines for the Gaussian), and the test set's posterior locations coloured
//! by label.

use std::path::Path;

use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use image::{Rgb, RgbImage};
use rand::SeedableRng;
use rand::rngs::StdRng;
use vmf_model::{ImageVae, VaeModel};

use crate::backend::Backend;
use crate::checkpoint;
use crate::data::ImageSet;
use crate::error::TrainError;
use crate::modality::DataKind;
use crate::modality::image::Images;
use crate::modality::view::{self, View};
use crate::output::{self, save_grid};
use crate::seeds;

/// A checkpoint's model with its test set, ready to draw.
pub struct Pictures {
    model: ImageVae,
    dim: usize,
    test: ImageSet,
    device: Device,
}

fn write_err(path: &Path, e: image::ImageError) -> TrainError {
    TrainError::Io {
        what: "writing image",
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    }
}

impl Pictures {
    /// Opens the checkpoint folder `path` and its run's test set.
    pub fn open(path: &Path) -> Result<Self, TrainError> {
        let device = Backend::default_compiled().device()?;
        let opened = checkpoint::open(path)?;
        let (images, model) = Images::from_checkpoint(&opened, &opened.config, &device)?;
        Ok(Self::new(model, images.splits().test.clone(), device))
    }

    /// `model` with the test set it is shown on.
    pub fn new(model: ImageVae, test: ImageSet, device: Device) -> Self {
        Self {
            dim: model.latent_dim(),
            model,
            test,
            device,
        }
    }

    /// Draws `view` into the PNG file `out`.
    pub fn view(&self, view: View, out: &Path) -> Result<(), TrainError> {
        match view {
            View::Sample { side, seed, .. } => self.sample(out, side, seed),
            View::Reconstruct { n } => self.reconstruct(out, n),
            View::Interpolate { pairs, steps } => self.interpolate(out, pairs, steps),
            View::Latent { n } => self.latent(out, n),
        }
    }

    /// Pixels of the images decoded from latents `z` (rows of length d).
    fn decode(&self, z: &[Vec<f64>]) -> Result<Vec<Vec<f32>>, TrainError> {
        let flat: Vec<f32> = z.iter().flatten().map(|&v| v as f32).collect();
        let z = Tensor::<2>::from_data(TensorData::new(flat, [z.len(), self.dim]), &self.device);
        output::rows(sigmoid(self.model.decode(z)))
    }

    /// Posterior locations (mu, or the Gaussian mean) of the first `n` test images.
    fn mus(&self, n: usize) -> Result<Vec<Vec<f64>>, TrainError> {
        let n = n.min(self.test.len());
        let x = Tensor::<2>::from_data(
            TensorData::new(
                self.test.pixels[..n * self.test.dim].to_vec(),
                [n, self.test.dim],
            ),
            &self.device,
        );
        Ok(output::rows(self.model.locate(x))?
            .into_iter()
            .map(|r| r.into_iter().map(f64::from).collect())
            .collect())
    }

    /// A `side` x `side` grid decoded from samples of the prior (uniform on the
    /// sphere, or N(0, I)).
    pub fn sample(&self, out: &Path, side: usize, seed: u64) -> Result<(), TrainError> {
        let mut rng = StdRng::seed_from_u64(seeds::derive(seed, "picture-samples", 0));
        let kind = self.model.kind();
        let z: Vec<Vec<f64>> = (0..side * side)
            .map(|_| kind.prior_sample_of_product(&mut rng, &self.model.latent_blocks()))
            .collect();
        save_grid(out, &self.decode(&z)?, self.test.shape, side)
    }

    /// `n` test images (odd rows) over their reconstructions at z = mu (even rows).
    pub fn reconstruct(&self, out: &Path, n: usize) -> Result<(), TrainError> {
        let n = n.min(self.test.len());
        let recon = self.decode(&self.mus(n)?)?;
        let cols = 10.min(n);
        let mut grid = Vec::new();
        for (start, chunk) in recon.chunks(cols).enumerate() {
            for k in 0..chunk.len() {
                let i = start * cols + k;
                grid.push(self.test.pixels[i * self.test.dim..(i + 1) * self.test.dim].to_vec());
            }
            grid.extend(chunk.iter().cloned());
        }
        save_grid(out, &grid, self.test.shape, cols)
    }

    /// One row per pair of consecutive test images: `steps` points from the first
    /// image's location to the second's, on the great circle (slerp) for vMF (block by
    /// block on a product of spheres), on the straight line for the Gaussian.
    pub fn interpolate(&self, out: &Path, pairs: usize, steps: usize) -> Result<(), TrainError> {
        let steps = steps.max(2);
        let mus = self.mus(2 * pairs)?;
        let on_sphere = self.model.kind().on_sphere();
        let mut z = Vec::new();
        for p in mus.chunks(2).filter(|p| p.len() == 2) {
            z.extend(view::path_of_product(
                on_sphere,
                &self.model.latent_blocks(),
                &p[0],
                &p[1],
                steps,
            ));
        }
        save_grid(out, &self.decode(&z)?, self.test.shape, steps)
    }

    /// The locations of the first `n` test images, coloured by label: for a model on
    /// the sphere with d = 3 the sphere seen from +z and from -z (orthographic), otherwise the
    /// first two principal components (the value itself for d = 1).
    pub fn latent(&self, out: &Path, n: usize) -> Result<(), TrainError> {
        let mus = self.mus(n)?;
        let r = 250.0;
        let sphere = self.dim == 3 && self.model.kind().on_sphere();
        let (w, h) = if sphere { (2 * 520, 520) } else { (520, 520) };
        let mut img = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
        let points: Vec<(f64, f64)> = if sphere {
            for c in 0..2 {
                for a in 0..2000 {
                    let t = a as f64 * std::f64::consts::TAU / 2000.0;
                    put(
                        &mut img,
                        260.0 + 520.0 * c as f64 + r * t.cos(),
                        260.0 + r * t.sin(),
                        [160, 160, 160],
                    );
                }
            }
            // Front view (z >= 0) on the left, back view (mirrored x) on the right.
            mus.iter()
                .map(|m| {
                    if m[2] >= 0.0 {
                        (260.0 + r * m[0], 260.0 - r * m[1])
                    } else {
                        (780.0 - r * m[0], 260.0 - r * m[1])
                    }
                })
                .collect()
        } else {
            let proj = if self.dim == 1 {
                mus.iter().map(|m| (m[0], 0.0)).collect()
            } else {
                principal_plane(&mus)
            };
            let scale = proj
                .iter()
                .flat_map(|p| [p.0.abs(), p.1.abs()])
                .fold(1e-12, f64::max);
            proj.iter()
                .map(|p| (260.0 + r * p.0 / scale, 260.0 - r * p.1 / scale))
                .collect()
        };
        for (&(x, y), &label) in points.iter().zip(&self.test.labels) {
            let c = PALETTE[label as usize % PALETTE.len()];
            for (dx, dy) in [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)] {
                put(&mut img, x + dx, y + dy, c);
            }
        }
        img.save(out).map_err(|e| write_err(out, e))
    }
}

/// Ten distinguishable colours (Tableau 10).
const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

fn put(img: &mut RgbImage, x: f64, y: f64, c: [u8; 3]) {
    if x >= 0.0 && y >= 0.0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, Rgb(c));
    }
}

/// Coordinates of `points` in the plane of their two leading principal components
/// (power iteration with deflation on the covariance).
fn principal_plane(points: &[Vec<f64>]) -> Vec<(f64, f64)> {
    let d = points.first().map_or(0, Vec::len);
    let n = points.len().max(1) as f64;
    let mean: Vec<f64> = (0..d)
        .map(|j| points.iter().map(|p| p[j]).sum::<f64>() / n)
        .collect();
    let mut cov = vec![vec![0.0; d]; d];
    for p in points {
        for i in 0..d {
            for j in 0..d {
                cov[i][j] += (p[i] - mean[i]) * (p[j] - mean[j]) / n;
            }
        }
    }
    let mut axes: Vec<Vec<f64>> = Vec::new();
    for k in 0..2 {
        let mut v: Vec<f64> = (0..d).map(|i| if i == k { 1.0 } else { 0.5 }).collect();
        for _ in 0..500 {
            let mut next: Vec<f64> = (0..d)
                .map(|i| (0..d).map(|j| cov[i][j] * v[j]).sum())
                .collect();
            for a in &axes {
                let dot: f64 = next.iter().zip(a).map(|(x, y)| x * y).sum();
                next.iter_mut().zip(a).for_each(|(x, y)| *x -= dot * y);
            }
            let norm = next.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
            v = next.into_iter().map(|x| x / norm).collect();
        }
        axes.push(v);
    }
    points
        .iter()
        .map(|p| {
            let c: Vec<f64> = p.iter().zip(&mean).map(|(x, m)| x - m).collect();
            let dot = |a: &Vec<f64>| c.iter().zip(a).map(|(x, y)| x * y).sum::<f64>();
            (dot(&axes[0]), dot(&axes[1]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_plane_finds_the_spread_directions() {
        // Points spread along e_2 (most) and e_0 (less), none along e_1.
        let pts: Vec<Vec<f64>> = (0..200)
            .map(|i| {
                let t = i as f64 / 200.0 * std::f64::consts::TAU;
                vec![t.cos(), 0.0, 3.0 * t.sin()]
            })
            .collect();
        let proj = principal_plane(&pts);
        let var =
            |f: fn(&(f64, f64)) -> f64| proj.iter().map(|p| f(p).powi(2)).sum::<f64>() / 200.0;
        assert!((var(|p| p.0) - 4.5).abs() < 1e-6 && (var(|p| p.1) - 0.5).abs() < 1e-6);
    }
}
