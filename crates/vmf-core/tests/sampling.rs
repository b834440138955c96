//! The quantile table and the host and device samplers against exact distributions.

use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use vmf_core::*;

const DIMS: [usize; 7] = [2, 3, 4, 16, 128, 1024, 4096];
const KAPPAS: [f64; 6] = [0.0, 1e-3, 1.0, 20.0, 1e3, 1e5];

#[test]
fn table_ks_distance_is_below_1e4_over_the_grid() {
    let mut worst = (0.0, 0, 0.0);
    for d in DIMS {
        for k in KAPPAS {
            let table = QuantileTable::new(d, k).unwrap();
            let ks = table.ks_distance(3).unwrap();
            assert!(ks <= 1e-4, "d={d} kappa={k}: KS = {ks:e}");
            if ks > worst.0 {
                worst = (ks, d, k);
            }
        }
    }
    eprintln!("worst KS {:e} at d={} kappa={}", worst.0, worst.1, worst.2);
}

#[test]
fn table_entries_are_exact_quantiles() {
    // At its entries the table must hit the exact CDF far below the KS target.
    for d in DIMS {
        for k in KAPPAS {
            let table = QuantileTable::with_size(d, k, 257).unwrap();
            let exact = ThetaMarginal::new(d, k)
                .unwrap()
                .cdf_theta_sorted(table.theta());
            for (i, c) in exact.iter().enumerate() {
                let p = i as f64 / 256.0;
                assert!(
                    (c - p).abs() < 1e-9,
                    "d={d} kappa={k} entry {i}: F = {c}, p = {p}"
                );
            }
        }
    }
}

#[test]
fn d3_table_matches_the_closed_form_inverse_cdf() {
    // d = 3: w = 1 + ln(u + (1 - u) e^{-2 kappa}) / kappa, i.e.
    // P(theta <= t) = (1 - e^{-2 kappa sin^2(t/2)}) / (1 - e^{-2 kappa}).
    for k in [1e-3_f64, 0.5, 20.0, 1e3, 1e5] {
        let table = QuantileTable::new(3, k).unwrap();
        let cdf = |t: f64| {
            let s = (0.5 * t).sin();
            (-2.0 * k * s * s).exp_m1() / (-2.0 * k).exp_m1()
        };
        let n = table.len() - 1;
        let mut ks = 0.0_f64;
        for (i, w) in table.theta().windows(2).enumerate() {
            assert!(
                (cdf(w[0]) - i as f64 / n as f64).abs() < 1e-9,
                "kappa={k} entry {i}"
            );
            for f in [0.25, 0.5, 0.75] {
                let t = w[0] + f * (w[1] - w[0]);
                ks = ks.max((cdf(t) - table.cdf_theta(t)).abs());
            }
        }
        assert!(ks <= 1e-4, "kappa={k}: KS {ks:e}");
        // The closed-form inverse CDF at a few u, against the table's w (same u).
        for u in [0.1, 0.5, 0.9] {
            let w_exact = 1.0 + (u + (1.0 - u) * (-2.0 * k).exp()).ln() / k;
            // The table is in theta with u = P(theta <= t), i.e. w decreasing in u.
            let w_table = table.w_at(1.0 - u);
            assert!(
                (w_exact - w_table).abs() < 1e-6 * (1.0 - w_exact).max(1e-3),
                "kappa={k} u={u}: {w_exact} vs {w_table}"
            );
        }
    }
}

