//! A multilayer perceptron: Linear layers with ReLU between them (none after the last).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

/// Layer sizes, input first: `[784, 256, 8]` is 784 -> 256 -> ReLU -> 8.
#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Sizes of the input, hidden and output layers (at least two entries).
    pub sizes: Vec<usize>,
}

impl MlpConfig {
    /// Builds the MLP on `device`.
    pub fn init(&self, device: &Device) -> Mlp {
        assert!(
            self.sizes.len() >= 2,
            "an MLP needs an input and an output size"
        );
        Mlp {
            layers: self
                .sizes
                .windows(2)
                .map(|w| LinearConfig::new(w[0], w[1]).init(device))
                .collect(),
        }
    }
}

/// See [`MlpConfig`].
#[derive(Module, Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    /// # Shapes
    /// - `x`: `[batch, sizes[0]]`
    /// - returns `[batch, sizes.last()]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        self.layers.iter().enumerate().fold(x, |h, (i, layer)| {
            let h = layer.forward(h);
            if i < last { relu(h) } else { h }
        })
    }
}
