//! `encode --checkpoint DIR --out mu.npy`: the posterior's location (mu, or the
//! Gaussian's mean) of every test example as a `[n, d]` f32 `.npy` file in the test
//! file's order; a learned kappa's per-example kappa beside it (`mu-kappa.npy`), and,
//! where examples have one, each row's sentence or image file (`mu-examples.txt`).
//! `--data` encodes other data with the run's model: a config (its data section's
//! `--split`), a folder of images, or a file of sentences.
//! `--neighbours I` prints the nearest examples of example I instead, `--knn` the
//! leave-one-out k-NN label accuracy of a labelled split (k = 1 and 5).

use std::path::PathBuf;

use clap::Parser;
use vmf_train::encode::{
    Metric, encode_checkpoint, encode_data, knn_accuracy, neighbours, write_npy,
};
use vmf_train::modality::Split;

#[derive(Parser)]
#[command(
    name = "encode",
    version,
    about = "Embeddings out: mu of every example as .npy, nearest neighbours, k-NN accuracy"
)]
struct Cli {
    /// Checkpoint folder (RUN/checkpoints/step-N).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Encode these examples instead of the run's own: a config file (`.toml`; its
    /// data section's `--split`), a folder of images (image runs; class subfolders
    /// give labels) or a file of sentences, one per line (text runs).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Which examples: `test` or `valid`.
    #[arg(long, default_value = "test")]
    split: String,
    /// Encode only the first N examples.
    #[arg(long)]
    limit: Option<usize>,
    /// Write mu here (`.npy`; a learned kappa goes to `<stem>-kappa.npy`).
    #[arg(long, required_unless_present_any = ["neighbours", "knn"])]
    out: Option<PathBuf>,
    /// Print the `k` nearest examples of this one (index in the split's file).
    #[arg(long)]
    neighbours: Option<usize>,
    /// How many neighbours.
    #[arg(long, default_value_t = 5)]
    k: usize,
    /// Print the leave-one-out k-NN label accuracy (k = 1 and 5) as JSON.
    #[arg(long)]
    knn: bool,
    /// Nearness: `cosine` (default) or `euclidean`.
    #[arg(long, default_value = "cosine")]
    metric: String,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    vmf_train::keep_freed_memory();
    vmf_train::cpu::flush_denormals();
    let run = || -> Result<(), vmf_train::TrainError> {
        let usage = |m: String| vmf_train::TrainError::Usage(m);
        let split = match cli.split.as_str() {
            "test" => Split::Test,
            "valid" => Split::Validation,
            s => return Err(usage(format!("--split {s}: use `test` or `valid`"))),
        };
        let metric = match cli.metric.as_str() {
            "cosine" => Metric::Cosine,
            "euclidean" => Metric::Euclidean,
            m => return Err(usage(format!("--metric {m}: use `cosine` or `euclidean`"))),
        };
        let e = match &cli.data {
            Some(data) => encode_data(&cli.checkpoint, data, split, cli.limit)?,
            None => encode_checkpoint(&cli.checkpoint, split, cli.limit)?,
        };
        if let Some(out) = &cli.out {
            write_npy(out, &e.location, &[e.len(), e.dim])?;
            eprintln!("wrote {} ({} x {})", out.display(), e.len(), e.dim);
            let stem = out.file_stem().map_or("mu".into(), |s| s.to_string_lossy());
            if let Some(kappa) = &e.kappa {
                let path = out.with_file_name(format!("{stem}-kappa.npy"));
                // One column per block of a product of spheres.
                let blocks = kappa.len() / e.len().max(1);
                if blocks > 1 {
                    write_npy(&path, kappa, &[e.len(), blocks])?;
                } else {
                    write_npy(&path, kappa, &[kappa.len()])?;
                }
                eprintln!("wrote {}", path.display());
            }
            if let Some(texts) = &e.texts {
                // Which example each row is: its sentence, or its image file.
                let path = out.with_file_name(format!("{stem}-examples.txt"));
                let lines: String = texts.iter().map(|t| format!("{t}\n")).collect();
                std::fs::write(&path, lines)
                    .map_err(vmf_train::TrainError::io("writing", &path))?;
                eprintln!("wrote {}", path.display());
            }
        }
        if let Some(q) = cli.neighbours {
            if q >= e.len() {
                return Err(usage(format!(
                    "--neighbours {q}: the split has {} examples (0..{})",
                    e.len(),
                    e.len()
                )));
            }
            let show = |i: usize| {
                let label = e.labels.as_ref().map(|l| format!(" label {}", l[i]));
                let text = e.texts.as_ref().map(|t| format!(" {}", t[i]));
                format!("{}{}", label.unwrap_or_default(), text.unwrap_or_default())
            };
            println!("query {q}:{}", show(q));
            for (rank, (j, near)) in neighbours(&e, q, cli.k, metric).iter().enumerate() {
                println!("{} {j} {near:.4}:{}", rank + 1, show(*j));
            }
        }
        if cli.knn {
            let acc = |k| knn_accuracy(&e, k, metric);
            let (Some(k1), Some(k5)) = (acc(1), acc(5)) else {
                return Err(usage("--knn needs labels: this split has none".into()));
            };
            println!(
                "{}",
                serde_json::json!({"examples": e.len(), "metric": cli.metric, "knn_1": k1, "knn_5": k5})
            );
        }
        Ok(())
    };
    vmf_train::error::exit_code(run())
}
