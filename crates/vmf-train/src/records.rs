//! The rows of a run's metrics files: `metrics.csv` (training, one row per logged
//! window), `eval.csv` (the test set, one row per epoch) and `valid.csv` (the
//! validation set). Each file's columns are listed once, in `TrainColumns::fill` and
//! `EvalColumns::fill`, which give the header and a row's fields in one pass, so the
//! two cannot drift apart. Optional columns are chosen by the run's setup (the
//! layout), never by a row's values, and are only ever added at the end of a group
//! that came last before, so that an older run's header stays a prefix of the newer
//! one (what [`crate::output::resume_csv`] relies on).

use crate::evaluation::EvalMetrics;

/// Names and values of a row, filled together; the values are empty when only the
/// header is wanted.
struct Fields<'r, R> {
    record: Option<&'r R>,
    names: Vec<String>,
    values: Vec<String>,
}

impl<'r, R> Fields<'r, R> {
    fn new(record: Option<&'r R>) -> Self {
        Self {
            record,
            names: Vec::new(),
            values: Vec::new(),
        }
    }

    /// A column `name` whose value `value` reads from the record.
    fn col(&mut self, name: impl Into<String>, value: impl FnOnce(&R) -> String) {
        self.names.push(name.into());
        self.values
            .push(self.record.map_or_else(String::new, value));
    }

    fn header(self) -> String {
        self.names.join(",")
    }

    fn row(self) -> String {
        self.values.join(",")
    }
}

/// The figures of one logged window of training steps (per-step means).
#[derive(Debug, Clone)]
pub struct TrainRecord {
    /// Steps done.
    pub step: u64,
    /// The epoch (0-based) the window ended in.
    pub epoch: usize,
    /// The `kappa` field (empty without a concentration).
    pub kappa: String,
    /// Mean KL per example.
    pub kl: f64,
    /// Mean training loss (reconstruction) per example.
    pub loss: f32,
    /// A learned kappa's ln kappa: mean, min and max over the window's examples.
    pub log_kappa: Option<(f64, f32, f32)>,
    /// With gradient clipping: the mean global gradient norm before it.
    pub grad_norm: Option<f32>,
    /// Units (images, tokens) per second over the window.
    pub per_sec: f64,
}

/// Which columns `metrics.csv` has.
#[derive(Debug, Clone, Copy)]
pub struct TrainColumns {
    /// What the throughput counts (`images` names `images_per_sec`).
    pub units: &'static str,
    /// A learned kappa: ln kappa's spread.
    pub learned_kappa: bool,
    /// Gradient clipping: the gradient norm.
    pub clipped: bool,
}

impl TrainColumns {
    fn fill<'r>(&self, r: Option<&'r TrainRecord>) -> Fields<'r, TrainRecord> {
        let mut f = Fields::new(r);
        f.col("step", |r| r.step.to_string());
        f.col("epoch", |r| r.epoch.to_string());
        f.col("kappa", |r| r.kappa.clone());
        f.col("kl", |r| r.kl.to_string());
        f.col("loss", |r| r.loss.to_string());
        f.col("elbo", |r| (-(f64::from(r.loss) + r.kl)).to_string());
        if self.learned_kappa {
            let spread = |r: &TrainRecord| r.log_kappa.unwrap_or((f64::NAN, f32::NAN, f32::NAN));
            f.col("log_kappa_mean", |r| spread(r).0.to_string());
            f.col("log_kappa_min", |r| spread(r).1.to_string());
            f.col("log_kappa_max", |r| spread(r).2.to_string());
        }
        if self.clipped {
            f.col("grad_norm", |r| r.grad_norm.unwrap_or(f32::NAN).to_string());
        }
        // The throughput stays the last column.
        f.col(format!("{}_per_sec", self.units), |r| {
            format!("{:.1}", r.per_sec)
        });
        f
    }

    /// The header of `metrics.csv`.
    pub fn header(&self) -> String {
        self.fill(None).header()
    }

    /// The row of `r`.
    pub fn row(&self, r: &TrainRecord) -> String {
        self.fill(Some(r)).row()
    }
}

/// One epoch's evaluation of a split.
#[derive(Debug, Clone)]
pub struct EvalRecord<'a> {
    /// Steps done.
    pub step: u64,
    /// Epochs done.
    pub epoch: usize,
    /// The `kappa` field (empty without a concentration).
    pub kappa: String,
    /// The figures.
    pub metrics: &'a EvalMetrics,
    /// The importance-sampled NLL per example (test set, `training.eval_samples`).
    pub nll_is: Option<f64>,
}

/// Which columns `eval.csv` (or `valid.csv`) has.
#[derive(Debug, Clone, Copy)]
pub struct EvalColumns {
    /// Text: perplexities.
    pub per_unit: bool,
    /// Mutual information and active units.
    pub latent: bool,
    /// The greedy reconstruction's accuracy.
    pub accuracy: bool,
    /// A learned kappa: ln kappa's spread over the split.
    pub learned_kappa: bool,
    /// The importance-sampled NLL (and its perplexity with `per_unit`).
    pub sampled_nll: bool,
}

