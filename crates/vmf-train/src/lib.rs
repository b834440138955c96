//! # vmf-train
//!
//! Orchestration of vMF-VAE training: TOML configs ([`config`]), MNIST-style data
//! ([`data`]), the data kinds the loop trains ([`modality`]), the kappa schedule ([`schedule`]), the loop ([`training`]),
//! evaluation and the importance-sampled log-likelihood ([`evaluation`]), latent
//! usage: mutual information and active units ([`latent_stats`]),
//! checkpoints ([`checkpoint`]), the data-parallel step ([`step`]), run outputs
//! ([`output`]), views of a trained model ([`views`]: [`pictures`] for images,
//! [`sentences`] for text), CPU thread setup ([`cpu`]: denormals) and the backend choice
//! ([`backend`], the only module that knows which backend runs).

pub mod backend;
pub mod checkpoint;
pub mod config;
pub mod cpu;
pub mod curves;
pub mod data;
pub mod error;
pub mod evaluation;
pub mod latent_stats;
pub mod modality;
pub mod output;
pub mod pictures;
pub mod schedule;
pub mod seeds;
pub mod sentences;
pub mod step;
pub mod training;
pub mod views;

pub use config::TrainConfig;
pub use error::TrainError;
pub use evaluation::EvalMetrics;
pub use training::{Resume, TrainOptions, TrainSummary, train};

// Every training step allocates and frees activations of a few hundred kB; glibc's
// malloc serves those with mmap/munmap and the page faults cost ~25% of a step at
// batch 100 (measured with benches/step.rs). mimalloc reuses the memory. Set here so
// that the binaries, tests and benches of this crate all run with it; a library user
// with an allocator of their own disables the `mimalloc` feature.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
