//! The text data kind end to end: the loader (vocabulary, unknown words, length rules,
//! CRLF / byte-order mark / tabs, every bad-input error), bucketed batches, and
//! training on a small generated corpus: the loss falls, z carries the sentence's
//! topic, resume mid-epoch is exact, another vocabulary is refused, and the
//! importance-sampled NLL behaves (LL_1 = ELBO within noise, rising with K).

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use vmf_train::data::text::{
    LongSentences, TextOptions, UNK_ID, build_vocab, load_text, read_text,
};
use vmf_train::evaluation::evaluate_checkpoint;
use vmf_train::modality::text::{Sentences, bucketed_batches, padding_fraction, tokens_right};
use vmf_train::modality::view::View;
use vmf_train::modality::{DataKind, Split};
use vmf_train::views::show_checkpoint;
use vmf_train::{Resume, TrainConfig, TrainOptions, checkpoint, train};

fn tmp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vmf-text-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Pearson's correlation of two equally long series.
fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::File::create(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

fn opts() -> TextOptions {
    TextOptions {
        vocab_size: None,
        min_count: 1,
        max_length: 100,
        long_sentences: LongSentences::Truncate,
        train_limit: None,
        test_limit: None,
    }
}

/// A folder with the three splits.
fn corpus(name: &str, train: &[u8], valid: &[u8], test: &[u8]) -> PathBuf {
    let dir = tmp_dir(name);
    write(&dir.join("train.txt"), train);
    write(&dir.join("valid.txt"), valid);
    write(&dir.join("test.txt"), test);
    dir
}

#[test]
fn vocabulary_counts_the_training_split_only_and_breaks_ties_by_bytes() {
    let dir = corpus(
        "vocab",
        b"b a c\na b <unk>\nd a\n",
        b"a zebra\n",
        b"c d e\n",
    );
    let (s, _) = load_text(&dir, &opts()).unwrap();
    let v = &s.vocab;
    // Specials, then a (3), b (2), then c and d (1 each) in byte order; <unk> is the
    // unknown token, not a word.
    let tokens: Vec<&str> = (0..v.len() as u32).map(|i| v.token(i)).collect();
    assert_eq!(
        tokens,
        ["<pad>", "<s>", "</s>", "<unk>", "a", "b", "c", "d"]
    );
    assert_eq!(s.train.sentences[1], vec![4, 5, UNK_ID]);
    assert_eq!(
        s.valid.sentences[0],
        vec![4, UNK_ID],
        "zebra is not in train"
    );
    assert_eq!(s.test.sentences[0], vec![6, 7, UNK_ID]);
    assert_eq!(s.train.tokens(), 8 + 3);

    let (s, _) = load_text(
        &dir,
        &TextOptions {
            vocab_size: Some(2),
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(s.vocab.len(), 6);
    assert_eq!(s.train.sentences[0], vec![5, 4, UNK_ID], "c fell out");
    let (s, _) = load_text(
        &dir,
        &TextOptions {
            min_count: 2,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(s.vocab.len(), 6);
    assert_eq!(build_vocab(&[vec!["x", "y", "x"]], &opts()).id("x"), 4);
}

#[test]
fn crlf_bom_tabs_and_blank_lines_are_ordinary_text() {
    let plain = corpus("plain", b"the cat sat\nthe dog\n", b"cat\n", b"dog\n");
    let odd = corpus(
        "odd",
        "\u{feff}the\tcat  sat\r\n\r\n   \nthe dog\r\n".as_bytes(),
        b"cat\r\n",
        b"\t dog \n",
    );
    let (a, _) = load_text(&plain, &opts()).unwrap();
    let (b, reports) = load_text(&odd, &opts()).unwrap();
    assert_eq!(a.vocab, b.vocab);
    assert_eq!(a.train.sentences, b.train.sentences);
    assert_eq!(a.valid.sentences, b.valid.sentences);
    assert_eq!(a.test.sentences, b.test.sentences);
    assert_eq!(reports[0].blank, 2);
}

#[test]
fn gzip_files_read_like_plain_ones() {
    let dir = corpus("gz", b"", b"a b\n", b"b\n");
    std::fs::remove_file(dir.join("train.txt")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"a b c\nb c\n").unwrap();
    write(&dir.join("train.txt.gz"), &gz.finish().unwrap());
    let (s, _) = load_text(&dir, &opts()).unwrap();
    assert_eq!(s.train.len(), 2);
    assert_eq!(s.vocab.token(4), "b");
}

#[test]
fn long_sentences_are_truncated_or_dropped_and_counted() {
    let mut train = b"a b c d e f\na b\n".to_vec();
    // One line of a million words: only its first max_length + 1 are looked at.
    let long: Vec<u8> = b"w ".repeat(1_000_000);
    train.extend_from_slice(&long);
    train.push(b'\n');
    let dir = corpus("long", &train, b"a b c d e\nb\n", b"a\n");
    let o = TextOptions {
        max_length: 4,
        ..opts()
    };
    let (s, r) = load_text(&dir, &o).unwrap();
    assert_eq!(
        s.train.sentences.iter().map(Vec::len).collect::<Vec<_>>(),
        [4, 2, 4]
    );
    assert_eq!((r[0].kept, r[0].truncated, r[0].dropped), (3, 2, 0));
    assert_eq!(r[1].truncated, 1);
    let drop = TextOptions {
        long_sentences: LongSentences::Drop,
        ..o
    };
    let (s, r) = load_text(&dir, &drop).unwrap();
    assert_eq!(s.train.len(), 1);
    assert_eq!((r[0].kept, r[0].dropped), (1, 2));
    // Dropping everything is an error naming the file and the keys.
    let e = load_text(
        &dir,
        &TextOptions {
            max_length: 1,
            ..drop
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("train.txt") && e.contains("max_length") && e.contains("drop"),
        "{e}"
    );
}

#[test]
fn bad_files_are_named_with_the_line_to_blame() {
    let cases: [(&str, &[u8], &[&str]); 4] = [
        (
            "utf8",
            b"fine line\nsecond ok\nbad \xff byte\n",
            &["train.txt", "line 3", "UTF-8"],
        ),
        (
            "binary",
            b"text\n\x00\x01\x02binary",
            &["train.txt", "line 2", "binary"],
        ),
        ("empty", b"", &["train.txt", "empty"]),
        ("blank", b"\n   \n\t\r\n", &["train.txt", "blank"]),
    ];
    for (name, train, want) in cases {
        let dir = corpus(name, train, b"a\n", b"a\n");
        let e = load_text(&dir, &opts()).unwrap_err().to_string();
        for w in want {
            assert!(e.contains(w), "{name}: {e:?} should mention {w:?}");
        }
    }
    let dir = corpus("missing", b"a\n", b"a\n", b"a\n");
    std::fs::remove_file(dir.join("test.txt")).unwrap();
    let e = load_text(&dir, &opts()).unwrap_err().to_string();
    assert!(e.contains("test.txt") && e.contains("missing"), "{e}");
    let e = read_text(&dir.join("nope.txt")).unwrap_err().to_string();
    assert!(e.contains("nope.txt"), "{e}");
}

#[test]
fn buckets_are_seeded_cover_each_sentence_once_and_pad_little() {
    let mut rng = StdRng::seed_from_u64(1);
    let lengths: Vec<usize> = (0..2000).map(|_| rng.random_range(1..60)).collect();
    let a = bucketed_batches(&lengths, 32, 7, 3);
    assert_eq!(a, bucketed_batches(&lengths, 32, 7, 3), "a pure function");
    assert_ne!(
        a,
        bucketed_batches(&lengths, 32, 7, 4),
        "another epoch, another order"
    );
    let mut seen: Vec<usize> = a.iter().flatten().copied().collect();
    assert_eq!(seen.len(), 2000 / 32 * 32);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 2000 / 32 * 32, "no sentence twice");
    let shuffled: Vec<Vec<usize>> = (0..62).map(|b| (b * 32..(b + 1) * 32).collect()).collect();
    let (bucketed, random) = (
        padding_fraction(&lengths, &a),
        padding_fraction(&lengths, &shuffled),
    );
    assert!(bucketed < 0.1 && random > 0.4, "{bucketed} vs {random}");
}

/// Sentences about one of two topics: words a0..a5 or b0..b5, 3 to 7 of them.
fn topic_corpus(n: usize, seed: u64) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = String::new();
    for _ in 0..n {
        let topic = if rng.random::<bool>() { 'a' } else { 'b' };
        let len = rng.random_range(3..8);
        let words: Vec<String> = (0..len)
            .map(|_| format!("{topic}{}", rng.random_range(0..6)))
            .collect();
        out.push_str(&words.join(" "));
        out.push('\n');
    }
    out
}

fn text_config(data: &Path, run: &Path, extra: &str) -> TrainConfig {
    let text = format!(
        r#"
seed = 4
run_dir = "{}"
[data]
dataset = "text"
dir = "{}"
[model]
latent_dim = 4
hidden = [24]
embed_dim = 12
{extra}
[optimizer]
lr = 5e-3
beta1 = 0.9
beta2 = 0.999
eps = 1e-8
[training]
epochs = 3
batch_size = 16
log_every = 5
eval_batch_size = 64
shards = 1
"#,
        run.display(),
        data.display()
    );
    TrainConfig::parse(&text, Path::new("text-test.toml")).unwrap()
}

fn topic_data(name: &str) -> PathBuf {
    corpus(
        name,
        topic_corpus(400, 1).as_bytes(),
        topic_corpus(60, 2).as_bytes(),
        topic_corpus(60, 3).as_bytes(),
    )
}

fn column(path: &Path, name: &str) -> Vec<f64> {
    vmf_train::output::read_csv_column(path, name)
        .unwrap()
        .into_iter()
        .map(|v| v.expect("a number"))
        .collect()
}

const VMF: &str = "[kappa]\nschedule = \"constant\"\nvalue = 10.0\n";

#[test]
fn a_text_run_learns_writes_its_vocabulary_and_sentences() {
    let data = topic_data("learn");
    let run = tmp_dir("learn-run");
    let mut config = text_config(&data, &run, VMF);
    config.training.eval_samples = 4;
    let s = train(&config, &TrainOptions::default()).unwrap();
    assert_eq!(s.units, "tokens");
    assert_eq!(s.steps, 3 * 25);
    let loss = column(&run.join("metrics.csv"), "loss");
    let (first, last) = (loss[0], loss[loss.len() - 1]);
    // At the start ~ln(16) nats a token; knowing the topic, ln(6) a word suffices.
    assert!(last < 0.8 * first, "loss {first} -> {last}");
    assert!(column(&run.join("metrics.csv"), "tokens_per_sec")[0] > 0.0);
    let vocab = std::fs::read_to_string(run.join("vocab.txt")).unwrap();
    assert_eq!(vocab.lines().count(), 4 + 12);
    let samples = std::fs::read_to_string(run.join("samples/epoch-003.txt")).unwrap();
    assert_eq!(samples.lines().filter(|l| l.starts_with("> ")).count(), 5);
    // KL is the vMF constant.
    let kl = column(&run.join("eval.csv"), "kl");
    let want = vmf_core::kl_to_uniform(4, 10.0).unwrap();
    assert!(kl.iter().all(|k| (k - want).abs() < 1e-9));
    assert!(column(&run.join("valid.csv"), "elbo").len() == 3);
    // z carries the topic (a bit, ln 2 = 0.69 nats) and more: mutual information.
    let mi = column(&run.join("eval.csv"), "mi");
    assert!(mi[2] > 0.5, "MI {mi:?}");
    // Each epoch's importance-sampled NLL: below the ELBO's, and its perplexity per
    // token as the ELBO's is (ln ppl / NLL the same tokens per sentence).
    let eval = run.join("eval.csv");
    let (elbo, ppl_elbo) = (column(&eval, "elbo"), column(&eval, "ppl_elbo"));
    let (nll, ppl) = (column(&eval, "nll_is"), column(&eval, "ppl_is"));
    assert_eq!(nll.len(), 3);
    for e in 0..3 {
        assert!(
            nll[e] < -elbo[e],
            "epoch {e}: IS {} vs ELBO {}",
            nll[e],
            -elbo[e]
        );
        let per_token = |n: f64, p: f64| n / p.ln();
        let (a, b) = (per_token(nll[e], ppl[e]), per_token(-elbo[e], ppl_elbo[e]));
        assert!((a / b - 1.0).abs() < 1e-9, "tokens per sentence {a} vs {b}");
    }

    // The collapse plot reads the run's KL and MI.
    let svg = run.join("collapse.svg");
    vmf_train::curves::collapse_curves(&[run.as_path()], &svg).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("learn-run") && text.contains("mutual information"));
    assert!(
        text.matches("<circle").count() >= 3 + 15,
        "KL and MI points are marked"
    );
    let e = vmf_train::curves::collapse_curves(&[data.as_path()], &svg).unwrap_err();
    assert!(e.to_string().contains("metrics.csv"), "{e}");

    // The importance-sampled NLL: LL_1 estimates the ELBO, more samples tighten it.
    let ckpt = checkpoint::list(&run).pop().unwrap();
    let k1 = evaluate_checkpoint(&ckpt, 1, 5, None).unwrap();
    let k50 = evaluate_checkpoint(&ckpt, 50, 5, None).unwrap();
    let elbo = k1.metrics.elbo;
    let tol = 4.0 * std::f64::consts::SQRT_2 * k1.log_likelihood_se;
    assert!(
        (k1.log_likelihood - elbo).abs() < tol,
        "LL_1 {} vs ELBO {elbo}",
        k1.log_likelihood
    );
    assert!(
        k50.log_likelihood > k1.log_likelihood,
        "{} vs {}",
        k50.log_likelihood,
        k1.log_likelihood
    );
    assert_eq!(k1.test_images, 60);
    // Per example, in the test file's order although the evaluation sorts by length:
    // the NLL of a sentence grows with its length, so it must follow the file's lengths
    // line by line (the length-sorted order would not), and the values average to the
    // reported mean.
    let per = &k50.per_example;
    assert_eq!(per.len(), 60);
    let mean = per.iter().sum::<f64>() / 60.0;
    assert!(
        (mean - k50.log_likelihood).abs() < 1e-9,
        "{mean} vs {}",
        k50.log_likelihood
    );
    let lengths: Vec<f64> = std::fs::read_to_string(data.join("test.txt"))
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().count() as f64)
        .collect();
    let r = correlation(&lengths, &per.iter().map(|v| -v).collect::<Vec<_>>());
    assert!(
        r > 0.8,
        "per-example NLL against the file's sentence lengths: r = {r}"
    );
    // The eval tool writes them beside its JSON; a partial evaluation under names of its
    // own, which leave the full one's in place.
    let eval = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_eval"))
            .args(["--checkpoint", ckpt.to_str().unwrap(), "--samples", "3"])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    eval(&[]);
    eval(&["--test-limit", "7"]);
    for (stem, n) in [("eval-k3-seed0", 60), ("eval-k3-seed0-first7", 7)] {
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(ckpt.join(format!("{stem}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(json["test_images"], n);
        let rows = column(&ckpt.join(format!("{stem}-examples.csv")), "log_px");
        assert_eq!(rows.len(), n);
        let mean = rows.iter().sum::<f64>() / n as f64;
        let want = json["log_likelihood"].as_f64().unwrap();
        assert!((mean - want).abs() < 1e-9, "{stem}: {mean} vs {want}");
    }

    // Embeddings out, in the test file's order although the evaluation sorts the
    // sentences by length: each row is the mu of that sentence encoded alone.
    let e = vmf_train::encode::encode_checkpoint(&ckpt, Split::Test, None).unwrap();
    let test_lines: Vec<String> = std::fs::read_to_string(data.join("test.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(e.texts.as_deref(), Some(&test_lines[..]));
    assert!(e.labels.is_none());
    let device = burn::tensor::Device::flex();
    let opened = checkpoint::open(&ckpt).unwrap();
    let (kind, model) = Sentences::from_checkpoint(&opened, &opened.config, &device).unwrap();
    for i in [0, 7, 31, 59] {
        let set = &kind.splits().test;
        let mu = vmf_model::VaeModel::posterior(&model, &kind.batch(set, &[i], &device))
            .location()
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap();
        let row = &e.location[i * e.dim..(i + 1) * e.dim];
        for (a, b) in row.iter().zip(&mu) {
            assert!((a - b).abs() < 1e-5, "sentence {i}: {row:?} vs {mu:?}");
        }
    }

    // Other text through the run's model (encode --data): the test file given as a
    // file, or a config naming the folder, gives the same rows; words the run never
    // saw read as <unk>; a folder and bytes that are not UTF-8 are refused by name.
    use vmf_train::encode::encode_data;
    let as_file = encode_data(&ckpt, &data.join("test.txt"), Split::Test, None).unwrap();
    assert_eq!(as_file, e);
    let cfg = data.join("other.toml");
    std::fs::write(&cfg, opened.config.to_toml()).unwrap();
    let valid = encode_data(&ckpt, &cfg, Split::Validation, Some(9)).unwrap();
    let own_valid = vmf_train::encode::encode_checkpoint(&ckpt, Split::Validation, None).unwrap();
    assert_eq!(valid.len(), 9);
    assert_eq!(valid.location[..], own_valid.location[..9 * e.dim]);
    let novel = data.join("novel.txt");
    std::fs::write(&novel, format!("{}\nzebra quagga\n", test_lines[0])).unwrap();
    let n = encode_data(&ckpt, &novel, Split::Test, None).unwrap();
    assert_eq!(n.location[..e.dim], e.location[..e.dim]);
    assert_eq!(n.texts.as_ref().unwrap()[1], "<unk> <unk>");
    let err = encode_data(&ckpt, &data, Split::Test, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("is a folder"), "{err}");
    std::fs::write(&novel, b"caf\xe9\n").unwrap();
    let err = encode_data(&ckpt, &novel, Split::Test, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("novel.txt") && err.contains("UTF-8"), "{err}");

    // The greedy reconstruction's token accuracy, each epoch and at `eval` (the same
    // deterministic decoding of the last checkpoint).
    let acc = column(&run.join("eval.csv"), "recon_accuracy");
    assert_eq!(acc.len(), 3);
    assert!(acc.iter().all(|a| (0.0..=1.0).contains(a)), "{acc:?}");
    assert_eq!(k1.metrics.recon_accuracy, Some(acc[2]));

    // The text twins of the picture views.
    let show = |view: View| {
        let out = run.join("view.txt");
        show_checkpoint(&ckpt, view, Some(&out))?;
        Ok::<_, vmf_train::TrainError>(std::fs::read_to_string(out).unwrap())
    };
    let lines = |text: &str, prefix: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(prefix).map(str::to_string))
            .collect()
    };
    let sample = show(View::Sample {
        side: 4,
        seed: 1,
        temperature: 0.7,
    })
    .unwrap();
    assert_eq!(
        (lines(&sample, "= ").len(), lines(&sample, "~ ").len()),
        (4, 4)
    );
    let recon = show(View::Reconstruct { n: 3 }).unwrap();
    let (inputs, outputs) = (lines(&recon, "> "), lines(&recon, "< "));
    assert_eq!((inputs.len(), outputs.len()), (3, 3));
    let test = std::fs::read_to_string(data.join("test.txt")).unwrap();
    assert_eq!(inputs, test.lines().take(3).collect::<Vec<_>>());
    let path = show(View::Interpolate { pairs: 1, steps: 5 }).unwrap();
    assert_eq!(lines(&path, "> "), inputs[..2].to_vec());
    let points: Vec<&str> = path.lines().filter(|l| l.starts_with(['0', '1'])).collect();
    assert_eq!(points.len(), 5);
    // The path's ends are the two sentences' locations: their decodings are the
    // reconstructions.
    assert_eq!(points[0].strip_prefix("0.00 ").unwrap(), outputs[0]);
    assert_eq!(points[4].strip_prefix("1.00 ").unwrap(), outputs[1]);
    let e = show(View::Latent { n: 10 }).unwrap_err().to_string();
    assert!(e.contains("label") && e.contains("eval"), "{e}");
    let e = show(View::Sample {
        side: 2,
        seed: 0,
        temperature: 0.0,
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("temperature = 0"), "{e}");
}

#[test]
fn tokens_right_compares_words_and_the_end_token_by_position() {
    let s = [4, 5, 6];
    assert_eq!(tokens_right(&s, &[4, 5, 6]), 4); // every word and the end
    assert_eq!(tokens_right(&s, &[4, 9, 6]), 3);
    assert_eq!(tokens_right(&s, &[4]), 1); // ends where 5 is due
    assert_eq!(tokens_right(&s, &[4, 5, 6, 7]), 3); // goes on where the end is due
    assert_eq!(tokens_right(&s, &[5, 6]), 0); // shifted: nothing at its place
    assert_eq!(tokens_right(&s, &[]), 0);
}

#[test]
fn an_inputless_run_is_evaluated_without_its_words() {
    let data = topic_data("inputless");
    let run = tmp_dir("inputless-run");
    let device = burn::tensor::Device::flex();
    for (dropout, hidden) in [(1.0, true), (0.5, false)] {
        let config = text_config(&data, &run, &format!("word_dropout = {dropout}\n{VMF}"));
        let kind = Sentences::load(&config).unwrap();
        assert_eq!(kind.decoding(None).inputless, hidden);
        let batches = kind.eval_batches(Split::Test, 0, &device).unwrap();
        for b in &batches {
            let inputs: Vec<i64> = b
                .inputs
                .clone()
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .unwrap();
            let words: Vec<i64> = b
                .targets
                .clone()
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .unwrap();
            let [rows, cols] = b.inputs.dims();
            for r in 0..rows {
                let len = b.lengths[r];
                for t in 1..=len {
                    let want = if hidden {
                        UNK_ID as i64
                    } else {
                        words[r * cols + t - 1]
                    };
                    assert_eq!(inputs[r * cols + t], want, "row {r} position {t}");
                }
            }
        }
    }
}

#[test]
fn a_text_run_resumes_exactly_mid_epoch_and_refuses_another_vocabulary() {
    let data = topic_data("resume");
    let (straight, split) = (tmp_dir("straight"), tmp_dir("split"));
    // Both dropouts on: their masks are part of the step's noise that resume restores.
    let config = text_config(
        &data,
        &straight,
        &format!("word_dropout = 0.3\ndropout = 0.2\n{VMF}"),
    );
    let stop = |n| TrainOptions {
        stop_at_step: Some(n),
        ..TrainOptions::default()
    };
    train(&config, &stop(40)).unwrap();
    let mut config2 = config.clone();
    config2.run_dir = split.clone();
    train(&config2, &stop(13)).unwrap(); // mid-epoch 0 (25 batches an epoch)
    let resume = TrainOptions {
        resume: Some(Resume::Auto),
        ..stop(40)
    };
    train(&config2, &resume).unwrap();
    // The same weights: the same losses all along and the same evaluation of the last
    // checkpoint (a function of every weight; the files' bytes also hold metadata).
    let last = |run: &Path| {
        let c = checkpoint::list(run).pop().unwrap();
        assert!(c.ends_with("step-00000040"));
        let e = evaluate_checkpoint(&c, 3, 1, None).unwrap();
        (e.metrics.elbo, e.metrics.recon_mean, e.log_likelihood)
    };
    assert_eq!(
        last(&straight),
        last(&split),
        "resumed weights differ from the straight run"
    );
    // The losses of the last window, which began after the resume, agree too.
    let last_row = |run: &Path| {
        let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
        let row = text.lines().last().unwrap().to_string();
        row.rsplit_once(',').unwrap().0.to_string() // without the throughput, a timing
    };
    assert_eq!(last_row(&straight), last_row(&split));

    // The training file changes: its vocabulary no longer matches the run's.
    write(
        &data.join("train.txt"),
        topic_corpus(400, 9).replace("a5", "c5").as_bytes(),
    );
    let e = train(
        &config2,
        &TrainOptions {
            resume: Some(Resume::Auto),
            ..stop(50)
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("vocab.txt") && e.contains("vocabulary"), "{e}");
}

#[test]
fn the_language_model_baseline_has_no_latent() {
    let data = topic_data("lm");
    let run = tmp_dir("lm-run");
    let config = text_config(&data, &run, "kind = \"lm\"\n");
    train(&config, &TrainOptions::default()).unwrap();
    let loss = column(&run.join("metrics.csv"), "loss");
    assert!(loss[loss.len() - 1] < 0.9 * loss[0], "{loss:?}");
    for name in ["kl", "mi", "active_units"] {
        assert!(
            column(&run.join("eval.csv"), name)
                .iter()
                .all(|&v| v == 0.0),
            "{name}"
        );
    }
    // With no latent every importance weight is p(x): LL_K = -reconstruction for any K.
    let ckpt = checkpoint::list(&run).pop().unwrap();
    let k1 = evaluate_checkpoint(&ckpt, 1, 5, None).unwrap();
    let k7 = evaluate_checkpoint(&ckpt, 7, 5, None).unwrap();
    assert!((k1.log_likelihood - k7.log_likelihood).abs() < 1e-9);
    assert!((k1.log_likelihood - k1.metrics.elbo).abs() < 1e-4 * k1.metrics.elbo.abs());
    assert!(k1.perplexity.unwrap() > 1.0);
}

#[test]
fn text_and_image_keys_stay_in_their_kind() {
    let parse = |t: &str| {
        TrainConfig::parse(&format!("run_dir = \"r\"\n{t}"), Path::new("k.toml"))
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let base =
        "[kappa]\nschedule = \"constant\"\nvalue = 5.0\n[training]\nepochs = 1\nbatch_size = 8\n";
    let e = parse(
        "[data]\ndataset = \"mnist\"\n[model]\nkind = \"lm\"\nlatent_dim = 4\nhidden = [8]\n\
         [training]\nepochs = 1\nbatch_size = 8\n",
    );
    assert!(e.contains("\"lm\"") && e.contains("text"), "{e}");
    let e = parse(&format!(
        "[data]\ndataset = \"ptb\"\n[model]\nkind = \"lm\"\nlatent_dim = 4\nhidden = [8]\n{base}"
    ));
    assert!(e.contains("[kappa]") && e.contains("lm"), "{e}");
    let e = parse(&format!(
        "[data]\ndataset = \"mnist\"\n[model]\nlatent_dim = 4\nhidden = [8]\nword_dropout = 0.5\n{base}"
    ));
    assert!(
        e.contains("model.word_dropout") && e.contains("text"),
        "{e}"
    );
    let e = parse(&format!(
        "[data]\ndataset = \"ptb\"\nvalidation = 100\n[model]\nlatent_dim = 4\nhidden = [8]\n{base}"
    ));
    assert!(
        e.contains("data.validation") && e.contains("valid.txt"),
        "{e}"
    );
    let e = parse(&format!(
        "[data]\ndataset = \"ptb\"\n[model]\nlatent_dim = 4\nhidden = [8, 8]\n{base}"
    ));
    assert!(e.contains("model.hidden"), "{e}");
    let e = parse(&format!(
        "[data]\ndataset = \"text\"\n[model]\nlatent_dim = 4\nhidden = [8]\n{base}"
    ));
    assert!(e.contains("data.dir"), "{e}");
    let e = parse(&format!(
        "[data]\ndataset = \"ptb\"\n[model]\nlatent_dim = 4\nhidden = [8]\nword_dropout = 1.5\n{base}"
    ));
    assert!(e.contains("model.word_dropout = 1.5"), "{e}");
    let e = parse(&format!(
        "[data]\ndataset = \"ptb\"\n[model]\nlatent_dim = 4\nhidden = [8]\ndropout = 1.0\n{base}"
    ));
    assert!(e.contains("model.dropout = 1"), "{e}");
    let e = parse(&format!(
        "[data]\ndataset = \"mnist\"\n[model]\nlatent_dim = 4\nhidden = [8]\ndropout = 0.5\n{base}"
    ));
    assert!(e.contains("model.dropout") && e.contains("text"), "{e}");
    let e = parse(&format!(
        "[data]\ndataset = \"mnist\"\n[model]\nlatent_dim = 4\nhidden = [8]\ndecoder_from = \"x\"\n{base}"
    ));
    assert!(
        e.contains("model.decoder_from") && e.contains("text"),
        "{e}"
    );
    let e = parse(&format!(
        "[data]\ndataset = \"ptb\"\n[model]\nlatent_dim = 4\nhidden = [8]\nfreeze_decoder_steps = 5\n{base}"
    ));
    assert!(
        e.contains("model.freeze_decoder_steps") && e.contains("model.decoder_from"),
        "{e}"
    );
}

#[test]
fn sentences_train_with_a_kappa_per_example() {
    // The same loop, evaluation and latent measures with each sentence's own kappa.
    let data = topic_data("per-example");
    let run = tmp_dir("per-example-run");
    let kappa = "[kappa]\nschedule = \"per_example\"\ninit = 10.0\nmin = 1.0\nmax = 500.0\n";
    let mut config = text_config(&data, &run, kappa);
    config.training.epochs = 2;
    let s = train(&config, &TrainOptions::default()).unwrap();
    let loss = column(&run.join("metrics.csv"), "loss");
    assert!(loss[loss.len() - 1] < 0.8 * loss[0], "loss {loss:?}");
    let eval = run.join("eval.csv");
    let (lo, hi) = (
        column(&eval, "log_kappa_min"),
        column(&eval, "log_kappa_max"),
    );
    assert!(lo.iter().zip(&hi).all(|(a, b)| a < b), "{lo:?} {hi:?}");
    // The KL is each sentence's, averaged: no longer the constant of one kappa.
    let e = s.last_eval.unwrap();
    let spread = e.log_kappa.unwrap();
    assert!(
        (e.kl - vmf_core::kl_to_uniform(4, spread.mean.exp()).unwrap()).abs() > 1e-6,
        "{e:?}"
    );
    let mi = column(&eval, "mi");
    assert!(mi.iter().all(|m| m.is_finite() && *m > 0.0), "MI {mi:?}");
}

#[test]
fn exports_check_value_is_the_first_sentence_of_the_test_file() {
    // The evaluation sorts by length; the first test sentence is the longest here.
    let train = b"a b c d e\nb c\nc d e\n";
    let data = corpus("first", train, b"a b\n", b"a b c d e a b\nb\nc d\n");
    let config = text_config(&data, &tmp_dir("first-run"), VMF);
    let device = burn::tensor::Device::flex();
    let kind = Sentences::load(&config).unwrap();
    assert_ne!(
        kind.file_order(Split::Test).unwrap()[0],
        0,
        "a case where order matters"
    );
    device.seed(0);
    let model = kind.init_model(&config, &device);
    let first = vmf_train::export::first_location(&kind, &model, &device).unwrap();
    let set = &kind.splits().test;
    let alone = vmf_model::VaeModel::posterior(&model, &kind.batch(set, &[0], &device))
        .location()
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
    for (a, b) in first.iter().zip(&alone) {
        assert!((a - b).abs() < 1e-5, "{first:?} vs {alone:?}");
    }
}

/// The plateau schedule, read back from the run's own files: a learning rate too
/// large to keep improving, then a decay to ~0 at the first epoch without a better
/// validation ELBO. From there the weights stand still, so the deterministic part of
/// every later validation (the reconstruction at mu) repeats exactly; before it, it
/// moved. The state counts the decays the validation column implies.
#[test]
fn the_learning_rate_decays_when_the_validation_elbo_stalls() {
    let data = topic_data("decay");
    let run = tmp_dir("decay-run");
    let mut config = text_config(&data, &run, VMF);
    config.optimizer.lr = 0.3;
    config.optimizer.lr_decay = 1e-9;
    config.training.epochs = 8;
    train(&config, &TrainOptions::default()).unwrap();
    let elbo = column(&run.join("valid.csv"), "elbo");
    let at_mu = column(&run.join("valid.csv"), "recon_mean");
    // Independent of the loop's bookkeeping: epochs since the best, from the column.
    let (mut best, mut decays, mut first) = (f64::NEG_INFINITY, 0, None);
    for (e, &v) in elbo.iter().enumerate() {
        if v > best {
            best = v;
        } else {
            decays += 1; // lr_patience 1: every epoch without a better ELBO
            first.get_or_insert(e);
        }
    }
    let first = first.expect("lr = 0.3 stalls within 8 epochs: pick a larger lr");
    assert!(
        first + 1 < elbo.len(),
        "no epochs left after the decay: {elbo:?}"
    );
    for w in at_mu[first + 1..].windows(2) {
        assert_eq!(w[0], w[1], "weights moved after the decay: {at_mu:?}");
    }
    assert_ne!(
        at_mu[0], at_mu[1],
        "weights stood still before it: {at_mu:?}"
    );
    let last = checkpoint::list(&run).pop().unwrap();
    let state = checkpoint::load_state(&last).unwrap();
    assert_eq!(state.lr_decays, decays, "{elbo:?}");
}

#[path = "common/faults.rs"]
mod faults;

#[test]
fn a_text_run_survives_a_kill_at_every_write() {
    // Two epochs of four batches, a checkpoint every two, two kept, sample sentences and
    // the importance-sampled NLL: the vocabulary and every other write of a text run.
    let data = corpus(
        "faults-data",
        topic_corpus(64, 1).as_bytes(),
        topic_corpus(16, 2).as_bytes(),
        topic_corpus(16, 3).as_bytes(),
    );
    let work = tmp_dir("faults");
    let mut config = text_config(&data, &work.join("unused"), VMF);
    config.training.epochs = 2;
    config.training.log_every = 1;
    config.training.images = true;
    config.training.eval_samples = 2;
    config.checkpoint.every_steps = 2;
    config.checkpoint.keep = 2;
    let writes = faults::every_write_survives_a_kill(&work, &config.to_toml());
    // config.toml and vocab.txt (2 each), 8 rows, 4 checkpoints of 4 and 2 prunings,
    // 2 x (eval, valid, sentences x 2): 38 today.
    assert!(writes >= 30, "only {writes} writes were seen");
}

/// Every float parameter a visit meets, in its order.
struct Values(Vec<Vec<f32>>);

impl burn::module::ModuleVisitor for Values {
    fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<burn::tensor::Tensor<D>>) {
        let v = p
            .val()
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap();
        self.0.push(v);
    }
}

/// A checkpoint's pretrained-decoder parameters and all its parameters.
fn weights(ckpt: &Path) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    use burn::module::Module;
    let device = burn::tensor::Device::flex();
    let opened = checkpoint::open(ckpt).unwrap();
    let (_, model) = Sentences::from_checkpoint(&opened, &opened.config, &device).unwrap();
    let (mut decoder, mut all) = (Values(Vec::new()), Values(Vec::new()));
    vmf_model::VaeModel::visit_pretrained_decoder(&model, &mut decoder);
    model.visit(&mut all);
    (decoder.0, all.0)
}

#[test]
fn a_vae_starts_from_a_language_models_decoder_and_holds_it_while_its_encoder_learns() {
    use vmf_model::VaeModel;
    let data = topic_data("pretrain");
    let lm_run = tmp_dir("pretrain-lm");
    let mut lm = text_config(&data, &lm_run, "kind = \"lm\"\n");
    lm.training.epochs = 1;
    train(&lm, &TrainOptions::default()).unwrap();
    let lm_ckpt = checkpoint::list(&lm_run).pop().unwrap();
    let (lm_decoder, _) = weights(&lm_ckpt);

    let run = tmp_dir("pretrain-vae");
    let from = |path: &Path, freeze: u64| {
        format!(
            "decoder_from = \"{}\"\nfreeze_decoder_steps = {freeze}\n{VMF}",
            path.display()
        )
    };
    let mut config = text_config(&data, &run, &from(&lm_ckpt, 6));
    config.checkpoint.every_steps = 3;

    // At the start the VAE is the language model: z's layers are zero, so its
    // -log p(x | z) is the LM's own for any z.
    let device = burn::tensor::Device::flex();
    let kind = Sentences::load(&config).unwrap();
    let vae = kind
        .with_decoder_from(kind.init_model(&config, &device), &lm_ckpt, &device)
        .unwrap();
    let opened = checkpoint::open(&lm_ckpt).unwrap();
    let (_, lm_model) = Sentences::from_checkpoint(&opened, &opened.config, &device).unwrap();
    let ids: Vec<usize> = (0..20).collect();
    let batch = kind.batch(&kind.splits().test, &ids, &device);
    let z = burn::tensor::Tensor::<2>::random(
        [20, 4],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let read = |t: burn::tensor::Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
    let ours = read(vae.neg_log_likelihood(&batch, z.clone()));
    let theirs = read(lm_model.neg_log_likelihood(&batch, z.zeros_like()));
    for (a, b) in ours.iter().zip(&theirs) {
        assert!((a - b).abs() <= 1e-5 * b.abs(), "{ours:?} vs {theirs:?}");
    }

    // Frozen for 6 steps: the checkpoints at steps 3 and 6 hold the LM's decoder bit
    // for bit while the other parameters (encoder, heads, z's layers) move.
    let stop = |n| TrainOptions {
        stop_at_step: Some(n),
        resume: Some(Resume::Auto),
        ..TrainOptions::default()
    };
    train(&config, &stop(6)).unwrap();
    let at = |step: &str| weights(&checkpoint::dir(&run).join(step));
    let (d3, all3) = at("step-00000003");
    let (d6, all6) = at("step-00000006");
    assert!(
        d3 == lm_decoder && d6 == lm_decoder,
        "the frozen decoder moved"
    );
    assert!(all3 != all6, "nothing but the decoder should be frozen");
    // Released after step 6: the decoder learns too, with the LM's Adam moments. Fresh
    // moments would move every weight with a gradient by exactly the learning rate on
    // its first step (Adam's bias-corrected m / sqrt(v) is +-1 there); the LM's,
    // accumulated over its 25 steps, move most by less.
    config.checkpoint.every_steps = 1;
    train(&config, &stop(7)).unwrap();
    let moved: Vec<f32> = at("step-00000007")
        .0
        .iter()
        .flatten()
        .zip(lm_decoder.iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .filter(|d| *d > 0.0)
        .collect();
    let at_lr = moved.iter().filter(|d| (**d - 5e-3).abs() < 5e-5).count();
    assert!(!moved.is_empty(), "the decoder stayed frozen");
    assert!(
        at_lr * 4 < moved.len(),
        "{at_lr} of {} moved weights moved by the learning rate: fresh moments",
        moved.len()
    );

    // A checkpoint of another vocabulary, or none, is refused by name (the keys'
    // validation: text_and_image_keys_stay_in_their_kind).
    let vocab = lm_run.join("vocab.txt");
    let words = std::fs::read_to_string(&vocab).unwrap();
    write(&vocab, words.replace("a5", "c5").as_bytes());
    let fresh = |extra: &str, name: &str| {
        let c = text_config(&data, &tmp_dir(name), extra);
        train(&c, &TrainOptions::default()).unwrap_err().to_string()
    };
    let e = fresh(&from(&lm_ckpt, 0), "pretrain-vocab");
    assert!(
        e.contains("model.decoder_from") && e.contains("vocab.txt"),
        "{e}"
    );
    write(&vocab, words.as_bytes());
    let e = fresh(
        &from(&lm_run.join("checkpoints/step-99"), 0),
        "pretrain-gone",
    );
    assert!(
        e.contains("model.decoder_from") && e.contains("step-99"),
        "{e}"
    );
}

#[test]
fn sentences_train_with_the_power_spherical() {
    // model.kind = "power_spherical" for text: the same loop and measures, its own KL.
    let data = topic_data("power-spherical");
    let run = tmp_dir("power-spherical-run");
    let mut config = text_config(&data, &run, &format!("kind = \"power_spherical\"\n{VMF}"));
    config.training.epochs = 2;
    train(&config, &TrainOptions::default()).unwrap();
    let loss = column(&run.join("metrics.csv"), "loss");
    assert!(loss[loss.len() - 1] < 0.8 * loss[0], "loss {loss:?}");
    let eval = run.join("eval.csv");
    let want = vmf_core::Family::PowerSpherical.kl(4, 10.0).unwrap();
    assert!(
        column(&eval, "kl")
            .iter()
            .all(|k| (k - want).abs() < 1e-5 * want)
    );
    let mi = column(&eval, "mi");
    assert!(mi.iter().all(|m| m.is_finite() && *m > 0.0), "MI {mi:?}");
}

#[cfg(feature = "mpi")]
#[allow(dead_code)]
#[path = "common/mpi.rs"]
mod mpi;

/// Text through two MPI ranks: bit for bit the run of one process with two shards
/// (weights, Adam moments, CSVs, decoded sentences).
#[cfg(feature = "mpi")]
#[test]
fn two_mpi_ranks_train_text_as_two_shards() {
    if !mpi::available() {
        return;
    }
    let data = topic_data("mpi");
    let work = tmp_dir("mpi-text");
    std::fs::create_dir_all(&work).unwrap();
    let write_config = |shards: usize| {
        let mut config = text_config(&data, Path::new("unused"), VMF);
        config.training.epochs = 2;
        config.training.shards = shards;
        let path = work.join(format!("shards-{shards}.toml"));
        std::fs::write(&path, config.to_toml()).unwrap();
        path
    };
    let (per_rank, one) = (write_config(1), write_config(2));
    mpi::one_process_and_two_ranks(&work, &per_rank, &one, true);
    let _ = std::fs::remove_dir_all(&work);
}
