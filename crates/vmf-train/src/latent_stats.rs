//! How much the latent code is used, over a data set, for every data kind: mutual
//! information I(x; z) and active units (He et al. 2019), the measures of KL collapse.
//!
//! - MI = E_x E_q(z|x)[log q(z|x)] - E_x E_q(z|x)[log q(z)], with the aggregate
//!   posterior q(z) = mean_j q(z | x_j) over the N examples (one draw per example;
//!   an estimate, biased low by at most log N).
//! - Active units: dimensions u with `Var_x(E_q[z_u]) > 0.01`; `E_q[z] = A_d(kappa) mu`
//!   for vMF (each example's kappa where it is learned), the mean for the Gaussian. Because |mu| = 1 the per-unit variances of a
//!   vMF code sum to at most A_d^2 <= 1, so the scale-free count is reported too: the
//!   number of principal components of `E_q[z]` that hold 90% of its variance.
//!
//! Computed on the host in f64 from the posteriors read back.

use burn::tensor::Device;
use serde::Serialize;
use vmf_model::{LatentNoise, ModelKind, Rows, VaeModel};

use crate::error::TrainError;
use crate::output::read_back;
use crate::seeds::HostNoise;

/// The threshold of the active-unit rule.
pub const ACTIVE_VARIANCE: f64 = 0.01;
/// The share of variance the scale-free count must hold.
pub const VARIANCE_SHARE: f64 = 0.9;

/// Latent usage over a data set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatentStats {
    /// I(x; z) in nats.
    pub mutual_information: f64,
    /// Units with `Var_x(E_q[z_u]) > 0.01`.
    pub active_units: usize,
    /// Principal components of `E_q[z]` holding 90% of its variance.
    pub components_90: usize,
}

/// Per-example posterior parameters and one draw each, on the host.
#[derive(Debug, Clone, Default)]
pub struct Codes {
    /// Latent dimension.
    pub dim: usize,
    /// mu or the mean, row-major `[n, d]`.
    pub location: Vec<f64>,
    /// Gaussian log-variances `[n, d]` (empty for vMF).
    pub logvar: Vec<f64>,
    /// vMF: each example's kappa, `[n]` (the scheduled one repeated, unless learned).
    pub kappa: Vec<f64>,
    /// One draw z ~ q(z | x) per example, `[n, d]`.
    pub z: Vec<f64>,
}

impl Codes {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.location.len() / self.dim.max(1)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.location.is_empty()
    }
}

fn host(t: burn::tensor::Tensor<2>) -> Result<Vec<f64>, TrainError> {
    Ok(read_back(t)?.into_iter().map(f64::from).collect())
}

/// Reads the posteriors of `batches` and one seeded draw per example.
pub fn collect_codes<M: VaeModel>(
    model: &M,
    batches: &[M::Batch],
    max_rows: usize,
    kappa: f64,
    seed: u64,
    device: &Device,
) -> Result<Codes, TrainError> {
    let d = model.latent_dim();
    let reparam = crate::family::sampling_layer(model, kappa, device)?;
    let mut codes = Codes {
        dim: d,
        ..Codes::default()
    };
    let mut part = 0u64;
    for batch in batches {
        let rows = batch.rows();
        for start in (0..rows).step_by(max_rows.max(1)) {
            let x = batch.slice_rows(start..(start + max_rows).min(rows));
            let noise: LatentNoise =
                HostNoise::new(seed, "latent-stats", part).latent(x.rows(), d, device);
            let posterior = model.posterior(&x);
            if let Some(logvar) = posterior.log_variance() {
                codes.logvar.extend(host(logvar)?);
            }
            let draw = posterior.draw(noise, reparam.as_ref());
            if let Some(r) = &reparam {
                match (&draw.log_kappa, r.range()) {
                    (Some(s), Some(range)) => {
                        let s = read_back(s.clone())?;
                        codes
                            .kappa
                            .extend(s.iter().map(|&v| range.kappa_at(f64::from(v))));
                    }
                    _ => codes.kappa.extend(std::iter::repeat_n(kappa, x.rows())),
                }
            }
            codes.location.extend(host(draw.location)?);
            codes.z.extend(host(draw.z)?);
            part += 1;
        }
    }
    Ok(codes)
}

/// Per example, log C(kappa_j) and E[<mu, z>] at kappa_j of a code on the sphere
/// (empty otherwise); examples that share the previous one's kappa share its values.
fn sphere_constants(kind: ModelKind, codes: &Codes) -> Vec<(f64, f64)> {
    let Some(family) = kind.family() else {
        return Vec::new();
    };
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(codes.kappa.len());
    for (j, &k) in codes.kappa.iter().enumerate() {
        let c = match out.last() {
            Some(&c) if codes.kappa[j - 1] == k => c,
            _ => {
                let (log_c, mean_w) = (
                    family.log_normaliser(codes.dim, k),
                    family.mean_w(codes.dim, k),
                );
                let bad = "kappa of a trained layer is in range";
                (log_c.expect(bad), mean_w.expect(bad))
            }
        };
        out.push(c);
    }
    out
}

