//! Checkpoints: `checkpoints/step-XXXXXXXX/` with the model and optimiser records
//! (burnpack) and `state.json` (position, schedule, config hash, file checksums).
//! Written into a temporary folder and renamed, so a crash never leaves a
//! half-written checkpoint under a valid name; the newest `keep` are retained, and
//! the best on the validation set when there is one.

use std::fs;
use std::path::{Path, PathBuf};

use burn::module::{ModuleMapper, Param, ParamId};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::TrainConfig;
use crate::durable;
use crate::error::TrainError;

/// File names inside a checkpoint folder.
pub const MODEL_FILE: &str = "model.bpk";
/// Optimiser record.
pub const OPTIM_FILE: &str = "optim.bpk";
/// Position and checksums.
pub const STATE_FILE: &str = "state.json";

/// Where the run stands. All RNG streams are derived from (seed, epoch, step) (see
/// [`crate::seeds`]), so these counters are the complete RNG state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimiser steps taken.
    pub step: u64,
    /// Current epoch (0-based).
    pub epoch: usize,
    /// Batches of the current epoch already taken.
    pub batch_in_epoch: usize,
    /// kappa at the last step taken (a learned kappa: the geometric mean over the
    /// examples of the last logged window).
    pub kappa: f64,
    /// Identity hash of the config (see `TrainConfig::identity_hash`).
    pub config_hash: String,
    /// SHA-256 of the model file.
    pub model_sha256: String,
    /// SHA-256 of the optimiser file.
    pub optim_sha256: String,
    /// Best validation ELBO so far (with `data.validation`).
    #[serde(default)]
    pub best_valid_elbo: Option<f64>,
    /// The step of the checkpoint that had it (kept from pruning).
    #[serde(default)]
    pub best_step: Option<u64>,
    /// Epochs since the validation ELBO last improved (by more than
    /// `training.min_delta`), for `training.patience` and `optimizer.lr_patience`.
    #[serde(default)]
    pub epochs_since_best: usize,
    /// The validation ELBO of that last improvement, with a positive
    /// `training.min_delta` (without one it is `best_valid_elbo`, and this stays unset
    /// so that the file is what it was before the key existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted_elbo: Option<f64>,
    /// Learning-rate decays taken so far (`optimizer.lr_decay`).
    #[serde(default)]
    pub lr_decays: u32,
}

/// Numbers a model's parameters 1, 2, ... in the order Burn visits them
/// (`model.map(&mut StableParamIds::default())`). Burn draws each parameter id at random,
/// and the records store them (the optimiser's keys its moments by them), so without
/// this two runs of one config write different checkpoint bytes; with it a run writes
/// the same bytes whether it was interrupted or not, and on every machine.
#[derive(Debug, Default)]
pub struct StableParamIds {
    next: u64,
}

impl ModuleMapper for StableParamIds {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (_, value, mapper) = param.consume();
        self.next += 1;
        Param::from_mapped_value(ParamId::from(self.next), value, mapper)
    }
}

/// The name of the checkpoint folder of `step`.
pub fn folder_name(step: u64) -> String {
    format!("step-{step:08}")
}

fn sha256_file(path: &Path) -> Result<String, TrainError> {
    let bytes = fs::read(path).map_err(TrainError::io("reading", path))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

/// The folder of all checkpoints of a run.
pub fn dir(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints")
}

/// Writes a checkpoint: `write_records(tmp)` must write `MODEL_FILE` and `OPTIM_FILE`
/// into `tmp`; then checksums and state are added and the folder renamed into place.
pub fn save(
    run_dir: &Path,
    mut state: TrainState,
    keep: usize,
    write_records: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<PathBuf, TrainError> {
    let root = dir(run_dir);
    fs::create_dir_all(&root).map_err(TrainError::io("creating", &root))?;
    let name = folder_name(state.step);
    let protect = state.best_step.map(folder_name);
    let final_dir = root.join(&name);
    let tmp = root.join(format!(".{name}.tmp"));
    if tmp.exists() {
        durable::remove_dir_all(&tmp)?;
    }
    fs::create_dir_all(&tmp).map_err(TrainError::io("creating", &tmp))?;
    write_records(&tmp).map_err(|message| TrainError::Checkpoint {
        path: tmp.clone(),
        message,
    })?;
    durable::seal(&tmp.join(MODEL_FILE))?;
    durable::seal(&tmp.join(OPTIM_FILE))?;
    state.model_sha256 = sha256_file(&tmp.join(MODEL_FILE))?;
    state.optim_sha256 = sha256_file(&tmp.join(OPTIM_FILE))?;
    let json = serde_json::to_string_pretty(&state).expect("state serialises");
    durable::write_new(&tmp.join(STATE_FILE), json.as_bytes())?;
    // A checkpoint of the same step replaces the older one (a run resumed from an older
    // checkpoint re-saves the steps after it).
    if final_dir.exists() {
        durable::remove_dir_all(&final_dir)?;
    }
    durable::rename(&tmp, &final_dir)?;
    prune(&root, keep, &[protect])?;
    Ok(final_dir)
}

/// Checkpoint folders of a run, oldest first.
pub fn list(run_dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir(run_dir))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("step-"))
        })
        .collect();
    out.sort();
    out
}

