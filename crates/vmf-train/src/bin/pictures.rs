//! `pictures <sample|reconstruct|interpolate|latent> --checkpoint DIR --out FILE.png`
//! (a text checkpoint: sentences, to `--out FILE` or stdout),
//! `pictures curves --checkpoint DIR --out FILE.svg` (the run's loss curves),
//! `pictures collapse --runs RUN,RUN --out FILE.svg` (KL and MI of several runs)

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vmf_train::modality::view::View;
use vmf_train::views::show_checkpoint;

#[derive(Parser)]
#[command(
    name = "pictures",
    version,
    about = "Pictures of a trained checkpoint (PNG; sentences for a text model) and its \
             run's loss curves (SVG)"
)]
struct Cli {
    /// Checkpoint folder (RUN/checkpoints/step-N).
    #[arg(long, global = true)]
    checkpoint: Option<PathBuf>,
    /// Output file (PNG; SVG for `curves` and `collapse`; text for a text model's
    /// sentences, which go to stdout without it).
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// A grid decoded from prior samples (uniform on the sphere, or N(0, I)); text:
    /// `side` prior draws, each decoded greedily and sampled at `--temperature`.
    Sample {
        /// Grid side (text: number of draws).
        #[arg(long, default_value_t = 10)]
        side: usize,
        /// Seed of the samples.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Text: the softmax temperature of the sampled sentences.
        #[arg(long, default_value_t = 1.0)]
        temperature: f64,
    },
    /// Test images above their reconstructions at the posterior's location (text: test
    /// sentences over their greedy decodings).
    Reconstruct {
        /// Number of test images (sentences).
        #[arg(short = 'n', default_value_t = 30)]
        n: usize,
    },
    /// Paths between the posterior locations of pairs of test images (great
    /// circles for vMF, straight lines for the Gaussian); text: one decoded sentence
    /// per point.
    Interpolate {
        /// Number of pairs (rows).
        #[arg(long, default_value_t = 8)]
        pairs: usize,
        /// Points per path (columns).
        #[arg(long, default_value_t = 10)]
        steps: usize,
    },
    /// The test set's posterior locations coloured by label (vMF with d = 3: the
    /// sphere from both sides; otherwise two principal components).
    Latent {
        /// Number of test images.
        #[arg(short = 'n', default_value_t = 5000)]
        n: usize,
    },
    /// The -ELBO (train, test, validation) and KL of the checkpoint's run against
    /// the step, from its CSV files (SVG).
    Curves,
    /// The KL-collapse plot of several runs: training KL and test-set mutual
    /// information against the step (SVG; no --checkpoint).
    Collapse {
        /// Run folders, comma-separated (e.g. runs/ptb,runs/ptb-gaussian).
        #[arg(long, value_delimiter = ',', required = true)]
        runs: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    vmf_train::keep_freed_memory();
    vmf_train::cpu::flush_denormals();
    let run = || -> Result<(), String> {
        let need_out = || cli.out.clone().ok_or("--out is required");
        if let What::Collapse { runs } = &cli.what {
            let out = need_out()?;
            let dirs: Vec<&std::path::Path> = runs.iter().map(PathBuf::as_path).collect();
            vmf_train::curves::collapse_curves(&dirs, &out).map_err(|e| e.to_string())?;
            eprintln!("wrote {}", out.display());
            return Ok(());
        }
        let ckpt = cli.checkpoint.clone().ok_or("--checkpoint is required")?;
        if let What::Curves = cli.what {
            let out = need_out()?;
            // RUN/checkpoints/step-N -> RUN
            let run_dir = ckpt
                .parent()
                .and_then(|p| p.parent())
                .ok_or("--checkpoint must be a folder RUN/checkpoints/step-N")?;
            vmf_train::curves::loss_curves(run_dir, &out).map_err(|e| e.to_string())?;
            eprintln!("wrote {}", out.display());
            return Ok(());
        }
        let view = match cli.what {
            What::Sample {
                side,
                seed,
                temperature,
            } => View::Sample {
                side,
                seed,
                temperature,
            },
            What::Reconstruct { n } => View::Reconstruct { n },
            What::Interpolate { pairs, steps } => View::Interpolate { pairs, steps },
            What::Latent { n } => View::Latent { n },
            What::Curves | What::Collapse { .. } => unreachable!("handled above"),
        };
        show_checkpoint(&ckpt, view, cli.out.as_deref()).map_err(|e| e.to_string())?;
        if let Some(out) = &cli.out {
            eprintln!("wrote {}", out.display());
        }
        Ok(())
    };
    vmf_train::error::exit_code(run())
}
