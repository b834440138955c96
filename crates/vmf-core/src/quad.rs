//! Numerical integration: adaptive Gauss-Kronrod (7-15) and fixed Gauss-Legendre.
//!
//! Small enough to own: the quadrature crates on crates.io either lack an
//! absolute-tolerance adaptive GK or pull in heavy numeric stacks.

/// Kronrod nodes on [-1, 1] (non-negative half, descending; the last is 0).
const XGK: [f64; 8] = [
    0.991_455_371_120_812_6,
    0.949_107_912_342_758_5,
    0.864_864_423_359_769_1,
    0.741_531_185_599_394_4,
    0.586_087_235_467_691_1,
    0.405_845_151_377_397_2,
    0.207_784_955_007_898_5,
    0.0,
];
/// Kronrod weights matching [`XGK`].
const WGK: [f64; 8] = [
    0.022_935_322_010_529_22,
    0.063_092_092_629_978_55,
    0.104_790_010_322_250_18,
    0.140_653_259_715_525_92,
    0.169_004_726_639_267_9,
    0.190_350_578_064_785_4,
    0.204_432_940_075_298_9,
    0.209_482_141_084_727_83,
];
/// Gauss weights of the embedded 7-point rule (nodes XGK[1], XGK[3], XGK[5], XGK[7]).
const WG: [f64; 4] = [
    0.129_484_966_168_869_7,
    0.279_705_391_489_276_7,
    0.381_830_050_505_118_9,
    0.417_959_183_673_469_4,
];

/// One Gauss-Kronrod 15-point step: (Kronrod estimate, |Kronrod - Gauss|).
fn gk15(f: &impl Fn(f64) -> f64, a: f64, b: f64) -> (f64, f64) {
    let c = 0.5 * (a + b);
    let h = 0.5 * (b - a);
    let fc = f(c);
    let mut k = fc * WGK[7];
    let mut g = fc * WG[3];
    for j in 0..7 {
        let dx = h * XGK[j];
        let s = f(c - dx) + f(c + dx);
        k += WGK[j] * s;
        if j % 2 == 1 {
            g += WG[j / 2] * s;
        }
    }
    (k * h, ((k - g) * h).abs())
}

/// Integral of `f` over [a, b] to absolute tolerance `tol` by recursive bisection.
///
/// A piece is accepted when its error estimate is below its share of `tol` or below
/// round-off (1e-15 of its own value), so an unattainable `tol` cannot make the
/// recursion explode; at most `MAX_PIECES` pieces are evaluated.
///
/// The integrand must be resolved by a 15-point rule on each piece it is given:
/// callers split at the features of the integrand (mode, widths) first.
pub fn adaptive(f: &impl Fn(f64) -> f64, a: f64, b: f64, tol: f64) -> f64 {
    const MAX_PIECES: usize = 4096;
    if b <= a {
        return 0.0;
    }
    let mut total = 0.0;
    let mut budget = MAX_PIECES;
    let mut stack = vec![(a, b, tol)];
    while let Some((a, b, tol)) = stack.pop() {
        let (k, err) = gk15(f, a, b);
        budget = budget.saturating_sub(1);
        if err <= tol.max(1e-15 * k.abs()) || budget == 0 || b - a <= 1e-13 * (b.abs() + 1e-300) {
            total += k;
        } else {
            let m = 0.5 * (a + b);
            stack.push((m, b, 0.5 * tol));
            stack.push((a, m, 0.5 * tol));
        }
    }
    total
}

/// Gauss-Legendre 5-point nodes on [-1, 1].
pub const GL5_X: [f64; 5] = [
    -0.906_179_845_938_664,
    -0.538_469_310_105_683_1,
    0.0,
    0.538_469_310_105_683_1,
    0.906_179_845_938_664,
];
/// Gauss-Legendre 5-point weights.
pub const GL5_W: [f64; 5] = [
    0.236_926_885_056_189_1,
    0.478_628_670_499_366_5,
    0.568_888_888_888_888_9,
    0.478_628_670_499_366_5,
    0.236_926_885_056_189_1,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_integrates_known_integrals() {
        let i = adaptive(&|x: f64| x.exp(), 0.0, 1.0, 1e-15);
        assert!((i - (1f64.exp() - 1.0)).abs() < 1e-14);
        // A narrow Gaussian (split at its centre, as callers do).
        let s = 1e-3;
        let g = |x: f64| (-0.5 * (x / s).powi(2)).exp();
        let i = adaptive(&g, -1.0, 0.0, 1e-18) + adaptive(&g, 0.0, 1.0, 1e-18);
        let exact = s * (2.0 * std::f64::consts::PI).sqrt();
        assert!((i - exact).abs() < 1e-14 * exact, "{i} vs {exact}");
    }

    #[test]
    fn gl5_is_exact_for_degree_nine() {
        let f = |x: f64| x.powi(9) + 3.0 * x.powi(8) - x.powi(2);
        let i: f64 = GL5_X.iter().zip(GL5_W).map(|(&x, w)| w * f(x)).sum();
        let exact = 3.0 * 2.0 / 9.0 - 2.0 / 3.0;
        assert!((i - exact).abs() < 1e-14);
    }
}
