//! The picture subcommands on small trained models with d = 3 (vMF: the sphere view;
//! Gaussian: a principal plane).

use std::path::{Path, PathBuf};

use vmf_train::pictures::Pictures;
use vmf_train::{TrainConfig, TrainOptions, checkpoint, train};

/// Trains one epoch of a d = 3 model on a slice of MNIST (`model`: its `[model]` and,
/// for vMF, `[kappa]` sections) and opens its checkpoint.
fn trained(name: &str, model: &str) -> (PathBuf, Pictures) {
    let dir = std::env::temp_dir().join(format!("vmf-pictures-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!(
        "run_dir = \"{}\"\n[data]\ndataset = \"mnist\"\ntrain_limit = 500\ntest_limit = 100\n\
         {model}[training]\nepochs = 1\nbatch_size = 50\nimages = false\n",
        dir.display()
    );
    train(
        &TrainConfig::parse(&text, Path::new("pictures.toml")).unwrap(),
        &TrainOptions::default(),
    )
    .unwrap();
    let p = Pictures::open(&checkpoint::list(&dir).pop().unwrap()).unwrap();
    (dir, p)
}

#[test]
fn every_picture_is_written_with_its_layout() {
    let (dir, p) = trained(
        "vmf",
        "[model]\nlatent_dim = 3\nhidden = [32]\n[kappa]\nschedule = \"constant\"\nvalue = 10.0\n",
    );
    let size = |f: &str| {
        let img = image::open(dir.join(f)).unwrap();
        (img.width(), img.height())
    };
    // Grids of 28x28 cells with a 2-pixel border.
    p.sample(&dir.join("s.png"), 4, 0).unwrap();
    assert_eq!(size("s.png"), (4 * 30 + 2, 4 * 30 + 2));
    p.reconstruct(&dir.join("r.png"), 20).unwrap();
    assert_eq!(
        size("r.png"),
        (10 * 30 + 2, 4 * 30 + 2),
        "2 rows of originals + 2 of reconstructions"
    );
    p.interpolate(&dir.join("i.png"), 3, 7).unwrap();
    assert_eq!(size("i.png"), (7 * 30 + 2, 3 * 30 + 2));
    p.latent(&dir.join("l.png"), 100).unwrap();
    let img = image::open(dir.join("l.png")).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (1040, 520), "d = 3: both hemispheres");
    let coloured = img
        .pixels()
        .filter(|px| px.0 != [255, 255, 255] && px.0 != [160, 160, 160])
        .count();
    assert!(
        coloured >= 100,
        "the points are drawn ({coloured} coloured pixels)"
    );
}

#[test]
fn the_gaussian_model_draws_its_latents_in_a_plane() {
    let (dir, p) = trained(
        "gaussian",
        "[model]\nkind = \"gaussian\"\nlatent_dim = 3\nhidden = [32]\n",
    );
    p.sample(&dir.join("s.png"), 3, 0).unwrap();
    p.interpolate(&dir.join("i.png"), 2, 5).unwrap();
    p.latent(&dir.join("l.png"), 100).unwrap();
    let img = image::open(dir.join("l.png")).unwrap().to_rgb8();
    assert_eq!(
        img.dimensions(),
        (520, 520),
        "R^3: a principal plane, not a sphere"
    );
}

#[test]
fn loss_curves_are_drawn_from_the_run_csv_files() {
    let (dir, _) = trained(
        "curves",
        "[model]\nlatent_dim = 3\nhidden = [32]\n[kappa]\nschedule = \"constant\"\nvalue = 10.0\n",
    );
    let out = dir.join("curves.svg");
    vmf_train::curves::loss_curves(&dir, &out).unwrap();
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("-ELBO") && svg.contains("KL"));
    // Train and test in both panels, each a line and a legend entry.
    assert!(svg.matches("<polyline").count() >= 8, "{svg}");
    let e = vmf_train::curves::loss_curves(&dir.join("checkpoints"), &out).unwrap_err();
    assert!(e.to_string().contains("metrics.csv"), "{e}");
}
