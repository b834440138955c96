#!/usr/bin/env python3
"""The reference S-VAE (the authors' PyTorch package) under our S-VAE protocol.

Trains a VAE on dynamically binarised MNIST with the distributions of the authors'
package `hyperspherical_vae` (nicola-decao/s-vae-pytorch: VonMisesFisher with Wood's
rejection sampler and the Householder map, HypersphericalUniform) or PyTorch's Normal,
under the protocol of scripts/svae_protocol.sh: our IDX files, the last 10,000 training
images held out for validation, MLP 784-256-128-d (ReLU), batch 64, Adam 1e-3, early
stopping after `--patience` epochs without a better validation ELBO, then the test
log-likelihood of the best-validation weights with K = 500 importance samples.

The model is ours (a plain MLP, as the protocol says); only the distributions are
theirs, so their sampler, its gradients and their KL are what is compared. The
estimator is computed in float64 with the exact vMF density (log normaliser from
scipy's exponentially scaled Bessel function) and the uniform prior on the sphere, the
same estimator as our `eval`, on one seeded binarisation of the test images.

Install (outside the repository; their package is not on PyPI, so from a checkout of
its repository, commit 671c46c):

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch numpy scipy
    /tmp/torchvenv/bin/pip install /path/to/s-vae-pytorch

Run (d = the sphere's dimension S^d, as the paper's table; the vMF lives in R^(d+1)):

    /tmp/torchvenv/bin/python scripts/svae_reference.py --dist vmf --d 20 --out runs/ref/vmf-d20

It writes `epochs.csv` (one row per epoch), `result.json` (the final figures),
`examples.csv` (each test image's log p(x), for scripts/paired_nll.py) and `best.pt`
(the best weights) into --out. --deadline-min bounds the wall-clock time:
training stops there and the best weights so far are evaluated (the result says so);
SIGTERM (`kill PID`) does the same after the current epoch. best.pt is rewritten at
every better validation ELBO, so a run killed outright can still be evaluated.
--eval-only PATH evaluates saved weights (a best.pt) with this estimator and these
test images (another --seed or --samples, for the estimator's spread); with --out it
writes that folder's examples.csv too.

Pieces of theirs swapped for ours, one at a time, for the bisection:
- --sampler exact-b: Wood's envelope parameter b, exact at every kappa (the package
  blends it into an approximation from kappa 10 on, which makes its draws wrong for
  kappa between 10 and ~100 in high dimension);
- --direction projection: our map from w to z, z = w mu + sqrt(1 - w^2) nu, in place of
  their Householder reflection (the same distribution; another gradient to mu);
- --normal-scale logvar: the Normal's scale as ours, exp of half a log variance, in
  place of their softplus.

--check-sampler checks their distributions against closed forms (with the swaps
given): for d = 2 the package's float32 closed form (whose uniform can be exactly 0,
which puts a draw at the antipode of mu) against the float64 one the estimator uses;
for the other dimensions of the protocol and a range of kappa it draws --draws values
of w = <mu, z> from VonMisesFisher.rsample and prints their mean against the exact
E[w] = A_m(kappa) (in standard errors) and the reparameterisation gradient
d mean(w) / d kappa against the exact A_m'(kappa) = 1 - A^2 - (m - 1) A / kappa; their
KL to the uniform prior and its kappa gradient against float64 (dKL/dkappa = kappa
A_m'(kappa)); and the gradient that reaches mu through the direction map (unbiased:
its mean against the closed form; its variance).
"""

import argparse
import copy
import csv
import gzip
import json
import math
import os
import platform
import signal
import struct
import sys
import time

import numpy as np
import scipy.special
import torch
import torch.nn as nn
import torch.nn.functional as F

from hyperspherical_vae.distributions import HypersphericalUniform, VonMisesFisher


def exact_sample_w(self, shape):
    """Their rejection sampler's w with Wood's envelope parameter b exact at every kappa.

    Wood's algorithm needs b = (-2 kappa + sqrt(4 kappa^2 + (m - 1)^2)) / (m - 1); the
    package blends b, from kappa 10 to 11, into its large-kappa approximation (m - 1) /
    (4 kappa), to avoid the cancellation in that difference, while its acceptance test
    assumes the exact b (docs/svae-reference.md). The same b written as (m - 1) / (2 kappa
    + sqrt(4 kappa^2 + (m - 1)^2)) has no cancellation, so here it is exact at every
    kappa. Everything else (the envelope's a and d as the package forms them, its batched
    acceptance loop, the gradient through w alone) stays theirs.
    """
    m, kappa = self._VonMisesFisher__m, self.scale
    c = torch.sqrt(4 * kappa**2 + (m - 1) ** 2)
    b = (m - 1) / (2 * kappa + c)
    a = (m - 1 + 2 * kappa + c) / 4
    d = 4 * a * b / (1 + b) - (m - 1) * math.log(m - 1)
    e, w = self._VonMisesFisher__while_loop(b, a, d, shape, k=self.k)
    self._VonMisesFisher__b, self._VonMisesFisher__e, self._VonMisesFisher__w = b, e, w
    return w