#[test]
fn host_sample_mean_is_within_4_standard_errors_of_a_d() {
    let mut rng = StdRng::seed_from_u64(7);
    for d in DIMS {
        for k in KAPPAS {
            let sampler = HostSampler::new(QuantileTable::new(d, k).unwrap());
            let n = 100_000;
            let ws: Vec<f64> = (0..n).map(|_| sampler.sample_w(&mut rng)).collect();
            let mean = ws.iter().sum::<f64>() / n as f64;
            let var = ws.iter().map(|w| (w - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            let se = (var / n as f64).sqrt();
            let a = mean_resultant_length(d, k).unwrap();
            assert!(
                (mean - a).abs() <= 4.0 * se,
                "d={d} kappa={k}: mean {mean} vs A_d {a} (se {se:e})"
            );
        }
    }
}

#[test]
fn host_points_are_on_the_sphere_with_mean_a_d_mu() {
    let mut rng = StdRng::seed_from_u64(11);
    for (d, k) in [(2, 3.0), (3, 20.0), (16, 1.0), (128, 1e3)] {
        let mu = normalise(&(0..d).map(|i| (i as f64 + 1.0).sin()).collect::<Vec<_>>()).unwrap();
        let sampler = HostSampler::new(QuantileTable::new(d, k).unwrap());
        let n = 40_000;
        let mut sum = vec![0.0; d];
        let mut sum_sq = vec![0.0; d];
        for _ in 0..n {
            let z = sampler.sample_z(&mut rng, &mu).unwrap();
            let norm = z.iter().map(|x| x * x).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-12);
            for i in 0..d {
                sum[i] += z[i];
                sum_sq[i] += z[i] * z[i];
            }
        }
        // E[z] = A_d mu in every coordinate (this fails if nu is not uniform orthogonal to mu).
        let a = mean_resultant_length(d, k).unwrap();
        for i in 0..d {
            let mean = sum[i] / n as f64;
            let se = ((sum_sq[i] / n as f64 - mean * mean) / n as f64).sqrt();
            assert!(
                (mean - a * mu[i]).abs() <= 4.5 * se + 1e-12,
                "d={d} coord {i}: {mean} vs {}",
                a * mu[i]
            );
        }
    }
    let s = HostSampler::new(QuantileTable::new(3, 1.0).unwrap());
    assert!(matches!(
        s.sample_z(&mut rng, &[0.0, 0.0, 0.0]),
        Err(VmfError::BadDirection(_))
    ));
    assert!(matches!(
        s.sample_z(&mut rng, &[1.0, f64::NAN, 0.0]),
        Err(VmfError::BadDirection(_))
    ));
    assert!(matches!(
        s.sample_z(&mut rng, &[1.0, 0.0]),
        Err(VmfError::Length { .. })
    ));
}

#[test]
fn uniform_points_are_uniform() {
    let mut rng = StdRng::seed_from_u64(3);
    let n = 50_000;
    let mut mean = [0.0; 3];
    for _ in 0..n {
        let x = uniform_sphere(&mut rng, 3);
        assert!((x.iter().map(|v| v * v).sum::<f64>() - 1.0).abs() < 1e-12);
        (0..3).for_each(|i| mean[i] += x[i] / n as f64);
    }
    // Each coordinate of a uniform point on S^2 has variance 1/3.
    let se = (1.0 / 3.0 / n as f64).sqrt();
    assert!(mean.iter().all(|m| m.abs() < 4.0 * se), "{mean:?}");
}

/// Burn's device RNG is one stream per device and process, shared by the tests of
/// this binary, which run in parallel: each test that seeds and draws from it holds
/// this lock, so its draws are the same on every run.
fn device_rng() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn rows(t: Tensor<2>) -> Vec<Vec<f64>> {
    let [n, d] = t.dims();
    let v = t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    (0..n)
        .map(|i| v[i * d..(i + 1) * d].iter().map(|&x| x as f64).collect())
        .collect()
}

/// Two-sample Kolmogorov-Smirnov statistic.
fn ks2(mut a: Vec<f64>, mut b: Vec<f64>) -> f64 {
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (mut i, mut j, mut d) = (0, 0, 0.0_f64);
    while i < a.len() && j < b.len() {
        if a[i] <= b[j] {
            i += 1;
        } else {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}

#[test]
fn device_samples_are_unit_finite_and_distributed_like_the_host_sampler() {
    let _rng = device_rng();
    let device = Device::flex();
    device.seed(5);
    let mut rng = StdRng::seed_from_u64(5);
    for (d, k) in [
        (2, 0.0),
        (2, 1e5),
        (3, 20.0),
        (8, 20.0),
        (128, 1e3),
        (1024, 1.0),
        (4096, 1e5),
    ] {
        let n = 4096;
        let sampler = DeviceSampler::new(d, k, &device).unwrap();
        // Awkward directions: +-e_i, and a generic one.
        let mut mus = vec![0.0f32; n * d];
        for r in 0..n {
            match r % 3 {
                0 => mus[r * d + r % d] = 1.0,
                1 => mus[r * d + (r * 7) % d] = -1.0,
                _ => {
                    let v = normalise(&(0..d).map(|i| ((r + i) as f64).cos()).collect::<Vec<_>>())
                        .unwrap();
                    (0..d).for_each(|i| mus[r * d + i] = v[i] as f32);
                }
            }
        }
        let mu = Tensor::<2>::from_data(TensorData::new(mus.clone(), [n, d]), &device);
        let z = rows(sampler.sample(mu));
        // Compare angles: KS is invariant under the monotone map w = cos(theta), and the
        // angle survives f32 where w does not (1 - w ~ 5e-6 at kappa = 1e5).
        let mut theta_dev = Vec::with_capacity(n);
        for (r, row) in z.iter().enumerate() {
            assert!(
                row.iter().all(|x| x.is_finite()),
                "d={d} k={k}: non-finite row {r}"
            );
            let norm = row.iter().map(|x| x * x).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 2e-6, "d={d} k={k}: |z| = {norm}");
            let mu_r = &mus[r * d..(r + 1) * d];
            let w = row
                .iter()
                .zip(mu_r)
                .map(|(a, &b)| a * b as f64)
                .sum::<f64>();
            let perp = row
                .iter()
                .zip(mu_r)
                .map(|(a, &b)| (a - w * b as f64).powi(2))
                .sum::<f64>()
                .sqrt();
            theta_dev.push(perp.atan2(w));
        }
        let host = HostSampler::new(QuantileTable::new(d, k).unwrap());
        let theta_host: Vec<f64> = (0..4 * n).map(|_| host.sample_theta(&mut rng)).collect();
        // Critical value of the two-sample KS test at alpha = 0.001: 1.95 sqrt((n+m)/(nm)).
        let crit = 1.95 * ((5 * n) as f64 / (4 * n * n) as f64).sqrt();
        let ks = ks2(theta_dev, theta_host);
        assert!(ks < crit, "d={d} k={k}: two-sample KS {ks} >= {crit}");
    }
}

#[test]
fn device_w_matches_the_table_distribution() {
    let _rng = device_rng();
    let device = Device::flex();
    device.seed(9);
    let table = QuantileTable::new(16, 20.0).unwrap();
    let dev = DeviceTable::new(&table, &device);
    let n = 50_000;
    let w: Vec<f64> = dev
        .sample_w(n)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect();
    // One-sample KS against the exact CDF of w: critical value 1.95 / sqrt(n).
    let exact = ThetaMarginal::new(16, 20.0).unwrap();
    let mut thetas: Vec<f64> = w.iter().map(|x| x.clamp(-1.0, 1.0).acos()).collect();
    thetas.sort_by(f64::total_cmp);
    let cdf = exact.cdf_theta_sorted(&thetas);
    let ks = cdf
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (c - i as f64 / n as f64)
                .abs()
                .max((c - (i + 1) as f64 / n as f64).abs())
        })
        .fold(0.0, f64::max);
    assert!(ks < 1.95 / (n as f64).sqrt(), "KS {ks}");
}

