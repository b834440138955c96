//! `export --checkpoint DIR --out model.safetensors`: a checkpoint's model as
//! safetensors, for other stacks (tensor names and layout: `vmf_train::export`).
//! Prints one JSON line with the first test example's posterior location, a value
//! to check a reader against (`scripts/safetensors_mu.py` does).

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "export",
    version,
    about = "Write a checkpoint's model as a safetensors file"
)]
struct Cli {
    /// Checkpoint folder (RUN/checkpoints/step-N).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Output file (replaced if it exists).
    #[arg(long)]
    out: PathBuf,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    vmf_train::keep_freed_memory();
    vmf_train::cpu::flush_denormals();
    let run = || -> Result<(), vmf_train::TrainError> {
        let e = vmf_train::export::export_checkpoint(&cli.checkpoint, &cli.out)?;
        eprintln!("wrote {}", cli.out.display());
        println!(
            "{}",
            serde_json::json!({"file": cli.out, "first_test_location": e.first_location})
        );
        Ok(())
    };
    vmf_train::error::exit_code(run())
}
