//! How kappa is set: a scheduled hyperparameter (step -> kappa), or learned.
//!
//! In TOML, `[kappa]` is one of
//! - `schedule = "constant"`, `value`
//! - `schedule = "linear" | "cosine" | "exponential"`, `start`, `end`, `steps`
//!   (reaches `end` at `steps` and stays there; exponential interpolates log kappa)
//! - `schedule = "piecewise"`, `steps = [0, s1, ...]`, `values = [k0, k1, ...]`
//!   (k_i from step s_i on)
//! - `schedule = "kl_target"`, `kl = <one of the above, in nats>`: kappa is the one
//!   whose KL equals the scheduled budget (vmf-core's `kappa_for_kl`).
//! - `schedule = "learned"` (one kappa for the model) or `"per_example"` (kappa(x) from
//!   the encoder), `init`, `min`, `max` (defaults 10, 1, 10,000): not a schedule but a
//!   parameter trained with the model, in ln kappa, kept in [min, max] (see
//!   vmf-model's `KappaMode`); the KL then enters the loss. A per-example kappa on a
//!   product of spheres may start each block elsewhere: `block_init = [k1, k2, ...]`.

use serde::{Deserialize, Serialize};
use vmf_core::Family;
use vmf_model::{KappaMode, KappaRange};

/// A schedule of kappa (or, inside `kl_target`, of a KL budget in nats).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "schedule", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// The same value at every step.
    Constant {
        /// The value.
        value: f64,
    },
    /// Straight line from `start` to `end` over `steps` steps.
    Linear {
        /// Value at step 0.
        start: f64,
        /// Value from step `steps` on.
        end: f64,
        /// Length of the ramp.
        steps: u64,
    },
    /// Half cosine from `start` to `end` over `steps` steps.
    Cosine {
        /// Value at step 0.
        start: f64,
        /// Value from step `steps` on.
        end: f64,
        /// Length of the ramp.
        steps: u64,
    },
    /// Geometric from `start` to `end` over `steps` steps (both > 0).
    Exponential {
        /// Value at step 0.
        start: f64,
        /// Value from step `steps` on.
        end: f64,
        /// Length of the ramp.
        steps: u64,
    },
    /// Piecewise constant: `values[i]` from step `steps[i]` on.
    Piecewise {
        /// Increasing start steps, the first one 0.
        steps: Vec<u64>,
        /// One value per start step.
        values: Vec<f64>,
    },
    /// kappa from a (scheduled) KL budget in nats.
    KlTarget {
        /// The budget's schedule, in nats.
        kl: Box<Schedule>,
    },
    /// One learned kappa for the model.
    Learned(LearnedKappa),
    /// A learned kappa per example, from the encoder.
    PerExample(LearnedKappa),
}

/// The keys of a learned kappa, each with its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnedKappa {
    /// kappa at the first step (per example: for an encoder output of 0).
    #[serde(default = "default_init")]
    pub init: f64,
    /// Lower bound.
    #[serde(default = "default_min")]
    pub min: f64,
    /// Upper bound.
    #[serde(default = "default_max")]
    pub max: f64,
    /// A per-example kappa on a product of spheres: each block's kappa at the first
    /// step, in `model.blocks` order, in place of `init` (default empty: `init` for
    /// every block). Which block turns sharp is otherwise settled by the seed in the
    /// first epochs (docs/svae-product.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub block_init: Vec<f64>,
}

impl LearnedKappa {
    /// As vmf-model's range.
    pub fn range(&self) -> KappaRange {
        KappaRange {
            init: self.init,
            min: self.min,
            max: self.max,
        }
    }
}

fn default_init() -> f64 {
    10.0
}

fn default_min() -> f64 {
    1.0
}

fn default_max() -> f64 {
    1e4
}

impl Schedule {
    /// How the model sets kappa: [`KappaMode::Scheduled`] for a schedule.
    pub fn kappa_mode(&self) -> KappaMode {
        match self {
            Self::Learned(k) => KappaMode::Learned(k.range()),
            Self::PerExample(k) => KappaMode::PerExample(k.range()),
            _ => KappaMode::Scheduled,
        }
    }

    /// A per-example kappa's starting value per block (`block_init`; empty for any
    /// other schedule or where not given).
    pub fn block_init(&self) -> &[f64] {
        match self {
            Self::Learned(k) | Self::PerExample(k) => &k.block_init,
            _ => &[],
        }
    }

    /// Whether kappa is learned rather than scheduled.
    pub fn is_learned(&self) -> bool {
        self.kappa_mode() != KappaMode::Scheduled
    }