def exact_sample_w3(self, shape):
    """w of the vMF on S^2 by its exact inverse CDF, in float64, for the estimator's
    proposal (`log_likelihood`).

    The package's closed form for m = 3, w = 1 + log(u + (1 - u) e^(-2 kappa)) / kappa,
    takes u from a float32 Uniform(0, 1), which returns exactly 0 once in 2^24 draws;
    there w = -1, the antipode of mu, where the vMF's density is e^(-2 kappa) of its
    peak. Weighed by that density, such a draw's importance weight is off by about
    2 kappa nats: at K = 5000 on the 10,000 test images (5e7 draws, 3 such draws
    expected) two images came out at log p(x) = +3500 and +4242
    (docs/svae-reference/estimator-check.md). Here u = 1 - U with U uniform on [0, 1)
    in float64 lies in (0, 1], so the log never meets 0, and the inverse CDF is taken
    in float64 before rounding to the model's dtype.
    """
    shape = shape + torch.Size(self.scale.shape)
    kappa = self.scale.double().expand(shape)
    u = 1 - torch.rand(shape, dtype=torch.float64)
    w = 1 + torch.logaddexp(u.log(), torch.log1p(-u) - 2 * kappa) / kappa
    self._VonMisesFisher__w = w.to(self.dtype)
    return self._VonMisesFisher__w


def use_exact_envelope():
    """Make their rejection sampler draw from the vMF at every kappa (`--sampler exact-b`):
    `exact_sample_w` in place of theirs, one piece swapped for the bisection."""
    VonMisesFisher._VonMisesFisher__sample_w_rej = exact_sample_w


def use_projection_direction():
    """Give their vMF our direction map (`--direction projection`).

    Their rsample places x = (w, sqrt(1 - w^2) v) around e1 and reflects it onto mu with
    the Householder map through e1 - mu; ours writes z = w mu + sqrt(1 - w^2) nu, nu the
    unit part of a standard normal orthogonal to mu (crates/vmf-core, `rotate`). Both
    draw the same distribution; they differ in how the gradient reaches mu (and theirs
    adds 1e-5 to the reflection's norm). Their w, its sampler and its gradient in kappa
    are kept: this swaps one piece for the bisection.
    """

    def rsample(self, shape=torch.Size()):
        shape = shape if isinstance(shape, torch.Size) else torch.Size([shape])
        m = self._VonMisesFisher__m
        w = (self._VonMisesFisher__sample_w3(shape=shape) if m == 3
             else self._VonMisesFisher__sample_w_rej(shape=shape))  # shape + [n, 1]
        mu = self.loc.expand(shape + self.loc.shape)
        e = torch.randn(shape + self.loc.shape, dtype=self.loc.dtype)
        # Twice, as ours: one pass leaves a rounding residue along mu when e is nearly
        # parallel to it.
        perp = e - (e * mu).sum(-1, keepdim=True) * mu
        perp = perp - (perp * mu).sum(-1, keepdim=True) * mu
        nu = perp / perp.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return w * mu + torch.sqrt(torch.clamp(1 - w**2, 1e-10)) * nu

    VonMisesFisher.rsample = rsample


