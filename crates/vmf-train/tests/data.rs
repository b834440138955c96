//! The IDX reader and dataset loading against broken files.

use std::io::Write;
use std::path::{Path, PathBuf};

use vmf_train::config::{DataConfig, DatasetKind, PixelMode};
use vmf_train::data::{load, read_idx};

fn tmp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vmf-data-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    dims.iter().for_each(|d| out.extend(d.to_be_bytes()));
    out.extend(data);
    out
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn err_of(path: &Path, bytes: &[u8]) -> String {
    std::fs::write(path, bytes).unwrap();
    read_idx(path).unwrap_err().to_string()
}

#[test]
fn idx_reader_reads_raw_and_gzip_and_rejects_broken_files() {
    let dir = tmp_dir("idx");
    let good = idx(&[2, 3], &[1, 2, 3, 4, 5, 6]);
    for (name, bytes) in [("raw", good.clone()), ("gz", gz(&good))] {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        let r = read_idx(&p).unwrap();
        assert_eq!((r.dims, r.data), (vec![2, 3], vec![1, 2, 3, 4, 5, 6]));
    }
    let p = dir.join("bad");
    let cases: Vec<(Vec<u8>, &[&str])> = vec![
        (
            idx(&[2, 3], &[1, 2, 3, 4]),
            &["truncated", "6 bytes", "found 4"],
        ),
        (idx(&[2, 3], &[0; 8]), &["2 unexpected trailing bytes"]),
        (vec![1, 2, 8, 1, 0, 0, 0, 1, 0], &["not an IDX file"]),
        (
            vec![0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0],
            &["type code 0x0d"],
        ),
        (vec![0, 0, 8, 3, 0, 0], &["header truncated"]),
        (gz(&good)[..20].to_vec(), &["gzip"]),
    ];
    for (bytes, needles) in cases {
        let e = err_of(&p, &bytes);
        assert!(e.contains(&p.display().to_string()), "{e}");
        for n in needles {
            assert!(e.contains(n), "expected {n:?} in {e}");
        }
    }
    let e = read_idx(&dir.join("missing")).unwrap_err().to_string();
    assert!(e.contains("missing") && e.contains("cannot read"), "{e}");
}

fn config(dir: &Path) -> DataConfig {
    DataConfig {
        dataset: DatasetKind::Mnist,
        dir: Some(dir.to_path_buf()),
        pixels: PixelMode::Grey,
        train_limit: None,
        test_limit: None,
        validation: 0,
        vocab_size: None,
        min_count: None,
        max_length: None,
        long_sentences: None,
        channels: None,
        size: None,
        test_fraction: None,
        split_seed: 0,
    }
}

#[test]
fn the_validation_set_is_the_tail_of_the_training_file() {
    let mnist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/mnist");
    let mut c = config(&mnist);
    c.train_limit = Some(1000);
    let whole = load(&c, 0).unwrap();
    c.validation = 200;
    let split = load(&c, 0).unwrap();
    let valid = split.valid.unwrap();
    assert_eq!((split.train.len(), valid.len()), (800, 200));
    assert_eq!(split.train.pixels[..], whole.train.pixels[..800 * 784]);
    assert_eq!(valid.pixels[..], whole.train.pixels[800 * 784..]);
    assert_eq!(valid.labels[..], whole.train.labels[800..]);
    c.validation = 1000;
    let e = load(&c, 0).unwrap_err().to_string();
    assert!(
        e.contains("data.validation = 1000") && e.contains("no training images"),
        "{e}"
    );
}