    /// The scheduled value at `step` (for `kl_target`, the KL budget is converted; a
    /// learned kappa gives its initial value).
    pub fn value_at(&self, step: u64, family: Family, dim: usize) -> vmf_core::Result<f64> {
        Ok(match self {
            Self::KlTarget { kl } => family.kappa_for_kl(dim, kl.value_at(step, family, dim)?)?,
            Self::Learned(k) | Self::PerExample(k) => k.init,
            plain => plain
                .plain_at(step)
                .expect("every other schedule is a plain one"),
        })
    }

    /// The value at `step` of a plain schedule of numbers (`constant`, `linear`,
    /// `cosine`, `exponential`, `piecewise`); `None` for `kl_target` and a learned
    /// kappa, which mean something only for kappa.
    pub fn plain_at(&self, step: u64) -> Option<f64> {
        let ramp = |steps: u64| {
            if steps == 0 {
                1.0
            } else {
                (step as f64 / steps as f64).min(1.0)
            }
        };
        Some(match self {
            Self::Constant { value } => *value,
            Self::Linear { start, end, steps } => start + (end - start) * ramp(*steps),
            Self::Cosine { start, end, steps } => {
                let t = ramp(*steps);
                end + (start - end) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
            Self::Exponential { start, end, steps } => {
                (start.ln() + (end.ln() - start.ln()) * ramp(*steps)).exp()
            }
            Self::Piecewise { steps, values } => {
                let i = steps.partition_point(|&s| s <= step).max(1) - 1;
                values[i]
            }
            Self::KlTarget { .. } | Self::Learned(_) | Self::PerExample(_) => return None,
        })
    }

    /// Checks a plain schedule of positive factors (`optimizer.lr_factor`); `key`
    /// prefixes messages.
    pub fn validate_factor(&self, key: &str) -> Result<(), String> {
        let values: Vec<(String, f64)> = match self {
            Self::Constant { value } => vec![("value".into(), *value)],
            Self::Linear { start, end, .. }
            | Self::Cosine { start, end, .. }
            | Self::Exponential { start, end, .. } => {
                vec![("start".into(), *start), ("end".into(), *end)]
            }
            Self::Piecewise { steps, values } => {
                check_piecewise(key, steps, values)?;
                let named = values.iter().enumerate();
                named.map(|(i, v)| (format!("values[{i}]"), *v)).collect()
            }
            Self::KlTarget { .. } | Self::Learned(_) | Self::PerExample(_) => {
                return Err(format!(
                    "{key}: a factor takes a plain schedule (constant, linear, cosine, \
                     exponential or piecewise), not kl_target or a learned value"
                ));
            }
        };
        for (name, v) in values {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{key}.{name} = {v}: must be a positive number"));
            }
        }
        Ok(())
    }

    /// [`Schedule::value_at`] for the training loop: a `kl_target` reuses the last
    /// KL -> kappa conversion (a root-find) while the budget stays the same.
    pub fn kappa_at(
        &self,
        step: u64,
        family: Family,
        dim: usize,
        memo: &mut Option<(f64, f64)>,
    ) -> vmf_core::Result<f64> {
        let Self::KlTarget { kl } = self else {
            return self.value_at(step, family, dim);
        };
        let budget = kl.value_at(step, family, dim)?;
        match *memo {
            Some((b, kappa)) if b == budget => Ok(kappa),
            _ => {
                let kappa = family.kappa_for_kl(dim, budget)?;
                *memo = Some((budget, kappa));
                Ok(kappa)
            }
        }
    }

    /// Checks the schedule's values for `family` in latent dimension `dim`; `key`
    /// prefixes messages.
    pub fn validate(&self, key: &str, family: Family, dim: usize) -> Result<(), String> {
        self.validate_as(key, family, dim, false)
    }

