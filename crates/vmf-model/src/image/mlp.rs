//! A multilayer perceptron: Linear layers with ReLU between them (none after the last).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};

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

    /// The MLP with `shifts` added to the output layer's bias from output `first` on
    /// (an initialisation: the shift is chained onto the bias's lazy initialiser, so
    /// no weight is drawn earlier or in another order than without it).
    ///
    /// # Panics
    /// If the shifted outputs run past the output layer.
    pub fn with_output_bias_shift(mut self, first: usize, shifts: Vec<f64>) -> Self {
        let layer = self.layers.last_mut().expect("an MLP has layers");
        let bias = layer.bias.take().expect("the MLP's layers have biases");
        let outputs = bias.lazy_shape().dims::<1>()[0];
        assert!(
            first + shifts.len() <= outputs,
            "the shifted outputs lie inside the output layer"
        );
        layer.bias = Some(bias.init_mapper(move |b| {
            let mut add = vec![0.0f64; outputs];
            add[first..first + shifts.len()].copy_from_slice(&shifts);
            let device = b.device();
            b + Tensor::<1>::from_data(TensorData::new(add, [outputs]), &device)
        }));
        self
    }
}
