//! Quantiles and KL over a range of kappa (for a learned, per-example kappa): at
//! kappas between the grid points the tabulated quantiles keep the exact distribution
//! (Kolmogorov-Smirnov distance to the exact CDF), their kappa-derivative is the
//! exact one, the device evaluates both row by row with the kappa-derivative of its
//! own forward (central differences), and the KL table's value and slope match the
//! f64 ones with a slope continuous across cells.

use burn::tensor::{Device, Tensor, TensorData};
use vmf_core::{
    DeviceKappaTable, DeviceKlTable, Family, KappaQuantileTable, KlTable, QuantileGradient,
    QuantileTable, ThetaMarginal, kl_derivative, kl_to_uniform,
};

fn rel(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs()
}

fn floats(t: Tensor<1>) -> Vec<f64> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

fn tensor(v: &[f64], device: &Device) -> Tensor<1> {
    let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n]), device)
}

/// Off-grid kappas of the range [1e-2, 1e5] (the grid has 10 points per e-fold).
const KAPPAS: [f64; 6] = [0.0137, 0.61, 7.77, 123.4, 4321.0, 77777.0];

#[test]
fn quantiles_between_grid_kappas_keep_the_exact_distribution_and_slope() {
    for d in [2usize, 5, 50, 1024] {
        let table = KappaQuantileTable::new(d, 1e-2, 1e5).unwrap();
        assert!(
            table.device_bytes() < 4 << 20,
            "{} bytes",
            table.device_bytes()
        );
        // At a grid point the table is the one-kappa table.
        let grid = table.grid();
        let k3 = grid.kappa(3);
        let one = QuantileTable::with_size(d, k3, table.probabilities()).unwrap();
        for u in [0.0, 0.25, 0.7, 1.0] {
            assert!((table.theta_at(u, k3).0 - one.theta_at(u)).abs() < 1e-12);
        }
        for k in KAPPAS {
            // KS: each stratified u's angle sits where the exact CDF is u.
            let n = 4000;
            let thetas: Vec<f64> = (0..n)
                .map(|i| table.theta_at((i as f64 + 0.5) / n as f64, k).0)
                .collect();
            let cdf = ThetaMarginal::new(d, k).unwrap().cdf_theta_sorted(&thetas);
            let ks = cdf
                .iter()
                .enumerate()
                .map(|(i, c)| (c - (i as f64 + 0.5) / n as f64).abs())
                .fold(0.0, f64::max);
            assert!(ks <= 1e-3, "d = {d}, kappa = {k}: KS distance {ks}");
            // The derivative in kappa is the exact one at the same angle.
            let g = QuantileGradient::new(d, k).unwrap();
            for u in [0.02, 0.2, 0.5, 0.8, 0.98] {
                let (theta, dtheta) = table.theta_at(u, k);
                let exact = g.dtheta_dkappa(theta);
                assert!(
                    rel(dtheta, exact) < 1e-3,
                    "d = {d}, kappa = {k}, u = {u}: {dtheta} vs {exact}"
                );
            }
        }
    }
}