    fn validate_as(
        &self,
        key: &str,
        family: Family,
        dim: usize,
        is_kl: bool,
    ) -> Result<(), String> {
        let check = |name: &str, v: f64| -> Result<(), String> {
            if is_kl {
                let max = family
                    .kl(dim, vmf_core::KAPPA_MAX)
                    .map_err(|e| e.to_string())?;
                if !(v.is_finite() && (0.0..=max).contains(&v)) {
                    return Err(format!(
                        "{key}.{name} = {v}: a KL budget must be in [0, {max}] nats for latent_dim = {dim}"
                    ));
                }
                Ok(())
            } else {
                vmf_core::error::check_kappa(v).map_err(|e| format!("{key}.{name}: {e}"))
            }
        };
        match self {
            Self::Constant { value } => check("value", *value),
            Self::Linear { start, end, .. } | Self::Cosine { start, end, .. } => {
                check("start", *start)?;
                check("end", *end)
            }
            Self::Exponential { start, end, .. } => {
                check("start", *start)?;
                check("end", *end)?;
                if *start <= 0.0 || *end <= 0.0 {
                    return Err(format!(
                        "{key}: an exponential schedule needs start > 0 and end > 0"
                    ));
                }
                Ok(())
            }
            Self::Piecewise { steps, values } => {
                check_piecewise(key, steps, values)?;
                for (i, v) in values.iter().enumerate() {
                    check(&format!("values[{i}]"), *v)?;
                }
                Ok(())
            }
            Self::KlTarget { kl } => {
                if is_kl {
                    return Err(format!("{key}: kl_target cannot be nested"));
                }
                kl.validate_as(&format!("{key}.kl"), family, dim, true)
            }
            Self::Learned(LearnedKappa {
                init,
                min,
                max,
                block_init,
            })
            | Self::PerExample(LearnedKappa {
                init,
                min,
                max,
                block_init,
            }) => {
                if is_kl {
                    return Err(format!(
                        "{key}: a learned kappa is not a KL budget; use schedule = \"learned\" \
                         or \"per_example\" directly under [kappa]"
                    ));
                }
                for (name, v) in [("min", min), ("init", init), ("max", max)] {
                    vmf_core::error::check_kappa(*v).map_err(|e| format!("{key}.{name}: {e}"))?;
                }
                if !(*min > 0.0 && min < init && init < max) {
                    return Err(format!(
                        "{key}: a learned kappa needs 0 < min < init < max (got min = {min}, \
                         init = {init}, max = {max})"
                    ));
                }
                if !block_init.is_empty() && matches!(self, Self::Learned(_)) {
                    return Err(format!(
                        "{key}.block_init: schedule = \"learned\" is one kappa for the whole \
                         model; a kappa per block needs schedule = \"per_example\""
                    ));
                }
                for (i, v) in block_init.iter().enumerate() {
                    vmf_core::error::check_kappa(*v)
                        .map_err(|e| format!("{key}.block_init[{i}]: {e}"))?;
                    if !(min < v && v < max) {
                        return Err(format!(
                            "{key}.block_init[{i}] = {v}: a block's starting kappa lies \
                             between min = {min} and max = {max}"
                        ));
                    }
                }
                Ok(())
            }
        }
    }
}

