//! The image data kind's modules: an MLP encoder whose head parameterises q(z | x)
//! and a mirrored MLP decoder that gives per-pixel logits, optionally behind
//! convolutional trunks ([`conv`]), with the pixel likelihoods of [`loss`].

pub mod conv;
pub mod loss;
pub mod mlp;

use std::path::Path;

use burn::module::Module;
use burn::store::RecordError;
use burn::tensor::{Device, Tensor};

use crate::blocks::Blocks;
use crate::kappa::{KappaHead, KappaMode};
use crate::latent::{ModelKind, Posterior};
use crate::vae::VaeModel;
use conv::{ConvConfig, ConvDecoder, ConvEncoder};
use loss::{ReconLoss, reconstruction_per_example};
use mlp::{Mlp, MlpConfig};

/// Builds an [`ImageVae`]: encoder `input -> hidden... -> head`, decoder
/// `latent -> hidden reversed... -> input`; with `conv`, the encoder's MLP reads
/// the features of a convolutional trunk and the decoder's MLP feeds a transposed one.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageVaeConfig {
    /// Which latent family.
    pub kind: ModelKind,
    /// Input features (784 for MNIST).
    pub input_dim: usize,
    /// Hidden layer sizes of the encoder; the decoder uses them reversed.
    pub hidden: Vec<usize>,
    /// Latent dimension d (ambient dimension of the sphere for vMF).
    pub latent_dim: usize,
    /// On the sphere: the spheres the latent is a product of, each with its own
    /// direction and kappa (one block: one sphere S^(d-1)). Sums to d.
    pub blocks: Blocks,
    /// The decoder's pixel likelihood.
    pub loss: ReconLoss,
    /// How kappa is set (vMF).
    pub kappa: KappaMode,
    /// A per-example kappa on a product of spheres: each block's kappa at
    /// initialisation, in block order, in place of the range's `init` (empty: `init`
    /// for every block). It starts the head's kappa columns off by
    /// [`crate::KappaRange::head_output_for`], e.g. one block sharp and one broad.
    pub block_kappa_init: Vec<f64>,
    /// Convolutional trunks around the MLPs (`None`: the MLP alone). Its image shape
    /// must hold `input_dim` pixels.
    pub conv: Option<ConvConfig>,
}

impl ImageVaeConfig {
    /// Builds the model on `device` (encoder first, then decoder: the order in which
    /// the initial weights are drawn).
    ///
    /// # Panics
    /// If `conv`'s image does not hold `input_dim` pixels or its sizes fail
    /// [`ConvConfig::check`], `blocks` does not sum to `latent_dim`, or
    /// `block_kappa_init` is given without a per-example kappa or for another number
    /// of blocks (configs are validated before a model is built).
    pub fn init(&self, device: &Device) -> ImageVae {
        assert_eq!(
            self.blocks.total(),
            self.latent_dim,
            "the latent's blocks sum to latent_dim"
        );
        let flat = match &self.conv {
            Some(conv) => {
                assert_eq!(
                    conv.image.iter().product::<usize>(),
                    self.input_dim,
                    "the conv image shape holds the input's pixels"
                );
                conv.features()
            }
            None => self.input_dim,
        };
        let mut enc = vec![flat];
        enc.extend(&self.hidden);
        enc.push(
            self.kind.head_width(self.latent_dim) + self.blocks.count() * self.kappa.head_columns(),
        );
        let mut dec = vec![self.latent_dim];
        dec.extend(self.hidden.iter().rev());
        dec.push(flat);
        let conv_encoder = self.conv.as_ref().map(|c| c.init_encoder(device));
        let mut encoder = MlpConfig::new(enc).init(device);
        if !self.block_kappa_init.is_empty() {
            let KappaMode::PerExample(range) = self.kappa else {
                panic!("a kappa per block starts a per-example kappa head");
            };
            assert_eq!(
                self.block_kappa_init.len(),
                self.blocks.count(),
                "one starting kappa per block"
            );
            let shifts = self.block_kappa_init.iter();
            let shifts = shifts.map(|&k| range.head_output_for(k)).collect();
            // The kappa columns follow mu's (see ModelKind::posterior_of_product).
            encoder = encoder.with_output_bias_shift(self.kind.head_width(self.latent_dim), shifts);
        }
        let decoder = MlpConfig::new(dec).init(device);
        ImageVae {
            conv_encoder,
            encoder,
            decoder,
            conv_decoder: self.conv.as_ref().map(|c| c.init_decoder(device)),
            kappa: KappaHead::new(self.kappa, device),
            kind: self.kind,
            latent_dim: self.latent_dim,
            blocks: self.blocks.clone(),
            loss: self.loss,
        }
    }
}