#[test]
fn the_device_table_serves_a_kappa_per_row_with_its_own_derivative() {
    let device = Device::flex().autodiff();
    let d = 21;
    let host = KappaQuantileTable::new(d, 1e-2, 1e5).unwrap();
    let table = DeviceKappaTable::new(&host, &device);
    let us = [0.03, 0.31, 0.5, 0.77, 0.96, 0.5];
    let s: Vec<f64> = KAPPAS.iter().map(|k: &f64| k.ln()).collect();
    let log_kappa = tensor(&s, &device).require_grad();
    let theta = table.theta(tensor(&us, &device), log_kappa.clone());
    let values = floats(theta.clone().inner());
    let grads = theta.sum().backward();
    let dtheta_ds = floats(log_kappa.grad(&grads).unwrap());
    let h = 1e-2;
    let plain = DeviceKappaTable::new(&host, &Device::flex());
    let at = |shift: f64| {
        let s: Vec<f64> = s.iter().map(|x| x + shift).collect();
        floats(plain.theta(tensor(&us, &Device::flex()), tensor(&s, &Device::flex())))
    };
    let (up, down) = (at(h), at(-h));
    for r in 0..us.len() {
        let k = KAPPAS[r];
        let (theta, dtheta) = host.theta_at(us[r], k);
        assert!(
            rel(values[r], theta) < 1e-5,
            "row {r}: {} vs {theta}",
            values[r]
        );
        // Autodiff through the interpolant = the exact slope (f32 arithmetic).
        assert!(
            rel(dtheta_ds[r], k * dtheta) < 1e-3,
            "row {r}: {} vs {}",
            dtheta_ds[r],
            k * dtheta
        );
        // ... = central differences of the device forward, same u.
        let fd = (up[r] - down[r]) / (2.0 * h);
        assert!(
            rel(dtheta_ds[r], fd) < 1e-2,
            "row {r}: {} vs {fd}",
            dtheta_ds[r]
        );
    }
}

#[test]
fn the_kl_table_has_the_exact_value_and_a_continuous_slope() {
    let device = Device::flex().autodiff();
    for d in [2usize, 50, 4096] {
        let host = KlTable::new(d, 1e-2, 1e5).unwrap();
        let table = DeviceKlTable::new(&host, &device);
        let s: Vec<f64> = KAPPAS.iter().map(|k: &f64| k.ln()).collect();
        let log_kappa = tensor(&s, &device).require_grad();
        let kl = table.kl(log_kappa.clone());
        let values = floats(kl.clone().inner());
        let slopes = floats(log_kappa.grad(&kl.sum().backward()).unwrap());
        for (r, &k) in KAPPAS.iter().enumerate() {
            let (want, dwant) = (kl_to_uniform(d, k).unwrap(), kl_derivative(d, k).unwrap());
            let (got, dgot) = host.kl_at(k);
            assert!(
                rel(got, want) < 1e-7,
                "d = {d}, kappa = {k}: {got} vs {want}"
            );
            assert!(
                rel(dgot, dwant) < 1e-6,
                "d = {d}, kappa = {k}: {dgot} vs {dwant}"
            );
            assert!(
                rel(values[r], want) < 1e-5,
                "device KL at d = {d}, kappa = {k}"
            );
            assert!(
                rel(slopes[r], k * dwant) < 1e-5,
                "device slope at d = {d}, kappa = {k}: {} vs {}",
                slopes[r],
                k * dwant
            );
        }
        // The slope is continuous across every cell boundary (f64 interpolant).
        let grid = host.grid();
        for j in 1..grid.points - 1 {
            let k = grid.kappa(j);
            let (below, above) = (
                host.kl_at(k * (1.0 - 1e-12)).1,
                host.kl_at(k * (1.0 + 1e-12)).1,
            );
            assert!(
                rel(below, above) < 1e-8,
                "d = {d}, kappa = {k}: {below} vs {above}"
            );
        }
    }
}