/// A piecewise schedule's steps: one per value, from 0, increasing.
fn check_piecewise(key: &str, steps: &[u64], values: &[f64]) -> Result<(), String> {
    if steps.is_empty() || steps.len() != values.len() {
        return Err(format!(
            "{key}: piecewise needs as many steps as values, at least one (got {} and {})",
            steps.len(),
            values.len()
        ));
    }
    if steps[0] != 0 || steps.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!(
            "{key}.steps = {steps:?}: must start at 0 and increase"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_of_the_schedules() {
        let lin = Schedule::Linear {
            start: 10.0,
            end: 20.0,
            steps: 100,
        };
        assert_eq!(lin.value_at(0, Family::Vmf, 8).unwrap(), 10.0);
        assert_eq!(lin.value_at(50, Family::Vmf, 8).unwrap(), 15.0);
        assert_eq!(lin.value_at(1000, Family::Vmf, 8).unwrap(), 20.0);
        let cos = Schedule::Cosine {
            start: 10.0,
            end: 20.0,
            steps: 100,
        };
        assert!((cos.value_at(50, Family::Vmf, 8).unwrap() - 15.0).abs() < 1e-12);
        assert!(
            (cos.value_at(25, Family::Vmf, 8).unwrap()
                - (20.0 - 10.0 * 0.5 * (1.0 + (0.25 * std::f64::consts::PI).cos())))
            .abs()
                < 1e-12
        );
        let exp = Schedule::Exponential {
            start: 1.0,
            end: 100.0,
            steps: 100,
        };
        assert!((exp.value_at(50, Family::Vmf, 8).unwrap() - 10.0).abs() < 1e-12);
        let pw = Schedule::Piecewise {
            steps: vec![0, 10, 20],
            values: vec![1.0, 2.0, 3.0],
        };
        let got: Vec<f64> = [0, 9, 10, 19, 20, 99]
            .iter()
            .map(|&s| pw.value_at(s, Family::Vmf, 8).unwrap())
            .collect();
        assert_eq!(got, vec![1.0, 1.0, 2.0, 2.0, 3.0, 3.0]);
        let kl = Schedule::KlTarget {
            kl: Box::new(Schedule::Constant { value: 5.0 }),
        };
        let k = kl.value_at(3, Family::Vmf, 8).unwrap();
        assert!((vmf_core::kl_to_uniform(8, k).unwrap() - 5.0).abs() < 1e-9);
        // The memoised form gives the same kappa and remembers the conversion.
        let mut memo = None;
        assert_eq!(kl.kappa_at(3, Family::Vmf, 8, &mut memo).unwrap(), k);
        assert_eq!(memo, Some((5.0, k)));
        let ramp = Schedule::KlTarget {
            kl: Box::new(Schedule::Linear {
                start: 1.0,
                end: 3.0,
                steps: 10,
            }),
        };
        assert_eq!(
            ramp.kappa_at(5, Family::Vmf, 8, &mut memo).unwrap(),
            vmf_core::kappa_for_kl(8, 2.0).unwrap()
        );
        assert_eq!(lin.kappa_at(50, Family::Vmf, 8, &mut memo).unwrap(), 15.0);
    }

    #[test]
    fn invalid_schedules_name_the_key() {
        let e = Schedule::Constant { value: -1.0 }
            .validate("kappa", Family::Vmf, 8)
            .unwrap_err();
        assert!(e.contains("kappa.value") && e.contains("-1"), "{e}");
        let e = Schedule::Piecewise {
            steps: vec![0, 5],
            values: vec![1.0],
        }
        .validate("kappa", Family::Vmf, 8)
        .unwrap_err();
        assert!(e.contains("piecewise"), "{e}");
        let e = Schedule::Piecewise {
            steps: vec![3, 5],
            values: vec![1.0, 2.0],
        }
        .validate("kappa", Family::Vmf, 8)
        .unwrap_err();
        assert!(e.contains("kappa.steps"), "{e}");
        let e = Schedule::KlTarget {
            kl: Box::new(Schedule::Constant { value: 1e9 }),
        }
        .validate("kappa", Family::Vmf, 8)
        .unwrap_err();
        assert!(e.contains("kappa.kl.value") && e.contains("nats"), "{e}");
        let e = Schedule::Exponential {
            start: 0.0,
            end: 5.0,
            steps: 3,
        }
        .validate("kappa", Family::Vmf, 8)
        .unwrap_err();
        assert!(e.contains("start > 0"), "{e}");
        let range = |init, min, max| LearnedKappa {
            init,
            min,
            max,
            block_init: Vec::new(),
        };
        let learned = |init, min, max| Schedule::Learned(range(init, min, max));
        let e = learned(10.0, 20.0, 100.0)
            .validate("kappa", Family::Vmf, 8)
            .unwrap_err();
        assert!(
            e.contains("min < init < max") && e.contains("min = 20"),
            "{e}"
        );
        let e = learned(10.0, 0.0, 100.0)
            .validate("kappa", Family::Vmf, 8)
            .unwrap_err();
        assert!(e.contains("0 < min"), "{e}");
        let e = learned(10.0, 1.0, 1e9)
            .validate("kappa", Family::Vmf, 8)
            .unwrap_err();
        assert!(e.contains("kappa.max"), "{e}");
        let e = Schedule::KlTarget {
            kl: Box::new(learned(10.0, 1.0, 100.0)),
        }
        .validate("kappa", Family::Vmf, 8)
        .unwrap_err();
        assert!(e.contains("not a KL budget"), "{e}");
        assert!(
            learned(10.0, 1.0, 100.0)
                .validate("kappa", Family::Vmf, 8)
                .is_ok()
        );
        let blocks = |block_init: Vec<f64>| LearnedKappa {
            block_init,
            ..range(10.0, 1.0, 100.0)
        };
        let check = |s: Schedule| s.validate("kappa", Family::Vmf, 8);
        for (schedule, wanted) in [
            (
                Schedule::Learned(blocks(vec![5.0, 50.0])),
                &["kappa.block_init", "per_example"][..],
            ),
            (
                Schedule::PerExample(blocks(vec![5.0, 100.0])),
                &["kappa.block_init[1] = 100", "max = 100"],
            ),
            (
                Schedule::PerExample(blocks(vec![f64::NAN])),
                &["kappa.block_init[0]"],
            ),
        ] {
            let e = check(schedule).unwrap_err();
            assert!(wanted.iter().all(|w| e.contains(w)), "{e}");
        }
        assert!(check(Schedule::PerExample(blocks(vec![5.0, 50.0]))).is_ok());
    }

    #[test]
    fn learned_kappa_keys_have_defaults_and_give_the_mode() {
        let s: Schedule = toml::from_str("schedule = \"per_example\"\nmax = 500.0").unwrap();
        let range = KappaRange {
            init: 10.0,
            min: 1.0,
            max: 500.0,
        };
        assert_eq!(s.kappa_mode(), KappaMode::PerExample(range));
        assert!(s.is_learned());
        let s: Schedule = toml::from_str("schedule = \"learned\"\ninit = 3.0").unwrap();
        assert_eq!(s.value_at(7, Family::Vmf, 4).unwrap(), 3.0);
        assert!(matches!(s.kappa_mode(), KappaMode::Learned(r) if r.init == 3.0 && r.max == 1e4));
        let s = Schedule::Constant { value: 5.0 };
        assert_eq!(s.kappa_mode(), KappaMode::Scheduled);
        assert!(!s.is_learned());
    }
}
