//! Adam, fused on the CPU: one pass over each parameter instead of Burn's ~13 (the
//! pass itself is vmf-model's [`vmf_model::fused::adam_update`]).
//!
//! Burn's Adam updates a parameter through a chain of tensor ops (two moment updates,
//! a square, a square root, scalings, a division, a subtraction), each a pass over
//! memory with its own allocation, and flex fuses nothing: on the default MNIST step
//! that was 28% of the time (BENCHMARKS.md). [`FusedAdam`] does the same arithmetic
//! for a flex tensor in one loop over its buffers, in place where the buffers are not
//! shared, and in the same f32 operations in the same order, so its results equal
//! Burn's bit for bit (tested). Every other backend (and anything the loop cannot
//! take: a non-contiguous or non-f32 buffer) goes through Burn's own Adam, the
//! fallback the test compares with. The optimiser state is Burn's `AdamState`, so
//! checkpoints are the same files either way and old ones resume.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{
    Adam, AdamConfig, AdamState, AdaptiveMomentumState, GradientsParams, LearningRate,
    ModuleOptimizer, Optimizer,
};
use burn::tensor::{Device, Tensor};

use crate::config::OptimizerConfig;

/// Adam with the hyperparameters of `[optimizer]`, fused where the backend allows.
pub fn adam(config: &OptimizerConfig) -> ModuleOptimizer {
    ModuleOptimizer::from(FusedAdam::new(config))
}

/// Burn's Adam (no weight decay, no AMSGrad), one fused pass per parameter on flex.
#[derive(Clone)]
pub struct FusedAdam {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    burn: Adam,
}

impl FusedAdam {
    /// The optimiser of `[optimizer]`.
    pub fn new(config: &OptimizerConfig) -> Self {
        let (beta_1, beta_2, epsilon) =
            (config.beta1 as f32, config.beta2 as f32, config.eps as f32);
        Self {
            beta_1,
            beta_2,
            epsilon,
            burn: AdamConfig::new()
                .with_beta_1(beta_1)
                .with_beta_2(beta_2)
                .with_epsilon(epsilon)
                .build(),
        }
    }
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamState<D>>,
    ) -> (Tensor<D>, Option<AdamState<D>>) {
        #[cfg(feature = "flex")]
        let (tensor, grad, state) = match flex::step(self, lr, tensor, grad, state) {
            Ok(done) => return done,
            Err(back) => *back,
        };
        self.burn.step(lr, tensor, grad, state)
    }

    fn to_device<const D: usize>(state: AdamState<D>, device: &Device) -> AdamState<D> {
        <Adam as Optimizer>::to_device(state, device)
    }
}