/// Where the first or last probability entry is a pole (0 or pi, where the density's
/// support reaches it; ~1e-17 after the inversion) it is so at every kappa: its slope
/// is 0, not the formula's 0 / 0 (a NaN there reached every draw whose u fell in the table's first or last
/// cell, at d = 3, as NaN losses).
#[test]
fn the_poles_have_slope_zero_and_every_entry_is_finite() {
    let device = Device::flex().autodiff();
    for d in [2usize, 3, 4, 5] {
        let host = KappaQuantileTable::with_steps(d, 0.5, 1e4, 0.5, 65).unwrap();
        let m = host.probabilities();
        let bad: Vec<(usize, usize, f64, f64)> = (0..host.theta().len())
            .filter(|&k| !(host.theta()[k].is_finite() && host.slope()[k].is_finite()))
            .map(|k| (k / m, k % m, host.theta()[k], host.slope()[k]))
            .collect();
        assert!(
            bad.is_empty(),
            "d = {d}: (kappa point, entry, theta, slope) {bad:?}"
        );
        let mut poles = 0;
        for j in 0..host.grid().points {
            for i in [0, m - 1] {
                let (theta, slope) = (host.theta()[j * m + i], host.slope()[j * m + i]);
                if !(1e-12..=std::f64::consts::PI - 1e-12).contains(&theta) {
                    assert_eq!(slope, 0.0, "d = {d}, kappa point {j}, entry {i}");
                    poles += 1;
                }
            }
        }
        if d == 3 {
            assert!(poles > 0, "d = 3: the support reaches a pole at some kappa");
        }
        // Draws in the first and last cells, and their gradients, are finite.
        let table = DeviceKappaTable::new(&host, &device);
        let s = tensor(&[1.0, 3.3, 7.0, 2.2], &device).require_grad();
        let theta = table.theta(tensor(&[0.0, 1e-4, 0.9999, 0.99999], &device), s.clone());
        let grads = theta.clone().sum().backward();
        let values = floats(theta.inner());
        let slopes = floats(s.grad(&grads).unwrap());
        assert!(
            values.iter().chain(&slopes).all(|v| v.is_finite()),
            "d = {d}: {values:?} {slopes:?}"
        );
    }
}

#[test]
fn power_spherical_tables_over_kappa_match_the_direct_ones() {
    // Off-grid kappas: the Hermite interpolants in ln kappa against the table and the
    // derivatives built at that kappa directly, and the KL against its closed form.
    let ps = Family::PowerSpherical;
    let d = 41;
    let q = KappaQuantileTable::of(ps, d, 1.0, 1e4, 0.1, 513).unwrap();
    let kl = KlTable::of(ps, d, 1.0, 1e4).unwrap();
    for k in [1.37, 9.9, 47.3, 610.0, 8123.0] {
        let direct = QuantileTable::of(ps, d, k, 513).unwrap();
        let g = QuantileGradient::of(ps, d, k).unwrap();
        for u in [0.02, 0.3, 0.5, 0.77, 0.98] {
            let (theta, dtheta) = q.theta_at(u, k);
            let want = direct.theta_at(u);
            assert!(
                (theta - want).abs() < 1e-7,
                "kappa = {k}, u = {u}: {theta} vs {want}"
            );
            let slope = g.dtheta_dkappa(want);
            assert!(
                (dtheta - slope).abs() < 1e-4 * slope.abs(),
                "kappa = {k}, u = {u}: {dtheta} vs {slope}"
            );
        }
        let (v, dv) = kl.kl_at(k);
        let (want, dwant) = (ps.kl(d, k).unwrap(), ps.kl_derivative(d, k).unwrap());
        assert!((v - want).abs() < 1e-8 * want, "KL at {k}: {v} vs {want}");
        assert!(
            (dv - dwant).abs() < 1e-5 * dwant,
            "dKL at {k}: {dv} vs {dwant}"
        );
    }
    // A KL budget's kappa, for a scheduled budget: the KL at it is the budget. (The
    // Power Spherical's KL grows like ((d - 1) / 2) ln kappa: at d = 2 and kappa = 1e5
    // it is 5.8 nats, and a larger budget is refused by name.)
    for d in [2, 41, 1024] {
        for target in [1e-3, 1.0, 30.0, 500.0] {
            if target > ps.kl(d, 1e5).unwrap() {
                let e = ps.kappa_for_kl(d, target).unwrap_err().to_string();
                assert!(e.contains(&format!("{target}")), "{e}");
                continue;
            }
            let k = ps.kappa_for_kl(d, target).unwrap();
            let got = ps.kl(d, k).unwrap();
            assert!(
                (got - target).abs() < 1e-12 * target.max(1.0),
                "d = {d}: {got} vs {target}"
            );
        }
    }
}