/// log q(z | x_j) for every j, up to a constant common to all j (it cancels in MI).
fn log_q_rows(
    kind: ModelKind,
    codes: &Codes,
    constants: &[(f64, f64)],
    z: &[f64],
    out: &mut [f64],
) {
    let d = codes.dim;
    for (j, o) in out.iter_mut().enumerate() {
        let location = &codes.location[j * d..(j + 1) * d];
        let logvar = codes.logvar.get(j * d..(j + 1) * d).unwrap_or_default();
        let (kappa, log_c) = match constants.get(j) {
            Some(&(log_c, _)) => (codes.kappa[j], log_c),
            None => (0.0, 0.0),
        };
        *o = kind.host_log_q(location, kappa, log_c, logvar, z);
    }
}

/// MI and active units of `codes` (see the module docs).
pub fn latent_stats(kind: ModelKind, codes: &Codes) -> LatentStats {
    let (n, d) = (codes.len(), codes.dim);
    let constants = sphere_constants(kind, codes);
    // MI: for each draw z_i, log q(z_i | x_i) - log mean_j q(z_i | x_j).
    let mut row = vec![0.0; n];
    let mut mi = 0.0;
    for i in 0..n {
        let z = &codes.z[i * d..(i + 1) * d];
        log_q_rows(kind, codes, &constants, z, &mut row);
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        mi += row[i] - (lse - (n as f64).ln());
    }
    let mi = mi / n.max(1) as f64;

    // E_q[z] per example, then its covariance over examples.
    let scale = |i: usize| kind.mean_factor(constants.get(i).map_or(1.0, |c| c.1));
    let mean: Vec<f64> = (0..d)
        .map(|u| {
            (0..n)
                .map(|i| scale(i) * codes.location[i * d + u])
                .sum::<f64>()
                / n as f64
        })
        .collect();
    let mut cov = vec![0.0; d * d];
    for i in 0..n {
        let e: Vec<f64> = (0..d)
            .map(|u| scale(i) * codes.location[i * d + u] - mean[u])
            .collect();
        for a in 0..d {
            for b in a..d {
                cov[a * d + b] += e[a] * e[b];
            }
        }
    }
    let denom = (n as f64 - 1.0).max(1.0);
    for a in 0..d {
        for b in a..d {
            cov[a * d + b] /= denom;
            cov[b * d + a] = cov[a * d + b];
        }
    }
    let active = (0..d).filter(|&u| cov[u * d + u] > ACTIVE_VARIANCE).count();
    let mut eig = symmetric_eigenvalues(cov, d);
    eig.sort_by(|a, b| b.total_cmp(a));
    let total: f64 = eig.iter().map(|v| v.max(0.0)).sum();
    let mut acc = 0.0;
    let mut components = 0;
    for v in &eig {
        if total <= 0.0 || acc >= VARIANCE_SHARE * total {
            break;
        }
        acc += v.max(0.0);
        components += 1;
    }
    LatentStats {
        mutual_information: mi,
        active_units: active,
        components_90: components,
    }
}