/// See [`ImageVaeConfig`]. Its batches are pixels in [0, 1], `[batch, input_dim]`.
#[derive(Module, Debug)]
pub struct ImageVae {
    encoder: Mlp,
    decoder: Mlp,
    kappa: KappaHead,
    // The trunks come last and are absent for the MLP, so MLP checkpoints keep
    // their tensor names.
    conv_encoder: Option<ConvEncoder>,
    conv_decoder: Option<ConvDecoder>,
    #[module(skip)]
    kind: ModelKind,
    #[module(skip)]
    latent_dim: usize,
    #[module(skip)]
    blocks: Blocks,
    #[module(skip)]
    loss: ReconLoss,
}

impl ImageVae {
    /// The posterior's location: mu(x) (unit rows) or the mean.
    ///
    /// # Shapes
    /// - `x`: `[batch, input_dim]` -> `[batch, d]`
    pub fn locate(&self, x: Tensor<2>) -> Tensor<2> {
        self.posterior(&x).location()
    }

    /// Decoder logits for latents `z`.
    ///
    /// # Shapes
    /// - `z`: `[batch, d]` -> `[batch, input_dim]`
    pub fn decode(&self, z: Tensor<2>) -> Tensor<2> {
        let h = self.decoder.forward(z);
        match &self.conv_decoder {
            Some(conv) => conv.forward(h),
            None => h,
        }
    }

    /// The encoder's output: the posterior's parameters (and kappa's column).
    fn encode(&self, x: Tensor<2>) -> Tensor<2> {
        let features = match &self.conv_encoder {
            Some(conv) => conv.forward(x),
            None => x,
        };
        self.encoder.forward(features)
    }
}

/// The layout of image checkpoints written before the data kinds were split: the model
/// was an enum with one variant per latent family, so every tensor name starts with
/// `Vmf.` or `Gaussian.`. Kept so that those checkpoints still load.
#[derive(Module, Debug)]
enum LegacyLayout {
    Vmf(LegacyParts),
    Gaussian(LegacyParts),
}

#[derive(Module, Debug)]
struct LegacyParts {
    encoder: Mlp,
    decoder: Mlp,
}

impl ImageVae {
    /// This model with the weights of the checkpoint file `path` (a Burn record),
    /// written by this version or in the layout of checkpoints from before the data
    /// kinds were split. The error is that of the current layout.
    pub fn load_weights(self, path: &Path) -> Result<Self, RecordError> {
        let current = self.clone().try_load_file(path);
        let Err(e) = current else {
            return current;
        };
        let parts = LegacyParts {
            encoder: self.encoder.clone(),
            decoder: self.decoder.clone(),
        };
        let legacy = match self.kind {
            ModelKind::Gaussian => LegacyLayout::Gaussian(parts),
            ModelKind::Vmf | ModelKind::PowerSpherical | ModelKind::Lm => LegacyLayout::Vmf(parts),
        };
        match legacy.try_load_file(path) {
            Ok(LegacyLayout::Vmf(p) | LegacyLayout::Gaussian(p)) => Ok(ImageVae {
                encoder: p.encoder,
                decoder: p.decoder,
                ..self
            }),
            Err(_) => Err(e),
        }
    }
}

impl VaeModel for ImageVae {
    type Batch = Tensor<2>;

    fn kind(&self) -> ModelKind {
        self.kind
    }

    fn latent_dim(&self) -> usize {
        self.latent_dim
    }

    fn kappa_mode(&self) -> KappaMode {
        self.kappa.mode()
    }

    fn latent_blocks(&self) -> Blocks {
        self.blocks.clone()
    }

    fn posterior(&self, x: &Tensor<2>) -> Posterior {
        self.kind
            .posterior_of_product(self.encode(x.clone()), &self.kappa, &self.blocks)
    }

