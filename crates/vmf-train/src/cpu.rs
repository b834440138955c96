//! CPU thread setup: flush-to-zero and denormals-are-zero on every computing thread.
//!
//! Why: in the default MNIST run the logits of always-black pixels drift far below
//! zero, so sigmoids, gradients and Adam's moments underflow into the subnormal range
//! (|x| < 1.2e-38 in f32). Intel cores handle subnormal operands and results through
//! slow microcode: measured on an Intel Xeon (Skylake-SP), throughput fell by ~40%
//! from about step 780 on and stayed there. Values that small are 0 for this model's
//! purposes, so the binaries set the FTZ and DAZ bits of MXCSR (x86-64) or FZ of FPCR
//! (aarch64) on the main thread and on every worker of rayon's global pool (which runs
//! flex's kernels, gemm and the sharded step). `VMF_DENORMALS=keep` turns it off.
//!
//! The bits are per thread and inherited by nothing, hence the pool's start handler;
//! when the pool already exists, every worker is reached with `rayon::broadcast`.

/// The environment variable that switches the flush off (`VMF_DENORMALS=keep`).
pub const ENV_SWITCH: &str = "VMF_DENORMALS";

/// What [`flush_denormals`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denormals {
    /// Flushed to zero on the calling thread and on `workers` pool threads.
    Flushed {
        /// Rayon workers that have the bits set.
        workers: usize,
    },
    /// Left as the hardware does by default (`VMF_DENORMALS=keep`).
    Kept,
    /// This processor architecture has no such switch here.
    Unsupported,
}

impl std::fmt::Display for Denormals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Flushed { workers } => write!(
                f,
                "denormals flushed to zero (main thread and {workers} rayon workers; \
                 {ENV_SWITCH}=keep turns this off)"
            ),
            Self::Kept => write!(f, "denormals kept ({ENV_SWITCH}=keep)"),
            Self::Unsupported => write!(f, "denormals kept (no flush-to-zero switch on this CPU)"),
        }
    }
}

/// Sets flush-to-zero and denormals-are-zero on this thread and on every thread of
/// rayon's global pool, building the pool with a start handler if it does not exist
/// yet; honours `VMF_DENORMALS=keep`. Call it first thing in `main`.
pub fn flush_denormals() -> Denormals {
    if std::env::var(ENV_SWITCH).is_ok_and(|v| v.eq_ignore_ascii_case("keep")) {
        return Denormals::Kept;
    }
    flush_everywhere()
}

/// [`flush_denormals`] without the environment switch.
pub fn flush_everywhere() -> Denormals {
    if !SUPPORTED {
        return Denormals::Unsupported;
    }
    set_flush_on_this_thread();
    // A pool built here sets the bits on each worker as it starts; if the pool exists
    // already (built by someone else), its workers are reached with a broadcast.
    let built = rayon::ThreadPoolBuilder::new()
        .start_handler(|_| set_flush_on_this_thread())
        .build_global()
        .is_ok();
    if !built {
        rayon::broadcast(|_| set_flush_on_this_thread());
    }
    let workers = rayon::broadcast(|_| flushes_on_this_thread())
        .into_iter()
        .filter(|&on| on)
        .count();
    Denormals::Flushed { workers }
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const SUPPORTED: bool = true;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const SUPPORTED: bool = false;

/// MXCSR: FTZ (bit 15) and DAZ (bit 6).
#[cfg(target_arch = "x86_64")]
const FLUSH_BITS: u64 = 0x8040;
/// FPCR: FZ (bit 24).
#[cfg(target_arch = "aarch64")]
const FLUSH_BITS: u64 = 1 << 24;

/// Whether the calling thread flushes denormals to zero.
pub fn flushes_on_this_thread() -> bool {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        control_word() & FLUSH_BITS == FLUSH_BITS
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// Sets the flush bits on the calling thread (no-op where unsupported).
pub fn set_flush_on_this_thread() {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    set_control_word(control_word() | FLUSH_BITS);
}

// `_mm_getcsr`/`_mm_setcsr` are deprecated in favour of inline assembly.
#[cfg(target_arch = "x86_64")]
fn control_word() -> u64 {
    let mut csr: u32 = 0;
    // SAFETY: stmxcsr stores the 32-bit MXCSR into the local it points to.
    unsafe {
        std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
    }
    u64::from(csr)
}

#[cfg(target_arch = "x86_64")]
fn set_control_word(value: u64) {
    let csr = value as u32;
    // SAFETY: ldmxcsr loads MXCSR from the local; only the FTZ/DAZ bits change.
    unsafe {
        std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags));
    }
}

#[cfg(target_arch = "aarch64")]
fn control_word() -> u64 {
    let fpcr: u64;
    // SAFETY: reading FPCR has no side effects.
    unsafe { std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack)) };
    fpcr
}

#[cfg(target_arch = "aarch64")]
fn set_control_word(value: u64) {
    // SAFETY: only the FZ bit changes.
    unsafe { std::arch::asm!("msr fpcr, {}", in(reg) value, options(nomem, nostack)) };
}

#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
mod tests {
    use std::hint::black_box;

    use super::*;

    /// 1e-39 is subnormal in f32; with DAZ it reads as 0, with FTZ a subnormal result
    /// is written as 0. Both are visible in plain arithmetic.
    fn subnormals_survive() -> bool {
        let tiny = black_box(1e-39f32);
        let product = black_box(1e-20f32) * black_box(1e-19f32); // 1e-39: subnormal
        tiny + black_box(0.0f32) != 0.0 && product != 0.0
    }

    #[test]
    fn every_pool_thread_flushes_subnormals_to_zero() {
        // Run in a fresh thread: its MXCSR starts at the process default.
        std::thread::spawn(|| {
            assert!(!flushes_on_this_thread());
            assert!(subnormals_survive(), "the default keeps subnormals");
            let done = flush_everywhere();
            assert_eq!(
                done,
                Denormals::Flushed {
                    workers: rayon::current_num_threads()
                }
            );
            assert!(flushes_on_this_thread());
            assert!(
                !subnormals_survive(),
                "calling thread still computes subnormals"
            );
            for (worker, survive) in rayon::broadcast(|_| subnormals_survive())
                .into_iter()
                .enumerate()
            {
                assert!(!survive, "rayon worker {worker} still computes subnormals");
            }
        })
        .join()
        .unwrap();
    }
}
