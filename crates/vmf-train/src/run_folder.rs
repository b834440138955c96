//! How a run begins in its run folder: fresh, over again, or from a checkpoint, for
//! every state a kill can leave the folder in (see [`crate::durable`] for the writes).

use std::path::{Path, PathBuf};

use crate::checkpoint::{self, TrainState};
use crate::config::TrainConfig;
use crate::durable;
use crate::error::TrainError;
use crate::training::Resume;

/// The CSV files of a run, each row of a step that some checkpoint holds or not.
pub const CSV_FILES: [&str; 3] = ["metrics.csv", "eval.csv", "valid.csv"];

/// Where a run starts.
pub enum Start {
    /// At step 0 (a new run, or one that was killed before its first checkpoint).
    Fresh,
    /// From this verified checkpoint.
    Checkpoint(PathBuf, TrainState),
}

/// Decides where the run of `config` starts in `run_dir` and readies the folder for it:
/// - `--resume auto` continues from the newest checkpoint that verifies; with none
///   (killed before the first), a folder holding this run's config (or none yet) starts
///   over from step 0, its CSV rows replaced; another config, or checkpoints that all
///   fail to verify, are refused with what to do.
/// - no resume: a folder that already holds rows or checkpoints is refused.
///
/// A checkpoint of another config is refused unless `force`. Left-overs of a kill
/// (temporary files, unfinished pruning) are cleared once the start is accepted.
pub fn open(
    run_dir: &Path,
    config: &TrainConfig,
    resume: Option<&Resume>,
    force: bool,
) -> Result<Start, TrainError> {
    let start = match resume {
        Some(Resume::Path(p)) => Start::Checkpoint(p.clone(), checkpoint::load_state(p)?),
        Some(Resume::Auto) => match checkpoint::newest_valid(run_dir) {
            Some((p, st)) => Start::Checkpoint(p, st),
            None => start_over(run_dir, config, force)?,
        },
        None => {
            if run_dir.join(CSV_FILES[0]).exists() || !checkpoint::list(run_dir).is_empty() {
                // Never mix a fresh run into an existing one.
                return Err(TrainError::Config {
                    file: run_dir.join("config.toml"),
                    message: format!(
                        "run folder {} already holds a run; continue it with --resume auto, \
                         or choose another run_dir (--run-dir)",
                        run_dir.display()
                    ),
                });
            }
            Start::Fresh
        }
    };
    if let Start::Checkpoint(path, st) = &start
        && st.config_hash != config.identity_hash()
        && !force
    {
        return Err(TrainError::Checkpoint {
            path: path.clone(),
            message: "was written by a run with a different config (seed, data, model, kappa, \
                      optimizer or batch size differ); use the run's own config.toml, or pass \
                      --force to resume anyway"
                .into(),
        });
    }
    // Only now, with the run accepted: nothing of a refused one is touched.
    remove_temporaries(run_dir)?;
    let (best, resumed) = match &start {
        Start::Checkpoint(path, st) => (st.best_step, Some(path.as_path())),
        Start::Fresh => (None, None),
    };
    checkpoint::tidy(run_dir, config.checkpoint.keep, best, resumed)?;
    Ok(start)
}

/// `--resume auto` in a folder with no checkpoint that verifies.
fn start_over(run_dir: &Path, config: &TrainConfig, force: bool) -> Result<Start, TrainError> {
    if let Some(newest) = checkpoint::list(run_dir).pop() {
        let why = match checkpoint::load_state(&newest) {
            Err(TrainError::Checkpoint { message, .. }) => message,
            Err(e) => e.to_string(),
            Ok(_) => "does not verify".into(),
        };
        return Err(TrainError::Checkpoint {
            path: newest,
            message: format!(
                "{why}; no checkpoint of {} verifies, so the run cannot continue. Restore \
                 the checkpoint from a copy, or start the run over: remove {} (the rows of \
                 its CSV files are then replaced), or train into another --run-dir",
                run_dir.display(),
                checkpoint::dir(run_dir).display()
            ),
        });
    }
    let saved = run_dir.join("config.toml");
    if saved.exists() && !force {
        let other = match TrainConfig::load(&saved) {
            Ok(c) => (c.identity_hash() != config.identity_hash())
                .then(|| "was written for another config (seed, data, model, kappa, optimizer or batch size differ)".to_string()),
            Err(e) => Some(format!("cannot be read ({e})")),
        };
        if let Some(why) = other {
            return Err(TrainError::Config {
                file: saved.clone(),
                message: format!(
                    "{why}, and the run folder holds no checkpoint to resume. Continue that \
                     run with its own config (--config {}), pass --force to start this \
                     config over in the folder, or choose another run_dir (--run-dir)",
                    saved.display()
                ),
            });
        }
    }
    let rows: usize = CSV_FILES
        .iter()
        .map(|f| run_dir.join(f))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|t| t.lines().count().saturating_sub(1))
        .sum();
    if rows > 0 || saved.exists() {
        eprintln!(
            "{} holds no checkpoint yet: starting the run over from step 0 (replacing {rows} \
             CSV rows of steps no checkpoint holds)",
            run_dir.display()
        );
    }
    for f in CSV_FILES {
        durable::remove_file(&run_dir.join(f))?;
    }
    Ok(Start::Fresh)
}

/// Removes the `*.tmp` files a kill left beside the files written whole.
fn remove_temporaries(run_dir: &Path) -> Result<(), TrainError> {
    for dir in [
        run_dir.to_path_buf(),
        run_dir.join("images"),
        run_dir.join("samples"),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for p in entries.flatten().map(|e| e.path()) {
            if p.is_file() && p.extension().is_some_and(|e| e == "tmp") {
                durable::remove_file(&p)?;
            }
        }
    }
    Ok(())
}
