//! The kappa-derivatives: A_d' and dKL/dkappa against mpmath at 50 digits (both the
//! direct formula and the quadrature variance), the quantile's dw/dkappa against an
//! mpmath quadrature of the implicit formula, against central differences of the
//! quantile table in kappa, and unbiased: E[dw/dkappa] = A_d'.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::Value;
use vmf_core::{
    DEFAULT_TABLE_SIZE, Family, QuantileGradient, QuantileTable, kl_derivative, mean_w_derivative,
};

fn reference() -> Value {
    serde_json::from_str(include_str!("data/derivatives.json")).expect("derivatives.json parses")
}

fn field(v: &Value, name: &str) -> f64 {
    v[name].as_f64().unwrap_or_else(|| panic!("{name} in {v}"))
}

fn rel(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs()
}

#[test]
fn mean_w_and_kl_derivatives_match_mpmath_to_1e_8() {
    let r = reference();
    let cases = r["stats"].as_array().unwrap();
    assert!(cases.len() > 150);
    for c in cases {
        let (d, k) = (field(c, "dim") as usize, field(c, "kappa"));
        let want = field(c, "mean_w_derivative");
        let got = mean_w_derivative(d, k).unwrap();
        assert!(
            rel(got, want) < 1e-8,
            "A' at d = {d}, kappa = {k}: {got} vs {want}"
        );
        if k > 0.0 {
            let want = field(c, "kl_derivative");
            let got = kl_derivative(d, k).unwrap();
            assert!(
                rel(got, want) < 1e-8,
                "dKL at d = {d}, kappa = {k}: {got} vs {want}"
            );
            // The quadrature route alone, wherever the density is not flat (below
            // kappa ~ 1 the direct formula is the accurate one).
            if k >= 1.0 {
                let var = QuantileGradient::new(d, k).unwrap().variance_w();
                assert!(rel(var, want / k) < 1e-8, "Var(w) at d = {d}, kappa = {k}");
            }
        }
    }
    // The example of cancellation: A_d' = 6.4e-9 at d = 9, kappa = 25000.
    let a = mean_w_derivative(9, 25000.0).unwrap();
    assert!((a - 6.4e-9).abs() < 0.01e-9, "{a}");
}

#[test]
fn the_quantile_derivative_matches_mpmath() {
    let r = reference();
    for c in r["quantile"].as_array().unwrap() {
        let (d, k, theta) = (
            field(c, "dim") as usize,
            field(c, "kappa"),
            field(c, "theta"),
        );
        let want = field(c, "dw_dkappa");
        let got = QuantileGradient::new(d, k).unwrap().dw_dkappa(theta);
        assert!(
            rel(got, want) < 1e-8,
            "dw/dkappa at d = {d}, kappa = {k}, theta = {theta}: {got} vs {want}"
        );
    }
}

#[test]
fn the_quantile_derivative_is_the_slope_of_the_quantile_in_kappa() {
    // A second algorithm: central differences of the tabulated quantile at fixed u.
    for (d, k) in [(2, 0.37), (3, 20.0), (5, 2.0), (33, 610.0), (1024, 5e4)] {
        let h = 1e-4 * k;
        let (lo, mid, hi) = (
            QuantileTable::new(d, k - h).unwrap(),
            QuantileTable::new(d, k).unwrap(),
            QuantileTable::new(d, k + h).unwrap(),
        );
        let g = QuantileGradient::new(d, k).unwrap();
        for u in [0.05, 0.3, 0.5, 0.8, 0.97] {
            let fd = (hi.w_at(u) - lo.w_at(u)) / (2.0 * h);
            let exact = g.dw_dkappa(mid.theta_at(u));
            assert!(
                rel(exact, fd) < 1e-4,
                "d = {d}, kappa = {k}, u = {u}: {exact} vs {fd}"
            );
            // In theta: dtheta = -dw / sin(theta).
            let t = mid.theta_at(u);
            assert!(rel(g.dtheta_dkappa(t) * -t.sin(), exact) < 1e-12);
        }
    }
}

