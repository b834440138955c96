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
    assert_eq!((s.train.len(), s.train.dim, s.train.shape), (3, 4, [2, 2]));
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
        (60_000, 10_000, 784, [28, 28])
    );
    let mut counts = [0usize; 10];
    s.train.labels.iter().for_each(|&l| counts[l as usize] += 1);
    assert_eq!(counts, [6000; 10], "Fashion-MNIST is balanced");
}