def read_idx_images(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n, rows, cols = struct.unpack(">IIII", data[:16])
    if magic != 2051:
        sys.exit(f"error: {path} is not an IDX image file (magic {magic})")
    pixels = np.frombuffer(data, dtype=np.uint8, offset=16)
    if pixels.size != n * rows * cols:
        sys.exit(f"error: {path} is truncated: {pixels.size} of {n * rows * cols} pixels")
    return pixels.reshape(n, rows * cols).astype(np.float32) / 255.0


class Vae(nn.Module):
    """MLP 784-256-128-z encoder and its mirror decoder; a kappa head (softplus + 1, as
    the authors' example) for the vMF, a scale head for the Normal: softplus (theirs) or
    exp(h / 2), h a log variance (ours, `--normal-scale logvar`)."""

    def __init__(self, dist, z_dim, hidden=(256, 128), normal_scale="softplus"):
        super().__init__()
        self.dist, self.z_dim, self.normal_scale = dist, z_dim, normal_scale
        self.kappa_map = None  # (a0, min, max) for our head (`load_ours`); None: theirs
        h1, h2 = hidden
        self.enc1, self.enc2 = nn.Linear(784, h1), nn.Linear(h1, h2)
        self.mean = nn.Linear(h2, z_dim)
        self.spread = nn.Linear(h2, 1 if dist == "vmf" else z_dim)
        self.dec1, self.dec2, self.out = nn.Linear(z_dim, h2), nn.Linear(h2, h1), nn.Linear(h1, 784)

    def encode(self, x):
        h = F.relu(self.enc2(F.relu(self.enc1(x))))
        mean = self.mean(h)
        if self.dist == "vmf":
            a = self.spread(h)
            if self.kappa_map is None:
                kappa = F.softplus(a) + 1
            else:  # ours (crates/vmf-model/src/kappa.rs): min + softplus(a + a0), capped at max
                a0, lo, hi = self.kappa_map
                s = (F.softplus(a + a0) + lo).log()
                kappa = torch.exp(math.log(hi) - F.softplus(math.log(hi) - s, beta=4.0))
            return mean / mean.norm(dim=-1, keepdim=True), kappa
        if self.normal_scale == "logvar":  # ours: the head gives ln sigma^2
            return mean, torch.exp(0.5 * self.spread(h))
        return mean, F.softplus(self.spread(h))

    def posterior(self, mean, spread):
        if self.dist == "vmf":
            return VonMisesFisher(mean, spread), HypersphericalUniform(self.z_dim - 1)
        return torch.distributions.Normal(mean, spread), torch.distributions.Normal(
            torch.zeros_like(mean), torch.ones_like(spread))

    def decode(self, z):
        return self.out(F.relu(self.dec2(F.relu(self.dec1(z)))))

    def kl(self, q, p):
        kl = torch.distributions.kl.kl_divergence(q, p)
        return kl.sum(-1) if self.dist == "normal" else kl

    def elbo_terms(self, x):
        mean, spread = self.encode(x)
        q, p = self.posterior(mean, spread)
        logits = self.decode(q.rsample())
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        return recon, self.kl(q, p), spread


def load_ours(weights, config_path):
    """One of our MLP models as a `Vae` here: the safetensors file that our `export` wrote
    and the run's config.toml (for the family, the latent size and the kappa head's map).
    Burn stores a linear layer's weight as [in, out]; the encoder's last layer gives the
    mean's d columns, then the kappa column (vMF) or the d log variances (Gaussian)."""
    import tomllib
    with open(config_path, "rb") as f:
        cfg = tomllib.load(f)
    m = cfg.get("model", {})
    kind = m.get("kind", "vmf")
    if kind not in ("vmf", "gaussian") or m.get("hidden") != [256, 128] or m.get("loss") != "bernoulli":
        sys.exit(f"error: {config_path}: only the S-VAE protocol's MLP (model.kind vmf or gaussian, "
                 f"hidden = [256, 128], loss = \"bernoulli\") can be loaded here")
    with open(weights, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    tensors = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            sys.exit(f"error: {weights}: tensor {name} is {t['dtype']}, expected F32")
        lo, hi = t["data_offsets"]
        tensors[name] = torch.from_numpy(
            np.frombuffer(raw, dtype="<f4", count=(hi - lo) // 4, offset=8 + n + lo).reshape(t["shape"]).copy())
    d = m["latent_dim"]
    dist = "vmf" if kind == "vmf" else "normal"
    model = Vae(dist, d, normal_scale="logvar")
    head_w, head_b = tensors["encoder.layers.2.weight"].T, tensors["encoder.layers.2.bias"]
    if head_w.shape[0] != (d + 1 if dist == "vmf" else 2 * d):
        sys.exit(f"error: {weights}: the encoder's output has {head_w.shape[0]} columns, not what "
                 f"{config_path} says (latent_dim = {d}, {kind}; a kappa per example for the vMF)")
    state = {
        "enc1.weight": tensors["encoder.layers.0.weight"].T, "enc1.bias": tensors["encoder.layers.0.bias"],
        "enc2.weight": tensors["encoder.layers.1.weight"].T, "enc2.bias": tensors["encoder.layers.1.bias"],
        "mean.weight": head_w[:d], "mean.bias": head_b[:d],
        "spread.weight": head_w[d:], "spread.bias": head_b[d:],
        "dec1.weight": tensors["decoder.layers.0.weight"].T, "dec1.bias": tensors["decoder.layers.0.bias"],
        "dec2.weight": tensors["decoder.layers.1.weight"].T, "dec2.bias": tensors["decoder.layers.1.bias"],
        "out.weight": tensors["decoder.layers.2.weight"].T, "out.bias": tensors["decoder.layers.2.bias"],
    }
    model.load_state_dict({k: v.contiguous() for k, v in state.items()})
    if dist == "vmf":
        k = cfg.get("kappa", {})
        if k.get("schedule") != "per_example":
            sys.exit(f"error: {config_path}: only a kappa per example ([kappa] schedule = \"per_example\") "
                     "can be loaded here")
        if not all(key in k for key in ("init", "min", "max")):
            sys.exit(f"error: {config_path}: [kappa] needs init, min and max written out to be loaded here")
        init, lo, hi = k["init"], k["min"], k["max"]
        a0 = math.log(math.expm1(init - lo))
        model.kappa_map = (a0, lo, hi)
    return model


def log_vmf_normaliser(m, kappa):
    """log C_m(kappa) of the vMF on S^(m-1), float64 (kappa: float64 array)."""
    nu = m / 2 - 1
    return nu * np.log(kappa) - (m / 2) * math.log(2 * math.pi) - (
        kappa + np.log(scipy.special.ive(nu, kappa)))


def mean_cosine(m, kappa):
    """A_m(kappa) = E[<mu, z>] = I_{m/2}(kappa) / I_{m/2-1}(kappa) of the vMF on S^(m-1)."""
    return scipy.special.ive(m / 2, kappa) / scipy.special.ive(m / 2 - 1, kappa)


def log_sphere_area(m):
    """log of the surface area of S^(m-1)."""
    return math.log(2) + (m / 2) * math.log(math.pi) - math.lgamma(m / 2)


@torch.no_grad()
def log_likelihood(model, x, samples, chunk, one_reconstruction=False):
    """Per-image importance-sampled log p(x) (K = samples), float64.

    one_reconstruction=True is the estimator of the example shipped with the paper's
    TensorFlow code (`examples/mnist.py` of nicola-decao/s-vae-tf, `log_likelihood`),
    for measuring what it reports, not for results: it scores every sample with the
    reconstruction log p(x | z0) of one draw z0 instead of each sample's own, i.e.
    log p(x | z0) + log mean_k p(z_k) / q(z_k | x). That is not a bound on log p(x):
    as K grows it tends to log p(x | z0), the reconstruction term alone.
    `--estimator tf-example`."""
    # The proposal must be the density the weights divide by, the exact vMF: the
    # released sampler (the package's blended b) draws another distribution for kappa
    # between 10 and ~100, and weighing its draws by the vMF's density would bias the
    # estimate. So every model is evaluated with the exact b, whatever it trained with
    # (the direction map does not change the distribution, only its gradient).
    # On S^2 (d = 2) the package draws w in closed form from a float32 uniform that can
    # be exactly 0, which puts z at the antipode of mu: `exact_sample_w3`.
    trained_with = (VonMisesFisher._VonMisesFisher__sample_w_rej,
                    VonMisesFisher._VonMisesFisher__sample_w3)
    VonMisesFisher._VonMisesFisher__sample_w_rej = exact_sample_w
    VonMisesFisher._VonMisesFisher__sample_w3 = exact_sample_w3
    try:
        return _log_likelihood(model, x, samples, chunk, one_reconstruction)
    finally:
        (VonMisesFisher._VonMisesFisher__sample_w_rej,
         VonMisesFisher._VonMisesFisher__sample_w3) = trained_with


def _log_likelihood(model, x, samples, chunk, one_reconstruction):
    out = []
    for i in range(0, x.shape[0], chunk):
        xb = x[i:i + chunk]
        mean, spread = model.encode(xb)
        q, _ = model.posterior(mean, spread)
        z = q.rsample(torch.Size([samples]))  # [K, n, z]
        logits = model.decode(z)
        log_px = -F.binary_cross_entropy_with_logits(
            logits, xb.expand(samples, -1, -1), reduction="none").sum(-1).double()
        if one_reconstruction:  # every sample gets the first draw's reconstruction
            log_px = log_px[:1].expand(samples, -1)
        z64, mu64 = z.double(), mean.double()
        if model.dist == "vmf":
            m = model.z_dim
            kappa = spread.double().squeeze(-1)  # [n]
            # Renormalised: the sampler's float32 z is unit only to ~1e-7.
            z64 = z64 / z64.norm(dim=-1, keepdim=True)
            log_c = torch.from_numpy(log_vmf_normaliser(m, kappa.cpu().numpy())).to(kappa.device)
            log_q = kappa * (z64 * mu64).sum(-1) + log_c
            log_p = torch.full_like(log_q, -log_sphere_area(m))
        else:
            sd = spread.double()
            log_q = (-0.5 * ((z64 - mu64) / sd) ** 2 - sd.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
            log_p = (-0.5 * z64 ** 2 - 0.5 * math.log(2 * math.pi)).sum(-1)
        w = log_px + log_p - log_q  # [K, n]
        out.append(torch.logsumexp(w, 0) - math.log(samples))
    return torch.cat(out).cpu().numpy()


def write_binarised_idx(mnist, out, test):
    """A copy of the MNIST folder whose test images are this script's binarisation
    (pixels 0 or 255), so that our `eval` (`data.dir`, or datasets/mnist in its working
    directory) scores the very images this script does and the two can be paired."""
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(mnist):
        if name.endswith(".gz") and name != "t10k-images-idx3-ubyte.gz":
            with open(os.path.join(mnist, name), "rb") as src, open(os.path.join(out, name), "wb") as dst:
                dst.write(src.read())
    n = test.shape[0]
    with gzip.open(os.path.join(out, "t10k-images-idx3-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">IIII", 2051, n, 28, 28))
        f.write((test.numpy() * 255).astype(np.uint8).tobytes())
    print(f"wrote {out}: the test images as this script binarises them")


# The columns of epochs.csv, one row per epoch (this script's and svae_gaussians_batched.py's).
EPOCH_COLUMNS = ["epoch", "train_loss", "train_kl", "valid_elbo", "valid_kl", "log_kappa_mean",
                 "log_kappa_min", "log_kappa_max", "seconds"]


def protocol_data(mnist, validation):
    """The protocol's images: the training images but the last `validation` (float pixel
    probabilities, numpy, binarised anew for every batch), and the held-out validation
    and the test images binarised once, seeded (as ours: another generator, so other
    draws of the same pixels' probabilities), as float32 tensors."""
    train = read_idx_images(os.path.join(mnist, "train-images-idx3-ubyte.gz"))
    test = read_idx_images(os.path.join(mnist, "t10k-images-idx3-ubyte.gz"))
    train, valid = train[:-validation], train[-validation:]
    fixed = np.random.default_rng(12345)
    valid = torch.from_numpy((fixed.random(valid.shape, dtype=np.float32) < valid).astype(np.float32))
    test = torch.from_numpy((fixed.random(test.shape, dtype=np.float32) < test).astype(np.float32))
    return train, valid, test


@torch.no_grad()
def units(model, x):
    """A Normal posterior's use of its dimensions over the images x: each dimension's
    mean KL to the prior, the variance of its mean over the images, and the active
    units (Var_x E[z_i | x] > 0.01, Burda et al. 2016)."""
    mean, sd = model.eval().encode(x)
    kl = 0.5 * (mean ** 2 + sd ** 2 - 1) - sd.log()  # KL(N(mean, sd^2) || N(0, 1)) per dimension
    return {"kl_per_dim": [round(v, 3) for v in kl.mean(0).tolist()],
            "var_of_mean_per_dim": [round(v, 4) for v in mean.var(0).tolist()],
            "active_units": int((mean.var(0) > 0.01).sum())}


def write_examples(path, ll):
    """Each test image's log p(x) as `eval`'s per-example file (example,log_px)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["example", "log_px"])
        for i, v in enumerate(ll):
            w.writerow([i, repr(float(v))])


@torch.no_grad()
def evaluate(model, x, batch=1000):
    recon, kl, spread = [], [], []
    for i in range(0, x.shape[0], batch):
        r, k, s = model.elbo_terms(x[i:i + batch])
        recon.append(r)
        kl.append(k)
        spread.append(s)
    recon, kl = torch.cat(recon).double(), torch.cat(kl).double()
    out = {"recon": recon.mean().item(), "kl": kl.mean().item(), "elbo": -(recon + kl).mean().item()}
    if model.dist == "vmf":
        log_kappa = torch.cat(spread).double().log()
        out.update(log_kappa_mean=log_kappa.mean().item(), log_kappa_min=log_kappa.min().item(),
                   log_kappa_max=log_kappa.max().item())
    return out


def check_sampler(draws, seed):
    """Their sampler's E[w] and its kappa-gradient against the closed forms."""
    torch.manual_seed(seed)
    print("d  m  kappa  E[w] drawn  E[w] exact  (SE)  dE[w]/dkappa drawn  exact")
    for d in (5, 10, 20, 40):
        m = d + 1
        for k in (5.0, 9.9, 10.1, 11.0, 15.0, 20.0, 50.0, 100.0, 300.0):
            kappa = torch.tensor([[k]], requires_grad=True)
            mu = torch.zeros(1, m)
            mu[0, 0] = 1.0
            w = VonMisesFisher(mu, kappa).rsample(torch.Size([draws]))[..., 0]
            w.mean().backward()
            a = mean_cosine(m, k)
            da = 1 - a * a - (m - 1) * a / k
            ws = w.detach().double().flatten()
            se = ws.std().item() / math.sqrt(draws)
            print(f"{d:2d} {m:2d} {k:6.1f}  {ws.mean().item():.5f}  {a:.5f}  ({(ws.mean().item() - a) / se:+8.1f})"
                  f"  {kappa.grad.item():+.5f}  {da:+.5f}")


def check_sphere2(seed, uniforms=2**27):
    """d = 2 (m = 3): the package's closed-form w against the estimator's `exact_sample_w3`.

    Counts the exact zeros among `uniforms` float32 draws of the Uniform(0, 1) that the
    package's m = 3 sampler uses (expected: uniforms / 2^24), prints the package's w at
    u = 0 (the antipode, -1) and the log density ratio it then carries, and checks the
    float64 inverse CDF: E[w] against A_3(kappa) = coth(kappa) - 1/kappa, its smallest
    draw against -1."""
    torch.manual_seed(seed)
    zeros, chunk = 0, 2**24
    for _ in range(uniforms // chunk):
        zeros += int((torch.distributions.Uniform(0.0, 1.0).sample((chunk,)) == 0).sum())
    print(f"float32 Uniform(0, 1): {zeros} exact zeros in {uniforms} draws "
          f"(expected {uniforms / 2**24:.1f})")
    mu = torch.tensor([[1.0, 0.0, 0.0]])
    for k in (100.0, 2000.0, 9300.0):
        kappa = torch.tensor([[k]])
        # The package's own m = 3 sampler, its uniform held at the value it returns once
        # in 2^24 draws.
        draw = torch.distributions.Uniform.sample
        torch.distributions.Uniform.sample = lambda self, shape=torch.Size(): torch.zeros(shape)
        try:
            w0 = VonMisesFisher(mu, kappa)._VonMisesFisher__sample_w3(torch.Size([1]))
        finally:
            torch.distributions.Uniform.sample = draw
        w = exact_sample_w3(VonMisesFisher(mu, kappa), torch.Size([200000])).double().flatten()
        a = 1 / math.tanh(k) - 1 / k
        se = w.std().item() / math.sqrt(w.numel())
        print(f"kappa {k:7.1f}: package w at u = 0: {w0.item():+.3f} (log q there - log q at mu: "
              f"{-2 * k:.0f}); float64 inverse CDF: E[w] {w.mean().item():.7f} against "
              f"{a:.7f} ({(w.mean().item() - a) / se:+.1f} SE), min w {w.min().item():.5f}")


def check_kl():
    """Their KL(vMF || uniform) and its gradient in kappa (autograd through their
    Bessel function's custom backward, float32) against float64 closed forms: the KL
    from scipy's ive, and dKL/dkappa = kappa A_m'(kappa). Prints the relative errors."""
    print("d  m  kappa  KL theirs  KL exact  rel. error  dKL/dkappa theirs  exact  rel. error")
    for d in (5, 10, 20, 40):
        m = d + 1
        for k in (1.5, 5.0, 10.5, 50.0, 300.0, 3000.0):
            kappa = torch.tensor([[k]], requires_grad=True)
            mu = torch.zeros(1, m)
            mu[0, 0] = 1.0
            kl = torch.distributions.kl.kl_divergence(
                VonMisesFisher(mu, kappa), HypersphericalUniform(m - 1)).sum()
            kl.backward()
            a = mean_cosine(m, k)
            exact = k * a + log_vmf_normaliser(m, np.array(k)) + log_sphere_area(m)
            dexact = k * (1 - a * a - (m - 1) * a / k)
            print(f"{d:2d} {m:2d} {k:7.1f}  {kl.item():.6g}  {exact:.6g}  {abs(kl.item() / exact - 1):.1e}"
                  f"  {kappa.grad.item():.6g}  {dexact:.6g}  {abs(kappa.grad.item() / dexact - 1):.1e}")


def check_direction(draws, seed, pairs=4):
    """The gradient that reaches mu through the direction map (`--direction`), against
    the closed form: for f(z) = <a, z>, E f = A_m(kappa) <a, mu>, so the mean of the
    per-draw gradients' tangent part must be A_m(kappa) (a - <a, mu> mu). Prints, per
    (d, kappa), over `pairs` random (mu, a), the largest deviation of that mean in
    standard errors and the gradient's variance (trace of its tangent part's covariance,
    averaged over the pairs): two unbiased maps can differ in the second only."""
    torch.manual_seed(seed)
    gen = np.random.default_rng(seed)
    print(f"d  m  kappa  max |mean - exact| (SE)  tangent-gradient variance ({pairs} random mu, a)")
    for d in (5, 20, 40):
        m = d + 1
        cases = []
        for _ in range(pairs):
            mu0 = gen.standard_normal(m)
            cases.append((mu0 / np.linalg.norm(mu0), gen.standard_normal(m)))
        for k in (5.0, 50.0, 300.0):
            worst, var = 0.0, 0.0
            amk = mean_cosine(m, k)
            for mu0, a0 in cases:
                mu = torch.from_numpy(np.tile(mu0, (draws, 1))).float().requires_grad_(True)
                a = torch.from_numpy(a0).float()
                z = VonMisesFisher(mu, torch.full((draws, 1), k)).rsample()
                (z @ a).sum().backward()
                mu64, a64 = torch.from_numpy(mu0), torch.from_numpy(a0)
                g = mu.grad.double()
                g = g - (g @ mu64)[:, None] * mu64  # tangent part
                exact = amk * (a64 - (a64 @ mu64) * mu64)
                se = g.std(0) / math.sqrt(draws)
                worst = max(worst, ((g.mean(0) - exact).abs() / se.clamp_min(1e-12)).max().item())
                var += g.var(0).sum().item() / pairs
            print(f"{d:2d} {m:2d} {k:6.1f}  {worst:6.2f}  {var:.5f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dist", choices=["vmf", "normal"])
    ap.add_argument("--d", type=int, help="sphere dimension (vMF z in R^(d+1)); Normal: z in R^d")
    ap.add_argument("--mnist", default=os.path.join(os.path.dirname(__file__), "../../shared/datasets/mnist"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--patience", type=int, default=50)
    ap.add_argument("--max-epochs", type=int, default=1000)
    ap.add_argument("--deadline-min", type=float, default=None)
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--validation", type=int, default=10000)
    ap.add_argument("--eval-only", default=None,
                    help="evaluate saved weights: a best.pt of this script's, or a .safetensors "
                         "file of ours (`export`) with --ours-config")
    ap.add_argument("--write-test-idx", default=None, metavar="DIR",
                    help="write a copy of the MNIST folder with this script's binarised test images "
                         "into DIR (for pairing our eval with this script's estimator) and stop")
    ap.add_argument("--ours-config", default=None,
                    help="with --eval-only FILE.safetensors: the config.toml of our run that made it")
    ap.add_argument("--estimator", choices=["iw", "tf-example"], default="iw",
                    help="with --eval-only: tf-example scores every sample with one draw's "
                         "reconstruction, as the TF code's example does (not a bound; to measure it)")
    ap.add_argument("--check-sampler", action="store_true")
    ap.add_argument("--draws", type=int, default=200000)
    ap.add_argument("--sampler", choices=["theirs", "exact-b"], default="theirs",
                    help="their rejection sampler as released, or with Wood's exact envelope b at every kappa")
    ap.add_argument("--direction", choices=["householder", "projection"], default="householder",
                    help="their Householder map onto mu, or our projection z = w mu + sqrt(1 - w^2) nu")
    ap.add_argument("--normal-scale", choices=["softplus", "logvar"], default="softplus",
                    help="the Normal's scale head: softplus (theirs) or exp of half a log variance (ours)")
    ap.add_argument("--units", action="store_true",
                    help="with --eval-only and --dist normal: print each latent dimension's mean KL "
                         "over the test images and the active units (Var_x E[z_i | x] > 0.01, "
                         "Burda et al. 2016) instead of the log-likelihood")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.units and not (args.eval_only and args.dist == "normal"):
        sys.exit("error: --units reads a Normal posterior's saved weights: use it with "
                 "--dist normal --eval-only PATH")
    if args.sampler == "exact-b":
        use_exact_envelope()
    if args.direction == "projection":
        use_projection_direction()
    if args.check_sampler:
        check_sampler(args.draws, args.seed)
        check_sphere2(args.seed)
        check_kl()
        check_direction(args.draws // 4, args.seed)
        return
    if not (args.write_test_idx or (args.dist and args.d is not None and (args.out or args.eval_only))):
        sys.exit("error: --dist, --d and --out DIR (where epochs.csv, result.json and best.pt go) "
                 "are required, unless --check-sampler (--out is optional with --eval-only)")
    if args.estimator != "iw" and not args.eval_only:
        sys.exit("error: --estimator tf-example measures saved weights: use it with --eval-only PATH")
    if args.d is not None and args.d < 1:
        sys.exit(f"error: --d {args.d}: the sphere's dimension must be at least 1")
    started = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    if args.out:
        os.makedirs(args.out, exist_ok=True)

    train, valid, test = protocol_data(args.mnist, args.validation)

    if args.write_test_idx:
        write_binarised_idx(args.mnist, args.write_test_idx, test)
        return
    z_dim = args.d + 1 if args.dist == "vmf" else args.d
    model = Vae(args.dist, z_dim, normal_scale=args.normal_scale)
    if args.eval_only:
        if args.ours_config:
            model = load_ours(args.eval_only, args.ours_config)
            if model.dist != args.dist or model.z_dim != z_dim:
                sys.exit(f"error: {args.ours_config} is a {model.dist} model in R^{model.z_dim}, "
                         f"not --dist {args.dist} --d {args.d}")
        else:
            model.load_state_dict(torch.load(args.eval_only))
        if args.units:
            print(json.dumps(units(model, test)))
            return
        ll = log_likelihood(model.eval(), test, args.samples, 20,
                            one_reconstruction=args.estimator == "tf-example")
        if args.out:
            write_examples(os.path.join(args.out, "examples.csv"), ll)
        print(json.dumps({"log_likelihood": float(ll.mean()),
                          "se": float(ll.std(ddof=1) / math.sqrt(len(ll))),
                          "samples": args.samples, "seed": args.seed, "estimator": args.estimator,
                          "test": evaluate(model, test)}))
        return
    # SIGTERM ends training after the current epoch, then evaluates as a deadline does.
    stop_requested = False

    def request_stop(*_):
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    best, best_epoch, best_state = -math.inf, -1, None
    epoch, stop = 0, "epoch budget"
    with open(os.path.join(args.out, "epochs.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(EPOCH_COLUMNS)
        while epoch < args.max_epochs:
            t0 = time.time()
            model.train()
            order = rng.permutation(train.shape[0])
            loss_sum = kl_sum = 0.0
            batches = 0
            for i in range(0, len(order), 64):
                xb = torch.from_numpy(train[order[i:i + 64]])
                xb = (torch.rand_like(xb) < xb).float()  # dynamic binarisation
                recon, kl, _ = model.elbo_terms(xb)
                loss = (recon + kl).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                loss_sum += loss.item()
                kl_sum += kl.mean().item()
                batches += 1
            epoch += 1
            model.eval()
            v = evaluate(model, valid)
            if v["elbo"] > best:
                best, best_epoch, best_state = v["elbo"], epoch, copy.deepcopy(model.state_dict())
                # Saved as it improves (renamed into place), so that a killed run can
                # still be evaluated with --eval-only.
                torch.save(best_state, os.path.join(args.out, "best.pt.tmp"))
                os.replace(os.path.join(args.out, "best.pt.tmp"), os.path.join(args.out, "best.pt"))
            w.writerow([epoch, loss_sum / batches, kl_sum / batches, v["elbo"], v["kl"],
                        v.get("log_kappa_mean", ""), v.get("log_kappa_min", ""),
                        v.get("log_kappa_max", ""), round(time.time() - t0, 2)])
            f.flush()
            if epoch - best_epoch >= args.patience:
                stop = "early stop"
                break
            if args.deadline_min and time.time() - started > 60 * args.deadline_min:
                stop = "deadline"
                break
            if stop_requested:
                stop = "SIGTERM"
                break
    torch.save(best_state, os.path.join(args.out, "best.pt"))
    model.load_state_dict(best_state)
    model.eval()
    t0 = time.time()
    ll = log_likelihood(model, test, args.samples, 20)
    result = {
        "dist": args.dist, "d": args.d, "z_dim": z_dim, "seed": args.seed,
        "log_likelihood": float(ll.mean()), "se": float(ll.std(ddof=1) / math.sqrt(len(ll))),
        "samples": args.samples, "sampler": args.sampler, "direction": args.direction,
        "normal_scale": args.normal_scale if args.dist == "normal" else None, "epochs": epoch, "best_epoch": best_epoch, "stopped_by": stop,
        "best_valid_elbo": best, "test": evaluate(model, test),
        "train_minutes": round((t0 - started) / 60, 1), "eval_minutes": round((time.time() - t0) / 60, 1),
        "torch": torch.__version__, "threads": args.threads, "cpu": platform.processor() or platform.machine(),
    }
    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump(result, f, indent=1)
    # Each test image's log p(x), in the test file's order, as `eval` writes it: two
    # reference runs binarise the test set alike, so scripts/paired_nll.py can pair them.
    write_examples(os.path.join(args.out, "examples.csv"), ll)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
