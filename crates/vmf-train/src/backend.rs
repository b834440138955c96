//! The one place that knows which backend runs: chosen from cargo features
//! (`wgpu` > `flex` > `ndarray` when several are enabled).

use burn::tensor::Device;

/// Name of the compiled-in backend.
pub fn name() -> &'static str {
    if cfg!(feature = "wgpu") {
        "wgpu"
    } else if cfg!(feature = "flex") {
        "flex (CPU)"
    } else if cfg!(feature = "ndarray") {
        "ndarray (CPU)"
    } else {
        "none"
    }
}

/// The device of the compiled-in backend (without autodiff).
pub fn device() -> Device {
    #[cfg(feature = "wgpu")]
    {
        Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)
    }
    #[cfg(all(feature = "flex", not(feature = "wgpu")))]
    {
        Device::flex()
    }
    #[cfg(all(feature = "ndarray", not(any(feature = "flex", feature = "wgpu"))))]
    {
        #[allow(deprecated)]
        Device::ndarray()
    }
    #[cfg(not(any(feature = "flex", feature = "ndarray", feature = "wgpu")))]
    compile_error!("enable one backend feature of vmf-train: flex, ndarray or wgpu");
}

/// A CPU device when a CPU backend is compiled in, else [`device`]: where models are
/// initialised, so that the initial weights do not depend on the training backend.
pub fn host_device() -> Device {
    #[cfg(feature = "flex")]
    {
        Device::flex()
    }
    #[cfg(all(feature = "ndarray", not(feature = "flex")))]
    {
        #[allow(deprecated)]
        Device::ndarray()
    }
    #[cfg(not(any(feature = "flex", feature = "ndarray")))]
    {
        device()
    }
}