#[test]
fn dataset_loading_checks_the_files_belong_together() {
    let dir = tmp_dir("split");
    let images = idx(&[3, 2, 2], &[0, 255, 128, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    std::fs::write(dir.join("train-images-idx3-ubyte.gz"), gz(&images)).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), idx(&[2], &[1, 2])).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), images.clone()).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx(&[3], &[1, 2, 3])).unwrap();
    let e = load(&config(&dir), 0).unwrap_err().to_string();
    assert!(
        e.contains("train-labels-idx1-ubyte") && e.contains("2 labels for 3 images"),
        "{e}"
    );

    std::fs::write(dir.join("train-labels-idx1-ubyte"), idx(&[3], &[1, 2, 3])).unwrap();
    let s = load(&config(&dir), 0).unwrap();
    assert_eq!(
        (s.train.len(), s.train.dim, s.train.shape),
        (3, 4, [1, 2, 2])
    );
    assert_eq!(&s.train.pixels[..3], &[0.0, 1.0, 128.0 / 255.0]);

    // Static binarisation draws 0/1 once, seeded.
    let bin = DataConfig {
        pixels: PixelMode::StaticBinary,
        ..config(&dir)
    };
    let (a, b) = (load(&bin, 5).unwrap(), load(&bin, 5).unwrap());
    assert!(a.train.pixels.iter().all(|&p| p == 0.0 || p == 1.0));
    assert_eq!(a.train.pixels, b.train.pixels);
    assert_eq!(
        &a.train.pixels[..2],
        &[0.0, 1.0],
        "pixels 0 and 255 are certain"
    );

    // Labels beyond MNIST's ten classes are refused, naming file and index.
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx(&[3], &[1, 12, 3])).unwrap();
    let e = load(&config(&dir), 0).unwrap_err().to_string();
    assert!(
        e.contains("t10k-labels-idx1-ubyte") && e.contains("label 12 at index 1"),
        "{e}"
    );
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx(&[3], &[1, 9, 3])).unwrap();
    assert!(load(&config(&dir), 0).is_ok(), "label 9 is a class");

    // A test split of another image size is refused at load, naming both files.
    let other = idx(&[3, 2, 1], &[0, 1, 2, 3, 4, 5]);
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), other).unwrap();
    let e = load(&config(&dir), 0).unwrap_err().to_string();
    assert!(
        e.contains("t10k-images-idx3-ubyte")
            && e.contains("train-images-idx3-ubyte.gz")
            && e.contains("2x1")
            && e.contains("2x2"),
        "{e}"
    );

    std::fs::remove_file(dir.join("t10k-images-idx3-ubyte")).unwrap();
    let e = load(&config(&dir), 0).unwrap_err().to_string();
    assert!(
        e.contains("t10k-images-idx3-ubyte") && e.contains("missing"),
        "{e}"
    );

    let fashion = DataConfig {
        dataset: DatasetKind::FashionMnist,
        dir: Some(dir.join("nowhere")),
        ..config(&dir)
    };
    let e = load(&fashion, 0).unwrap_err().to_string();
    assert!(
        e.contains("dataset-fashion-mnist") && e.contains("nowhere"),
        "{e}"
    );
}

#[test]
fn the_shipped_mnist_files_load_with_their_published_counts() {
    let s = load(
        &DataConfig {
            dir: None,
            ..config(Path::new(""))
        },
        0,
    )
    .unwrap();
    assert_eq!(
        (s.train.len(), s.test.len(), s.train.dim),
        (60_000, 10_000, 784)
    );
    let mut counts = [0usize; 10];
    s.test.labels.iter().for_each(|&l| counts[l as usize] += 1);
    assert_eq!(
        counts,
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
}

#[test]
fn fashion_mnist_loads_from_the_debian_package() {
    let fashion = DataConfig {
        dataset: DatasetKind::FashionMnist,
        dir: None,
        ..config(Path::new(""))
    };
    if !vmf_train::data::default_dir(DatasetKind::FashionMnist).exists() {
        // .ci/run installs the package, so CI always runs the check.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install Debian's dataset-fashion-mnist (see .ci/run)"
        );
        eprintln!("skipped: apt-get install dataset-fashion-mnist to run this test");
        return;
    }
    let s = load(&fashion, 0).unwrap();
    assert_eq!(
        (s.train.len(), s.test.len(), s.train.dim, s.train.shape),
        (60_000, 10_000, 784, [1, 28, 28])
    );
    let mut counts = [0usize; 10];
    s.train.labels.iter().for_each(|&l| counts[l as usize] += 1);
    assert_eq!(counts, [6000; 10], "Fashion-MNIST is balanced");
}

