//! `eval --checkpoint RUN/checkpoints/step-N [--samples 500] [--seed 0]`: test-set
//! reconstruction, KL, ELBO and the importance-sampled log-likelihood of a checkpoint.
//! Writes the figures to `eval-kK-seedS.json` in the checkpoint folder and each test
//! example's log p(x), in the test file's order, to `eval-kK-seedS-examples.csv` beside
//! it (`scripts/paired_nll.py` compares two checkpoints example by example); with
//! `--test-limit N` the names end in `-firstN`. `--prior-share A` draws that share of
//! the K importance samples from the prior (a mixture proposal, see
//! `vmf_train::evaluation::ImportanceSampling`): the names carry `-priorP`, P the
//! number of prior draws.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use vmf_train::evaluation::{ImportanceSampling, evaluate_checkpoint_with};

#[derive(Parser)]
#[command(
    name = "eval",
    version,
    about = "Evaluate a vMF-VAE checkpoint on the test set"
)]
struct Cli {
    /// Checkpoint folder (RUN/checkpoints/step-N); the run's config.toml is used.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Importance samples per test image.
    #[arg(long, default_value_t = 500)]
    samples: usize,
    /// Seed of the evaluation's random draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Evaluate only the first N test images (files named `...-firstN`).
    #[arg(long)]
    test_limit: Option<usize>,
    /// Share of the importance samples drawn from the prior p(z) instead of the
    /// posterior, in [0, 1] (0: the usual estimator). Each draw is then weighed by the
    /// mixture of the two, which bounds the weights: for a posterior much sharper than
    /// what the decoder needs (text), the plain estimate rises with K for long.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    prior_share: f64,
}

/// A share in [0, 1], for `--prior-share`.
fn share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        Ok(v) => Err(format!("{v} is not a share: give a number from 0 to 1")),
        Err(e) => Err(format!("{s:?} is not a number ({e})")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    vmf_train::keep_freed_memory();
    vmf_train::cpu::flush_denormals();
    let run = || -> anyhow::Result<()> {
        let sampling = ImportanceSampling::with_prior_share(cli.samples, cli.prior_share);
        let e = evaluate_checkpoint_with(&cli.checkpoint, sampling, cli.seed, cli.test_limit)?;
        // A partial evaluation, or one of another estimator, is named as such, so that
        // it never replaces the full one.
        let mut stem = format!("eval-k{}-seed{}", e.samples, e.seed);
        if e.prior_draws > 0 {
            stem += &format!("-prior{}", e.prior_draws);
        }
        if let Some(n) = cli.test_limit {
            stem += &format!("-first{n}");
        }
        let out = cli.checkpoint.join(format!("{stem}.json"));
        std::fs::write(&out, serde_json::to_string_pretty(&e)? + "\n")
            .with_context(|| format!("writing {}", out.display()))?;
        let rows = cli.checkpoint.join(format!("{stem}-examples.csv"));
        let mut csv = String::from("example,log_px\n");
        for (i, v) in e.per_example.iter().enumerate() {
            csv += &format!("{i},{v}\n");
        }
        std::fs::write(&rows, csv).with_context(|| format!("writing {}", rows.display()))?;
        println!(
            "| metric (nats per example, {} test examples) | value |",
            e.test_images
        );
        println!("|---|---|");
        println!(
            "| reconstruction, z at the posterior's location | {:.3} |",
            e.metrics.recon_mean
        );
        println!(
            "| reconstruction, z ~ q(z|x) | {:.3} |",
            e.metrics.recon_sampled
        );
        match (e.kappa, e.metrics.log_kappa) {
            (Some(_), Some(s)) => println!(
                "| KL (kappa learned: geometric mean {:.2}, from {:.2} to {:.2}) | {:.3} |",
                s.mean.exp(),
                s.min.exp(),
                s.max.exp(),
                e.metrics.kl
            ),
            (Some(kappa), None) => println!("| KL (kappa = {kappa}) | {:.3} |", e.metrics.kl),
            (None, _) => println!("| KL | {:.3} |", e.metrics.kl),
        }
        println!("| ELBO | {:.3} |", e.metrics.elbo);
        let prior = match e.prior_draws {
            0 => String::new(),
            n => format!(" ({n} from the prior)"),
        };
        println!(
            "| log p(x), K = {}{prior} | {:.3} +- {:.3} |",
            e.samples, e.log_likelihood, e.log_likelihood_se
        );
        if let Some(ppl) = e.perplexity {
            println!(
                "| perplexity, importance-sampled (ELBO-based) | {ppl:.2} ({:.2}) |",
                e.metrics.elbo_perplexity()
            );
        }
        if let Some(l) = &e.metrics.latent {
            println!(
                "| mutual information I(x; z) | {:.3} |",
                l.mutual_information
            );
            println!(
                "| active units (90% of the variance in) | {} ({}) |",
                l.active_units, l.components_90
            );
        }
        eprintln!("wrote {} and {}", out.display(), rows.display());
        Ok(())
    };
    vmf_train::error::exit_code(run())
}
