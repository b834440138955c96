//! Convolutional trunks of the image model: a stack of stride-2 convolutions that
//! turns an image into features for the encoder's MLP head, and its mirror of
//! stride-2 transposed convolutions that turns the decoder MLP's output into pixel
//! logits.
//!
//! Every layer has a 4x4 kernel, stride 2 and padding 1, so each halves (or, in the
//! decoder, doubles) height and width exactly: 28x28 with two layers gives 7x7
//! features, 32x32 with three gives 4x4. The images travel flat (`[batch, c*h*w]`,
//! channel planes one after the other, as Burn's NCHW convolutions read them), so the
//! rest of the model and the training loop are the same as for the MLP.

use burn::config::Config;
use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

/// Kernel size, stride and padding of every layer (see the module docs).
const KERNEL: usize = 4;
const STRIDE: usize = 2;
const PADDING: usize = 1;

/// The image shape and the channels of the convolutional layers.
#[derive(Config, Debug, PartialEq)]
pub struct ConvConfig {
    /// Channels, height and width of the input images (`[1, 28, 28]` for MNIST).
    pub image: [usize; 3],
    /// Output channels of each encoder layer (`[32, 64]`); the decoder mirrors them.
    pub channels: Vec<usize>,
}

impl ConvConfig {
    /// Why these sizes cannot be built, if they cannot: at least one layer, positive
    /// channels, and height and width divisible by 2^layers.
    pub fn check(&self) -> Result<(), String> {
        let [c, h, w] = self.image;
        if self.channels.is_empty() {
            return Err("a convolutional model needs at least one layer of channels".into());
        }
        if c == 0 || self.channels.contains(&0) {
            return Err("channel counts must be positive".into());
        }
        let scale = STRIDE.pow(self.channels.len() as u32);
        if h == 0 || w == 0 || h % scale != 0 || w % scale != 0 {
            return Err(format!(
                "images of {h}x{w} pixels: {} stride-2 layers need height and width \
                 divisible by {scale} (e.g. 28x28 with 2 layers, 32x32 with 3)",
                self.channels.len()
            ));
        }
        Ok(())
    }

    /// The shape of the encoder's output, `[channels, height, width]`.
    pub fn feature_shape(&self) -> [usize; 3] {
        let scale = STRIDE.pow(self.channels.len() as u32);
        let last = *self.channels.last().expect("checked: at least one layer");
        [last, self.image[1] / scale, self.image[2] / scale]
    }

    /// Features out of the encoder (and into the decoder's first layer).
    pub fn features(&self) -> usize {
        self.feature_shape().iter().product()
    }

    /// The encoder's layers on `device`.
    ///
    /// # Panics
    /// If [`ConvConfig::check`] fails (configs are validated before a model is built).
    pub fn init_encoder(&self, device: &Device) -> ConvEncoder {
        self.check()
            .expect("conv sizes are validated with the config");
        let mut from = self.image[0];
        let layers = self
            .channels
            .iter()
            .map(|&to| {
                let layer = Conv2dConfig::new([from, to], [KERNEL, KERNEL])
                    .with_stride([STRIDE, STRIDE])
                    .with_padding(PaddingConfig2d::Explicit(
                        PADDING, PADDING, PADDING, PADDING,
                    ))
                    .init(device);
                from = to;
                layer
            })
            .collect();
        ConvEncoder {
            layers,
            image: self.image,
        }
    }

    /// The decoder's layers on `device`: the encoder's channels in reverse, ending
    /// in the image's channels.
    ///
    /// # Panics
    /// If [`ConvConfig::check`] fails.
    pub fn init_decoder(&self, device: &Device) -> ConvDecoder {
        self.check()
            .expect("conv sizes are validated with the config");
        let mut sizes: Vec<usize> = self.channels.iter().rev().copied().collect();
        sizes.push(self.image[0]);
        let layers = sizes
            .windows(2)
            .map(|pair| {
                ConvTranspose2dConfig::new([pair[0], pair[1]], [KERNEL, KERNEL])
                    .with_stride([STRIDE, STRIDE])
                    .with_padding([PADDING, PADDING])
                    .init(device)
            })
            .collect();
        ConvDecoder {
            layers,
            features: self.feature_shape(),
        }
    }
}

/// Stride-2 convolutions with ReLU after each; see [`ConvConfig`].
#[derive(Module, Debug)]
pub struct ConvEncoder {
    layers: Vec<Conv2d>,
    #[module(skip)]
    image: [usize; 3],
}

impl ConvEncoder {
    /// # Shapes
    /// - `x`: `[batch, c*h*w]` (flat images) -> `[batch, features]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [batch, _] = x.dims();
        let [c, h, w] = self.image;
        let x: Tensor<4> = x.reshape([batch, c, h, w]);
        let y = self
            .layers
            .iter()
            .fold(x, |h, layer| relu(layer.forward(h)));
        y.flatten(1, 3)
    }
}

/// Stride-2 transposed convolutions, ReLU between them (none after the last, which
/// gives logits); see [`ConvConfig`].
#[derive(Module, Debug)]
pub struct ConvDecoder {
    layers: Vec<ConvTranspose2d>,
    #[module(skip)]
    features: [usize; 3],
}

impl ConvDecoder {
    /// # Shapes
    /// - `h`: `[batch, features]` (the decoder MLP's output, before any activation)
    ///   -> `[batch, c*h*w]` logits
    pub fn forward(&self, h: Tensor<2>) -> Tensor<2> {
        let [batch, _] = h.dims();
        let [c, fh, fw] = self.features;
        let last = self.layers.len() - 1;
        let x: Tensor<4> = relu(h).reshape([batch, c, fh, fw]);
        let y = self.layers.iter().enumerate().fold(x, |h, (i, layer)| {
            let h = layer.forward(h);
            if i < last { relu(h) } else { h }
        });
        y.flatten(1, 3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_halve_and_double() {
        let _rng = crate::rng_lock();
        let device = Device::flex();
        for (image, channels, features) in [
            ([1, 28, 28], vec![8, 16], [16, 7, 7]),
            ([3, 32, 32], vec![4, 6, 8], [8, 4, 4]),
            ([2, 8, 4], vec![5], [5, 4, 2]),
        ] {
            let config = ConvConfig::new(image, channels);
            assert_eq!(config.feature_shape(), features);
            let n: usize = image.iter().product();
            let x = Tensor::<2>::zeros([3, n], &device);
            let f = config.init_encoder(&device).forward(x);
            assert_eq!(f.dims(), [3, config.features()]);
            let y = config.init_decoder(&device).forward(f);
            assert_eq!(y.dims(), [3, n]);
        }
    }

    #[test]
    fn sizes_that_do_not_halve_are_refused() {
        assert!(ConvConfig::new([1, 28, 28], vec![8, 8, 8]).check().is_err());
        assert!(ConvConfig::new([1, 28, 28], vec![]).check().is_err());
        assert!(ConvConfig::new([1, 28, 28], vec![8, 0]).check().is_err());
        assert!(ConvConfig::new([3, 32, 32], vec![8, 8, 8]).check().is_ok());
    }
}