#[test]
fn gradients_reach_mu_and_the_table_is_rebuilt_only_when_kappa_changes() {
    let _rng = device_rng();
    let device = Device::flex().autodiff();
    device.seed(1);
    let mut sampler = DeviceSampler::new(8, 20.0, &device).unwrap();
    let raw = Tensor::<2>::random(
        [32, 8],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    )
    .require_grad();
    let mu = raw.clone() / raw.clone().powi_scalar(2).sum_dim(1).sqrt();
    let z = sampler.sample(mu);
    let target = Tensor::<2>::ones([32, 8], &device);
    let loss = (z * target).sum();
    let grads = loss.backward();
    let g = raw.grad(&grads).expect("mu receives a gradient");
    let g = g.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    assert!(g.iter().all(|x| x.is_finite()) && g.iter().any(|x| x.abs() > 1e-3));

    assert_eq!(sampler.rebuilds(), 1);
    assert!(!sampler.set_kappa(20.0).unwrap());
    assert_eq!(sampler.rebuilds(), 1);
    assert!(sampler.set_kappa(25.0).unwrap());
    assert_eq!((sampler.rebuilds(), sampler.table().kappa()), (2, 25.0));
    assert!(sampler.set_kappa(-1.0).is_err());
    assert_eq!(
        sampler.table().kappa(),
        25.0,
        "a rejected kappa leaves the table as it was"
    );
}

