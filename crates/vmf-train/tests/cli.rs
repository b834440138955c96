//! The `vmf` command-line tool: data on stdout, errors on stderr with a non-zero exit;
//! and the errors of `encode`.

use std::process::{Command, Output};

fn vmf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmf"))
        .args(args)
        .output()
        .expect("vmf runs")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn kl_and_kappa_print_json_matching_the_library() {
    let out = stdout(&vmf(&["kl", "--dim", "8", "--kappa", "20", "--json"]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let s = vmf_core::VmfStats::new(8, 20.0).unwrap();
    assert_eq!(v["dim"], 8);
    assert_eq!(v["kappa"].as_f64(), Some(20.0));
    assert_eq!(v["kl"].as_f64(), Some(s.kl));
    assert_eq!(v["mean_w"].as_f64(), Some(s.mean_w));
    assert_eq!(v["log_normaliser"].as_f64(), Some(s.log_normaliser));
    let dmean = vmf_core::mean_w_derivative(8, 20.0).unwrap();
    assert_eq!(v["dmean_w_dkappa"].as_f64(), Some(dmean));
    assert_eq!(v["dkl_dkappa"].as_f64(), Some(20.0 * dmean));

    let out = stdout(&vmf(&[
        "kappa",
        "--dim",
        "8",
        "--kl",
        "4.485985873856137",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!((v["kappa"].as_f64().unwrap() - 20.0).abs() < 1e-9, "{v}");
    let plain: f64 = stdout(&vmf(&["kappa", "--dim", "8", "--kl", "4.485985873856137"]))
        .trim()
        .parse()
        .unwrap();
    assert!((plain - 20.0).abs() < 1e-9);
}

#[test]
fn samples_are_full_precision_data_lines() {
    let out = stdout(&vmf(&[
        "sample-w", "--dim", "3", "--kappa", "1e5", "-n", "1000", "--seed", "4",
    ]));
    let ws: Vec<f64> = out.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(ws.len(), 1000);
    // At kappa = 1e5, 1 - w ~ 1e-5: values must keep their digits, not print as 1.
    assert!(ws.iter().all(|&w| w < 1.0 && w > 0.999));
    let mean_gap = ws.iter().map(|w| 1.0 - w).sum::<f64>() / 1000.0;
    assert!(
        (mean_gap - 1e-5).abs() < 1.5e-6,
        "E[1 - w] = {mean_gap}, expected (d-1)/(2 kappa) = 1e-5"
    );
    // Same seed, same numbers.
    assert_eq!(
        out,
        stdout(&vmf(&[
            "sample-w", "--dim", "3", "--kappa", "1e5", "-n", "1000", "--seed", "4"
        ]))
    );

    let out = stdout(&vmf(&[
        "sample", "--dim", "3", "--kappa", "50", "-n", "200", "--mu", "0,0,-2", "--seed", "1",
    ]));
    let rows: Vec<Vec<f64>> = out
        .lines()
        .map(|l| l.split(',').map(|x| x.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 200);
    for r in &rows {
        assert_eq!(r.len(), 3);
        assert!((r.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(r[2] < -0.5, "points concentrate around mu = -e_3: {r:?}");
    }
}

#[test]
fn power_spherical_is_one_switch_away_with_the_same_keys() {
    // Closed forms of the Power Spherical, not the library: E[t] = kappa / (d - 1 +
    // kappa) and its derivative; the KL and its derivative through `vmf kappa`'s
    // inverse and a central difference.
    let kl = |d: &str, k: &str| -> serde_json::Value {
        let out = stdout(&vmf(&[
            "kl",
            "--dim",
            d,
            "--kappa",
            k,
            "--family",
            "power-spherical",
            "--json",
        ]));
        serde_json::from_str(out.trim()).unwrap()
    };
    let v = kl("41", "10");
    let f = |key: &str| v[key].as_f64().unwrap();
    assert!((f("mean_w") - 0.2).abs() < 1e-15, "{v}");
    assert!((f("dmean_w_dkappa") - 40.0 / 2500.0).abs() < 1e-15, "{v}");
    let (lo, hi) = (
        kl("41", "9.999")["kl"].as_f64(),
        kl("41", "10.001")["kl"].as_f64(),
    );
    let fd = (hi.unwrap() - lo.unwrap()) / 0.002;
    assert!((fd - f("dkl_dkappa")).abs() < 1e-6, "{fd} vs {v}");
    let back: f64 = stdout(&vmf(&[
        "kappa",
        "--dim",
        "41",
        "--kl",
        &format!("{}", f("kl")),
        "--family",
        "power-spherical",
    ]))
    .trim()
    .parse()
    .unwrap();
    assert!((back - 10.0).abs() < 1e-9, "{back}");
    // The vMF's numbers differ at the same (d, kappa), and vmf stays the default.
    let vmf_kl: serde_json::Value = serde_json::from_str(
        stdout(&vmf(&["kl", "--dim", "41", "--kappa", "10", "--json"])).trim(),
    )
    .unwrap();
    assert!(vmf_kl["mean_w"].as_f64().unwrap() > 0.23, "{vmf_kl}");
    // sample-w draws the Power Spherical's t: its mean within 4 standard errors.
    let out = stdout(&vmf(&[
        "sample-w",
        "--dim",
        "41",
        "--kappa",
        "10",
        "-n",
        "20000",
        "--family",
        "power-spherical",
    ]));
    let ws: Vec<f64> = out.lines().map(|l| l.parse().unwrap()).collect();
    let mean = ws.iter().sum::<f64>() / ws.len() as f64;
    let var = ws.iter().map(|w| (w - mean).powi(2)).sum::<f64>() / (ws.len() - 1) as f64;
    assert!(
        (mean - 0.2).abs() < 4.0 * (var / ws.len() as f64).sqrt(),
        "{mean}"
    );
    let o = vmf(&["kl", "--dim", "41", "--kappa", "10", "--family", "gauss"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("power-spherical"));
}

#[test]
fn sample_w_grad_prints_each_sample_with_its_kappa_derivative() {
    let lines = |kappa: &str| -> Vec<(f64, f64)> {
        stdout(&vmf(&[
            "sample-w", "--dim", "5", "--kappa", kappa, "-n", "50", "--seed", "9", "--grad",
        ]))
        .lines()
        .map(|l| {
            let (w, g) = l.split_once(',').expect("w,dw_dkappa");
            (w.parse().unwrap(), g.parse().unwrap())
        })
        .collect()
    };
    let (lo, mid, hi) = (lines("1.99"), lines("2"), lines("2.01"));
    assert_eq!(mid.len(), 50);
    // The w column is what sample-w prints without --grad.
    let plain = stdout(&vmf(&[
        "sample-w", "--dim", "5", "--kappa", "2", "-n", "50", "--seed", "9",
    ]));
    let ws: Vec<f64> = plain.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(ws, mid.iter().map(|p| p.0).collect::<Vec<_>>());
    // The same uniforms at every kappa: each w moves smoothly, at the printed slope.
    for i in 0..50 {
        let fd = (hi[i].0 - lo[i].0) / 0.02;
        assert!(
            (fd - mid[i].1).abs() < 1e-4 * mid[i].1.abs().max(1e-3),
            "line {i}: {fd} vs {}",
            mid[i].1
        );
    }
}

#[test]
fn bad_input_is_an_error_on_stderr_with_nonzero_exit() {
    for (args, needle) in [
        (vec!["kl", "--dim", "1", "--kappa", "2"], "d = 1"),
        (vec!["kl", "--dim", "8", "--kappa", "-2"], "kappa = -2"),
        (vec!["kl", "--dim", "8", "--kappa", "NaN"], "kappa = NaN"),
        (vec!["kappa", "--dim", "8", "--kl", "1e9"], "KL target"),
        (
            vec![
                "sample", "--dim", "3", "--kappa", "1", "-n", "1", "--mu", "0,0",
            ],
            "2 entries",
        ),
        (
            vec![
                "sample", "--dim", "3", "--kappa", "1", "-n", "1", "--mu", "0,0,0",
            ],
            "cannot be normalised",
        ),
    ] {
        let o = vmf(&args);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(o.stdout.is_empty(), "{args:?} printed data");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn encode_refuses_a_missing_checkpoint_and_unknown_options_by_name() {
    let encode = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_encode"))
            .args(args)
            .output()
            .expect("encode runs")
    };
    for (args, needle) in [
        (
            vec!["--checkpoint", "/nonexistent/step-1", "--out", "/tmp/x.npy"],
            "/nonexistent/step-1",
        ),
        (
            vec!["--checkpoint", "c", "--split", "train", "--knn"],
            "--split train",
        ),
        (
            vec!["--checkpoint", "c", "--metric", "manhattan", "--knn"],
            "--metric manhattan",
        ),
        (vec!["--checkpoint", "c"], "--out"),
    ] {
        let o = encode(&args);
        assert!(!o.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
