//! # vmf-train
//!
//! Orchestration of vMF-VAE training: TOML configs ([`config`]), MNIST-style data
//! ([`data`]), the data kinds the loop trains ([`modality`]), how kappa is set
//! ([`schedule`]: scheduled or learned), the latent family as the loop drives it
//! ([`family`]), the loop ([`training`]), the rows of its metrics files ([`records`]),
//! evaluation and the importance-sampled log-likelihood ([`evaluation`]), embeddings
//! out and their nearest neighbours ([`encode`]), latent
//! usage: mutual information and active units ([`latent_stats`]),
//! checkpoints ([`checkpoint`]), the run folder's start and writes that survive a kill
//! ([`run_folder`], [`durable`]), the data-parallel step ([`step`]) and its
//! processes ([`ranks`]: one, or the ranks of an MPI job), Adam fused on the
//! CPU ([`optim`]), run outputs
//! ([`output`]), views of a trained model ([`views`]; each data kind renders its own:
//! [`modality::image::pictures`], [`modality::text::sentences`]), CPU thread setup ([`cpu`]: denormals) and the backend choice
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
pub mod durable;
pub mod encode;
pub mod error;
pub mod evaluation;
pub mod export;
pub mod family;
pub mod latent_stats;
pub mod modality;
pub mod optim;
pub mod output;
pub mod ranks;
pub mod records;
pub mod run_folder;
pub mod schedule;
pub mod seeds;
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

/// mimalloc's `mi_option_purge_delay` (index 15 of `mi_option_e` in both its v2 and v3
/// `mimalloc.h`; libmimalloc-sys names no constant for it).
#[cfg(feature = "mimalloc")]
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Tells the allocator to keep the memory that is freed instead of handing it back to
/// the OS (mimalloc's purge delay -1; a no-op without the `mimalloc` feature).
///
/// Why: a text step frees and re-allocates tens of MB (the output layer's logits and
/// their gradients, ~28 MB each at batch 32, their sizes changing with the sentence
/// lengths of each batch); by default mimalloc returns memory that stayed free for 1 s
/// (v3, which libmimalloc-sys builds; 10 ms in v2), and a later step takes it back
/// through page faults and the kernel's page zeroing, ~5% of a text step. Keeping it
/// costs ~25 MB of peak memory there.
/// The binaries call it at the start of `main`, before any training work.
pub fn keep_freed_memory() {
    #[cfg(feature = "mimalloc")]
    // SAFETY: mi_option_set stores one integer in mimalloc's option table; any thread,
    // any time.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1)
    };
}

#[cfg(all(test, feature = "mimalloc"))]
mod allocator_tests {
    use super::*;

    /// The index is mimalloc's purge delay: its default before (1000 ms in mimalloc v3,
    /// 10 in v2: `options.c`), -1 after. Nothing else in this test binary sets it.
    #[test]
    fn keep_freed_memory_sets_the_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            eprintln!("skipped: MIMALLOC_PURGE_DELAY is set");
            return;
        }
        // SAFETY: reads one integer of mimalloc's option table.
        let get = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert!(matches!(get(), 10 | 1000), "not the purge delay: {}", get());
        keep_freed_memory();
        assert_eq!(get(), -1);
    }
}
