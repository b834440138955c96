//! vmf-core numerics against independent oracles: mpmath at 50 digits (committed
//! reference data, see scripts/vmf_reference.py), the quadrature route, and closed forms.

use serde_json::Value;
use vmf_core::bessel::log_bessel_i;
use vmf_core::*;

fn reference() -> Value {
    serde_json::from_str(include_str!("data/reference.json")).expect("reference.json parses")
}

/// |got - want| <= rel * max(|want|, floor).
fn close(got: f64, want: f64, rel: f64, floor: f64) -> bool {
    (got - want).abs() <= rel * want.abs().max(floor)
}

const DIMS: [usize; 11] = [2, 3, 4, 5, 16, 31, 32, 33, 128, 1024, 4096];
const KAPPAS: [f64; 16] = [
    0.0, 1e-3, 0.1, 0.999, 1.001, 5.0, 20.0, 29.9, 35.0, 100.0, 599.0, 601.0, 1e3, 1e4, 3e4, 1e5,
];

#[test]
fn log_bessel_i_matches_mpmath() {
    for r in reference()["bessel"].as_array().unwrap() {
        let (v, x, want) = (
            r["v"].as_f64().unwrap(),
            r["x"].as_f64().unwrap(),
            r["log_iv"].as_f64().unwrap(),
        );
        let got = log_bessel_i(v, x);
        assert!(
            close(got, want, 1e-13, 1.0),
            "log I_{v}({x}) = {got}, mpmath {want}"
        );
    }
}

#[test]
fn stats_match_mpmath() {
    for r in reference()["stats"].as_array().unwrap() {
        let d = r["dim"].as_u64().unwrap() as usize;
        let k = r["kappa"].as_f64().unwrap();
        let s = VmfStats::new(d, k).unwrap();
        let (lc, a, kl) = (
            r["log_normaliser"].as_f64().unwrap(),
            r["mean_w"].as_f64().unwrap(),
            r["kl"].as_f64().unwrap(),
        );
        assert!(
            close(s.log_normaliser, lc, 1e-12, 1.0),
            "log C_{d}({k}) = {} vs {lc}",
            s.log_normaliser
        );
        assert!(
            close(s.mean_w, a, 1e-12, 0.0),
            "A_{d}({k}) = {} vs {a}",
            s.mean_w
        );
        assert!(
            close(s.kl, kl, 1e-10, 0.0),
            "KL_{d}({k}) = {} vs {kl}",
            s.kl
        );
    }
}

#[test]
fn bessel_and_quadrature_routes_agree_to_1e8() {
    let mut worst = 0.0_f64;
    for d in DIMS {
        for k in KAPPAS {
            let b = VmfStats::new(d, k).unwrap();
            let q = quadrature_stats(d, k).unwrap();
            for (name, x, y, floor) in [
                ("log C", b.log_normaliser, q.log_normaliser, 1.0),
                ("A", b.mean_w, q.mean_w, 0.0),
                ("KL", b.kl, q.kl, 0.0),
            ] {
                let rel = if x == y {
                    0.0
                } else {
                    (x - y).abs() / x.abs().max(floor)
                };
                worst = worst.max(rel);
                assert!(
                    rel <= 1e-8,
                    "d={d} kappa={k} {name}: bessel {x} vs quadrature {y} (rel {rel:e})"
                );
            }
        }
    }
    eprintln!("worst relative disagreement between the routes: {worst:e}");
}

#[test]
fn d3_closed_forms() {
    for k in [1e-3_f64, 0.5, 1.0, 20.0, 700.0, 1e5] {
        // A_3 = coth k - 1/k; KL = k coth k - 1 + ln(k / sinh k), with ln sinh k = k + ln((1 - e^-2k)/2).
        let coth = if k < 20.0 {
            1.0 / k.tanh()
        } else {
            1.0 + 2.0 * (-2.0 * k).exp()
        };
        let ln_sinh = k + (-(-2.0 * k).exp_m1() / 2.0).ln();
        let a = coth - 1.0 / k;
        let kl = k * (coth - 1.0) + (k.ln() - ln_sinh + k) - 1.0;
        let lc = k.ln() - (4.0 * std::f64::consts::PI).ln() - ln_sinh;
        let s = VmfStats::new(3, k).unwrap();
        // coth k - 1/k cancels for small k: compare with its series there.
        let a = if k < 1e-2 {
            k / 3.0 - k.powi(3) / 45.0
        } else {
            a
        };
        let kl = if k < 1e-2 {
            k * k / 6.0 - k.powi(4) / 60.0
        } else {
            kl
        };
        assert!(
            close(s.mean_w, a, 1e-12, 0.0),
            "A_3({k}) {} vs {a}",
            s.mean_w
        );
        assert!(close(s.kl, kl, 1e-10, 0.0), "KL_3({k}) {} vs {kl}", s.kl);
        assert!(
            close(s.log_normaliser, lc, 1e-12, 1.0),
            "log C_3({k}) {} vs {lc}",
            s.log_normaliser
        );
    }
}

