//! # vmf-train
//!
//! Orchestration of vMF-VAE training: TOML configs ([`config`]), MNIST-style data
//! ([`data`]), the kappa schedule ([`schedule`]), the loop ([`training`]),
//! evaluation and the importance-sampled log-likelihood ([`evaluation`]),
//! checkpoints ([`checkpoint`]), run outputs ([`output`]) and the backend choice
//! ([`backend`], the only module that knows which backend runs).

pub mod backend;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod error;
pub mod evaluation;
pub mod output;
pub mod pictures;
pub mod schedule;
pub mod seeds;
pub mod training;

pub use config::TrainConfig;
pub use error::TrainError;
pub use evaluation::EvalMetrics;
pub use training::{Resume, TrainOptions, TrainSummary, train};
