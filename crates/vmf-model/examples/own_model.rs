//! The vMF reparameterisation layer inside your own Burn model, with your own loop.
//!
//! Data: points of a 2-sphere embedded in R^16 by a fixed random linear map. The model:
//! a linear encoder to R^3, normalised to mu on S^2, the vMF layer (z ~ vMF(mu, kappa)),
//! and a linear decoder back to R^16. Training minimises the squared error of the
//! reconstruction; the KL to the uniform prior is a constant of kappa (printed), so it
//! does not enter the gradient. Run it with
//!
//!     cargo run --release -p vmf-model --example own_model
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Tensor};
use vmf_model::{LatentNoise, VmfReparam, l2_normalise};

/// Your model: any Burn module; the vMF layer is not part of it (it holds no weights).
#[derive(Module, Debug)]
struct AutoEncoder {
    encoder: Linear,
    decoder: Linear,
}

const DIM: usize = 3; // the sphere S^2
const INPUT: usize = 16;
const BATCH: usize = 64;

fn main() -> Result<(), vmf_core::VmfError> {
    let device = Device::flex().autodiff();
    device.seed(0);
    let embed = Tensor::<2>::random([DIM, INPUT], Distribution::Normal(0.0, 1.0), &device);
    let data = |n: usize| {
        l2_normalise(Tensor::random(
            [n, DIM],
            Distribution::Normal(0.0, 1.0),
            &device,
        ))
        .matmul(embed.clone())
    };
    let mut model = AutoEncoder {
        encoder: LinearConfig::new(INPUT, DIM).init(&device),
        decoder: LinearConfig::new(DIM, INPUT).init(&device),
    };
    let vmf = VmfReparam::new(DIM, 50.0, &device)?; // kappa = 50
    let mut optim = AdamConfig::new().init();
    let (mut first, mut last) = (None, f32::NAN);
    for step in 0..=400 {
        let x = data(BATCH);
        let mu = l2_normalise(model.encoder.forward(x.clone()));
        let noise = LatentNoise {
            u: Tensor::random([BATCH], Distribution::Default, &device),
            e: Tensor::random([BATCH, DIM], Distribution::Normal(0.0, 1.0), &device),
        };
        let z = vmf.forward(mu, noise); // gradients reach the encoder through z
        let error = (model.decoder.forward(z) - x)
            .powi_scalar(2)
            .sum_dim(1)
            .mean();
        let value = error.clone().into_scalar::<f32>();
        first.get_or_insert(value);
        last = value;
        if step % 100 == 0 {
            println!("step {step:3}: squared error {value:.3}");
        }
        let grads = GradientsParams::from_grads(error.backward(), &model);
        model = optim.step(1e-2, model, grads);
    }
    println!(
        "KL(vMF(mu, 50) || uniform on S^2) = {:.3} nats per example, whatever mu is",
        vmf.stats().map_or(f64::NAN, |s| s.kl)
    );
    println!(
        "squared error: {:.3} -> {last:.3}",
        first.unwrap_or(f32::NAN)
    );
    Ok(())
}