#[test]
fn limits_in_kappa() {
    for d in DIMS {
        // kappa = 0 is the uniform distribution.
        let s = VmfStats::new(d, 0.0).unwrap();
        assert_eq!((s.kl, s.mean_w), (0.0, 0.0));
        assert_eq!(s.log_normaliser, log_normaliser_uniform(d).unwrap());
        // small kappa: KL ~ kappa^2 / (2d), A ~ kappa / d.
        let k = 1e-6;
        let s = VmfStats::new(d, k).unwrap();
        assert!(
            close(s.kl, k * k / (2.0 * d as f64), 1e-6, 0.0),
            "d={d}: {}",
            s.kl
        );
        assert!(close(s.mean_w, k / d as f64, 1e-6, 0.0));
        // large kappa: kappa (1 - A) -> (d-1)/2.
        let k = 1e5;
        let a = mean_resultant_length(d, k).unwrap();
        let half = (d as f64 - 1.0) / 2.0;
        assert!(
            close(k * (1.0 - a), half, 2.0 * d as f64 / k + 1e-9, 0.0),
            "d={d}: {}",
            k * (1.0 - a)
        );
    }
}

#[test]
fn kl_is_positive_and_increasing() {
    for d in DIMS {
        let mut prev = 0.0;
        let mut k = 1e-4;
        while k <= KAPPA_MAX {
            let kl = kl_to_uniform(d, k).unwrap();
            assert!(kl > prev, "d={d}: KL({k}) = {kl} <= {prev}");
            prev = kl;
            k *= 1.37;
        }
    }
}

#[test]
fn finite_at_the_edges_of_the_range() {
    for d in [DIM_MIN, 3, DIM_MAX - 1, DIM_MAX] {
        for k in [
            0.0,
            5e-324,
            1e-300,
            1e-8,
            KAPPA_MAX * (1.0 - 1e-15),
            KAPPA_MAX,
        ] {
            let s = VmfStats::new(d, k).unwrap();
            assert!(s.kl.is_finite() && s.kl >= 0.0, "d={d} k={k}: {s:?}");
            assert!(
                s.mean_w.is_finite() && (0.0..1.0).contains(&s.mean_w),
                "d={d} k={k}: {s:?}"
            );
            assert!(s.log_normaliser.is_finite(), "d={d} k={k}: {s:?}");
        }
    }
}

#[test]
fn kappa_for_kl_inverts_the_kl() {
    for d in DIMS {
        let max = kl_to_uniform(d, KAPPA_MAX).unwrap();
        for target in [1e-9, 1e-3, 0.5, 3.0, 10.0, 100.0, 1000.0] {
            if target > max {
                assert!(matches!(
                    kappa_for_kl(d, target),
                    Err(VmfError::KlTarget { .. })
                ));
                continue;
            }
            let k = kappa_for_kl(d, target).unwrap();
            let kl = kl_to_uniform(d, k).unwrap();
            assert!(
                close(kl, target, 1e-10, 0.0),
                "d={d}: KL({k}) = {kl}, target {target}"
            );
        }
        assert_eq!(kappa_for_kl(d, 0.0).unwrap(), 0.0);
        // KL grows like ((d-1)/2) ln kappa up there, so KL round-off of ~1e-13 is ~1e-11 in kappa.
        assert!(close(kappa_for_kl(d, max).unwrap(), KAPPA_MAX, 1e-10, 0.0));
    }
    let err = kappa_for_kl(8, 1e6).unwrap_err().to_string();
    assert!(err.contains("1000000") && err.contains("d = 8"), "{err}");
    assert!(kappa_for_kl(8, -1.0).is_err());
    assert!(kappa_for_kl(8, f64::NAN).is_err());
}

#[test]
fn out_of_range_inputs_are_typed_errors_naming_the_value() {
    for d in [0, 1, 4097, 100_000] {
        let e = kl_to_uniform(d, 1.0).unwrap_err();
        assert_eq!(e, VmfError::Dim(d));
        assert!(e.to_string().contains(&format!("d = {d}")) && e.to_string().contains("4096"));
        assert!(QuantileTable::new(d, 1.0).is_err());
        assert!(ThetaMarginal::new(d, 1.0).is_err());
    }
    for (k, want) in [
        (-1.0, VmfError::KappaNegative(-1.0)),
        (-1e-300, VmfError::KappaNegative(-1e-300)),
        (1e5 + 1.0, VmfError::KappaTooLarge(1e5 + 1.0)),
        (f64::INFINITY, VmfError::KappaNotFinite(f64::INFINITY)),
    ] {
        assert_eq!(log_normaliser(8, k).unwrap_err(), want);
        assert!(
            QuantileTable::new(8, k)
                .unwrap_err()
                .to_string()
                .contains("kappa")
        );
    }
    assert!(matches!(
        mean_resultant_length(8, f64::NAN),
        Err(VmfError::KappaNotFinite(_))
    ));
    for m in [0, 1] {
        let e = QuantileTable::with_size(8, 1.0, m).unwrap_err();
        assert_eq!(e, VmfError::TableSize(m));
        assert!(e.to_string().contains(&format!("M = {m}")));
    }
    assert!(matches!(
        log_density(&[1.0, 0.0], &[1.0], 1.0),
        Err(VmfError::Length { got: 1, dim: 2 })
    ));
}

