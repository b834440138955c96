//! What a VAE of any data kind offers the training loop and the evaluation: q(z | x)
//! for a batch, and -log p(x | z) per example. The objective, the sharded step, the
//! evaluation and the importance-sampled log-likelihood are written once against
//! [`VaeModel`]; a data kind brings a model and a batch type that implement it.

use std::ops::Range;

use burn::module::ModuleVisitor;
use burn::tensor::Tensor;

use crate::blocks::Blocks;
use crate::kappa::KappaMode;
use crate::latent::{ModelKind, Posterior};

/// A batch whose examples are rows: shards take row ranges, importance sampling
/// repeats each row k times.
pub trait Rows: Clone + Send + Sync {
    /// Number of examples.
    fn rows(&self) -> usize;
    /// The examples `rows`, in order.
    fn slice_rows(&self, rows: Range<usize>) -> Self;
    /// Each example repeated `k` times in place (row i becomes rows i k .. i k + k - 1).
    fn repeat_rows(&self, k: usize) -> Self;
}

impl Rows for Tensor<2> {
    fn rows(&self) -> usize {
        self.dims()[0]
    }

    fn slice_rows(&self, rows: Range<usize>) -> Self {
        self.clone().slice(rows)
    }

    fn repeat_rows(&self, k: usize) -> Self {
        let [b, d] = self.dims();
        self.clone()
            .unsqueeze_dim::<3>(1)
            .repeat_dim(1, k)
            .reshape([b * k, d])
    }
}

/// A VAE over batches of [`VaeModel::Batch`]: an encoder that gives q(z | x) of the
/// model's latent family and a decoder that scores x given z.
pub trait VaeModel {
    /// The inputs of one batch (pixels; token ids with their mask).
    type Batch: Rows;

    /// The latent family.
    fn kind(&self) -> ModelKind;

    /// Latent dimension d (ambient dimension of the sphere for vMF).
    fn latent_dim(&self) -> usize;

    /// The spheres a latent on the sphere is a product of (the default: one sphere
    /// S^(d-1); off the sphere only its total d counts).
    fn latent_blocks(&self) -> Blocks {
        Blocks::one(self.latent_dim())
    }

    /// How many spheres a latent on the sphere is a product of (1: one sphere; also
    /// off the sphere). A draw's noise has one uniform per row and block.
    fn latent_factors(&self) -> usize {
        self.latent_blocks().count()
    }

    /// How a vMF model's kappa is set (scheduled for every other family).
    fn kappa_mode(&self) -> KappaMode;

    /// q(z | x) for the rows of `x`.
    fn posterior(&self, x: &Self::Batch) -> Posterior;

    /// -log p(x | z) per example (nats), differentiable in the parameters and in z.
    ///
    /// # Shapes
    /// - `z`: `[rows, d]`, one latent per row of `x`
    /// - returns `[rows]`
    fn neg_log_likelihood(&self, x: &Self::Batch, z: Tensor<2>) -> Tensor<1>;

    /// Visits the decoder's parameters that a pretrained model supplies (the text
    /// model's word embeddings, recurrent decoder and softmax layer, which a language
    /// model shares with it): what a run with a pretrained decoder holds fixed while
    /// its encoder learns. None by default: the kind takes no pretrained decoder.
    fn visit_pretrained_decoder<V: ModuleVisitor>(&self, _visitor: &mut V) {}
}
