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

#[test]
fn export_writes_named_safetensors_that_load_back_to_the_same_model() {
    use burn::tensor::Device;
    use vmf_train::export::{export_checkpoint, first_location, load_exported};
    use vmf_train::modality::DataKind;
    use vmf_train::modality::image::Images;

    let (dir, _) = trained(
        "export",
        "[model]\nlatent_dim = 3\nhidden = [32]\n[kappa]\nschedule = \"constant\"\nvalue = 10.0\n",
    );
    let ckpt = checkpoint::list(&dir).pop().unwrap();
    let out = dir.join("model.safetensors");
    let e = export_checkpoint(&ckpt, &out).unwrap();
    assert_eq!(e.first_location.len(), 3);
    // The names and [in, out] shapes another stack reads (the safetensors header).
    let raw = std::fs::read(&out).unwrap();
    let n = u64::from_le_bytes(raw[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&raw[8..8 + n]).unwrap();
    for (name, shape) in [
        ("encoder.layers.0.weight", [784, 32]),
        ("encoder.layers.1.weight", [32, 3]),
        ("decoder.layers.1.weight", [32, 784]),
    ] {
        assert_eq!(header[name]["shape"], serde_json::json!(shape), "{name}");
        assert_eq!(header[name]["dtype"], "F32");
    }
    // Loaded into a fresh model, the file gives back the same encoder output; the
    // fresh model alone does not.
    let opened = checkpoint::open(&ckpt).unwrap();
    let images = Images::load(&opened.config).unwrap();
    let device = Device::flex();
    let back = load_exported(&images, &opened, &out, &device).unwrap();
    assert_eq!(
        first_location(&images, &back, &device).unwrap(),
        e.first_location
    );
    let fresh = images.init_model(&opened.config, &device);
    assert_ne!(
        first_location(&images, &fresh, &device).unwrap(),
        e.first_location
    );
    // A file of another model is refused with its name.
    let other = dir.join("other.safetensors");
    std::fs::write(&other, b"not a safetensors file").unwrap();
    let err = load_exported(&images, &opened, &other, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("other.safetensors"), "{err}");
}