/// d, kappa and (p, theta_p) pairs.
type QuantileCase = (usize, f64, Vec<(f64, f64)>);

/// Quantiles of theta for the Power Spherical from mpmath's regularised incomplete Beta
/// function, inverted by bisection at 40 digits (scripts/power_spherical_reference.py
/// --quantiles): independent of the marginal's quadrature and of the table's build.
fn power_spherical_quantiles() -> Vec<QuantileCase> {
    let cases: serde_json::Value =
        serde_json::from_str(include_str!("data/power_spherical_quantiles.json")).unwrap();
    let num = |v: &serde_json::Value| v.as_str().unwrap().parse::<f64>().unwrap();
    cases
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let qs = c["theta"]
                .as_array()
                .unwrap()
                .iter()
                .map(|pq| (num(&pq[0]), num(&pq[1])))
                .collect();
            (
                c["dim"].as_u64().unwrap() as usize,
                c["kappa"].as_f64().unwrap(),
                qs,
            )
        })
        .collect()
}

#[test]
fn power_spherical_cdf_and_table_hit_the_beta_quantiles() {
    let ps = Family::PowerSpherical;
    let (mut worst_cdf, mut worst_table, mut worst_ks) =
        ((0.0f64, 0, 0.0), (0.0f64, 0, 0.0), (0.0f64, 0, 0.0));
    for (d, k, qs) in power_spherical_quantiles() {
        let marginal = ThetaMarginal::of(ps, d, k).unwrap();
        let table = QuantileTable::of(ps, d, k, DEFAULT_TABLE_SIZE).unwrap();
        for (p, theta) in qs {
            // The exact CDF at the reference quantile, relative to the smaller tail
            // (d = 2 checks the cusp at pi for kappa < 1: 5e-7 before it was graded).
            let c = marginal.cdf_theta(theta);
            let cdf_err = (c - p).abs() / p.min(1.0 - p);
            assert!(cdf_err < 1e-10, "d={d} kappa={k} p={p}: F = {c}");
            worst_cdf = worst_cdf.max_by_key(cdf_err, d, k);
            // The table's quantile in the bulk (in the far tails, where the quantile
            // function is steep, the table is held to its KS distance below).
            if (0.01..=0.99).contains(&p) {
                let t = table.theta_at(p);
                let table_err = (t - theta).abs() / theta;
                assert!(
                    table_err < 2e-6,
                    "d={d} kappa={k} p={p}: table {t}, Beta quantile {theta}"
                );
                worst_table = worst_table.max_by_key(table_err, d, k);
            }
        }
        let ks = table.ks_distance(3).unwrap();
        assert!(ks <= 1e-4, "d={d} kappa={k}: KS = {ks:e}");
        worst_ks = worst_ks.max_by_key(ks, d, k);
    }
    eprintln!(
        "worst relative CDF error {worst_cdf:?}, relative table error in the bulk \
         {worst_table:?}, table KS {worst_ks:?}"
    );
}

/// The largest error seen so far, with where.
trait Worst {
    fn max_by_key(self, err: f64, d: usize, k: f64) -> Self;
}

impl Worst for (f64, usize, f64) {
    fn max_by_key(self, err: f64, d: usize, k: f64) -> Self {
        if err > self.0 { (err, d, k) } else { self }
    }
}