#[test]
fn the_quantile_derivative_is_unbiased() {
    // E_u[dw/dkappa(Q(u))] = d/dkappa E[w] = A_d'(kappa), at kappas off any grid, from
    // nearly uniform to very concentrated: within 4 standard errors over iid uniforms,
    // and to 1e-3 by the midpoint rule over 4000 u (the integrand is steep in the tail
    // of d = 2: 400 points leave 2e-3, 4000 up to 2e-4); S-VAE's bias is 13%.
    let mut rng = StdRng::seed_from_u64(12);
    for d in [2usize, 3, 5, 21, 129, 1024] {
        for k in [0.01, 0.37, 3.3, 47.1, 910.0, 1e4] {
            let table = QuantileTable::new(d, k).unwrap();
            let g = QuantileGradient::new(d, k).unwrap();
            let want = mean_w_derivative(d, k).unwrap();
            let n = 400;
            let mut thetas: Vec<f64> = (0..n)
                .map(|_| table.theta_at(rng.random::<f64>()))
                .collect();
            thetas.sort_by(f64::total_cmp);
            let draws = g.dw_dkappa_sorted(&thetas);
            let mean = draws.iter().sum::<f64>() / n as f64;
            let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            let se = (var / n as f64).sqrt();
            assert!(draws.iter().all(|&x| x >= 0.0), "quantiles rise with kappa");
            assert!(
                (mean - want).abs() < 4.0 * se,
                "d = {d}, kappa = {k}: mean {mean} +- {se} vs A' = {want}"
            );
            let m = 4000;
            let mid: Vec<f64> = (0..m)
                .map(|i| table.theta_at((i as f64 + 0.5) / m as f64))
                .collect();
            let rule = g.dw_dkappa_sorted(&mid).iter().sum::<f64>() / m as f64;
            assert!(
                rel(rule, want) < 1e-3,
                "d = {d}, kappa = {k}: {rule} vs {want}"
            );
            // The sweep gives what one angle at a time gives.
            for i in [0, n / 3, n - 1] {
                assert!(rel(draws[i], g.dw_dkappa(thetas[i])) < 1e-9);
            }
        }
    }
    // S-VAE's biased estimate at d = 5, kappa = 2 is 0.1278; the exact value:
    let a = mean_w_derivative(5, 2.0).unwrap();
    assert!((a - 0.1474).abs() < 5e-5, "{a}");
}

#[test]
fn the_power_spherical_quantile_derivative_is_its_slope_and_unbiased() {
    // A second algorithm (central differences of the tabulated quantile at fixed u), and
    // the closed form dE[t]/dkappa = (d - 1) / (d - 1 + kappa)^2 as the mean over u.
    let ps = Family::PowerSpherical;
    let table = |d, k| QuantileTable::of(ps, d, k, DEFAULT_TABLE_SIZE).unwrap();
    for (d, k) in [
        (2, 0.37),
        (3, 20.0),
        (5, 2.0),
        (41, 10.0),
        (33, 610.0),
        (1024, 5e4),
    ] {
        let h = 1e-4 * k;
        let (lo, mid, hi) = (table(d, k - h), table(d, k), table(d, k + h));
        let g = QuantileGradient::of(ps, d, k).unwrap();
        for u in [0.05, 0.3, 0.5, 0.8, 0.97] {
            let fd = (hi.w_at(u) - lo.w_at(u)) / (2.0 * h);
            let exact = g.dw_dkappa(mid.theta_at(u));
            assert!(
                rel(exact, fd) < 1e-4,
                "PS d = {d}, kappa = {k}, u = {u}: {exact} vs {fd}"
            );
        }
        let m = 4000;
        let thetas: Vec<f64> = (0..m)
            .map(|i| mid.theta_at((i as f64 + 0.5) / m as f64))
            .collect();
        let draws = g.dw_dkappa_sorted(&thetas);
        assert!(draws.iter().all(|&x| x >= 0.0), "quantiles rise with kappa");
        let rule = draws.iter().sum::<f64>() / m as f64;
        let want = (d as f64 - 1.0) / (d as f64 - 1.0 + k).powi(2);
        assert!(
            rel(rule, want) < 1e-3,
            "PS d = {d}, kappa = {k}: {rule} vs {want}"
        );
    }
}
