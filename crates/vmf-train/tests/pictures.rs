//! The picture subcommands on small trained models with d = 3 (vMF: the sphere view;
//! Gaussian: a principal plane).

use std::path::{Path, PathBuf};

use vmf_train::modality::image::pictures::Pictures;
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

/// Exports checkpoint `ckpt` to `out` (safetensors), loads the file into a fresh model
/// and checks that it gives back the exported encoder output; returns the export's
/// report with what the caller needs to load more files.
fn export_round_trip(
    ckpt: &Path,
    out: &Path,
) -> (
    vmf_train::export::Exported,
    vmf_train::modality::image::Images,
    checkpoint::Opened,
) {
    use burn::tensor::Device;
    use vmf_train::export::{export_checkpoint, first_location, load_exported};
    use vmf_train::modality::DataKind;
    use vmf_train::modality::image::Images;
    let exported = export_checkpoint(ckpt, out).unwrap();
    let opened = checkpoint::open(ckpt).unwrap();
    let images = Images::load(&opened.config).unwrap();
    let device = Device::flex();
    let back = load_exported(&images, &opened, out, &device).unwrap();
    assert_eq!(
        first_location(&images, &back, &device).unwrap(),
        exported.first_location
    );
    (exported, images, opened)
}

#[test]
fn export_writes_named_safetensors_that_load_back_to_the_same_model() {
    use burn::tensor::Device;
    use vmf_train::export::{first_location, load_exported};
    use vmf_train::modality::DataKind;

    let (dir, _) = trained(
        "export",
        "[model]\nlatent_dim = 3\nhidden = [32]\n[kappa]\nschedule = \"constant\"\nvalue = 10.0\n",
    );
    let ckpt = checkpoint::list(&dir).pop().unwrap();
    let out = dir.join("model.safetensors");
    // Loaded into a fresh model, the file gives back the same encoder output.
    let (e, images, opened) = export_round_trip(&ckpt, &out);
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
    // The fresh model alone does not give it.
    let device = Device::flex();
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

#[test]
fn a_conv_model_learns_an_rgb_image_folder_and_shows_it_in_colour() {
    use vmf_train::encode::{Metric, encode_checkpoint, encode_data, knn_accuracy};
    use vmf_train::modality::Split;

    // Two classes of 8x8 RGB images: a random pattern in the red or in the blue channel.
    let root = std::env::temp_dir().join(format!("vmf-folder-rgb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut state = 12345u32;
    let mut next = || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (state >> 24) as u8
    };
    for (split, n) in [("train", 48), ("test", 10)] {
        for (class, channel) in [("blue", 2), ("red", 0)] {
            let dir = root.join("data").join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..n {
                let img = image::RgbImage::from_fn(8, 8, |_, _| {
                    let mut px = [next() / 8; 3];
                    px[channel] = 128 + next() / 2;
                    image::Rgb(px)
                });
                img.save(dir.join(format!("{i:02}.png"))).unwrap();
            }
        }
    }
    let run = root.join("run");
    let text = format!(
        "seed = 1\nrun_dir = \"{}\"\n[data]\ndataset = \"image_folder\"\ndir = \"{}\"\n\
         [model]\narch = \"conv\"\nchannels = [8, 16]\nlatent_dim = 3\nhidden = [32]\n\
         [kappa]\nschedule = \"constant\"\nvalue = 10.0\n[optimizer]\nlr = 3e-3\n[training]\nepochs = 12\n\
         batch_size = 16\nlog_every = 2\n",
        run.display(),
        root.join("data").display()
    );
    let config = TrainConfig::parse(&text, Path::new("folder.toml")).unwrap();
    train(&config, &TrainOptions::default()).unwrap();

    // It learns: the test reconstruction falls well below the first epoch's.
    let recon: Vec<f64> =
        vmf_train::output::read_csv_column(&run.join("eval.csv"), "recon_sampled")
            .unwrap()
            .into_iter()
            .map(Option::unwrap)
            .collect();
    assert_eq!(recon.len(), 12);
    assert!(
        recon[11] < recon[0] - 20.0,
        "test recon per epoch: {recon:?}"
    );

    // The epoch's grid is in colour, and its first cell is the first test image's file.
    let ckpt = checkpoint::list(&run).pop().unwrap();
    let e = encode_checkpoint(&ckpt, Split::Test, None).unwrap();
    let names = e.texts.clone().expect("image files name the rows");
    assert_eq!((names.len(), e.dim), (20, 3));
    let grid = image::open(run.join("images/recon-epoch-012.png")).unwrap();
    assert_eq!(grid.color(), image::ColorType::Rgb8);
    assert_eq!((grid.width(), grid.height()), (10 * 10 + 2, 2 * 10 + 2));
    let (grid, first) = (
        grid.to_rgb8(),
        image::open(root.join("data").join(&names[0]))
            .unwrap()
            .to_rgb8(),
    );
    for (x, y, px) in first.enumerate_pixels() {
        assert_eq!(grid.get_pixel(x + 2, y + 2), px, "pixel ({x}, {y})");
    }
    // The classes are told apart by the directions (chance: 50%).
    assert_eq!(e.labels.as_ref().map(Vec::len), Some(20));
    let acc = knn_accuracy(&e, 1, Metric::Cosine).unwrap();
    assert!(acc >= 0.9, "1-NN accuracy {acc}");

    // Other data through the run's model (encode --data): the test folder given as a
    // folder of its own holds the same images, in name order, with the same mu.
    let other = encode_data(&ckpt, &root.join("data/test"), Split::Test, None).unwrap();
    let other_names = other.texts.clone().unwrap();
    assert_eq!(other_names.len(), 20);
    assert_eq!(other_names[0], "blue/00.png");
    assert_eq!(
        other.labels.as_ref().unwrap()[19],
        1,
        "red is the second class"
    );
    for (j, name) in other_names.iter().enumerate() {
        let i = names
            .iter()
            .position(|n| *n == format!("test/{name}"))
            .unwrap();
        assert_eq!(
            other.location[j * 3..j * 3 + 3],
            e.location[i * 3..i * 3 + 3]
        );
    }
    // Images of another size are converted to the run's (8x8); a config that reads
    // them at their own size is refused with both shapes; text and a folder with both
    // splits are refused.
    let big = root.join("big");
    std::fs::create_dir_all(&big).unwrap();
    image::RgbImage::from_pixel(16, 16, image::Rgb([200, 10, 10]))
        .save(big.join("a.png"))
        .unwrap();
    let one = encode_data(&ckpt, &big, Split::Test, None).unwrap();
    assert_eq!(
        (one.len(), one.texts.unwrap()),
        (1, vec!["a.png".to_string()])
    );
    let cfg = root.join("big.toml");
    std::fs::write(
        &cfg,
        text.replace(
            &root.join("data").display().to_string(),
            &root.join("data-big").display().to_string(),
        ) + "",
    )
    .unwrap();
    for split in ["train", "test"] {
        let d = root.join("data-big").join(split);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(big.join("a.png"), d.join("a.png")).unwrap();
    }
    let err = encode_data(&ckpt, &cfg, Split::Test, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("16x16") && err.contains("8x8"), "{err}");
    let err = encode_data(&ckpt, &root.join("data"), Split::Test, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("train/ and test/"), "{err}");
    let ptb = root.join("ptb.toml");
    std::fs::write(
        &ptb,
        "run_dir = \"r\"\n[data]\ndataset = \"ptb\"\n[model]\nkind = \"lm\"\nlatent_dim = 4\n\
         hidden = [8]\n[training]\nepochs = 1\nbatch_size = 4\n",
    )
    .unwrap();
    let err = encode_data(&ckpt, &ptb, Split::Test, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ptb.toml") && err.contains("\"ptb\"") && err.contains("images"),
        "{err}"
    );

    // The pictures tool opens the conv checkpoint and draws RGB reconstructions.
    let p = Pictures::open(&ckpt).unwrap();
    p.reconstruct(&root.join("r.png"), 10).unwrap();
    assert_eq!(
        image::open(root.join("r.png")).unwrap().color(),
        image::ColorType::Rgb8
    );

    // The conv weights leave as safetensors and load back to the same encoder output.
    export_round_trip(&ckpt, &root.join("conv.safetensors"));
    std::fs::remove_dir_all(&root).unwrap();
}
