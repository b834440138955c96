//! Errors of the training framework: each names the file, key or value and what to do.

use std::path::PathBuf;

use thiserror::Error;

/// What can stop a run.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A config file that cannot be read, parsed or validated.
    #[error("config {file}: {message}")]
    Config {
        /// The config file.
        file: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A missing, truncated or corrupt data file.
    #[error("data file {file}: {message}")]
    Data {
        /// The data file (or folder).
        file: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// A checkpoint that cannot be used.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint folder.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// The loss (or, with clipping, the gradient norm) became NaN or infinite.
    #[error(
        "the training {what} became {value} at step {step} ({setting}); {kept}. \
         Lower optimizer.lr or check the data, then resume with --resume auto"
    )]
    NonFinite {
        /// What was read back: `loss` or `gradient norm`.
        what: &'static str,
        /// The step where it was seen.
        step: u64,
        /// The value read back.
        value: f32,
        /// The scheduled setting at that step (`kappa = ...` or `KL weight = ...`).
        setting: String,
        /// Which checkpoint is the last good one.
        kept: String,
    },
    /// A request the data kind cannot serve (e.g. a view it has not), with what to do.
    #[error("{0}")]
    Usage(String),
    /// The requested backend is not compiled in or cannot open its device.
    #[error("{0}")]
    Backend(String),
    /// vmf-core rejected a parameter.
    #[error(transparent)]
    Vmf(#[from] vmf_core::VmfError),
    /// Writing outputs failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being written or read.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl TrainError {
    /// An I/O error with its path.
    pub fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { what, path, source }
    }
}

/// The exit status of a command-line tool: on error, `error: ...` on stderr and 1.
pub fn exit_code<E: std::fmt::Display>(result: Result<(), E>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
