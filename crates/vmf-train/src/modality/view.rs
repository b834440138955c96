//! What a data kind renders of a trained model ([`View`], asked through
//! [`super::DataKind::view`]), and the latent paths both kinds draw ([`path`]).

use vmf_model::Blocks;

/// One view of a trained model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum View {
    /// Decodings of prior samples: a `side` x `side` grid of images; `side` sentences,
    /// each decoded greedily and by sampling at `temperature`.
    Sample {
        /// Grid side (images) or number of prior draws (text).
        side: usize,
        /// Seed of the prior draws and of the sampled words.
        seed: u64,
        /// Softmax temperature of the sampled sentences (text).
        temperature: f64,
    },
    /// The first `n` test examples above their decodings from the posterior's location.
    Reconstruct {
        /// Test examples.
        n: usize,
    },
    /// `steps` points on the path from one test example's posterior location to the
    /// next one's (great circle for vMF, straight line for the Gaussian), for `pairs`
    /// pairs.
    Interpolate {
        /// Pairs of consecutive test examples.
        pairs: usize,
        /// Points per path, ends included.
        steps: usize,
    },
    /// The posterior locations of the first `n` test images coloured by label (images).
    Latent {
        /// Test examples.
        n: usize,
    },
}

/// `steps` (at least 2) points from `a` to `b`, ends included, at equal steps: on the
/// great circle (`on_sphere`, for unit vectors) or on the straight line.
pub fn path(on_sphere: bool, a: &[f64], b: &[f64], steps: usize) -> Vec<Vec<f64>> {
    let steps = steps.max(2);
    (0..steps)
        .map(|s| {
            let t = s as f64 / (steps - 1) as f64;
            if on_sphere {
                slerp(a, b, t)
            } else {
                a.iter().zip(b).map(|(x, y)| x + t * (y - x)).collect()
            }
        })
        .collect()
}

/// [`path`] on a product of spheres: each block moves on its own great circle (on
/// one sphere, or off the sphere, [`path`] itself).
pub fn path_of_product(
    on_sphere: bool,
    blocks: &Blocks,
    a: &[f64],
    b: &[f64],
    steps: usize,
) -> Vec<Vec<f64>> {
    if !on_sphere || blocks.count() <= 1 {
        return path(on_sphere, a, b, steps);
    }
    let steps = steps.max(2);
    (0..steps)
        .map(|s| {
            let t = s as f64 / (steps - 1) as f64;
            (0..blocks.count())
                .flat_map(|j| {
                    let cols = blocks.columns(j);
                    slerp(&a[cols.clone()], &b[cols], t)
                })
                .collect()
        })
        .collect()
}

/// The point at fraction `t` of the great circle from unit vector `a` to `b`.
pub fn slerp(a: &[f64], b: &[f64], t: f64) -> Vec<f64> {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| x * y)
        .sum::<f64>()
        .clamp(-1.0, 1.0);
    let omega = dot.acos();
    if omega < 1e-9 {
        return a.to_vec();
    }
    let (wa, wb) = (
        ((1.0 - t) * omega).sin() / omega.sin(),
        (t * omega).sin() / omega.sin(),
    );
    a.iter().zip(b).map(|(x, y)| wa * x + wb * y).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slerp_stays_on_the_great_circle() {
        let a = [1.0, 0.0, 0.0];
        let b = [0.0, 1.0, 0.0];
        let m = slerp(&a, &b, 0.5);
        let h = std::f64::consts::FRAC_1_SQRT_2;
        assert!((m[0] - h).abs() < 1e-15 && (m[1] - h).abs() < 1e-15 && m[2] == 0.0);
        for t in [0.0, 0.1, 0.77, 1.0] {
            let p = slerp(&a, &b, t);
            assert!((p.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-15);
            assert!(
                (p[1].atan2(p[0]) - t * std::f64::consts::FRAC_PI_2).abs() < 1e-15,
                "constant speed"
            );
        }
    }

    #[test]
    fn paths_have_their_ends_and_equal_steps() {
        let (a, b) = ([1.0, 0.0], [0.0, 1.0]);
        let line = path(false, &a, &b, 5);
        assert_eq!(line.len(), 5);
        assert_eq!(line[0], a.to_vec());
        assert_eq!(line[4], b.to_vec());
        assert_eq!(line[1], vec![0.75, 0.25]);
        let arc = path(true, &a, &b, 3);
        let h = std::f64::consts::FRAC_1_SQRT_2;
        assert!((arc[1][0] - h).abs() < 1e-15 && (arc[1][1] - h).abs() < 1e-15);
        assert!((arc[2][1] - 1.0).abs() < 1e-15);
        // Two circles: each block on its own great circle (a slerp of the whole vector
        // would leave both blocks off their circles, at |block| = 1/sqrt 2 midway).
        let (a, b) = ([1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0]);
        let torus = path_of_product(true, &Blocks::equal(4, 2), &a, &b, 3);
        for (got, want) in torus[1].iter().zip([h, h, h, h]) {
            assert!((got - want).abs() < 1e-15, "{:?}", torus[1]);
        }
        assert_eq!((torus[0].clone(), torus[2].len()), (a.to_vec(), 4));
        assert_eq!(
            path_of_product(true, &Blocks::one(4), &a, &b, 3),
            path(true, &a, &b, 3)
        );
        // Blocks of 3 and 2: the first turns by a right angle about e_3 (midway at
        // 45 degrees), the second, already at b's, stays.
        let (a, b) = ([1.0, 0.0, 0.0, 0.6, 0.8], [0.0, 1.0, 0.0, 0.6, 0.8]);
        let mid = &path_of_product(true, &Blocks::of(vec![3, 2]), &a, &b, 3)[1];
        for (got, want) in mid.iter().zip([h, h, 0.0, 0.6, 0.8]) {
            assert!((got - want).abs() < 1e-15, "{mid:?}");
        }
    }
}