/// Removes all but the newest `keep` checkpoints, and never those named in `protect`
/// (the best on the validation set, the one a run resumes from).
fn prune(root: &Path, keep: usize, protect: &[Option<String>]) -> Result<(), TrainError> {
    let all = list(root.parent().expect("checkpoints has a parent"));
    let old = all.iter().take(all.len().saturating_sub(keep));
    let kept = |p: &&PathBuf| {
        let name = p.file_name().and_then(|n| n.to_str());
        protect.iter().any(|k| k.as_deref() == name)
    };
    for old in old.filter(|p| !kept(p)) {
        durable::remove_dir_all(old)?;
    }
    Ok(())
}

/// Finishes what a killed run may have left half done in `run_dir`: removes the
/// temporary folders of checkpoints that were never renamed into place and the
/// checkpoints that pruning had not yet removed (the newest `keep`, the best on the
/// validation set, `best_step`, and the one the run resumes from, `resumed`, stay).
pub fn tidy(
    run_dir: &Path,
    keep: usize,
    best_step: Option<u64>,
    resumed: Option<&Path>,
) -> Result<(), TrainError> {
    let root = dir(run_dir);
    let stale = fs::read_dir(&root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path());
    for tmp in stale.filter(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.') && n.ends_with(".tmp"))
    }) {
        durable::remove_dir_all(&tmp)?;
    }
    if root.is_dir() {
        let resumed = resumed
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .map(String::from);
        prune(&root, keep, &[best_step.map(folder_name), resumed])?;
    }
    Ok(())
}

/// Reads and verifies a checkpoint folder (state parses, files match their checksums).
pub fn load_state(path: &Path) -> Result<TrainState, TrainError> {
    let bad = |message: String| TrainError::Checkpoint {
        path: path.to_path_buf(),
        message,
    };
    let text = fs::read_to_string(path.join(STATE_FILE))
        .map_err(|e| bad(format!("cannot read {STATE_FILE}: {e}")))?;
    let state: TrainState =
        serde_json::from_str(&text).map_err(|e| bad(format!("{STATE_FILE} is corrupt: {e}")))?;
    for (file, want) in [
        (MODEL_FILE, &state.model_sha256),
        (OPTIM_FILE, &state.optim_sha256),
    ] {
        let got = sha256_file(&path.join(file)).map_err(|e| bad(e.to_string()))?;
        if &got != want {
            return Err(bad(format!(
                "{file} does not match its checksum: the file is corrupt or was modified"
            )));
        }
    }
    Ok(state)
}

/// The newest checkpoint of `run_dir` that verifies; corrupt ones are skipped with a
/// warning on stderr.
pub fn newest_valid(run_dir: &Path) -> Option<(PathBuf, TrainState)> {
    for path in list(run_dir).into_iter().rev() {
        match load_state(&path) {
            Ok(state) => return Some((path, state)),
            Err(e) => eprintln!("warning: skipping {e}"),
        }
    }
    None
}

/// A verified checkpoint with its run's config.
pub struct Opened {
    /// The checkpoint folder.
    pub path: PathBuf,
    /// The run folder's `config.toml`.
    pub config: TrainConfig,
    /// The checkpoint's `state.json`.
    pub state: TrainState,
}

/// Opens the checkpoint folder `path` (`<run>/checkpoints/step-N`): verifies it and
/// reads the run's `config.toml`, which must match the checkpoint's config hash.
pub fn open(path: &Path) -> Result<Opened, TrainError> {
    let bad = |message: String| TrainError::Checkpoint {
        path: path.to_path_buf(),
        message,
    };
    let state = load_state(path)?;
    let run_dir = path
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| bad("is not inside a run folder (<run>/checkpoints/step-N)".into()))?;
    let config = TrainConfig::load(&run_dir.join("config.toml"))?;
    if config.identity_hash() != state.config_hash {
        return Err(bad(format!(
            "does not match {}: the run's config was changed",
            run_dir.join("config.toml").display()
        )));
    }
    Ok(Opened {
        path: path.to_path_buf(),
        config,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a resume reads back is what was saved, to the bit: validation ELBOs with 17
    /// significant digits (about one in eight values of that size came back an ulp off
    /// before serde_json's `float_roundtrip`), a subnormal and the extremes.
    #[test]
    fn state_json_gives_back_every_f64_to_the_bit() {
        let dir = std::env::temp_dir().join(format!("vmf-state-f64-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let awkward = [
            -221.924_657_748_856_13,
            -100.472_151_721_711_07,
            0.1 + 0.2,
            1e-310,
            f64::MIN_POSITIVE,
            f64::MAX,
            -f64::MAX,
        ];
        for (i, &x) in awkward.iter().enumerate() {
            let state = TrainState {
                step: i as u64 + 1,
                epoch: 0,
                batch_in_epoch: 0,
                kappa: x.abs(),
                config_hash: String::new(),
                model_sha256: String::new(),
                optim_sha256: String::new(),
                best_valid_elbo: Some(x),
                best_step: None,
                epochs_since_best: 0,
                counted_elbo: Some(-x),
                lr_decays: 0,
            };
            let saved = save(&dir, state.clone(), usize::MAX, |tmp| {
                for file in [MODEL_FILE, OPTIM_FILE] {
                    fs::write(tmp.join(file), [i as u8]).map_err(|e| e.to_string())?;
                }
                Ok(())
            })
            .unwrap();
            let back = load_state(&saved).unwrap();
            let bits = |s: &TrainState| {
                [s.kappa, s.best_valid_elbo.unwrap(), s.counted_elbo.unwrap()].map(f64::to_bits)
            };
            assert_eq!(bits(&back), bits(&state), "{x:e}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