/// Writes a `w x h` image at `path` (PNG or JPEG by extension) whose every pixel is
/// `rgb` (grey when the three agree and `grey` is set).
fn write_image(path: &Path, [w, h]: [u32; 2], rgb: [u8; 3], grey: bool) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    if grey {
        image::GrayImage::from_pixel(w, h, image::Luma([rgb[0]]))
            .save(path)
            .unwrap();
    } else {
        image::RgbImage::from_pixel(w, h, image::Rgb(rgb))
            .save(path)
            .unwrap();
    }
}

fn folder_config(dir: &Path) -> DataConfig {
    DataConfig {
        dataset: DatasetKind::ImageFolder,
        ..config(dir)
    }
}

/// The first value of each image of a set (the images here are constant per channel).
fn firsts(set: &vmf_train::data::ImageSet) -> Vec<u8> {
    set.pixels
        .chunks(set.dim)
        .map(|im| (im[0] * 255.0).round() as u8)
        .collect()
}

#[test]
fn an_image_folder_gives_classes_channels_sizes_and_a_seeded_split() {
    // train/ and test/ with class folders; RGB planes in NCHW order.
    let dir = tmp_dir("folder-classes");
    for (split, class, v) in [
        ("train", "cat", 10u8),
        ("train", "cat", 20),
        ("train", "dog", 30),
        ("test", "dog", 40),
    ] {
        let name = format!("{split}/{class}/{v}.png");
        write_image(&dir.join(name), [3, 2], [v, v + 1, v + 2], false);
    }
    std::fs::write(dir.join("train/README.txt"), "not an image").unwrap();
    let s = load(&folder_config(&dir), 0).unwrap();
    assert_eq!(s.classes, Some(vec!["cat".to_string(), "dog".to_string()]));
    assert_eq!(
        (s.train.shape, s.train.dim, s.test.shape),
        ([3, 2, 3], 18, [3, 2, 3])
    );
    let mut pairs: Vec<(u8, u8)> = firsts(&s.train)
        .into_iter()
        .zip(s.train.labels.clone())
        .collect();
    pairs.sort();
    assert_eq!(pairs, [(10, 0), (20, 0), (30, 1)]);
    assert_eq!(
        (firsts(&s.test), s.test.labels.clone()),
        (vec![40], vec![1])
    );
    // Channel planes: six values of R, then six of G, then six of B.
    let want: Vec<f32> = [40u8, 41, 42]
        .iter()
        .flat_map(|&v| [f32::from(v) / 255.0; 6])
        .collect();
    assert_eq!(s.test.pixels, want);

    // The same folder as grey, resized to 4x4: a constant image stays that constant.
    let mut c = folder_config(&dir);
    c.channels = Some(1);
    c.size = Some([4, 4]);
    let s = load(&c, 0).unwrap();
    assert_eq!((s.test.shape, s.test.dim), ([1, 4, 4], 16));
    let luma = (0.2126 * 40.0 + 0.7152 * 41.0 + 0.0722 * 42.0) / 255.0;
    assert!(
        s.test
            .pixels
            .iter()
            .all(|&p| (p - luma).abs() <= 1.0 / 255.0),
        "{:?}",
        s.test.pixels
    );

    // One folder without classes or splits: a seeded split by test_fraction; grey
    // inferred from the first image; JPEG decodes too.
    let flat = tmp_dir("folder-flat");
    for v in 0..10u8 {
        let ext = if v == 7 { "jpg" } else { "png" };
        write_image(&flat.join(format!("{v}.{ext}")), [2, 2], [v * 20; 3], true);
    }
    let mut c = folder_config(&flat);
    c.test_fraction = Some(0.3);
    let a = load(&c, 0).unwrap();
    assert_eq!(
        (a.train.len(), a.test.len(), a.train.shape),
        (7, 3, [1, 2, 2])
    );
    assert_eq!(a.classes, None);
    assert!(a.train.labels.iter().all(|&l| l == 0));
    let mut all: Vec<u8> = [firsts(&a.train), firsts(&a.test)].concat();
    all.sort();
    // JPEG is lossy: the constant 140 may come back a level off.
    assert!(
        all.iter()
            .zip((0..10u8).map(|v| v * 20))
            .all(|(&g, w)| g.abs_diff(w) <= 1),
        "{all:?}"
    );
    // The split is a function of split_seed, not of the run's seed.
    let b = load(&c, 99).unwrap();
    assert_eq!(firsts(&b.test), firsts(&a.test));
    c.split_seed = 5;
    let other: Vec<Vec<u8>> = (5..10)
        .map(|seed| {
            c.split_seed = seed;
            let mut t = firsts(&load(&c, 0).unwrap().test);
            t.sort();
            t
        })
        .collect();
    let mut mine = firsts(&a.test);
    mine.sort();
    assert!(
        other.iter().any(|t| *t != mine),
        "another split_seed, another split"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&flat).unwrap();
}