#[test]
fn power_spherical_samples_match_beta_draws_and_the_closed_form_mean() {
    use rand_distr::{Beta, Distribution as _};
    let _rng = device_rng();
    let device = Device::flex();
    device.seed(11);
    let mut rng = StdRng::seed_from_u64(11);
    for (d, k) in [
        (2, 0.0),
        (2, 50.0),
        (3, 1.0),
        (41, 10.0),
        (128, 1e3),
        (1024, 1e5),
    ] {
        let n = 4096;
        let sampler =
            DeviceSampler::of(Family::PowerSpherical, d, k, DEFAULT_TABLE_SIZE, &device).unwrap();
        let mut mus = vec![0.0f32; n * d];
        (0..n).for_each(|r| mus[r * d + r % d] = 1.0);
        let mu = Tensor::<2>::from_data(TensorData::new(mus.clone(), [n, d]), &device);
        let z = rows(sampler.sample(mu));
        let theta_dev: Vec<f64> = z
            .iter()
            .enumerate()
            .map(|(r, row)| {
                let w = row[r % d];
                let perp = row
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != r % d)
                    .map(|(_, x)| x * x)
                    .sum::<f64>()
                    .sqrt();
                perp.atan2(w)
            })
            .collect();
        // sin^2(theta / 2) ~ Beta((d - 1)/2, (d - 1)/2 + kappa), drawn by rand_distr's
        // Gamma-ratio algorithm (nothing of the table's).
        let half = (d as f64 - 1.0) / 2.0;
        let beta = Beta::new(half, half + k).unwrap();
        let theta_beta: Vec<f64> = (0..4 * n)
            .map(|_| 2.0 * f64::asin(beta.sample(&mut rng).sqrt()))
            .collect();
        let crit = 1.95 * ((5 * n) as f64 / (4 * n * n) as f64).sqrt();
        let ks = ks2(theta_dev, theta_beta);
        assert!(ks < crit, "d={d} k={k}: two-sample KS {ks} >= {crit}");

        // The host sampler's mean of w against E[t] = kappa / (d - 1 + kappa).
        let host = HostSampler::new(sampler_table(d, k));
        let m = 100_000;
        let ws: Vec<f64> = (0..m).map(|_| host.sample_w(&mut rng)).collect();
        let mean = ws.iter().sum::<f64>() / m as f64;
        let var = ws.iter().map(|w| (w - mean).powi(2)).sum::<f64>() / (m - 1) as f64;
        let want = k / (d as f64 - 1.0 + k);
        assert!(
            (mean - want).abs() <= 4.0 * (var / m as f64).sqrt() + 1e-12,
            "d={d} k={k}: mean w {mean} vs {want}"
        );
    }
}

fn sampler_table(d: usize, k: f64) -> QuantileTable {
    QuantileTable::of(Family::PowerSpherical, d, k, DEFAULT_TABLE_SIZE).unwrap()
}

/// Simpson's rule for the integral of `f` over [a, b] with `n` (even) intervals.
fn simpson(f: impl Fn(f64) -> f64, a: f64, b: f64, n: usize) -> f64 {
    let h = (b - a) / n as f64;
    let inner: f64 = (1..n)
        .map(|i| if i % 2 == 1 { 4.0 } else { 2.0 } * f(a + i as f64 * h))
        .sum();
    (f(a) + inner + f(b)) * h / 3.0
}

/// The density ln C + log_kernel of either family integrates to 1 over the sphere
/// (Simpson's rule over t = <mu, z>, whose surface measure on S^(d-1) is
/// |S^(d-2)| (1 - t^2)^((d-3)/2) dt): the kernel and the normaliser belong together.
#[test]
fn log_kernel_and_log_normaliser_make_a_density() {
    let area = |n: usize| {
        // |S^(n-1)| = 2 pi^(n/2) / Gamma(n/2), for n = 2 and 4 here.
        match n {
            2 => 2.0 * std::f64::consts::PI,
            4 => 2.0 * std::f64::consts::PI.powi(2),
            _ => unreachable!(),
        }
    };
    for family in [Family::Vmf, Family::PowerSpherical] {
        for dim in [3usize, 5] {
            for kappa in [0.0, 0.7, 10.0, 60.0] {
                let log_c = family.log_normaliser(dim, kappa).unwrap();
                let n = 200_000;
                let f = |t: f64| {
                    (log_c + family.log_kernel(kappa, t)).exp()
                        * area(dim - 1)
                        * (1.0 - t * t).powf((dim as f64 - 3.0) / 2.0)
                };
                let total = simpson(f, -1.0, 1.0, n);
                assert!(
                    (total - 1.0).abs() < 1e-9,
                    "{family:?} d = {dim} kappa = {kappa}: {total}"
                );
            }
        }
    }
}

