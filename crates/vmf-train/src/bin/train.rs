//! `train --config mnist.toml [--resume auto|PATH] [--force]`
//!
//! Under `mpirun -np N` (a build with the `mpi` feature) the N processes train one run
//! together (`vmf_train::ranks`); rank 0 prints the summary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use vmf_train::backend::Backend;
use vmf_train::ranks::Ranks;
use vmf_train::{Resume, TrainConfig, TrainOptions, train};

#[derive(Parser)]
#[command(name = "train", version, about = "Train a vMF-VAE")]
struct Cli {
    /// Config file; a bare name not found here is looked up in configs/.
    #[arg(long)]
    config: PathBuf,
    /// Resume: `auto` (newest valid checkpoint of the run folder) or a checkpoint folder.
    #[arg(long)]
    resume: Option<String>,
    /// Resume even from a checkpoint written under a different config.
    #[arg(long)]
    force: bool,
    /// Override the run folder of the config.
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Stop (with a checkpoint) after this many steps in total.
    #[arg(long)]
    max_steps: Option<u64>,
    /// Backend, among those compiled in: flex, ndarray, wgpu (default: the CPU one).
    #[arg(long)]
    backend: Option<String>,
}

fn main() -> ExitCode {
    vmf_train::keep_freed_memory();
    let cli = Cli::parse();
    let backend = match cli.backend.as_deref().map(Backend::parse).transpose() {
        Ok(b) => b,
        Err(e) => return vmf_train::error::exit_code(Err(e)),
    };
    // SAFETY: no thread has been spawned yet (MPI's and rayon's start below).
    unsafe {
        vmf_train::backend::pin_default_device(backend.unwrap_or_else(Backend::default_compiled))
    };
    let (ranks, _mpi) = match Ranks::from_launcher() {
        Ok(r) => r,
        Err(e) => return vmf_train::error::exit_code(Err(e)),
    };
    let run = || -> Result<(), vmf_train::TrainError> {
        let mut config = TrainConfig::load(&cli.config)?;
        if let Some(dir) = cli.run_dir.clone() {
            config.run_dir = dir;
        }
        let opts = TrainOptions {
            resume: cli.resume.as_deref().map(|r| {
                if r == "auto" {
                    Resume::Auto
                } else {
                    Resume::Path(r.into())
                }
            }),
            force: cli.force,
            stop_at_step: cli.max_steps,
            progress: true,
            backend,
            ranks,
        };
        eprintln!("{}", vmf_train::cpu::flush_denormals());
        let s = train(&config, &opts)?;
        let mut summary = serde_json::json!({
            "steps": s.steps,
            "test": s.last_eval,
            "peak_rss_mib": peak_rss_mib(),
            "best_checkpoint": s.best_checkpoint,
        });
        summary[format!("{}_per_sec", s.units)] = s.units_per_sec.into();
        if ranks.is_root() {
            println!("{summary}");
        }
        Ok(())
    };
    let result = run();
    if ranks.size() > 1
        && let Err(e) = &result
    {
        // The other ranks may be waiting for this one in a collective: end them all.
        eprintln!("error: rank {}: {e:#}", ranks.rank());
        ranks.abort(1);
    }
    vmf_train::error::exit_code(result)
}

/// The process's peak resident memory (Linux's VmHWM), for the benchmark suite.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}
