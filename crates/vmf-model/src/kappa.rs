//! How a vMF model's kappa is set: from outside at every step (a schedule, the
//! default), or learned, either one kappa for the model or one per example from an
//! encoder head. A learned kappa lives in s = ln kappa and stays inside a configured
//! range [min, max] by smooth maps (a hard clamp would have zero gradient outside and
//! could pin it there); the sampler and the KL of [`crate::VmfReparam::learned`] serve
//! every kappa of that range.

use burn::module::{Module, Param};
use burn::tensor::activation::{sigmoid, softplus};
use burn::tensor::{Device, Tensor};

/// Sharpness of the soft upper bound of a per-example ln kappa: within ~1 of ln max
/// the bound bends it down by at most ln(1 + e^-4) / 4 = 0.005 further away.
const CAP_SHARPNESS: f64 = 4.0;

/// The range of a learned kappa and its starting value (0 < min < init < max).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KappaRange {
    /// kappa at initialisation (per-example: for an encoder head output of 0).
    pub init: f64,
    /// Lower bound.
    pub min: f64,
    /// Upper bound.
    pub max: f64,
}

impl KappaRange {
    /// The kappa that the sampler, the KL table and the density ratio use for ln kappa
    /// `log_kappa`: clamped into [min, max] as the tables clamp it.
    pub fn kappa_at(self, log_kappa: f64) -> f64 {
        log_kappa
            .clamp(self.min.ln(), self.max.ln())
            .exp()
            .clamp(self.min, self.max)
    }

    /// The constant a0 of a per-example head, kappa = min + softplus(a + a0): the one
    /// that makes a head output a = 0 give `init`, a0 = softplus^-1(init - min).
    fn head_offset(self) -> f64 {
        let a0 = (self.init - self.min).exp_m1().ln();
        if a0.is_finite() {
            a0
        } else {
            self.init - self.min
        }
    }

    /// The output a of a per-example head that gives `kappa` (in (min, max), away
    /// from the soft cap at max): softplus^-1(kappa - min) - a0. Starting the head's
    /// bias there starts that column at `kappa` instead of `init`.
    pub fn head_output_for(self, kappa: f64) -> f64 {
        Self {
            init: kappa,
            ..self
        }
        .head_offset()
            - self.head_offset()
    }
}

/// How kappa is set.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum KappaMode {
    /// Given from outside (a schedule): the reparameterisation layer holds it.
    #[default]
    Scheduled,
    /// One trainable kappa for the model: s = ln min + (ln max - ln min) sigmoid(r),
    /// r the parameter.
    Learned(KappaRange),
    /// kappa(x) = min + softplus(a(x) + a0) from one more column a(x) of the encoder
    /// head (S-VAE's head, with bounds), a0 such that a(x) = 0 gives `init`; ln kappa
    /// is then bounded above by ln max smoothly.
    PerExample(KappaRange),
}

impl KappaMode {
    /// The range of a learned kappa (`None` when scheduled).
    pub fn range(self) -> Option<KappaRange> {
        match self {
            Self::Scheduled => None,
            Self::Learned(r) | Self::PerExample(r) => Some(r),
        }
    }

    /// Columns the encoder head needs beyond the posterior's own: 1 for a
    /// per-example kappa.
    pub fn head_columns(self) -> usize {
        usize::from(matches!(self, Self::PerExample(_)))
    }
}

/// The trainable part of a learned kappa: the global parameter (none for a scheduled
/// or per-example kappa, whose weights are the encoder head's).
#[derive(Module, Debug)]
pub struct KappaHead {
    /// r, `[1]`, for [`KappaMode::Learned`].
    raw: Option<Param<Tensor<1>>>,
    #[module(skip)]
    mode: KappaMode,
}

