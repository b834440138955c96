//! # vmf-train
//!
//! Orchestration of vMF-VAE training: TOML configs ([`config`]), MNIST-style data
//! ([`data`]), the data kinds the loop trains ([`modality`]), how kappa is set
//! ([`schedule`]: scheduled or learned), the loop ([`training`]),
//! evaluation and the importance-sampled log-likelihood ([`evaluation`]), embeddings
//! out and their nearest neighbours ([`encode`]), latent
//! usage: mutual information and active units ([`latent_stats`]),
//! checkpoints ([`checkpoint`]), the data-parallel step ([`step`]), Adam fused on the
//! CPU ([`optim`]), run outputs
//! ([`output`]), views of a trained model ([`views`]: [`pictures`] for images,
//! [`sentences`] for text), CPU thread setup ([`cpu`]: denormals) and the backend choice
//! ([`backend`], the only module that knows which backend runs).
//!
//! A run from a config, in code (the `train` binary does the same from a file):
//!
//! ```
//! use std::path::Path;
//! use vmf_train::{TrainConfig, TrainOptions, checkpoint, train};
//!
//! let run = std::env::temp_dir().join(format!("vmf-train-doc-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&run);
//! let text = format!(
//!     r#"run_dir = "{}"
//!     [data]
//!     dataset = "mnist"
//!     train_limit = 200
//!     test_limit = 100
//!     [model]
//!     latent_dim = 8
//!     hidden = [32]
//!     [kappa]
//!     schedule = "constant"
//!     value = 20.0
//!     [training]
//!     epochs = 1
//!     batch_size = 50
//!     images = false"#,
//!     run.display()
//! );
//! let config = TrainConfig::parse(&text, Path::new("doc.toml"))?;
//! let summary = train(&config, &TrainOptions::default())?;
//! assert_eq!(summary.steps, 4); // 200 images in batches of 50
//! assert!(summary.last_eval.unwrap().elbo < 0.0);
//! assert_eq!(checkpoint::list(&run).len(), 1);
//! # std::fs::remove_dir_all(&run).unwrap();
//! # Ok::<(), vmf_train::TrainError>(())
//! ```

pub mod backend;
pub mod checkpoint;
pub mod config;
pub mod cpu;
pub mod curves;
pub mod data;
pub mod encode;
pub mod error;
pub mod evaluation;
pub mod export;
pub mod latent_stats;
pub mod modality;
pub mod optim;
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