#[test]
fn exact_cdf_matches_mpmath() {
    for r in reference()["cdf"].as_array().unwrap() {
        let d = r["dim"].as_u64().unwrap() as usize;
        let k = r["kappa"].as_f64().unwrap();
        let t = r["theta"].as_f64().unwrap();
        let want = r["cdf"].as_f64().unwrap();
        let m = ThetaMarginal::new(d, k).unwrap();
        let got = m.cdf_theta(t);
        assert!(
            (got - want).abs() < 1e-12,
            "d={d} k={k} theta={t}: {got} vs {want}"
        );
        let sorted = m.cdf_theta_sorted(&[t * 0.5, t]);
        assert!(
            (sorted[1] - want).abs() < 1e-12,
            "sorted: {} vs {want}",
            sorted[1]
        );
    }
}

#[test]
fn log_density_is_normalised() {
    // d = 3: C_3 = kappa / (4 pi sinh kappa); density at mu is C_3 e^kappa.
    let k: f64 = 2.5;
    let want = (k / (4.0 * std::f64::consts::PI * k.sinh())).ln() + k;
    let got = log_density(&[0.0, 0.0, 1.0], &[0.0, 0.0, 1.0], k).unwrap();
    assert!((got - want).abs() < 1e-13, "{got} vs {want}");
    // On the circle: integrate C_2 e^{k cos t} over t in [0, 2 pi) by the trapezoid rule
    // (spectrally accurate for periodic integrands).
    let n = 400;
    let sum: f64 = (0..n)
        .map(|i| {
            let t = 2.0 * std::f64::consts::PI * i as f64 / n as f64;
            log_density(&[1.0, 0.0], &[t.cos(), t.sin()], 7.0)
                .unwrap()
                .exp()
        })
        .sum::<f64>()
        * 2.0
        * std::f64::consts::PI
        / n as f64;
    assert!((sum - 1.0).abs() < 1e-13, "{sum}");
}

#[test]
fn power_spherical_stats_match_mpmath_quadrature() {
    // Reference values by mpmath's quadrature of the density of t at 40 digits
    // (scripts/power_spherical_reference.py), not from the Beta/digamma closed forms.
    let cases: Value = serde_json::from_str(include_str!("data/power_spherical.json"))
        .expect("power_spherical.json parses");
    let mut worst = (0.0f64, String::new());
    for c in cases.as_array().unwrap() {
        let (d, k) = (
            c["dim"].as_u64().unwrap() as usize,
            c["kappa"].as_f64().unwrap(),
        );
        let s = power_spherical_stats(d, k).unwrap();
        let field = |name: &str| -> f64 { c[name].as_str().unwrap().parse().unwrap() };
        for (name, got) in [
            ("log_normaliser", s.log_normaliser),
            ("kl", s.kl),
            ("mean_t", s.mean_t),
            ("dkl_dkappa", s.dkl_dkappa),
            ("dmean_t_dkappa", s.dmean_t_dkappa),
        ] {
            // At kappa = 0 the KL, its slope and E[t] are exactly 0 (the quadrature gives
            // ~1e-22).
            if k == 0.0 && matches!(name, "kl" | "dkl_dkappa" | "mean_t") {
                assert_eq!(got, 0.0, "PS d = {d}, kappa = 0: {name}");
                continue;
            }
            // Relative everywhere else, down to the smallest KL (d = 4096 at kappa = 1e-6:
            // 1.2e-16).
            let want = field(name);
            let err = (got - want).abs() / want.abs();
            assert!(
                err < 1e-9,
                "PS d = {d}, kappa = {k}: {name} = {got:e}, mpmath {want:e}"
            );
            if err > worst.0 {
                worst = (err, format!("{name} at d = {d}, kappa = {k}"));
            }
        }
    }
    eprintln!("worst relative error {:e} ({})", worst.0, worst.1);
}

#[test]
fn power_spherical_refuses_what_the_vmf_refuses() {
    for (d, k, says) in [
        (1, 1.0, "d = 1"),
        (4097, 1.0, "d = 4097"),
        (3, -1.0, "kappa = -1 is negative"),
        (3, f64::NAN, "kappa = NaN"),
        (3, 2e5, "kappa = 200000"),
    ] {
        let e = power_spherical_stats(d, k).unwrap_err().to_string();
        assert!(e.contains(says), "d = {d}, kappa = {k}: {e}");
    }
}