#[test]
fn image_folder_errors_name_the_file_or_folder_and_what_to_do() {
    let err = |c: &DataConfig| load(c, 0).unwrap_err().to_string();
    let dir = tmp_dir("folder-errors");
    // An undecodable image is named.
    write_image(&dir.join("a.png"), [2, 2], [1; 3], true);
    write_image(&dir.join("b.png"), [2, 2], [2; 3], true);
    std::fs::write(dir.join("c.png"), b"\x89PNG but not really").unwrap();
    let e = err(&folder_config(&dir));
    assert!(e.contains("c.png") && e.contains("cannot decode"), "{e}");
    // Another size without data.size: named, with the key that resizes.
    write_image(&dir.join("c.png"), [3, 2], [3; 3], true);
    let e = err(&folder_config(&dir));
    assert!(e.contains("c.png") && e.contains("data.size"), "{e}");
    let mut c = folder_config(&dir);
    c.size = Some([2, 2]);
    assert_eq!(load(&c, 0).unwrap().train.shape, [1, 2, 2]);
    // Images beside class folders.
    write_image(&dir.join("class/d.png"), [2, 2], [4; 3], true);
    let e = err(&c);
    assert!(e.contains("a.png") && e.contains("class folder"), "{e}");
    // train/ without test/.
    let split = tmp_dir("folder-errors-split");
    write_image(&split.join("train/a.png"), [2, 2], [1; 3], true);
    let e = err(&folder_config(&split));
    assert!(e.contains("no test/"), "{e}");
    // test/ with a class the training split lacks.
    write_image(&split.join("train/x/a.png"), [2, 2], [1; 3], true);
    std::fs::remove_file(split.join("train/a.png")).unwrap();
    write_image(&split.join("test/y/b.png"), [2, 2], [1; 3], true);
    let e = err(&folder_config(&split));
    assert!(e.contains("\"y\"") && e.contains("training classes"), "{e}");
    // A split folder without images; a folder of one image.
    std::fs::remove_dir_all(split.join("test/y")).unwrap();
    std::fs::create_dir_all(split.join("test/x")).unwrap();
    let e = err(&folder_config(&split));
    assert!(e.contains("no test images"), "{e}");
    let one = tmp_dir("folder-errors-one");
    write_image(&one.join("a.png"), [2, 2], [1; 3], true);
    let e = err(&folder_config(&one));
    assert!(e.contains("1 PNG or JPEG images"), "{e}");
    for d in [dir, split, one] {
        std::fs::remove_dir_all(d).unwrap();
    }
}