impl KappaHead {
    /// The head of `mode` on `device`, at its initial kappa.
    pub fn new(mode: KappaMode, device: &Device) -> Self {
        let raw = match mode {
            KappaMode::Learned(r) => {
                let t = (r.init.ln() - r.min.ln()) / (r.max.ln() - r.min.ln());
                let logit = (t / (1.0 - t)).ln();
                Some(Param::from_tensor(Tensor::full([1], logit, device)))
            }
            KappaMode::Scheduled | KappaMode::PerExample(_) => None,
        };
        Self { raw, mode }
    }

    /// How kappa is set.
    pub fn mode(&self) -> KappaMode {
        self.mode
    }

    /// ln kappa per row (`None` when scheduled), `[rows]`: for a per-example kappa from
    /// the head columns `column` (`[batch, c]` with batch c = rows: one column per
    /// block of a product of spheres, read row by row), else the global one repeated.
    ///
    /// # Panics
    /// If the mode is per-example and `column` is `None` (a programming error).
    pub fn log_kappa(&self, column: Option<Tensor<2>>, rows: usize) -> Option<Tensor<1>> {
        match self.mode {
            KappaMode::Scheduled => None,
            KappaMode::Learned(r) => {
                let raw = self
                    .raw
                    .as_ref()
                    .expect("a learned kappa has its parameter");
                let (lo, hi) = (r.min.ln(), r.max.ln());
                let s = sigmoid(raw.val()).mul_scalar(hi - lo).add_scalar(lo); // [1]
                Some(s.expand([rows]))
            }
            KappaMode::PerExample(r) => {
                let a = column.expect("a per-example kappa reads its head column");
                let a0 = r.head_offset();
                let kappa = softplus(a.reshape([rows]).add_scalar(a0), 1.0).add_scalar(r.min);
                let s_max = r.max.ln();
                // min(s, ln max), smoothly: ln max - softplus(ln max - s).
                let gap = kappa.log().neg().add_scalar(s_max);
                Some(softplus(gap, CAP_SHARPNESS).neg().add_scalar(s_max))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: Tensor<1>) -> Vec<f64> {
        t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap()
    }

    #[test]
    fn initial_kappa_is_init_and_learned_kappas_stay_in_range() {
        let _rng = crate::rng_lock();
        let device = Device::flex();
        let range = KappaRange {
            init: 30.0,
            min: 1.0,
            max: 1e4,
        };
        let global = KappaHead::new(KappaMode::Learned(range), &device);
        let s = values(global.log_kappa(None, 3).unwrap());
        assert_eq!(s.len(), 3);
        assert!((s[0].exp() - 30.0).abs() < 1e-3 * 30.0, "{}", s[0].exp());

        let per = KappaHead::new(KappaMode::PerExample(range), &device);
        let a = Tensor::<1>::from_floats([0.0, -1e3, 1e6, 5.0], &device).reshape([4, 1]);
        let s = values(per.log_kappa(Some(a), 4).unwrap());
        assert!((s[0].exp() - 30.0).abs() < 1e-3 * 30.0, "{}", s[0].exp());
        assert!((s[1].exp() - 1.0).abs() < 1e-5, "floor: {}", s[1].exp());
        assert!(
            s[2] <= 1e4f64.ln() + 1e-6 && s[2] > 1e4f64.ln() - 0.01,
            "cap: {}",
            s[2]
        );
        // Near init the map is kappa = min + softplus(a + a0): a = 5 adds ~5.
        assert!((s[3].exp() - 35.0).abs() < 0.05, "{}", s[3].exp());
        // A head output of head_output_for(k) gives k through the head's map, near
        // the floor, at init and far above it (below the cap's bend).
        for k in [1.5, 30.0, 400.0, 1000.0] {
            let a = range.head_output_for(k);
            let s = values(
                per.log_kappa(Some(Tensor::full([1, 1], a, &device)), 1)
                    .unwrap(),
            );
            assert!((s[0].exp() / k - 1.0).abs() < 1e-4, "{k}: {}", s[0].exp());
        }
        assert_eq!(
            KappaHead::new(KappaMode::Scheduled, &device)
                .log_kappa(None, 2)
                .map(|_| ()),
            None
        );
    }
}
