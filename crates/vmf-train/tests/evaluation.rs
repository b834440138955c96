//! The importance-sampled log-likelihood of a trained checkpoint, for both model kinds,
//! for a kappa learned per example and for a product of spheres.

use std::path::Path;

use vmf_train::evaluation::{ImportanceSampling, evaluate_checkpoint, evaluate_checkpoint_with};
use vmf_train::{TrainConfig, TrainOptions, checkpoint, train};

#[test]
fn importance_sampled_log_likelihood_bounds_and_limits_vmf() {
    check(
        "vmf",
        "[model]\nlatent_dim = 5\nhidden = [128]\n[kappa]\nschedule = \"constant\"\nvalue = 15.0\n",
    );
}

/// Each example's own kappa in log q: a wrong per-row constant shows in LL_1 vs ELBO.
#[test]
fn importance_sampled_log_likelihood_bounds_and_limits_per_example_kappa() {
    check(
        "vmf-per-example",
        "[model]\nlatent_dim = 5\nhidden = [128]\n[kappa]\nschedule = \"per_example\"\n\
         init = 15.0\nmin = 1.0\nmax = 1000.0\n",
    );
}

#[test]
fn importance_sampled_log_likelihood_bounds_and_limits_gaussian() {
    check(
        "gaussian",
        "[model]\nkind = \"gaussian\"\nlatent_dim = 4\nhidden = [128]\n",
    );
}

/// Three circles, each with its own kappa per example: a block's density or sampler
/// correction summed wrongly over the blocks shows in LL_1 vs ELBO.
#[test]
fn importance_sampled_log_likelihood_bounds_and_limits_product_of_spheres() {
    check(
        "vmf-product",
        "[model]\nlatent_dim = 6\nfactors = 3\nhidden = [128]\n[kappa]\n\
         schedule = \"per_example\"\ninit = 15.0\nmin = 1.0\nmax = 1000.0\n",
    );
}

/// S^3 x S^1: blocks of two sizes, each weighed by the tables of its own size; one
/// weighed by the other's shows in LL_1 vs ELBO. The config's blocks reach the
/// checkpoint's model when it is evaluated.
#[test]
fn importance_sampled_log_likelihood_bounds_and_limits_blocks_of_two_sizes() {
    check(
        "vmf-product-unequal",
        "[model]\nlatent_dim = 6\nblocks = [4, 2]\nhidden = [128]\n[kappa]\n\
         schedule = \"per_example\"\ninit = 15.0\nmin = 1.0\nmax = 1000.0\n",
    );
}

fn check(name: &str, model: &str) {
    let dir = std::env::temp_dir().join(format!("vmf-eval-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!(
        "seed = 2\nrun_dir = \"{}\"\n[data]\ndataset = \"mnist\"\npixels = \"dynamic_binary\"\ntrain_limit = 2000\ntest_limit = 300\n\
         {model}[training]\nepochs = 2\nbatch_size = 50\nimages = false\n",
        dir.display()
    );
    let config = TrainConfig::parse(&text, Path::new("eval-test.toml")).unwrap();
    train(&config, &TrainOptions::default()).unwrap();
    let ckpt = checkpoint::list(&dir).pop().unwrap();

    let k1 = evaluate_checkpoint(&ckpt, 1, 7, None).unwrap();
    let k10 = evaluate_checkpoint(&ckpt, 10, 7, None).unwrap();
    let k100 = evaluate_checkpoint(&ckpt, 100, 7, None).unwrap();
    let elbo = k100.metrics.elbo;
    eprintln!(
        "ELBO {elbo}, LL_1 {} +- {}, LL_10 {}, LL_100 {}",
        k1.log_likelihood, k1.log_likelihood_se, k10.log_likelihood, k100.log_likelihood
    );

    // K = 1 is an unbiased estimate of the ELBO: a wrong log q or log p constant shows here.
    let tol = 4.0 * std::f64::consts::SQRT_2 * k1.log_likelihood_se;
    assert!(
        (k1.log_likelihood - elbo).abs() < tol,
        "LL_1 {} vs ELBO {elbo} (tol {tol})",
        k1.log_likelihood
    );
    // Tighter with more samples, towards a limit.
    assert!(k100.log_likelihood > elbo + 1.0);
    assert!(k1.log_likelihood < k10.log_likelihood && k10.log_likelihood < k100.log_likelihood);
    assert!(k100.log_likelihood - k10.log_likelihood < k10.log_likelihood - k1.log_likelihood);
    // A mixture proposal (half the draws from the prior) is unbiased too: it lies with
    // the estimates of the posterior alone, about at K = 50's (the prior's draws add
    // little where the decoder depends on z, as here), not above the limit; its
    // prior draws are counted. All from the prior is the plain Monte Carlo average of
    // p(x|z): finite, and not above the limit either.
    let mix = |share| {
        evaluate_checkpoint_with(
            &ckpt,
            ImportanceSampling::with_prior_share(100, share),
            7,
            None,
        )
    };
    if let Some(g) = [("vmf-product", 3), ("vmf-product-unequal", 2)]
        .iter()
        .find_map(|&(n, g)| (n == name).then_some(g))
    {
        // The mixture's proposal density is written for one sphere: refused, named.
        let e = mix(0.5).unwrap_err().to_string();
        assert!(
            e.contains("prior draws") && e.contains(&format!("product of {g}")),
            "{e}"
        );
        return;
    }
    let (half, prior) = (mix(0.5).unwrap(), mix(1.0).unwrap());
    eprintln!(
        "LL_100 with half the draws from the prior {}, all {}",
        half.log_likelihood, prior.log_likelihood
    );
    assert_eq!((half.prior_draws, prior.prior_draws), (50, 100));
    assert!(
        half.log_likelihood > k10.log_likelihood
            && half.log_likelihood < k100.log_likelihood + 4.0 * k1.log_likelihood_se,
        "mixture {} against LL_10 {} and LL_100 {}",
        half.log_likelihood,
        k10.log_likelihood,
        k100.log_likelihood
    );
    assert!(
        prior.log_likelihood.is_finite()
            && prior.log_likelihood < k100.log_likelihood + 4.0 * k1.log_likelihood_se,
        "all from the prior {} against LL_100 {}",
        prior.log_likelihood,
        k100.log_likelihood
    );
    // Same K and seed, same number; another seed, a different one.
    assert_eq!(
        evaluate_checkpoint(&ckpt, 10, 7, None)
            .unwrap()
            .log_likelihood,
        k10.log_likelihood
    );
    assert_ne!(
        evaluate_checkpoint(&ckpt, 10, 8, None)
            .unwrap()
            .log_likelihood,
        k10.log_likelihood
    );
}
