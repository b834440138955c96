//! Fault injection over every write of a short run: for each k the `train` binary is
//! aborted in the middle of its k-th write (`VMF_FAULT_AT_WRITE`, see
//! `vmf_train::durable`), then continued with `--resume auto` (itself killed once at one
//! of its first writes, and continued again), and the run folder it ends with must
//! equal that of an uninterrupted run, file by file (see `tree` for what is compared).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

fn train(config: &Path, run_dir: &Path, resume: bool, fault_at: Option<usize>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_train"));
    cmd.arg("--config")
        .arg(config)
        .arg("--run-dir")
        .arg(run_dir);
    if resume {
        cmd.args(["--resume", "auto"]);
    }
    cmd.env_remove(vmf_train::durable::FAULT_VAR);
    if let Some(k) = fault_at {
        cmd.env(vmf_train::durable::FAULT_VAR, k.to_string());
    }
    cmd.output().expect("the train binary runs")
}

/// Every file under `dir` by relative path, less what differs between any two processes
/// of one run: metrics.csv's last column (the throughput, a timing), the run folder's
/// own path in config.toml, and the layout of Burn's records (compared by their
/// tensors, metadata and scalars) with their checksums in state.json. Every weight,
/// every moment of the optimiser and every other byte counts.
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
                continue;
            }
            let mut bytes = std::fs::read(&p).unwrap();
            let lines = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
            match p.file_name().unwrap().to_str().unwrap() {
                "metrics.csv" => {
                    let text = lines(bytes);
                    let cut: Vec<&str> = text
                        .lines()
                        .map(|l| l.rsplit_once(',').unwrap().0)
                        .collect();
                    bytes = cut.join("\n").into_bytes();
                }
                "config.toml" => {
                    let root = root.to_str().unwrap();
                    bytes = lines(bytes).replace(root, "RUN").into_bytes();
                }
                "state.json" => {
                    let text = lines(bytes);
                    let kept: Vec<&str> = text.lines().filter(|l| !l.contains("_sha256")).collect();
                    bytes = kept.join("\n").into_bytes();
                }
                n if n.ends_with(".bpk") => {
                    // By content: the optimiser's record lays its tensors out in the
                    // order of a hash map, which differs from process to process.
                    let r = burn_pack::Reader::from_file(&p).unwrap();
                    let mut names: Vec<String> =
                        r.tensor_names().into_iter().map(String::from).collect();
                    names.sort();
                    bytes = format!("{:?}\n{:?}\n", r.metadata(), r.scalars()).into_bytes();
                    for n in names {
                        bytes.extend(n.as_bytes());
                        bytes.extend(r.tensor_data(&n).unwrap());
                    }
                }
                _ => {}
            }
            out.insert(p.strip_prefix(root).unwrap().to_path_buf(), bytes);
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs the config `config_text` uninterrupted into `work/full`, then, for every write
/// k of that run, aborted at write k and resumed into `work/k`; asserts that each ends
/// as the uninterrupted run did. Returns how many writes a run makes.
pub fn every_write_survives_a_kill(work: &Path, config_text: &str) -> usize {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).unwrap();
    let config = work.join("config.toml");
    std::fs::write(&config, config_text).unwrap();
    let full = work.join("full");
    let o = train(&config, &full, false, None);
    assert!(
        o.status.success(),
        "the uninterrupted run failed: {}",
        text(&o)
    );
    let want = tree(&full);

    // Two at a time (two cores); k runs until a run makes fewer than k writes.
    let next = AtomicUsize::new(1);
    let writes = Mutex::new(usize::MAX);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k > *writes.lock().unwrap() {
                        break;
                    }
                    let dir = work.join(k.to_string());
                    let killed = train(&config, &dir, false, Some(k));
                    if killed.status.success() {
                        // Fewer than k writes: k - 1 is the run's count.
                        let mut w = writes.lock().unwrap();
                        *w = (*w).min(k - 1);
                        break;
                    }
                    let err = text(&killed);
                    if !err.contains("fault injection") {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("write {k}: not aborted by the hook: {err}"));
                        continue;
                    }
                    // The resume's own writes (repairing the CSVs, clearing left-overs)
                    // can be killed too: the first resume dies at its j-th write, j
                    // cycling over 1..=4 with k; a second one finishes the run.
                    let j = 1 + k % 4;
                    let again = train(&config, &dir, true, Some(j));
                    let resumed = if again.status.success() {
                        again
                    } else {
                        train(&config, &dir, true, None)
                    };
                    if !resumed.status.success() {
                        let why = err.lines().last().unwrap_or_default().to_string();
                        let said = text(&resumed);
                        failures.lock().unwrap().push(format!(
                            "write {k} ({why}), then write {j} of the resume: --resume auto \
                             failed: {}",
                            said.lines().last().unwrap_or_default()
                        ));
                        continue;
                    }
                    let got = tree(&dir);
                    let (a, b): (Vec<_>, Vec<_>) = (got.keys().collect(), want.keys().collect());
                    if a != b {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("write {k}: files {a:?}, want {b:?}"));
                    } else if let Some(f) = want.keys().find(|f| got[*f] != want[*f]) {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("write {k}: {} differs", f.display()));
                    } else {
                        let _ = std::fs::remove_dir_all(&dir);
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} kills not survived:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let _ = std::fs::remove_dir_all(work);
    writes.into_inner().unwrap()
}