/// Eigenvalues of a symmetric `n` x `n` matrix (row-major) by cyclic Jacobi rotations.
/// Written out because a d x d covariance (d <= a few hundred) is all that needs it,
/// and a linear-algebra crate would add its build to every CI run for this alone.
pub fn symmetric_eigenvalues(mut a: Vec<f64>, n: usize) -> Vec<f64> {
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|p| ((p + 1)..n).map(move |q| (p, q)))
            .map(|(p, q)| a[p * n + q].powi(2))
            .sum();
        let diag: f64 = (0..n).map(|p| a[p * n + p].powi(2)).sum();
        if off <= 1e-30 * diag.max(1e-300) {
            break;
        }
        for p in 0..n {
            for q in (p + 1)..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
            }
        }
    }
    (0..n).map(|p| a[p * n + p]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_finds_known_eigenvalues() {
        // [[2, 1], [1, 2]] has 1 and 3; a diagonal matrix its diagonal.
        let mut e = symmetric_eigenvalues(vec![2.0, 1.0, 1.0, 2.0], 2);
        e.sort_by(f64::total_cmp);
        assert!((e[0] - 1.0).abs() < 1e-12 && (e[1] - 3.0).abs() < 1e-12);
        // A rotated diag(5, 2, 0.5): trace and eigenvalues preserved.
        let (c, s) = (0.6f64, 0.8f64);
        let r = [c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0];
        let dg = [5.0, 2.0, 0.5];
        let mut m = vec![0.0; 9];
        for i in 0..3 {
            for j in 0..3 {
                m[i * 3 + j] = (0..3).map(|k| r[i * 3 + k] * dg[k] * r[j * 3 + k]).sum();
            }
        }
        let mut e = symmetric_eigenvalues(m, 3);
        e.sort_by(f64::total_cmp);
        for (got, want) in e.iter().zip([0.5, 2.0, 5.0]) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
    }

    fn codes(location: Vec<f64>, z: Vec<f64>, logvar: Vec<f64>, dim: usize) -> Codes {
        Codes {
            dim,
            location,
            logvar,
            z,
            kappa: vec![],
        }
    }

    #[test]
    fn collapsed_codes_carry_nothing() {
        // Every example has the same Gaussian posterior N(0, I): q(z) = q(z|x), MI = 0,
        // no active unit.
        let n = 50;
        let z: Vec<f64> = (0..2 * n)
            .map(|i| ((i * 37 % 17) as f64 - 8.0) / 5.0)
            .collect();
        let c = codes(vec![0.0; 2 * n], z, vec![0.0; 2 * n], 2);
        let s = latent_stats(ModelKind::Gaussian, &c);
        assert!(s.mutual_information.abs() < 1e-12, "{s:?}");
        assert_eq!((s.active_units, s.components_90), (0, 0));
    }

    #[test]
    fn separated_codes_carry_log_n() {
        // n examples with far-apart, tight posteriors and z at their means: q(z_i) is
        // q(z_i|x_i) / n, so MI = log n exactly.
        let n = 8;
        let loc: Vec<f64> = (0..n).flat_map(|i| [10.0 * i as f64, 0.0]).collect();
        let c = codes(loc.clone(), loc, vec![-4.0; 2 * n], 2);
        let s = latent_stats(ModelKind::Gaussian, &c);
        assert!(
            (s.mutual_information - (n as f64).ln()).abs() < 1e-9,
            "{s:?}"
        );
        assert_eq!((s.active_units, s.components_90), (1, 1));
        // vMF: mu on four orthogonal directions of S^3 at large kappa, z = mu.
        let mu: Vec<f64> = (0..4)
            .flat_map(|i| (0..4).map(move |u| f64::from(u8::from(u == i))))
            .collect();
        let mut c = codes(mu.clone(), mu, vec![], 4);
        c.kappa = vec![200.0; 4];
        let s = latent_stats(ModelKind::Vmf, &c);
        assert!((s.mutual_information - 4f64.ln()).abs() < 1e-9, "{s:?}");
        // Each unit's A_d mu_u varies (0.99 once, 0 three times): all four active; the
        // four centred points span 3 dimensions equally.
        assert_eq!((s.active_units, s.components_90), (4, 3));
    }

    #[test]
    fn per_example_kappas_enter_through_their_normalisers() {
        // Two examples with the same mu but kappa 1 and 100: q(z|x_1) != q(z|x_2), so
        // the code tells them apart. The oracle: vmf-core's normalised log-density.
        let d = 3;
        let mu = [0.0, 0.0, 1.0];
        let (z1, z2) = ([0.6, 0.0, -0.8], [0.0, 0.1, 0.99498743710662]);
        let kappas = [1.0, 100.0];
        let mut c = codes([mu, mu].concat(), [z1, z2].concat(), vec![], d);
        c.kappa = kappas.to_vec();
        let log_q = |z: &[f64], k: f64| vmf_core::log_density(&mu, z, k).unwrap();
        let want = [(z1, 0), (z2, 1)]
            .iter()
            .map(|(z, i)| {
                let (a, b) = (log_q(z, kappas[0]), log_q(z, kappas[1]));
                let mix = (0.5 * (a.exp() + b.exp())).ln();
                log_q(z, kappas[*i]) - mix
            })
            .sum::<f64>()
            / 2.0;
        let s = latent_stats(ModelKind::Vmf, &c);
        assert!(want > 0.1, "a case where kappa matters: {want}");
        assert!(
            (s.mutual_information - want).abs() < 1e-9,
            "{} vs {want}",
            s.mutual_information
        );
        // E_q[z] = A_3(kappa) mu differs between the two along the third unit only.
        let a = |k| vmf_core::VmfStats::new(d, k).unwrap().mean_w;
        assert_eq!(
            s.active_units,
            usize::from((a(100.0) - a(1.0)).powi(2) / 2.0 > 0.01)
        );
    }
}
