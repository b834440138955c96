//! The reconstruction losses against f64 closed forms: values, and gradients with
//! respect to the logits (the Bernoulli gradient is supplied by hand, so it is checked
//! here against sigmoid(l) - x).

use burn::tensor::{Device, Tensor, TensorData};
use vmf_model::ReconLoss;
use vmf_model::image::loss::reconstruction_per_example;

const ROWS: usize = 4;
const COLS: usize = 9;

/// Logits across the whole range, saturated tails included, and targets in [0, 1].
fn inputs() -> (Vec<f32>, Vec<f32>) {
    let l: Vec<f32> = (0..ROWS * COLS)
        .map(|i| match i % 9 {
            0 => -90.0,
            8 => 90.0,
            k => (k as f32 - 4.0) * 7.3 + (i as f32) * 0.01,
        })
        .collect();
    let x: Vec<f32> = (0..ROWS * COLS)
        .map(|i| ((i * 7) % 11) as f32 / 10.0)
        .collect();
    (l, x.into_iter().map(|v| v.min(1.0)).collect())
}

fn softplus(l: f64) -> f64 {
    l.max(0.0) + (-l.abs()).exp().ln_1p()
}

fn sigmoid(l: f64) -> f64 {
    1.0 / (1.0 + (-l).exp())
}

fn check(kind: ReconLoss, value: impl Fn(f64, f64) -> f64, grad: impl Fn(f64, f64) -> f64) {
    let device = Device::flex().autodiff();
    let (l, x) = inputs();
    let logits =
        Tensor::<2>::from_data(TensorData::new(l.clone(), [ROWS, COLS]), &device).require_grad();
    let target = Tensor::<2>::from_data(TensorData::new(x.clone(), [ROWS, COLS]), &device);
    let per_example = reconstruction_per_example(kind, logits.clone(), target);
    let got: Vec<f32> = per_example.clone().into_data().try_to_vec::<f32>().unwrap();
    for r in 0..ROWS {
        let want: f64 = (0..COLS)
            .map(|c| value(f64::from(l[r * COLS + c]), f64::from(x[r * COLS + c])))
            .sum();
        let err = (f64::from(got[r]) - want).abs();
        assert!(
            err <= 1e-5 * want.abs().max(1.0),
            "{kind:?} row {r}: {} vs {want}",
            got[r]
        );
    }
    let grads = per_example.sum().backward();
    let g: Vec<f32> = logits
        .grad(&grads)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    for i in 0..ROWS * COLS {
        let want = grad(f64::from(l[i]), f64::from(x[i]));
        let err = (f64::from(g[i]) - want).abs();
        assert!(
            err <= 1e-6,
            "{kind:?} d/dl at l = {}, x = {}: {} vs {want}",
            l[i],
            x[i],
            g[i]
        );
    }
}

#[test]
fn bernoulli_value_and_gradient_match_the_closed_form() {
    check(
        ReconLoss::Bernoulli,
        |l, x| softplus(l) - x * l,
        |l, x| sigmoid(l) - x,
    );
}

#[test]
fn gaussian_value_and_gradient_match_the_closed_form() {
    check(
        ReconLoss::Gaussian,
        |l, x| 0.5 * (x - sigmoid(l)).powi(2),
        |l, x| -(x - sigmoid(l)) * sigmoid(l) * (1.0 - sigmoid(l)),
    );
}

#[test]
fn bernoulli_without_autodiff_gives_the_same_values() {
    let (l, x) = inputs();
    let on = |device: Device| -> Vec<f32> {
        let logits = Tensor::<2>::from_data(TensorData::new(l.clone(), [ROWS, COLS]), &device);
        let target = Tensor::<2>::from_data(TensorData::new(x.clone(), [ROWS, COLS]), &device);
        reconstruction_per_example(ReconLoss::Bernoulli, logits, target)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    assert_eq!(on(Device::flex()), on(Device::flex().autodiff()));
}

/// The tensor-op Bernoulli (every backend but flex, where a fused kernel runs) against
/// the same closed forms, and against the fused kernel.
#[test]
fn the_bernoulli_fallback_and_the_fused_kernel_agree_with_the_closed_form() {
    use vmf_model::image::loss::bernoulli_value_and_gradient;
    let device = Device::flex();
    let (l, x) = inputs();
    let logits = Tensor::<2>::from_data(TensorData::new(l.clone(), [ROWS, COLS]), &device);
    let target = Tensor::<2>::from_data(TensorData::new(x.clone(), [ROWS, COLS]), &device);
    let values = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
    let grads = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
    let (v, g) = bernoulli_value_and_gradient(logits.clone(), target.clone());
    let (fv, fg) = vmf_model::fused::bernoulli(&logits, &target).expect("flex is fused");
    for (v, g) in [(values(v), grads(g)), (values(fv), grads(fg))] {
        for r in 0..ROWS {
            let want: f64 = (0..COLS)
                .map(|c| {
                    let (l, x) = (f64::from(l[r * COLS + c]), f64::from(x[r * COLS + c]));
                    softplus(l) - x * l
                })
                .sum();
            assert!((f64::from(v[r]) - want).abs() <= 1e-5 * want.abs().max(1.0));
        }
        for i in 0..ROWS * COLS {
            let want = sigmoid(f64::from(l[i])) - f64::from(x[i]);
            assert!((f64::from(g[i]) - want).abs() <= 1e-6, "{i}");
        }
    }
}