/// ln Q of the exact density of theta integrates to 1 over [0, pi] (Simpson's rule),
/// for both families, on the circle and in higher dimension: the ring factor
/// |S^(d-2)| sin^(d-2) theta belongs with ln C and the kernel.
#[test]
fn log_theta_density_integrates_to_one() {
    for family in [Family::Vmf, Family::PowerSpherical] {
        for dim in [2usize, 3, 21, 50] {
            for kappa in [0.5, 28.0, 800.0] {
                let log_c = family.log_normaliser(dim, kappa).unwrap();
                let density = |t: f64| {
                    let f = family.log_theta_density(dim, kappa, log_c, t).exp();
                    if f.is_finite() { f } else { 0.0 }
                };
                let total = simpson(density, 0.0, std::f64::consts::PI, 400_000);
                assert!(
                    (total - 1.0).abs() < 1e-8,
                    "{family:?} d = {dim} kappa = {kappa}: {total}"
                );
            }
        }
    }
}

/// Importance sampling a closed-form integral with the table's draws: I = E_uniform\[
/// e^(lambda kappa <mu, z>)\] = C_d(0) / C_d(lambda kappa), from draws of the vMF
/// table at kappa, on a stratified grid of u (every cell, the end cells included, gets
/// its share of points, so the estimate is a deterministic quadrature). Weighed by the
/// sampler's own density r (ln q - ln r from `log_sampler_density`) the estimate is
/// exact; weighed by the family's q it is not, by orders of magnitude: the end cells
/// spread their probability evenly out to where q is e^-60 of its peak, so there
/// p f / q is e^tens too large. (The importance-sampled log-likelihood made that
/// error until the weights used r.)
#[test]
fn importance_weights_over_table_draws_need_the_sampler_density() {
    // (d, kappa, table entries, lambda): lambda < 1 makes p f / q grow into the tail as
    // a decoder's likelihood, flatter than q, does (a per-example kappa's table has 2049
    // entries, a scheduled one's 16385; d = 50 and kappa 28.2 are the text model's).
    let cases = [
        (21usize, 800.0, 2049usize, 0.8),
        (21, 800.0, DEFAULT_TABLE_SIZE, 0.8),
        (50, 28.2, DEFAULT_TABLE_SIZE, 0.5),
    ];
    for (dim, kappa, size, lambda) in cases {
        let table = QuantileTable::with_size(dim, kappa, size).unwrap();
        let log_c = stats::log_normaliser(dim, kappa).unwrap();
        let log_c0 = stats::log_normaliser_uniform(dim).unwrap();
        let want = log_c0 - stats::log_normaliser(dim, lambda * kappa).unwrap();
        let per_cell = 64;
        let n = (size - 1) * per_cell;
        let (mut with_r, mut with_q) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
        let lse = |a: f64, b: f64| a.max(b) + (-(a - b).abs()).exp().ln_1p();
        for i in 0..n {
            let u = (i as f64 + 0.5) / n as f64;
            let (theta, log_r) = table.log_sampler_density(u);
            assert!(
                (theta - table.theta_at(u)).abs() < 1e-12,
                "the same draw as theta_at"
            );
            let log_q_theta = Family::Vmf.log_theta_density(dim, kappa, log_c, theta);
            // ln p f / q at z: ln C(0) + lambda kappa w - ln C(kappa) - kappa w.
            let log_w = log_c0 - log_c - (1.0 - lambda) * kappa * theta.cos();
            with_r = lse(with_r, log_w + log_q_theta - log_r);
            with_q = lse(with_q, log_w);
        }
        let (with_r, with_q) = (with_r - (n as f64).ln(), with_q - (n as f64).ln());
        assert!(
            (with_r - want).abs() < 2e-4,
            "d = {dim} kappa = {kappa} M = {size}: ln I {with_r} with r against {want}"
        );
        assert!(
            with_q - want > 1.0,
            "d = {dim} kappa = {kappa} M = {size}: with q {with_q} against {want}: the end \
             cells should show"
        );
        eprintln!(
            "d = {dim} kappa = {kappa} M = {size}: ln I = {want:.6}, with r {with_r:.6}, with q {with_q:.3}"
        );
    }
}

