//! `vmf`: the vMF numerics from the command line (KL, kappa for a KL budget, samples).
//! Data goes to stdout; errors go to stderr with a non-zero exit.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::StdRng;
use vmf_core::{
    HostSampler, QuantileGradient, QuantileTable, VmfStats, kappa_for_kl, kl_derivative,
    mean_w_derivative,
};

#[derive(Parser)]
#[command(
    name = "vmf",
    version,
    about = "von Mises-Fisher numerics on S^(d-1) (2 <= d <= 4096, 0 <= kappa <= 1e5)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The distribution: vMF(., kappa) on S^(dim-1).
#[derive(Args)]
struct Dist {
    /// Ambient dimension d (the sphere is S^(d-1)).
    #[arg(long)]
    dim: usize,
    /// Concentration kappa.
    #[arg(long, allow_negative_numbers = true)]
    kappa: f64,
}

/// How many draws, from which seed.
#[derive(Args)]
struct Draws {
    /// Number of samples.
    #[arg(short = 'n')]
    n: usize,
    /// RNG seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl Dist {
    fn sampler(&self) -> vmf_core::Result<HostSampler> {
        Ok(HostSampler::new(QuantileTable::new(self.dim, self.kappa)?))
    }
}

impl Draws {
    fn rng(&self) -> StdRng {
        StdRng::seed_from_u64(self.seed)
    }
}

#[derive(Subcommand)]
enum Command {
    /// KL(vMF(mu, kappa) || uniform), A_d = `E[<mu, z>]`, log C_d(kappa), and the
    /// kappa-derivatives of the KL and of A_d.
    Kl {
        #[command(flatten)]
        dist: Dist,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The kappa whose KL equals a budget in nats.
    Kappa {
        /// Ambient dimension d.
        #[arg(long)]
        dim: usize,
        /// KL budget in nats.
        #[arg(long, allow_negative_numbers = true)]
        kl: f64,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Samples of w = <mu, z> from the quantile table, one per line.
    SampleW {
        #[command(flatten)]
        dist: Dist,
        #[command(flatten)]
        draws: Draws,
        /// Print `w,dw_dkappa` per line: the sample and its exact kappa-derivative at
        /// its probability (the uniforms depend on the seed only, not on kappa).
        #[arg(long)]
        grad: bool,
    },
    /// Points z ~ vMF(mu, kappa), one comma-separated row per line.
    Sample {
        #[command(flatten)]
        dist: Dist,
        #[command(flatten)]
        draws: Draws,
        /// Mean direction, comma-separated (normalised before use).
        #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
        mu: Vec<f64>,
    },
}

fn main() -> ExitCode {
    vmf_train::error::exit_code(run(Cli::parse()))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut out = BufWriter::new(std::io::stdout().lock());
    match cli.command {
        Command::Kl {
            dist: Dist { dim, kappa },
            json,
        } => {
            let s = VmfStats::new(dim, kappa)?;
            let (dkl, dmean) = (kl_derivative(dim, kappa)?, mean_w_derivative(dim, kappa)?);
            if json {
                let v = serde_json::json!({"dim": dim, "kappa": kappa, "kl": s.kl,
                    "mean_w": s.mean_w, "log_normaliser": s.log_normaliser,
                    "dkl_dkappa": dkl, "dmean_w_dkappa": dmean});
                writeln!(out, "{v}")?;
            } else {
                writeln!(
                    out,
                    "kl {:e}\nmean_w {:e}\nlog_normaliser {:e}\ndkl_dkappa {dkl:e}\n\
                     dmean_w_dkappa {dmean:e}",
                    s.kl, s.mean_w, s.log_normaliser
                )?;
            }
        }
        Command::Kappa { dim, kl, json } => {
            let kappa = kappa_for_kl(dim, kl)?;
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"dim": dim, "kl": kl, "kappa": kappa})
                )?;
            } else {
                writeln!(out, "{kappa:e}")?;
            }
        }
        Command::SampleW { dist, draws, grad } => {
            let (sampler, mut rng) = (dist.sampler()?, draws.rng());
            let gradient = grad
                .then(|| QuantileGradient::new(dist.dim, dist.kappa))
                .transpose()?;
            for _ in 0..draws.n {
                // One uniform per line, as sample_w draws it.
                let theta = sampler.table().theta_at(rng.random::<f64>());
                match &gradient {
                    None => writeln!(out, "{:e}", theta.cos())?,
                    Some(g) => writeln!(out, "{:e},{:e}", theta.cos(), g.dw_dkappa(theta))?,
                }
            }
        }
        Command::Sample { dist, draws, mu } => {
            let (sampler, mut rng) = (dist.sampler()?, draws.rng());
            for _ in 0..draws.n {
                let z = sampler.sample_z(&mut rng, &mu)?;
                let row: Vec<String> = z.iter().map(|x| format!("{x:e}")).collect();
                writeln!(out, "{}", row.join(","))?;
            }
        }
    }
    out.flush()?;
    Ok(())
}
