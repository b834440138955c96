//! `pictures <sample|reconstruct|interpolate|latent> --checkpoint DIR --out FILE.png`

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vmf_train::pictures::Pictures;

#[derive(Parser)]
#[command(
    name = "pictures",
    version,
    about = "PNG pictures of a trained vMF-VAE checkpoint"
)]
struct Cli {
    /// Checkpoint folder (RUN/checkpoints/step-N).
    #[arg(long, global = true)]
    checkpoint: Option<PathBuf>,
    /// Output PNG file.
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// A grid decoded from uniform samples on the sphere.
    Sample {
        /// Grid side.
        #[arg(long, default_value_t = 10)]
        side: usize,
        /// Seed of the samples.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Test images above their reconstructions at z = mu.
    Reconstruct {
        /// Number of test images.
        #[arg(short = 'n', default_value_t = 30)]
        n: usize,
    },
    /// Great-circle paths between the mu of pairs of test images.
    Interpolate {
        /// Number of pairs (rows).
        #[arg(long, default_value_t = 8)]
        pairs: usize,
        /// Points per path (columns).
        #[arg(long, default_value_t = 10)]
        steps: usize,
    },
    /// The test set's mu coloured by label (d = 3: the sphere from both sides).
    Latent {
        /// Number of test images.
        #[arg(short = 'n', default_value_t = 5000)]
        n: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let run = || -> Result<(), String> {
        let ckpt = cli.checkpoint.clone().ok_or("--checkpoint is required")?;
        let out = cli.out.clone().ok_or("--out is required")?;
        let p = Pictures::open(&ckpt).map_err(|e| e.to_string())?;
        match cli.what {
            What::Sample { side, seed } => p.sample(&out, side, seed),
            What::Reconstruct { n } => p.reconstruct(&out, n),
            What::Interpolate { pairs, steps } => p.interpolate(&out, pairs, steps),
            What::Latent { n } => p.latent(&out, n),
        }
        .map_err(|e| e.to_string())?;
        eprintln!("wrote {}", out.display());
        Ok(())
    };
    vmf_train::error::exit_code(run())
}