    fn neg_log_likelihood(&self, x: &Tensor<2>, z: Tensor<2>) -> Tensor<1> {
        reconstruction_per_example(self.loss, self.decode(z), x.clone())
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;

    use super::*;

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn checkpoints_of_the_old_layout_still_load() {
        let _rng = crate::rng_lock();
        let device = Device::flex();
        for kind in [ModelKind::Vmf, ModelKind::Gaussian] {
            let config = ImageVaeConfig {
                kind,
                input_dim: 6,
                hidden: vec![5],
                latent_dim: 2,
                blocks: Blocks::one(2),
                loss: ReconLoss::Bernoulli,
                kappa: KappaMode::Scheduled,
                block_kappa_init: Vec::new(),
                conv: None,
            };
            device.seed(1);
            let old = config.init(&device);
            let parts = LegacyParts {
                encoder: old.encoder.clone(),
                decoder: old.decoder.clone(),
            };
            let legacy = match kind {
                ModelKind::Gaussian => LegacyLayout::Gaussian(parts),
                _ => LegacyLayout::Vmf(parts),
            };
            let path = std::env::temp_dir()
                .join(format!("vmf-legacy-{kind:?}-{}.bpk", std::process::id()));
            legacy.save_file(&path).unwrap();
            device.seed(2);
            let fresh = config.init(&device);
            let x = Tensor::<2>::from_data(TensorData::new(vec![0.3f32; 12], [2, 6]), &device);
            let before = values(fresh.decode(fresh.locate(x.clone())));
            let loaded = fresh.load_weights(&path).unwrap();
            let want = values(old.decode(old.locate(x.clone())));
            assert_eq!(values(loaded.decode(loaded.locate(x))), want);
            assert_ne!(before, want, "the fresh model differed before loading");
            // A file of neither layout is refused with the current layout's error.
            std::fs::write(&path, b"not a record").unwrap();
            assert!(config.init(&device).load_weights(&path).is_err());
        }
    }

    #[test]
    fn a_kappa_per_block_starts_each_block_there_and_draws_the_same_weights() {
        // Seeds twice and compares the draws: no other test may draw in between.
        let _rng = crate::rng_lock();
        let device = Device::flex();
        let (min, init) = (1.0, 10.0);
        let config = ImageVaeConfig {
            kind: ModelKind::Vmf,
            input_dim: 6,
            hidden: vec![5],
            latent_dim: 6,
            blocks: Blocks::of(vec![4, 2]),
            loss: ReconLoss::Bernoulli,
            kappa: KappaMode::PerExample(crate::KappaRange {
                init,
                min,
                max: 1e4,
            }),
            block_kappa_init: Vec::new(),
            conv: None,
        };
        let starts = [300.0, 2.0];
        let shifted = ImageVaeConfig {
            block_kappa_init: starts.to_vec(),
            ..config.clone()
        };
        let x: Vec<f32> = (0..18).map(|i| (i as f32 * 0.37).sin()).collect();
        let x = Tensor::<2>::from_data(TensorData::new(x, [3, 6]), &device);
        let z = Tensor::<2>::from_data(TensorData::new(vec![0.4f32; 12], [2, 6]), &device);
        // Weights are drawn when first read (lazily): each model is read right after
        // it is built from the same seed, in the same order.
        device.seed(3);
        let plain = config.init(&device);
        let (h0, d0) = (
            values(plain.encode(x.clone())),
            values(plain.decode(z.clone())),
        );
        device.seed(3);
        let model = shifted.init(&device);
        let (h1, d1) = (values(model.encode(x.clone())), values(model.decode(z)));
        // The head is mu's 6 columns, then one kappa column per block.
        let Posterior::Sphere {
            log_kappa: Some(s), ..
        } = model.posterior(&x)
        else {
            panic!("a per-example kappa");
        };
        let s = s.into_data().convert::<f64>().try_to_vec::<f64>().unwrap();
        for row in 0..3 {
            let head = |h: &[f32], c: usize| h[row * 8 + c];
            for c in 0..6 {
                assert_eq!(head(&h0, c), head(&h1, c), "mu's columns are untouched");
            }
            for (b, &start) in starts.iter().enumerate() {
                // kappa = min + softplus(a + softplus^-1(start - min)), a the
                // unshifted model's head output: in f64, off the model's code path.
                let a = f64::from(head(&h0, 6 + b));
                let want = min + (a + (start - min).exp_m1().ln()).exp().ln_1p();
                let got = s[row * 2 + b].exp();
                assert!(
                    (got / want - 1.0).abs() < 1e-4,
                    "row {row} block {b}: {got} vs {want}"
                );
            }
        }
        // Every other weight is drawn as without the shift: the decoders agree.
        assert_eq!(d0, d1);
    }
}