/// Scales all of `model`'s gradients by one factor, min(1, `max_norm` / (|g| + 1e-6)),
/// where |g| is the L2 norm of every gradient of the model taken together (PyTorch's
/// `clip_grad_norm_`, which Xu & Durrett's text VAE trains with); returns the
/// gradients and |g| before clipping, as a `[1]` tensor on the gradients' device (no
/// step waits on a read-back), or `None` where no parameter has a gradient.
///
/// Hand-rolled because Burn's `GradientClipping::Norm` clips each parameter's gradient
/// by its own norm, which turns the update's direction; one global factor keeps it.
/// Below the threshold the factor is exactly 1 and the gradients stay bit for bit.
pub fn clip_global_norm<M: Module>(
    model: &M,
    mut grads: GradientsParams,
    max_norm: f64,
) -> (GradientsParams, Option<Tensor<1>>) {
    struct SquaredSum<'a>(&'a GradientsParams, Option<Tensor<1>>);
    impl ModuleVisitor for SquaredSum<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.0.get::<D>(param.id) {
                let s = g.square().sum();
                self.1 = Some(match self.1.take() {
                    Some(acc) => acc + s,
                    None => s,
                });
            }
        }
    }
    struct Scale<'a>(&'a mut GradientsParams, Tensor<1>);
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.0.remove::<D>(param.id) {
                let scaled = g.mul(self.1.clone().unsqueeze());
                self.0.register(param.id, scaled);
            }
        }
    }

    let mut sum = SquaredSum(&grads, None);
    model.visit(&mut sum);
    let Some(squares) = sum.1 else {
        return (grads, None);
    };
    let norm = squares.sqrt();
    let factor = norm
        .clone()
        .add_scalar(1e-6)
        .recip()
        .mul_scalar(max_norm)
        .clamp_max(1.0);
    model.visit(&mut Scale(&mut grads, factor));
    (grads, Some(norm))
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::Flex;
    use burn::backend::flex::FlexTensor;
    use burn::tensor::{DType, Tensor};
    use rayon::prelude::*;
    use vmf_model::fused::{AdamStep, adam_update};

    use super::*;

    /// What the fused step hands back when it cannot take a parameter.
    type Back<const D: usize> = (Tensor<D>, Tensor<D>, Option<AdamState<D>>);

    /// Elements per parallel chunk: smaller parameters run on the calling thread.
    const CHUNK: usize = 1 << 15;

    /// Whether `t` is a plain f32 buffer holding exactly its elements.
    fn plain(t: &FlexTensor) -> bool {
        t.dtype() == DType::F32
            && t.as_slice::<f32>()
                .is_some_and(|s| s.len() == t.storage::<f32>().len())
    }

    fn primitive<const D: usize>(t: Tensor<D>) -> FlexTensor {
        t.try_into_primitive::<Flex>()
            .expect("checked: a flex float tensor")
    }

    fn tensor<const D: usize>(t: FlexTensor) -> Tensor<D> {
        Tensor::from_primitive::<Flex>(t)
    }

    /// One Adam step on flex tensors (see the module docs), or the inputs back.
    pub(super) fn step<const D: usize>(
        adam: &FusedAdam,
        lr: LearningRate,
        param: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamState<D>>,
    ) -> Result<(Tensor<D>, Option<AdamState<D>>), Box<Back<D>>> {
        // A clone only to ask where the gradient lives (it shares the buffer).
        let Ok(g) = grad.clone().try_into_primitive::<Flex>() else {
            return Err(Box::new((param, grad, state)));
        };
        drop(grad);
        let mut p = primitive(param);
        let moments = match state {
            None => None,
            Some(AdamState { momentum }) if momentum.max_moment_2.is_none() => Some((
                momentum.time,
                primitive(momentum.moment_1),
                primitive(momentum.moment_2),
            )),
            Some(other) => return Err(Box::new((tensor(p), tensor(g), Some(other)))),
        };
        let fits = plain(&p)
            && plain(&g)
            && moments
                .as_ref()
                .is_none_or(|(_, m1, m2)| plain(m1) && plain(m2));
        if !fits {
            let state = moments.map(|(time, m1, m2)| {
                AdamState::new(AdaptiveMomentumState::new(time, tensor(m1), tensor(m2)))
            });
            return Err(Box::new((tensor(p), tensor(g), state)));
        }

        let shape = p.layout().shape().clone();
        let (time, mut m1, mut m2, first) = match moments {
            Some((time, m1, m2)) => (time + 1, m1, m2, false),
            None => (
                1,
                FlexTensor::zeros(shape.clone(), DType::F32),
                FlexTensor::zeros(shape, DType::F32),
                true,
            ),
        };
        // Burn's scalars, computed as Burn computes them (f32).
        let (b1, b2) = (adam.beta_1, adam.beta_2);
        let t = time as i32;
        let bias_correction2_sqrt = (1.0 - b2.powi(t)).sqrt();
        let step = AdamStep {
            beta_1: b1,
            beta_2: b2,
            combined: bias_correction2_sqrt / (1.0 - b1.powi(t)),
            epsilon: adam.epsilon * bias_correction2_sqrt,
            lr: lr as f32,
            first,
        };
        let g = g.as_slice::<f32>().expect("checked");
        let (pp, mm1, mm2) = (
            p.storage_mut::<f32>(),
            m1.storage_mut::<f32>(),
            m2.storage_mut::<f32>(),
        );
        if pp.len() <= CHUNK {
            adam_update(&step, pp, g, mm1, mm2);
        } else {
            pp.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(mm1.par_chunks_mut(CHUNK))
                .zip(mm2.par_chunks_mut(CHUNK))
                .for_each(|(((p, g), m1), m2)| adam_update(&step, p, g, m1, m2));
        }
        let state = AdamState::new(AdaptiveMomentumState::new(time, tensor(m1), tensor(m2)));
        Ok((tensor(p), Some(state)))
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::GradientsParams;
    use burn::tensor::{Device, TensorData};

    use super::*;

    fn values(model: &Linear) -> Vec<Vec<f32>> {
        let mut out = vec![model.weight.val().into_data().try_to_vec::<f32>().unwrap()];
        if let Some(b) = &model.bias {
            out.push(b.val().into_data().try_to_vec::<f32>().unwrap());
        }
        out
    }

    /// The clipped gradients against the host's f64 arithmetic on the unclipped ones:
    /// one factor max / |g| over both parameters above the threshold, the reported
    /// norm the global one, and the gradients untouched (bit for bit) below it.
    #[test]
    fn global_norm_clipping_scales_all_gradients_by_one_factor() {
        let device = Device::flex().autodiff();
        device.seed(11);
        let model = LinearConfig::new(7, 5).init(&device);
        let x = Tensor::<2>::from_data(
            TensorData::new(
                (0..21).map(|i| (i as f32 * 0.37).sin()).collect::<Vec<_>>(),
                [3, 7],
            ),
            &device,
        );
        let grads_of = || {
            let loss = model.forward(x.clone()).powi_scalar(2).sum();
            GradientsParams::from_grads(loss.backward(), &model)
        };
        let host = |g: &GradientsParams| {
            let bias = model.bias.as_ref().unwrap().id;
            let w = g.get::<2>(model.weight.id).unwrap().into_data();
            let b = g.get::<1>(bias).unwrap().into_data();
            [
                w.try_to_vec::<f32>().unwrap(),
                b.try_to_vec::<f32>().unwrap(),
            ]
        };
        let plain = host(&grads_of());
        let norm = plain
            .iter()
            .flatten()
            .map(|&v| f64::from(v).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(norm > 0.0, "a gradient to clip: {norm}");

        let max = norm / 4.0;
        let (clipped, reported) = clip_global_norm(&model, grads_of(), max);
        let reported = f64::from(reported.unwrap().into_scalar::<f32>());
        assert!((reported / norm - 1.0).abs() < 1e-6, "{reported} vs {norm}");
        for (c, p) in host(&clipped).iter().flatten().zip(plain.iter().flatten()) {
            let want = f64::from(*p) * max / norm;
            assert!(
                (f64::from(*c) - want).abs() <= 1e-6 * want.abs().max(1e-3),
                "{c} vs {want}"
            );
        }

        let (kept, _) = clip_global_norm(&model, grads_of(), norm * 2.0);
        assert_eq!(host(&kept), plain);
    }

    /// Twelve steps of both optimisers on the same model and gradients (a parameter
    /// over the parallel chunk size included), then a save and reload of the fused
    /// state mid-way: the parameters agree bit for bit at every step.
    #[test]
    fn fused_adam_equals_burns_adam_bit_for_bit() {
        let device = Device::flex().autodiff();
        device.seed(7);
        let config = OptimizerConfig {
            lr: 3e-3,
            beta1: 0.8,
            beta2: 0.99,
            eps: 1e-7,
            ..OptimizerConfig::default()
        };
        // 300 x 200 = 60,000 weights: two parallel chunks.
        let start = LinearConfig::new(300, 200).init(&device);
        let mut burn_optim = AdamConfig::new()
            .with_beta_1(0.8)
            .with_beta_2(0.99)
            .with_epsilon(1e-7)
            .init();
        let mut fused = adam(&config);
        let (mut a, mut b) = (start.clone(), start.clone());
        let path = std::env::temp_dir().join(format!("vmf-fused-adam-{}.bpk", std::process::id()));
        for step in 0..12 {
            let x = Tensor::<2>::from_data(
                TensorData::new(
                    (0..600)
                        .map(|i| ((i * 37 + step * 11) % 17) as f32 / 17.0 - 0.4)
                        .collect::<Vec<_>>(),
                    [2, 300],
                ),
                &device,
            );
            let loss_of = |m: &Linear| m.forward(x.clone()).powi_scalar(2).sum();
            let ga = GradientsParams::from_grads(loss_of(&a).backward(), &a);
            let gb = GradientsParams::from_grads(loss_of(&b).backward(), &b);
            a = burn_optim.step(config.lr, a, ga);
            b = fused.step(config.lr, b, gb);
            assert_eq!(values(&a), values(&b), "step {step}");
            if step == 5 {
                // The state round-trips through Burn's record (checkpoints); the loaded
                // state reads the file lazily, so it stays until the end.
                fused.save(&path).unwrap();
                fused = adam(&config).load(&path).unwrap();
            }
        }
        std::fs::remove_file(&path).unwrap();
        assert_ne!(values(&a), values(&start), "the steps moved the parameters");
    }
}
