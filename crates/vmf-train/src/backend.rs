//! The one place that knows which backends exist. Each is a cargo feature of
//! vmf-train (`flex`, `ndarray`, `wgpu`); the rest of the code takes a `Device`.
//! The default is the fastest CPU backend compiled in (flex, then ndarray), else
//! wgpu; `--backend NAME` picks another compiled-in one.

use std::fmt;

use burn::tensor::Device;

use crate::error::TrainError;
use crate::ranks::Ranks;

/// A backend this build may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Burn's CPU backend `flex` (the default).
    Flex,
    /// The `ndarray` CPU backend (deprecated upstream in Burn 0.22).
    Ndarray,
    /// GPU through wgpu (Vulkan, Metal, DX12, WebGPU).
    Wgpu,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Flex => "flex",
            Self::Ndarray => "ndarray",
            Self::Wgpu => "wgpu",
        })
    }
}

impl Backend {
    /// The backends compiled into this build, default first.
    pub fn compiled() -> Vec<Backend> {
        let mut out = Vec::new();
        if cfg!(feature = "flex") {
            out.push(Self::Flex);
        }
        if cfg!(feature = "ndarray") {
            out.push(Self::Ndarray);
        }
        if cfg!(feature = "wgpu") {
            out.push(Self::Wgpu);
        }
        out
    }

    /// The default backend of this build.
    pub fn default_compiled() -> Backend {
        *Self::compiled()
            .first()
            .expect("vmf-train is built with at least one backend feature")
    }

    /// The backend called `name`, if it is compiled in.
    pub fn parse(name: &str) -> Result<Backend, TrainError> {
        let b = match name {
            "flex" => Self::Flex,
            "ndarray" => Self::Ndarray,
            "wgpu" => Self::Wgpu,
            other => {
                return Err(TrainError::Backend(format!(
                    "unknown backend {other:?}: choose one of flex, ndarray, wgpu"
                )));
            }
        };
        if Self::compiled().contains(&b) {
            Ok(b)
        } else {
            let have: Vec<String> = Self::compiled().iter().map(ToString::to_string).collect();
            Err(TrainError::Backend(format!(
                "backend {b} is not compiled into this build (it has: {}); rebuild with `--features {b}`",
                have.join(", ")
            )))
        }
    }

    /// The device of this backend (without autodiff), checked to work: for wgpu,
    /// a missing adapter is an error that says how to install a Vulkan driver.
    pub fn device(self) -> Result<Device, TrainError> {
        match self {
            #[cfg(feature = "flex")]
            Self::Flex => Ok(Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            Self::Ndarray => Ok(Device::ndarray()),
            #[cfg(feature = "wgpu")]
            Self::Wgpu => wgpu_device(burn::tensor::DeviceKind::DefaultDevice),
            #[allow(unreachable_patterns)]
            other => Err(TrainError::Backend(format!(
                "backend {other} is not compiled into this build"
            ))),
        }
    }

    /// The device of this backend for one process of a run (`ranks`): on wgpu, the
    /// ranks of an MPI job take one discrete GPU each, by their rank on their machine
    /// (`DiscreteGpu(local rank)`), unless `CUBECL_WGPU_DEFAULT_DEVICE` names one;
    /// every other case is [`Backend::device`].
    pub fn device_of(self, ranks: &Ranks) -> Result<Device, TrainError> {
        #[cfg(feature = "wgpu")]
        if self == Self::Wgpu
            && ranks.size() > 1
            && std::env::var_os("CUBECL_WGPU_DEFAULT_DEVICE").is_none()
        {
            let gpu = burn::tensor::DeviceKind::DiscreteGpu(ranks.local_rank());
            return wgpu_device(gpu).map_err(|e| {
                TrainError::Backend(format!(
                    "rank {} (local rank {}) takes the machine's discrete GPU {}: {e}; set \
                     CUBECL_WGPU_DEFAULT_DEVICE to choose another",
                    ranks.rank(),
                    ranks.local_rank(),
                    ranks.local_rank()
                ))
            });
        }
        let _ = ranks;
        self.device()
    }

    /// A CPU device when a CPU backend is compiled in, else this backend's device:
    /// where models are initialised, so that initial weights do not depend on the
    /// training backend.
    pub fn host_device(self) -> Result<Device, TrainError> {
        match Self::compiled().into_iter().find(|b| *b != Self::Wgpu) {
            Some(cpu) => cpu.device(),
            None => self.device(),
        }
    }
}

/// The wgpu device `kind`, or an error when no adapter can be opened. cubecl panics
/// in that case; the panic is caught here (and its message kept off stderr).
#[cfg(feature = "wgpu")]
fn wgpu_device(kind: burn::tensor::DeviceKind) -> Result<Device, TrainError> {
    use burn::tensor::Tensor;
    let device = Device::wgpu(kind);
    let probe = device.clone();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(move || {
        Tensor::<1>::ones([4], &probe)
            .sum()
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
    });
    std::panic::set_hook(hook);
    match result {
        Ok(Ok(v)) if v == [4.0] => Ok(device),
        Ok(Ok(v)) => Err(TrainError::Backend(format!(
            "wgpu device returned {v:?} for a test sum of 4 ones"
        ))),
        Ok(Err(e)) => Err(TrainError::Backend(format!(
            "wgpu device cannot read back data: {e:?}"
        ))),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(TrainError::Backend(format!(
                "no usable wgpu adapter (looked for Vulkan, Metal, DX12 or GL): {msg}. On Debian or \
                 Ubuntu, install a Vulkan driver, e.g. `apt-get install mesa-vulkan-drivers libvulkan1` \
                 (lavapipe, a software Vulkan device), or train on the CPU with --backend flex"
            )))
        }
    }
}

/// Makes `backend` Burn's default device for this process (the `BURN_DEVICE` variable),
/// unless the user set one. Burn creates some state on `Device::default()` before
/// moving it (the optimiser record on resume), and its default prefers wgpu whenever
/// wgpu is compiled in: a CPU run of a wgpu-enabled build would open, or fail to open,
/// a GPU adapter it never uses.
///
/// # Safety
/// Sets an environment variable: call it at the start of `main`, before any thread is
/// spawned.
pub unsafe fn pin_default_device(backend: Backend) {
    if std::env::var_os("BURN_DEVICE").is_none() {
        // SAFETY: the caller guarantees no other thread exists yet.
        unsafe { std::env::set_var("BURN_DEVICE", backend.to_string()) };
    }
}

/// A description of the device for the log's first line.
pub fn describe(backend: Backend, device: &Device) -> String {
    format!("backend: {backend}, device: {device:?}")
}