/// The table's density at an angle it need not have drawn (`log_sampler_density_at`,
/// for a mixture proposal's weights): at the table's own draws it is the density the
/// forward map reports (`log_sampler_density`), it is -inf outside the angles drawn,
/// and it integrates to 1 over theta (a midpoint rule on a grid that ignores the
/// cells), for both families, a small table and the default one.
#[test]
fn the_table_density_at_any_angle_inverts_the_draws_and_integrates_to_one() {
    let cases = [
        (Family::Vmf, 50usize, 28.2, DEFAULT_TABLE_SIZE),
        (Family::Vmf, 3, 2.0, 2049),
        (Family::Vmf, 21, 800.0, 2049),
        (Family::PowerSpherical, 11, 40.0, 2049),
    ];
    for (family, dim, kappa, size) in cases {
        let table = QuantileTable::of(family, dim, kappa, size).unwrap();
        // Off the cells' ends: u in the interior of its cell.
        for i in 0..997 {
            let u = (i as f64 + 0.37) / 997.0;
            let (theta, log_r) = table.log_sampler_density(u);
            let at = table.log_sampler_density_at(theta);
            assert!(
                (at - log_r).abs() < 1e-9 * log_r.abs().max(1.0),
                "{family:?} d = {dim} kappa = {kappa}: u = {u}, theta = {theta}: {at} vs {log_r}"
            );
        }
        let (lo, hi) = (table.theta()[0], table.theta()[size - 1]);
        assert_eq!(table.log_sampler_density_at(lo - 1e-9), f64::NEG_INFINITY);
        if hi < std::f64::consts::PI {
            assert_eq!(table.log_sampler_density_at(hi + 1e-9), f64::NEG_INFINITY);
        }
        assert!(table.log_sampler_density_at(lo).is_finite());
        assert!(table.log_sampler_density_at(hi).is_finite());
        let n = 2_000_000;
        let h = (hi - lo) / n as f64;
        let total: f64 = (0..n)
            .map(|j| {
                table
                    .log_sampler_density_at(lo + (j as f64 + 0.5) * h)
                    .exp()
                    * h
            })
            .sum();
        assert!(
            (total - 1.0).abs() < 1e-3,
            "{family:?} d = {dim} kappa = {kappa}: integral {total}"
        );
    }
}

/// The same for the tables over a kappa range (a kappa per example): at each row's
/// own draws, off the grid's kappas, the density at the angle is the forward map's.
#[test]
fn the_kappa_table_density_at_any_angle_inverts_the_draws() {
    for family in [Family::Vmf, Family::PowerSpherical] {
        let table = KappaQuantileTable::of(
            family,
            21,
            1.0,
            1e4,
            kappa_table::DEFAULT_LOG_KAPPA_STEP,
            kappa_table::DEFAULT_PROBABILITIES,
        )
        .unwrap();
        for kappa in [1.0, 3.7, 61.3, 950.0, 1e4] {
            for i in 0..301 {
                let u = (i as f64 + 0.41) / 301.0;
                let (theta, log_r) = table.log_sampler_density(u, kappa);
                let at = table.log_sampler_density_at(theta, kappa);
                assert!(
                    (at - log_r).abs() < 1e-8 * log_r.abs().max(1.0),
                    "{family:?} kappa = {kappa}: u = {u}: {at} vs {log_r}"
                );
            }
            let (lo, _) = table.log_sampler_density(0.0, kappa);
            assert_eq!(
                table.log_sampler_density_at(lo - 1e-9, kappa),
                f64::NEG_INFINITY
            );
        }
    }
}