impl EvalColumns {
    fn fill<'r, 'a>(&self, r: Option<&'r EvalRecord<'a>>) -> Fields<'r, EvalRecord<'a>> {
        let mut f = Fields::new(r);
        f.col("step", |r| r.step.to_string());
        f.col("epoch", |r| r.epoch.to_string());
        f.col("kappa", |r| r.kappa.clone());
        f.col("kl", |r| r.metrics.kl.to_string());
        f.col("recon_sampled", |r| r.metrics.recon_sampled.to_string());
        f.col("recon_mean", |r| r.metrics.recon_mean.to_string());
        f.col("elbo", |r| r.metrics.elbo.to_string());
        if self.per_unit {
            f.col("ppl_elbo", |r| r.metrics.elbo_perplexity().to_string());
        }
        if self.latent {
            let get = |r: &EvalRecord| r.metrics.latent.expect("latent statistics were computed");
            f.col("mi", |r| get(r).mutual_information.to_string());
            f.col("active_units", |r| get(r).active_units.to_string());
            f.col("components_90", |r| get(r).components_90.to_string());
        }
        if self.accuracy {
            f.col("recon_accuracy", |r| {
                r.metrics
                    .recon_accuracy
                    .map_or_else(String::new, |a| a.to_string())
            });
        }
        if self.learned_kappa {
            let get = |r: &EvalRecord| r.metrics.log_kappa.expect("ln kappa was collected");
            f.col("log_kappa_mean", |r| get(r).mean.to_string());
            f.col("log_kappa_min", |r| get(r).min.to_string());
            f.col("log_kappa_max", |r| get(r).max.to_string());
        }
        if self.sampled_nll {
            let nll = |r: &EvalRecord| r.nll_is.expect("the sampled NLL was computed");
            f.col("nll_is", |r| nll(r).to_string());
            if self.per_unit {
                f.col("ppl_is", |r| {
                    (nll(r) / r.metrics.units_per_example).exp().to_string()
                });
            }
        }
        f
    }

    /// The header.
    pub fn header(&self) -> String {
        self.fill(None).header()
    }

    /// The row of `r`.
    pub fn row(&self, r: &EvalRecord<'_>) -> String {
        self.fill(Some(r)).row()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluation::KappaSpread;
    use crate::latent_stats::LatentStats;

    fn metrics() -> EvalMetrics {
        EvalMetrics {
            recon_sampled: 100.5,
            recon_mean: 99.25,
            kl: 7.75,
            elbo: -108.25,
            units_per_example: 20.0,
            latent: Some(LatentStats {
                mutual_information: 4.5,
                active_units: 3,
                components_90: 2,
            }),
            recon_accuracy: Some(0.125),
            log_kappa: Some(KappaSpread {
                mean: 3.5,
                min: 3.0,
                max: 4.0,
            }),
        }
    }

    /// Every layout: as many fields as names, and the names those of the files the
    /// earlier versions wrote (their headers, written out by hand).
    #[test]
    fn headers_and_rows_agree_for_every_layout() {
        let m = metrics();
        let rec = EvalRecord {
            step: 10,
            epoch: 1,
            kappa: "35".into(),
            metrics: &m,
            nll_is: Some(106.0),
        };
        for bits in 0..32u32 {
            let c = EvalColumns {
                per_unit: bits & 1 != 0,
                latent: bits & 2 != 0,
                accuracy: bits & 4 != 0,
                learned_kappa: bits & 8 != 0,
                sampled_nll: bits & 16 != 0,
            };
            let (h, r) = (c.header(), c.row(&rec));
            assert_eq!(h.split(',').count(), r.split(',').count(), "{h}\n{r}");
        }
        let all = EvalColumns {
            per_unit: true,
            latent: true,
            accuracy: true,
            learned_kappa: true,
            sampled_nll: true,
        };
        assert_eq!(
            all.header(),
            "step,epoch,kappa,kl,recon_sampled,recon_mean,elbo,ppl_elbo,mi,active_units,\
             components_90,recon_accuracy,log_kappa_mean,log_kappa_min,log_kappa_max,nll_is,\
             ppl_is"
        );
        // ppl = exp(-ELBO / units) and exp(NLL / units), by hand: e^(108.25/20), e^(106/20).
        let row = all.row(&rec);
        let f: Vec<&str> = row.split(',').collect();
        assert_eq!(
            &f[..7],
            ["10", "1", "35", "7.75", "100.5", "99.25", "-108.25"]
        );
        assert_eq!(&f[8..15], ["4.5", "3", "2", "0.125", "3.5", "3", "4"]);
        assert_eq!(f[15], "106");
        let near = |s: &str, v: f64| (s.parse::<f64>().unwrap() / v - 1.0).abs() < 1e-12;
        assert!(
            near(f[7], 5.4125f64.exp()) && near(f[16], 5.3f64.exp()),
            "{row}"
        );

        let t = TrainColumns {
            units: "tokens",
            learned_kappa: true,
            clipped: true,
        };
        assert_eq!(
            t.header(),
            "step,epoch,kappa,kl,loss,elbo,log_kappa_mean,log_kappa_min,log_kappa_max,\
             grad_norm,tokens_per_sec"
        );
        let row = t.row(&TrainRecord {
            step: 50,
            epoch: 0,
            kappa: String::new(),
            kl: 1.5,
            loss: 90.25,
            log_kappa: Some((2.5, 2.0, 3.0)),
            grad_norm: Some(0.5),
            per_sec: 1234.56,
        });
        assert_eq!(row, "50,0,,1.5,90.25,-91.75,2.5,2,3,0.5,1234.6");
        let plain = TrainColumns {
            units: "images",
            learned_kappa: false,
            clipped: false,
        };
        assert_eq!(
            plain.header(),
            "step,epoch,kappa,kl,loss,elbo,images_per_sec"
        );
    }
}
