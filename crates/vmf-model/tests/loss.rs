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
    let (v, g) = bernoulli_value_and_gradient(logits.clone(), target.clone(), true);
    let g = g.expect("asked for");
    let (fv, fg) = vmf_model::fused::bernoulli(&logits, &target, true).expect("flex is fused");
    let (nv, ng) = vmf_model::fused::bernoulli(&logits, &target, false).unwrap();
    assert!(ng.is_none());
    assert_eq!(
        values(nv),
        values(fv.clone()),
        "the value does not depend on the gradient"
    );
    for (v, g) in [(values(v), grads(g)), (values(fv), grads(fg.unwrap()))] {
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

/// The fused token cross-entropy (flex) against log_softmax + gather through Burn's
/// autodiff (the fallback of every other backend): per-sentence values and gradients
/// with respect to the logits, padded positions included (no loss, no gradient).
#[test]
fn the_fused_cross_entropy_equals_log_softmax_and_its_autodiff() {
    use burn::tensor::Int;
    use burn::tensor::activation::log_softmax;
    let (b, t, v): (usize, usize, usize) = (3, 4, 1037);
    let device = Device::flex().autodiff();
    // Logits with a wide spread (saturating softmax rows included).
    let l: Vec<f32> = (0..b * t * v)
        .map(|i| {
            let s = ((i * 7919) % 1999) as f32 / 1999.0 - 0.5;
            if i / v % 5 == 2 { s * 120.0 } else { s * 8.0 }
        })
        .collect();
    let targets: Vec<i32> = (0..b * t).map(|i| ((i * 331) % v) as i32).collect();
    let mask: Vec<f32> = (0..b * t)
        .map(|i| if i % t < t - i / t { 1.0 } else { 0.0 })
        .collect();
    let logits = Tensor::<3>::from_data(TensorData::new(l, [b, t, v]), &device).require_grad();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(targets, [b, t]), &device);
    let m = Tensor::<2>::from_data(TensorData::new(mask, [b, t]), &device);
    // Each sentence's loss weighted differently, so that the backward's scaling of
    // each sentence's rows by its upstream gradient is seen.
    let weights = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, -0.5, 2.5], [b]), &device);
    // The reference: the fallback's formula.
    let picked = log_softmax(logits.clone(), 2)
        .gather(2, ids.clone().unsqueeze_dim::<3>(2))
        .squeeze_dim::<2>(2);
    let want = (picked * m.clone()).sum_dim(1).squeeze_dim::<1>(1).neg();
    let want_g = logits
        .grad(&(want.clone() * weights.clone()).sum().backward())
        .unwrap();
    let got = vmf_model::fused::token_cross_entropy(&logits, &ids, &m).expect("flex is fused");
    let got_g = logits
        .grad(&(got.clone() * weights).sum().backward())
        .unwrap();
    let vec1 = |x: Tensor<1>| x.into_data().try_to_vec::<f32>().unwrap();
    let (got, want) = (vec1(got), vec1(want));
    for (g, w) in got.iter().zip(&want) {
        assert!(
            (g - w).abs() <= 2e-5 * w.abs().max(1.0),
            "{got:?} vs {want:?}"
        );
    }
    assert!(
        want.iter().all(|&w| w > 1.0),
        "every sentence has tokens: {want:?}"
    );
    let flat = |x: Tensor<3>| x.into_data().try_to_vec::<f32>().unwrap();
    let (gg, wg) = (flat(got_g.inner()), flat(want_g.inner()));
    let worst = gg
        .iter()
        .zip(&wg)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 3e-6, "largest gradient difference {worst}");
    assert!(wg.iter().any(|&x| x != 0.0) && wg.contains(&0.0));
}
