//! `vmf`: the numerics of the hyperspherical families from the command line (KL, kappa
//! for a KL budget, samples): the vMF, or with `--family power-spherical` the Power
//! Spherical. Data goes to stdout; errors go to stderr with a non-zero exit.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::StdRng;
use vmf_core::{DEFAULT_TABLE_SIZE, Family, HostSampler, QuantileGradient, QuantileTable};

#[derive(Parser)]
#[command(
    name = "vmf",
    version,
    about = "von Mises-Fisher and Power Spherical numerics on S^(d-1) (2 <= d <= 4096, \
             0 <= kappa <= 1e5)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The family (`--family`).
#[derive(Clone, Copy, ValueEnum)]
enum FamilyArg {
    /// von Mises-Fisher: density proportional to exp(kappa <mu, z>).
    Vmf,
    /// Power Spherical: density proportional to (1 + <mu, z>)^kappa.
    PowerSpherical,
}

impl From<FamilyArg> for Family {
    fn from(f: FamilyArg) -> Self {
        match f {
            FamilyArg::Vmf => Family::Vmf,
            FamilyArg::PowerSpherical => Family::PowerSpherical,
        }
    }
}

/// The distribution: the family's (., kappa) on S^(dim-1).
#[derive(Args)]
struct Dist {
    /// Ambient dimension d (the sphere is S^(d-1)).
    #[arg(long)]
    dim: usize,
    /// Concentration kappa.
    #[arg(long, allow_negative_numbers = true)]
    kappa: f64,
    /// The family.
    #[arg(long, value_enum, default_value = "vmf")]
    family: FamilyArg,
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
        let family = self.family.into();
        Ok(HostSampler::new(QuantileTable::of(
            family,
            self.dim,
            self.kappa,
            DEFAULT_TABLE_SIZE,
        )?))
    }
}

impl Draws {
    fn rng(&self) -> StdRng {
        StdRng::seed_from_u64(self.seed)
    }
}

#[derive(Subcommand)]
enum Command {
    /// KL(q(mu, kappa) || uniform), `E[<mu, z>]` (A_d for the vMF), the log
    /// normaliser, and the kappa-derivatives of the KL and of `E[<mu, z>]`.
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
        /// The family.
        #[arg(long, value_enum, default_value = "vmf")]
        family: FamilyArg,
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
    /// Points z ~ q(mu, kappa), one comma-separated row per line.
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
            dist: Dist { dim, kappa, family },
            json,
        } => {
            let s = Family::from(family).stats(dim, kappa)?;
            let (dkl, dmean) = (s.dkl_dkappa, s.dmean_w_dkappa);
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
        Command::Kappa {
            dim,
            kl,
            family,
            json,
        } => {
            let kappa = Family::from(family).kappa_for_kl(dim, kl)?;
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
                .then(|| QuantileGradient::of(dist.family.into(), dist.dim, dist.kappa))
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
