//! The posterior draws of both model kinds against f64 oracles: the Gaussian's KL and
//! log-density ratio from the normal density written out, the vMF's ratio from
//! vmf-core's log-density, at a scheduled kappa and at learned kappas that differ
//! from row to row.

use burn::tensor::{Device, Tensor, TensorData};
use vmf_model::{Blocks, KappaRange, LatentNoise, Posterior, VmfReparam};

fn tensor2(v: &[f64], rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    Tensor::from_data(TensorData::new(v, [rows, cols]), device)
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data()
        .try_to_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

/// log N(z; m, diag exp(lv)), written out.
fn log_normal(z: &[f64], m: &[f64], lv: &[f64]) -> f64 {
    z.iter()
        .zip(m)
        .zip(lv)
        .map(|((z, m), lv)| {
            -0.5 * ((2.0 * std::f64::consts::PI).ln() + lv + (z - m).powi(2) / lv.exp())
        })
        .sum()
}

#[test]
fn gaussian_kl_and_density_ratio_match_the_normal_density() {
    let device = Device::flex();
    let (rows, d) = (3, 4);
    let mean = [
        0.0, 0.5, -1.2, 2.0, 0.1, 0.0, 0.3, -0.7, 1.5, -2.5, 0.0, 0.4,
    ];
    let logvar = [
        0.0, -1.0, 0.7, -3.0, 0.2, 1.1, -0.4, 0.0, -2.0, 0.5, 0.9, -0.1,
    ];
    let eps = [
        0.3, -1.1, 0.0, 2.2, -0.5, 0.8, 1.3, -0.2, 0.05, -1.7, 0.6, 1.0,
    ];
    let posterior = Posterior::Gaussian {
        mean: tensor2(&mean, rows, d, &device),
        logvar: tensor2(&logvar, rows, d, &device),
    };
    let noise = LatentNoise {
        u: Tensor::zeros([rows], &device),
        e: tensor2(&eps, rows, d, &device),
    };
    let draw = posterior.draw(noise, None);
    let ratio = to_vec(draw.log_ratio());
    let (z, kl) = (to_vec(draw.z), to_vec(draw.kl));
    for r in 0..rows {
        let s = r * d..(r + 1) * d;
        let (m, lv, e) = (&mean[s.clone()], &logvar[s.clone()], &eps[s.clone()]);
        let want_z: Vec<f64> = (0..d).map(|i| m[i] + (0.5 * lv[i]).exp() * e[i]).collect();
        for i in 0..d {
            assert!((z[r * d + i] - want_z[i]).abs() < 1e-5);
        }
        let want_kl: f64 = (0..d)
            .map(|i| 0.5 * (m[i] * m[i] + lv[i].exp() - 1.0 - lv[i]))
            .sum();
        assert!(
            (kl[r] - want_kl).abs() < 1e-5 * want_kl.max(1.0),
            "{} vs {want_kl}",
            kl[r]
        );
        let want_ratio = log_normal(&want_z, &[0.0; 4], &[0.0; 4]) - log_normal(&want_z, m, lv);
        assert!(
            (ratio[r] - want_ratio).abs() < 1e-4,
            "{} vs {want_ratio}",
            ratio[r]
        );
    }
}

#[test]
fn vmf_density_ratio_matches_vmf_core_log_density() {
    let device = Device::flex();
    let d = 5;
    let range = KappaRange {
        init: 10.0,
        min: 0.1,
        max: 2e3,
    };
    let learned = VmfReparam::learned(d, range, &device).unwrap();
    let mu_rows: Vec<Vec<f64>> = vec![
        vec![1.0, 0.0, 0.0, 0.0, 0.0],
        vec![0.0, 0.6, 0.0, -0.8, 0.0],
    ];
    let flat: Vec<f64> = mu_rows.iter().flatten().copied().collect();
    let noise = || LatentNoise {
        u: Tensor::from_data(TensorData::new(vec![0.3f32, 0.9], [2]), &device),
        e: tensor2(
            &[0.2, -1.0, 0.4, 0.1, 0.7, 1.2, 0.3, -0.6, 0.5, 0.0],
            2,
            d,
            &device,
        ),
    };
    // Scheduled kappa (one table), then the same kappa learned (the kappa-range
    // tables, off their grid points), then two different kappas on the two rows.
    let fixed = |kappa| VmfReparam::new(d, kappa, &device).unwrap();
    for (kappas, reparam, learned_kappa) in [
        ([0.5, 0.5], fixed(0.5), false),
        ([20.0, 20.0], fixed(20.0), false),
        ([1e3, 1e3], fixed(1e3), false),
        ([0.5, 0.5], learned.clone(), true),
        ([20.0, 1e3], learned.clone(), true),
        ([3.3, 0.17], learned.clone(), true),
    ] {
        let log_kappa = learned_kappa.then(|| {
            let s: Vec<f32> = kappas.iter().map(|k: &f64| k.ln() as f32).collect();
            Tensor::from_data(TensorData::new(s, [2]), &device)
        });
        let posterior = Posterior::Sphere {
            mu: tensor2(&flat, 2, d, &device),
            log_kappa,
            blocks: Blocks::one(d),
        };
        let draw = posterior.draw(noise(), Some(&reparam));
        let ratio = to_vec(draw.log_ratio());
        let z = to_vec(draw.z);
        let kl = to_vec(draw.kl);
        for (r, mu) in mu_rows.iter().enumerate() {
            let kappa = kappas[r];
            let zr = &z[r * d..(r + 1) * d];
            let want = vmf_core::log_normaliser_uniform(d).unwrap()
                - vmf_core::log_density(mu, zr, kappa).unwrap();
            // f32 z: <mu, z> carries ~1e-7, times kappa; ln kappa in f32 adds ~1e-7
            // kappa (1 - <mu, z>) for a learned one.
            let tol = 1e-5 + 6e-7 * kappa;
            assert!(
                (ratio[r] - want).abs() < tol,
                "kappa {kappa} (learned {learned_kappa}): {} vs {want}",
                ratio[r]
            );
            let want_kl = vmf_core::kl_to_uniform(d, kappa).unwrap();
            assert!(
                (kl[r] - want_kl).abs() < 1e-5 * want_kl + 1e-6,
                "kappa {kappa} (learned {learned_kappa}): KL {} vs {want_kl}",
                kl[r]
            );
        }
    }
}

/// A product of spheres: three blocks of S^3 (d = 12) with their own kappas. Each
/// block of z must be the draw of that block alone (the same uniform and normals drawn
/// as a row of its own), a unit vector; the KL and log p(z) - log q(z | x) the sums of
/// vmf-core's closed forms over the blocks. Repeating rows for importance sampling
/// keeps each row's kappas with it.
#[test]
fn a_product_of_spheres_draws_block_by_block_and_sums_kl_and_ratio() {
    let device = Device::flex();
    let (m, g, rows) = (4, 3, 2);
    let d = m * g;
    let range = KappaRange {
        init: 10.0,
        min: 0.5,
        max: 2e3,
    };
    let layer = VmfReparam::learned(m, range, &device).unwrap();
    // Unit blocks, row by row.
    let mut mu = Vec::new();
    for i in 0..rows * g {
        let raw: Vec<f64> = (0..m).map(|j| ((i * m + j) as f64 * 0.7).sin()).collect();
        let norm = raw.iter().map(|v| v * v).sum::<f64>().sqrt();
        mu.extend(raw.iter().map(|v| v / norm));
    }
    let kappas = [0.7, 25.0, 400.0, 3.0, 1.5e3, 60.0];
    let log_kappa: Vec<f32> = kappas.iter().map(|k: &f64| k.ln() as f32).collect();
    let u: Vec<f32> = (0..rows * g).map(|i| (i as f32 + 0.3) / 7.0).collect();
    let e: Vec<f64> = (0..rows * d).map(|i| (i as f64 * 1.3).cos()).collect();
    let noise = |r: usize, c: usize| LatentNoise {
        u: Tensor::from_data(TensorData::new(u.clone(), [rows * g]), &device),
        e: tensor2(&e, r, c, &device),
    };
    let s = || {
        Some(Tensor::from_data(
            TensorData::new(log_kappa.clone(), [rows * g]),
            &device,
        ))
    };
    let product = Posterior::Sphere {
        mu: tensor2(&mu, rows, d, &device),
        log_kappa: s(),
        blocks: Blocks::equal(d, g),
    };
    let blocks = Posterior::Sphere {
        mu: tensor2(&mu, rows * g, m, &device),
        log_kappa: s(),
        blocks: Blocks::one(m),
    };
    let draw = product.draw(noise(rows, d), Some(&layer));
    let alone = blocks.draw(noise(rows * g, m), Some(&layer));
    let (z, kl, ratio) = (
        to_vec(draw.z.clone()),
        to_vec(draw.kl.clone()),
        to_vec(draw.log_ratio()),
    );
    assert_eq!((z.len(), kl.len(), ratio.len()), (rows * d, rows, rows));
    assert_eq!(z, to_vec(alone.z), "blocks drawn as rows of their own");
    for r in 0..rows {
        let (mut want_kl, mut want_ratio) = (0.0, 0.0);
        for b in 0..g {
            let i = r * g + b;
            let (mu_b, z_b) = (&mu[i * m..(i + 1) * m], &z[i * m..(i + 1) * m]);
            let norm = z_b.iter().map(|v| v * v).sum::<f64>().sqrt();
            assert!(
                (norm - 1.0).abs() < 1e-5,
                "block {b} of row {r}: |z| = {norm}"
            );
            want_kl += vmf_core::kl_to_uniform(m, kappas[i]).unwrap();
            want_ratio += vmf_core::log_normaliser_uniform(m).unwrap()
                - vmf_core::log_density(mu_b, z_b, kappas[i]).unwrap();
        }
        assert!(
            (kl[r] - want_kl).abs() < 1e-5 * want_kl,
            "KL {} vs {want_kl}",
            kl[r]
        );
        let tol = 1e-5 + 6e-7 * kappas.iter().sum::<f64>();
        assert!(
            (ratio[r] - want_ratio).abs() < tol,
            "ratio {} vs {want_ratio}",
            ratio[r]
        );
    }
    // Two copies of each row: the kappas travel with their row.
    let Posterior::Sphere {
        log_kappa: Some(twice),
        blocks,
        ..
    } = product.repeat_rows(2)
    else {
        panic!("still a product on the sphere");
    };
    assert_eq!(blocks.count(), g);
    let twice = to_vec(twice);
    let want: Vec<f64> = (0..rows)
        .flat_map(|r| {
            let row = &log_kappa[r * g..(r + 1) * g];
            row.iter()
                .chain(row)
                .map(|&v| f64::from(v))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(twice, want);
}

/// A product of spheres of two sizes, S^4 x S^2 x S^2 (blocks of 5, 3, 3; d = 11):
/// from the encoder's head each block of mu is its own part of the head normalised;
/// each block of z is the draw of that block alone by a one-sphere layer of its size
/// (the same uniform and normals), a unit vector; the KL, log p(z) - log q(z | x) and
/// the sampler's correction are the sums of the one-sphere figures over the blocks, the
/// first two against vmf-core's closed forms; repeated rows keep their kappas.
#[test]
fn blocks_of_different_sizes_draw_each_by_its_own_layer() {
    use vmf_core::Family;
    use vmf_model::{KappaHead, KappaMode, ModelKind};

    let device = Device::flex();
    let blocks = Blocks::of(vec![5, 3, 3]);
    let (rows, g, d) = (2, blocks.count(), blocks.total());
    let range = KappaRange {
        init: 10.0,
        min: 0.5,
        max: 2e3,
    };
    let mode = KappaMode::PerExample(range);
    let layer = VmfReparam::for_blocks(Family::Vmf, &blocks, mode, 0.0, &device).unwrap();
    // The head: d columns of mu, then one kappa column per block.
    let width = d + g;
    let h: Vec<f64> = (0..rows * width)
        .map(|i| (i as f64 * 0.9).sin() + 0.2)
        .collect();
    let posterior = ModelKind::Vmf.posterior_of_product(
        tensor2(&h, rows, width, &device),
        &KappaHead::new(mode, &device),
        &blocks,
    );
    let Posterior::Sphere {
        mu: mu_t,
        log_kappa: Some(log_kappa_t),
        ..
    } = &posterior
    else {
        panic!("a per-example kappa on the sphere");
    };
    let (mu, log_kappa) = (to_vec(mu_t.clone()), to_vec(log_kappa_t.clone()));
    assert_eq!((mu.len(), log_kappa.len()), (rows * d, rows * g));
    for r in 0..rows {
        for j in 0..g {
            let cols = blocks.columns(j);
            let raw = &h[r * width + cols.start..r * width + cols.end];
            let norm = raw.iter().map(|v| v * v).sum::<f64>().sqrt();
            for (c, v) in cols.clone().zip(raw) {
                assert!(
                    (mu[r * d + c] - v / norm).abs() < 1e-6,
                    "mu of block {j}, row {r}"
                );
            }
        }
    }
    let u: Vec<f32> = (0..rows * g).map(|i| (i as f32 + 0.4) / 6.5).collect();
    let e: Vec<f64> = (0..rows * d).map(|i| (i as f64 * 1.7).cos()).collect();
    let noise = LatentNoise {
        u: Tensor::from_data(TensorData::new(u.clone(), [rows * g]), &device),
        e: tensor2(&e, rows, d, &device),
    };
    let draw = posterior.draw(noise, Some(&layer));
    let (z, kl, ratio) = (
        to_vec(draw.z.clone()),
        to_vec(draw.kl.clone()),
        to_vec(draw.log_ratio()),
    );
    assert_eq!((z.len(), kl.len(), ratio.len()), (rows * d, rows, rows));
    let correction = layer
        .log_exact_over_sampler_of(
            &blocks,
            &u,
            Some(&log_kappa.iter().map(|&v| v as f32).collect::<Vec<_>>()),
        )
        .unwrap();
    for r in 0..rows {
        let (mut want_kl, mut want_ratio, mut want_fix) = (0.0, 0.0, 0.0);
        for (j, &m) in blocks.dims().iter().enumerate() {
            let cols = blocks.columns(j);
            let at = |v: &[f64]| v[r * d + cols.start..r * d + cols.end].to_vec();
            let (mu_b, z_b, e_b) = (at(&mu), at(&z), at(&e));
            let i = r * g + j;
            let kappa = log_kappa[i].exp();
            // The block alone, drawn by a one-sphere layer of its size.
            let alone = VmfReparam::learned(m, range, &device).unwrap();
            let one = Posterior::Sphere {
                mu: tensor2(&mu_b, 1, m, &device),
                log_kappa: Some(Tensor::from_data(
                    TensorData::new(vec![log_kappa[i] as f32], [1]),
                    &device,
                )),
                blocks: Blocks::one(m),
            }
            .draw(
                LatentNoise {
                    u: Tensor::from_data(TensorData::new(vec![u[i]], [1]), &device),
                    e: tensor2(&e_b, 1, m, &device),
                },
                Some(&alone),
            );
            assert_eq!(z_b, to_vec(one.z), "block {j} of row {r}");
            let norm = z_b.iter().map(|v| v * v).sum::<f64>().sqrt();
            assert!(
                (norm - 1.0).abs() < 1e-5,
                "block {j} of row {r}: |z| = {norm}"
            );
            want_kl += vmf_core::kl_to_uniform(m, kappa).unwrap();
            want_ratio += vmf_core::log_normaliser_uniform(m).unwrap()
                - vmf_core::log_density(&mu_b, &z_b, kappa).unwrap();
            want_fix += alone
                .log_exact_over_sampler(&[u[i]], Some(&[log_kappa[i] as f32]))
                .unwrap()[0];
        }
        assert!(
            (kl[r] - want_kl).abs() < 1e-5 * want_kl,
            "KL {} vs {want_kl}",
            kl[r]
        );
        assert!(
            (ratio[r] - want_ratio).abs() < 1e-4,
            "ratio {} vs {want_ratio}",
            ratio[r]
        );
        assert!(
            (correction[r] - want_fix).abs() < 1e-12,
            "correction {} vs {want_fix}",
            correction[r]
        );
    }
    // Two copies of each row: the kappas travel with their row.
    let Posterior::Sphere {
        log_kappa: Some(twice),
        ..
    } = posterior.repeat_rows(2)
    else {
        panic!("still a product on the sphere");
    };
    let want: Vec<f64> = (0..rows)
        .flat_map(|r| {
            let row = &log_kappa[r * g..(r + 1) * g];
            row.iter().chain(row).copied().collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(to_vec(twice), want);
}

/// max over kappa of E[w] - c KL(kappa): the slope is A_d' - c kappa A_d' (as
/// dKL/dkappa = kappa A_d'), zero at kappa = 1 / c. Adam on a global learned kappa,
/// through the sampler's pathwise gradient and the KL table, must get there; with the
/// KL's slope alone it would run to the lower bound, with E[w]'s alone to the upper.
#[test]
fn gradient_ascent_through_the_sampler_finds_the_closed_form_kappa() {
    use burn::optim::{AdamConfig, GradientsParams};
    use vmf_model::{KappaHead, KappaMode};

    let device = Device::flex().autodiff();
    let (d, n) = (5, 256);
    for (c, init) in [(0.05, 1.0), (0.004, 20.0)] {
        let range = KappaRange {
            init,
            min: 0.1,
            max: 1e4,
        };
        let reparam = VmfReparam::learned(d, range, &device).unwrap();
        let mut head = KappaHead::new(KappaMode::Learned(range), &device);
        let mut optim = AdamConfig::new().init();
        // Stratified uniforms: a nearly exact E[w], so the walk is deterministic.
        let u: Vec<f32> = (0..n).map(|i| (i as f32 + 0.5) / n as f32).collect();
        let mut mu = vec![0.0f32; n * d];
        mu.iter_mut().step_by(d).for_each(|m| *m = 1.0);
        let mut kappa = 0.0;
        for _ in 0..600 {
            let noise = LatentNoise {
                u: Tensor::from_data(TensorData::new(u.clone(), [n]), &device),
                e: Tensor::random(
                    [n, d],
                    burn::tensor::Distribution::Normal(0.0, 1.0),
                    &device,
                ),
            };
            let mu = Tensor::from_data(TensorData::new(mu.clone(), [n, d]), &device);
            let s = head.log_kappa(None, n).unwrap();
            kappa = f64::from(s.clone().slice(0..1).into_scalar::<f32>()).exp();
            let (z, kl) = reparam.forward_at(mu.clone(), s, noise);
            let w = (z * mu).sum_dim(1).mean();
            let loss = kl.mean().mul_scalar(c) - w.reshape([1]);
            let grads = GradientsParams::from_grads(loss.backward(), &head);
            head = optim.step(0.05, head, grads);
        }
        let want = 1.0 / c;
        assert!(
            (kappa - want).abs() < 0.02 * want,
            "c = {c}: kappa {kappa} vs 1/c = {want}"
        );
    }
}

/// The Power Spherical through the same layer: each draw's log p(z) - log q(z|x)
/// against the density written out in f64 (ln C from the Gamma closed form, checked
/// against mpmath in vmf-core, plus kappa ln(1 + <mu, z>)), and its mean over many
/// draws against -KL (E_q[log p - log q] = -KL) at a scheduled kappa and at learned
/// kappas that differ from row to row.
#[test]
fn power_spherical_density_ratio_and_kl_match_the_closed_forms() {
    use vmf_core::{Family, power_spherical_log_normaliser};
    let device = Device::flex();
    let (d, n) = (5, 4000);
    let ps = Family::PowerSpherical;
    let range = KappaRange {
        init: 10.0,
        min: 0.1,
        max: 2e3,
    };
    let learned = VmfReparam::learned_of(ps, d, range, &device).unwrap();
    let mut mu = vec![0.0f64; n * d];
    for r in 0..n {
        mu[r * d + r % d] = if r % 2 == 0 { 1.0 } else { -1.0 };
    }
    let u: Vec<f32> = (0..n).map(|i| (i as f32 + 0.5) / n as f32).collect();
    let noise = || LatentNoise {
        u: Tensor::from_data(TensorData::new(u.clone(), [n]), &device),
        e: Tensor::random(
            [n, d],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        ),
    };
    for (kappa, learned_kappa) in [
        (0.5, false),
        (20.0, false),
        (1e3, false),
        (3.3, true),
        (470.0, true),
    ] {
        let reparam = if learned_kappa {
            learned.clone()
        } else {
            VmfReparam::of(ps, d, kappa, &device).unwrap()
        };
        let log_kappa = learned_kappa.then(|| Tensor::full([n], kappa.ln(), &device));
        let posterior = Posterior::Sphere {
            mu: tensor2(&mu, n, d, &device),
            log_kappa,
            blocks: Blocks::one(d),
        };
        let draw = posterior.draw(noise(), Some(&reparam));
        let (ratio, z, kl) = (to_vec(draw.log_ratio()), to_vec(draw.z), to_vec(draw.kl));
        let log_c = power_spherical_log_normaliser(d, kappa).unwrap();
        let log_c0 = vmf_core::log_normaliser_uniform(d).unwrap();
        for r in (0..n).step_by(97) {
            let w: f64 = (0..d).map(|i| mu[r * d + i] * z[r * d + i]).sum();
            let want = log_c0 - (log_c + kappa * w.ln_1p());
            let tol = 1e-5 + 1e-6 * kappa;
            assert!(
                (ratio[r] - want).abs() < tol,
                "kappa {kappa}: {} vs {want}",
                ratio[r]
            );
        }
        let want_kl = ps.kl(d, kappa).unwrap();
        assert!(
            (kl[0] - want_kl).abs() < 1e-5 * want_kl + 1e-6,
            "KL {} vs {want_kl}",
            kl[0]
        );
        // Stratified u: the mean of the ratio is -KL to well under its spread / sqrt(n).
        let mean = ratio.iter().sum::<f64>() / n as f64;
        let sd = (ratio.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        assert!(
            (mean + want_kl).abs() < 4.0 * sd / (n as f64).sqrt() + 1e-4,
            "kappa {kappa} (learned {learned_kappa}): mean log ratio {mean} vs -KL {}",
            -want_kl
        );
    }
}

/// ln q - ln r over the table's own draws is an importance weight from the sampler's
/// density r to the exact q, so over stratified uniforms exp of it averages to
/// the integral of q, 1. In the bulk the table draws q (weights near 1); deep in the
/// two end cells r spreads its mass evenly where q has almost none (weights far below
/// 1): the defect the weights correct in `eval`. Scheduled and learned layers.
#[test]
fn exact_over_sampler_weights_integrate_to_one_and_correct_the_end_cells() {
    let device = Device::flex();
    let (d, kappa) = (21, 300.0);
    let range = KappaRange {
        init: 10.0,
        min: 1.0,
        max: 1e4,
    };
    let n = 1 << 18;
    let u: Vec<f32> = (0..n)
        .map(|i| ((i as f64 + 0.5) / n as f64) as f32)
        .collect();
    let s = vec![(kappa as f32).ln(); n];
    let ends = [2f32.powi(-22), 1.0 - 2f32.powi(-22)];
    for (layer, log_kappa, bulk_tol) in [
        (VmfReparam::new(d, kappa, &device).unwrap(), None, 1e-2),
        (
            VmfReparam::learned(d, range, &device).unwrap(),
            Some(&s[..]),
            5e-2,
        ),
    ] {
        let learned = log_kappa.is_some();
        let w = layer.log_exact_over_sampler(&u, log_kappa).unwrap();
        let mean = w.iter().map(|w| w.exp()).sum::<f64>() / n as f64;
        assert!(
            (mean - 1.0).abs() < 2e-3,
            "learned {learned}: E_r[q / r] = {mean}"
        );
        let bulk = u.iter().zip(&w).filter(|(u, _)| (0.01..0.99).contains(*u));
        let worst = bulk.map(|(_, w)| w.abs()).fold(0.0, f64::max);
        assert!(
            worst < bulk_tol,
            "learned {learned}: |ln q/r| up to {worst} in the bulk"
        );
        let w_ends = layer
            .log_exact_over_sampler(&ends, log_kappa.map(|s| &s[..2]))
            .unwrap();
        assert!(
            w_ends.iter().all(|&w| w < -20.0),
            "learned {learned}: ln q/r deep in the end cells {w_ends:?}"
        );
    }
}

/// ln r - ln p at any point (`log_sampler_over_prior_at`, for a mixture proposal of
/// the table sampler r and the uniform prior p) against the draw path: at the layer's
/// own draws, their angle taken from the f32 z as the evaluation takes it, it is
/// -(log p - log q) - (log q - log r), the draw's `log_ratio` and
/// `log_exact_over_sampler`, in the bulk and deep in an end cell; scheduled and
/// learned kappas, both families.
#[test]
fn sampler_over_prior_at_an_angle_matches_the_draw_path() {
    let device = Device::flex();
    let d = 11;
    let range = KappaRange {
        init: 10.0,
        min: 1.0,
        max: 1e4,
    };
    let mu_row = {
        let v = [0.3, -0.1, 0.5, 0.2, -0.4, 0.1, 0.6, -0.2, 0.1, 0.05, 0.15];
        let n = v.iter().map(|x: &f64| x * x).sum::<f64>().sqrt();
        v.iter().map(|x| x / n).collect::<Vec<f64>>()
    };
    let us: Vec<f32> = vec![
        2f32.powi(-22),
        0.013,
        0.2,
        0.5,
        0.77,
        0.99,
        1.0 - 2f32.powi(-22),
    ];
    let n = us.len();
    let e: Vec<f64> = (0..n * d)
        .map(|i| ((i * 7919 % 113) as f64 / 56.5) - 1.0)
        .collect();
    for family in [vmf_core::Family::Vmf, vmf_core::Family::PowerSpherical] {
        for kappa in [3.0f64, 150.0] {
            let fixed = VmfReparam::of(family, d, kappa, &device).unwrap();
            let learned = VmfReparam::learned_of(family, d, range, &device).unwrap();
            let s = vec![(kappa as f32).ln(); n];
            for (layer, log_kappa) in [(fixed, None), (learned, Some(&s[..]))] {
                let posterior = Posterior::Sphere {
                    mu: tensor2(&mu_row.repeat(n), n, d, &device),
                    log_kappa: log_kappa
                        .map(|s| Tensor::from_data(TensorData::new(s.to_vec(), [n]), &device)),
                    blocks: Blocks::one(d),
                };
                let noise = LatentNoise {
                    u: Tensor::from_data(TensorData::new(us.clone(), [n]), &device),
                    e: tensor2(&e, n, d, &device),
                };
                let draw = posterior.draw(noise, Some(&layer));
                let ratio = to_vec(draw.log_ratio());
                let z = to_vec(draw.z);
                let fix = layer.log_exact_over_sampler(&us, log_kappa).unwrap();
                let theta: Vec<f64> = z
                    .chunks(d)
                    .map(|zr| {
                        let norm = zr.iter().map(|v| v * v).sum::<f64>().sqrt();
                        let dot = zr.iter().zip(&mu_row).map(|(a, b)| a * b).sum::<f64>();
                        (dot / norm).clamp(-1.0, 1.0).acos()
                    })
                    .collect();
                let at = layer.log_sampler_over_prior_at(&theta, log_kappa).unwrap();
                for r in 0..n {
                    let want = -(ratio[r] + fix[r]);
                    // The angle from f32 z may cross into a neighbouring cell, whose
                    // density differs by a fraction of a percent in the bulk.
                    assert!(
                        (at[r] - want).abs() < 1e-2,
                        "{family:?} kappa {kappa} learned {}: u = {}: {} vs {want} (ln q/r {})",
                        log_kappa.is_some(),
                        us[r],
                        at[r],
                        fix[r]
                    );
                }
            }
        }
    }
}
