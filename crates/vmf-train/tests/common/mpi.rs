//! Runs of the `train` binary on several MPI ranks (`mpirun`, Open MPI) against runs of
//! one process, compared file by file (`faults::tree`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::faults;

/// Whether `mpirun` can be started; under CI it must (`.ci/run` installs Open MPI).
pub fn available() -> bool {
    let found = Command::new("mpirun")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "mpirun not found: .ci/run installs openmpi-bin"
        );
        eprintln!("skipped: no mpirun (apt-get install openmpi-bin libopenmpi-dev)");
    }
    found
}

/// `mpirun` for `ranks` processes on this machine, as root if need be, without binding
/// each rank to one core (a rank's shards run on threads of their own).
pub fn mpirun(ranks: usize) -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.args(["--oversubscribe", "--bind-to", "none", "-np"])
        .arg(ranks.to_string())
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env_remove(vmf_train::durable::FAULT_VAR);
    cmd
}

/// `train --config CONFIG --run-dir RUN [ARGS]` as arguments.
pub fn train_args(config: &Path, run: &Path, args: &[&str]) -> Vec<String> {
    let mut out = vec![
        env!("CARGO_BIN_EXE_train").to_string(),
        "--config".into(),
        config.display().to_string(),
        "--run-dir".into(),
        run.display().to_string(),
    ];
    out.extend(args.iter().map(|a| a.to_string()));
    out
}

/// One process: `train` with the arguments of [`train_args`].
pub fn train(config: &Path, run: &Path, args: &[&str]) -> Output {
    let a = train_args(config, run, args);
    Command::new(&a[0])
        .args(&a[1..])
        .env_remove(vmf_train::durable::FAULT_VAR)
        .output()
        .expect("the train binary runs")
}

/// `ranks` processes under `mpirun`.
pub fn train_ranks(ranks: usize, config: &Path, run: &Path, args: &[&str]) -> Output {
    mpirun(ranks)
        .args(train_args(config, run, args))
        .output()
        .expect("mpirun runs")
}

/// The run folder as [`faults::tree`] reads it, less config.toml, which names the
/// shards per process (the one thing the configs of equal runs here differ in).
pub fn tree(run: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut t = faults::tree(run);
    t.remove(Path::new("config.toml"));
    t
}

/// Asserts that two run folders hold the same files with the same contents.
pub fn assert_same_run(got: &Path, want: &Path) {
    let (g, w) = (tree(got), tree(want));
    let (a, b): (Vec<_>, Vec<_>) = (g.keys().collect(), w.keys().collect());
    assert_eq!(a, b, "{} against {}", got.display(), want.display());
    for (f, bytes) in &w {
        assert!(
            &g[f] == bytes,
            "{} differs between {} and {}",
            f.display(),
            got.display(),
            want.display()
        );
    }
}

/// Trains `one` (a config with two shards) in one process into `work/one-process`,
/// and, unless `ranks_too` is false, `per_rank` (the same with one shard) on two ranks
/// into `work/two-ranks`; asserts that both succeed, that rank 0 alone prints the
/// summary and that the two run folders are equal. Returns the one-process folder.
pub fn one_process_and_two_ranks(
    work: &Path,
    per_rank: &Path,
    one: &Path,
    ranks_too: bool,
) -> PathBuf {
    let want = work.join("one-process");
    let o = train(one, &want, &[]);
    assert!(o.status.success(), "{}", said(&o));
    if ranks_too {
        let ranks = work.join("two-ranks");
        let o = train_ranks(2, per_rank, &ranks, &[]);
        assert!(o.status.success(), "{}", said(&o));
        assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1);
        assert_same_run(&ranks, &want);
    }
    want
}

/// Stderr and stdout of a finished command, for messages.
pub fn said(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    )
}

/// The process id of rank `rank` among the children of `mpirun` (Open MPI starts the
/// ranks of one machine as its children, each with `OMPI_COMM_WORLD_RANK` set).
fn rank_pid(mpirun: &Child, rank: usize) -> Option<u32> {
    let want = format!("OMPI_COMM_WORLD_RANK={rank}");
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The parent is the fourth field, after the parenthesised command name.
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if parent != Some(mpirun.id()) {
            continue;
        }
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if env.split(|&b| b == 0).any(|v| v == want.as_bytes()) {
            return Some(pid);
        }
    }
    None
}

/// Starts `ranks` processes on `run`, kills rank `victim` with SIGKILL once the run's
/// first checkpoint exists, and returns mpirun's output: the job must end (no rank
/// left waiting for the dead one) within a minute.
pub fn kill_a_rank(ranks: usize, victim: usize, config: &Path, run: &Path) -> Output {
    let mut child = mpirun(ranks)
        .args(train_args(config, run, &[]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun runs");
    let start = Instant::now();
    let first = loop {
        let saved = vmf_train::checkpoint::list(run);
        if !saved.is_empty() {
            break saved;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the job ended ({status}) before its first checkpoint");
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no checkpoint");
        std::thread::sleep(Duration::from_millis(1));
    };
    let pid = rank_pid(&child, victim).expect("the victim rank is a child of mpirun");
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the job hangs after its rank {victim} was killed (first checkpoint: {first:?})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}
