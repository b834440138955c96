#!/usr/bin/env python3
"""Many seeds of the reference's Gaussian VAE under our S-VAE protocol, trained at once.

Each run is one `svae_reference.py --dist normal --d D --seed S --normal-scale HEAD`:
the same MLP 784-256-128-d and initial weights (torch.manual_seed(S), then the model
built as that script builds it), the same order of the training images (numpy's
default_rng(S)), the same held-out validation and test images, dynamic binarisation,
batch 64, Adam 1e-3 (elementwise, so one optimiser over the stacked weights is one per
run), early stopping after --patience epochs without a better validation ELBO, and
K = 500 importance samples on the best weights with that script's estimator. The runs
are stacked into one set of batched kernels: on a GPU one run of this small model is
bound by kernel launches, so R runs take about the time of one. Runs of several d
share the kernels by padding every latent to the largest d: a run's extra dimensions
are zero in z and left out of its KL, so they get no gradient and the run is its d's
model exactly. What differs from R separate runs of svae_reference.py: the random
draws of the binarisation and of z (one generator on the device for all runs) and
the rounding of batched products, i.e. the same protocol with other draws.

    python3 scripts/svae_gaussians_batched.py --device cuda --deadline-min 8 \\
        --runs 10:logvar:1 10:logvar:2 20:softplus:1 --out runs/refg

A run is D:HEAD:SEED, HEAD softplus (theirs) or logvar (ours, exp of half a log
variance). Each writes into OUT/normal-HEAD-dD-seedS/ what svae_reference.py writes
(epochs.csv, result.json, examples.csv, and best.pt, which `svae_reference.py
--eval-only` reads), and result.json adds the run's active units (`--units`).
Needs what svae_reference.py imports (its header says how to install it).
"""
import argparse
import csv
import json
import math
import os
import platform
import signal
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svae_reference as ref  # noqa: E402

LAYERS = ["enc1", "enc2", "mean", "spread", "dec1", "dec2", "out"]


def parse_run(text):
    try:
        d, head, seed = text.split(":")
        d, seed = int(d), int(seed)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a run is D:HEAD:SEED, e.g. 20:logvar:1")
    if d < 1 or head not in ("softplus", "logvar"):
        raise argparse.ArgumentTypeError(f"{text!r}: D must be at least 1 and HEAD softplus or logvar")
    return d, head, seed


class Stack:
    """R Gaussian VAEs as stacked weights [R, in, out], latents padded to the largest d."""

    def __init__(self, models, device):
        self.r = len(models)
        self.dmax = max(m.z_dim for m in models)
        self.params = {}
        for name in LAYERS:
            ws, bs = [], []
            for m in models:
                lin = getattr(m, name)
                w, b = lin.weight.detach().T, lin.bias.detach()  # [in, out], [out]
                if name in ("mean", "spread"):  # pad the outputs (the latent)
                    w = F.pad(w, (0, self.dmax - w.shape[1]))
                    b = F.pad(b, (0, self.dmax - b.shape[0]))
                if name == "dec1":  # pad the inputs (the latent)
                    w = F.pad(w, (0, 0, 0, self.dmax - w.shape[0]))
                ws.append(w)
                bs.append(b.unsqueeze(0))
            self.params[name] = (torch.stack(ws).to(device).requires_grad_(),
                                 torch.stack(bs).to(device).requires_grad_())
        self.mask = torch.stack([(torch.arange(self.dmax) < m.z_dim).float() for m in models]
                                ).unsqueeze(1).to(device)  # [R, 1, dmax]
        self.logvar = torch.tensor([m.normal_scale == "logvar" for m in models],
                                   device=device).view(-1, 1, 1)

    def parameters(self):
        return [t for pair in self.params.values() for t in pair]

    def linear(self, name, x):
        w, b = self.params[name]
        return torch.baddbmm(b, x, w)

    def terms(self, x, eps):
        """Per run and image: the reconstruction's BCE and the KL, with z = mean + sd eps;
        x [R, B, 784], eps [R, B, dmax]."""
        h = F.relu(self.linear("enc2", F.relu(self.linear("enc1", x))))
        mean = self.linear("mean", h)
        a = self.linear("spread", h)
        # exp only where the head is a log variance, so that no softplus run's exp can
        # overflow and send a NaN through the unselected branch's gradient.
        sd = torch.where(self.logvar, torch.exp(0.5 * torch.where(self.logvar, a, 0.0)), F.softplus(a))
        z = (mean + sd * eps) * self.mask
        logits = self.linear("out", F.relu(self.linear("dec2", F.relu(self.linear("dec1", z)))))
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        var = sd.pow(2)  # KL(N(mean, var) || N(0, 1)) per dimension, as torch.distributions
        kl = (0.5 * (var + mean.pow(2) - 1 - var.log()) * self.mask).sum(-1)
        return recon, kl

    def slot(self, r):
        """Run r's weights as they are now: {layer: (weight [in, out], bias [1, out])},
        still padded."""
        return {name: tuple(t[r].detach().clone() for t in self.params[name]) for name in LAYERS}


def unstacked(slot, like):
    """A stack slot's weights (`Stack.slot`), unpadded, loaded into `like`, a Vae of
    svae_reference's of that run's d and head."""
    state = {}
    for name in LAYERS:
        w, b = slot[name]
        out_dim, in_dim = getattr(like, name).weight.shape
        state[f"{name}.weight"] = w[:in_dim, :out_dim].T.contiguous()
        state[f"{name}.bias"] = b[0, :out_dim].contiguous()
    like.load_state_dict(state)
    return like


def check_stack(stack, models, dev, batch=8):
    """The stack against each run's own model (svae_reference's Vae and torch's Normal
    KL) on the same images and noise: its reconstruction and KL per image, and that a
    padded dimension gets no gradient. Exits on a mismatch, before any training."""
    x = (torch.rand(stack.r, batch, 784, device=dev) < 0.3).float()
    eps = torch.randn(stack.r, batch, stack.dmax, device=dev)
    recon, kl = stack.terms(x, eps)
    for r, m in enumerate(models):
        m = m.to(dev)
        with torch.no_grad():
            mean, sd = m.encode(x[r])
            z = mean + sd * eps[r, :, :m.z_dim]
            q, p = m.posterior(mean, sd)
            want_recon = F.binary_cross_entropy_with_logits(m.decode(z), x[r], reduction="none").sum(-1)
            want_kl = m.kl(q, p)
        for what, got, want in (("recon", recon[r], want_recon), ("KL", kl[r], want_kl)):
            err = (got.detach() - want).abs().max().item()
            if not err <= 1e-4 * (1 + want.abs().max().item()):
                sys.exit(f"error: the stacked model's {what} differs from run {r}'s own by {err}")
    (recon + kl).sum().backward()
    for r, m in enumerate(models):
        pad = stack.dmax - m.z_dim
        if pad:
            leak = max(stack.params["mean"][0].grad[r, :, -pad:].abs().max().item(),
                       stack.params["spread"][0].grad[r, :, -pad:].abs().max().item(),
                       stack.params["dec1"][0].grad[r, -pad:].abs().max().item())
            if leak != 0:
                sys.exit(f"error: run {r}'s padded latent dimensions got a gradient ({leak})")
    for t in stack.parameters():
        t.grad = None


@torch.no_grad()
def validate(stack, x, batch=1000):
    """Each run's validation recon, KL and ELBO (one draw of z per image, float64 means)."""
    recon, kl = [], []
    for i in range(0, x.shape[0], batch):
        xb = x[i:i + batch].unsqueeze(0).expand(stack.r, -1, -1)
        eps = torch.randn(stack.r, xb.shape[1], stack.dmax, device=x.device)
        r, k = stack.terms(xb, eps)
        recon.append(r)
        kl.append(k)
    recon, kl = torch.cat(recon, 1).double(), torch.cat(kl, 1).double()
    return recon.mean(1).tolist(), kl.mean(1).tolist(), (-(recon + kl).mean(1)).tolist()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", nargs="+", type=parse_run, required=True, metavar="D:HEAD:SEED")
    ap.add_argument("--mnist", default=os.path.join(os.path.dirname(__file__), "../../shared/datasets/mnist"))
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--patience", type=int, default=50)
    ap.add_argument("--max-epochs", type=int, default=1000)
    ap.add_argument("--deadline-min", type=float, default=None)
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--chunk", type=int, default=20, help="test images per importance-sampling batch")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--validation", type=int, default=10000)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if len(set(args.runs)) != len(args.runs):
        sys.exit("error: --runs names a run twice")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"error: --device {args.device}: this PyTorch sees no CUDA device")
    started = time.time()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    train, valid, test = ref.protocol_data(args.mnist, args.validation)
    train, valid, test = torch.from_numpy(train).to(dev), valid.to(dev), test.to(dev)
    n = train.shape[0]

    models, rngs, names = [], [], []
    for d, head, seed in args.runs:
        torch.manual_seed(seed)  # the initial weights of svae_reference.py --seed S
        models.append(ref.Vae("normal", d, normal_scale=head))
        rngs.append(np.random.default_rng(seed))  # its order of the training images
        names.append(f"normal-{head}-d{d}-seed{seed}")
    stack = Stack(models, dev)
    check_stack(stack, models, dev)
    r_all = stack.r
    # Fused on a GPU: the same update in fewer kernels (launches bound this model there).
    opt = torch.optim.Adam(stack.parameters(), lr=1e-3, fused=dev.type == "cuda")
    torch.manual_seed(0)

    stop_requested = False

    def request_stop(*_):
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    dirs = [os.path.join(args.out, name) for name in names]
    files, writers = [], []
    for dname in dirs:
        os.makedirs(dname, exist_ok=True)
        f = open(os.path.join(dname, "epochs.csv"), "w", newline="")
        files.append(f)
        writers.append(csv.writer(f))
        writers[-1].writerow(ref.EPOCH_COLUMNS)
    best = [-math.inf] * r_all
    best_epoch = [-1] * r_all
    best_state = [None] * r_all
    stopped = [None] * r_all  # why and after which epoch a run stopped
    epoch, on_before = 0, r_all
    while epoch < args.max_epochs and any(s is None for s in stopped):
        t0 = time.time()
        order = torch.from_numpy(np.stack([g.permutation(n) for g in rngs])).to(dev)  # [R, n]
        x_epoch = train[order]
        x_epoch = (torch.rand_like(x_epoch) < x_epoch).float()  # dynamic binarisation
        loss_sum = torch.zeros(r_all, dtype=torch.float64, device=dev)
        kl_sum = torch.zeros(r_all, dtype=torch.float64, device=dev)
        batches = 0
        for i in range(0, n, 64):
            xb = x_epoch[:, i:i + 64]
            eps = torch.randn(r_all, xb.shape[1], stack.dmax, device=dev)
            recon, kl = stack.terms(xb, eps)
            loss = (recon + kl).mean(1)  # [R]: each run's batch mean
            opt.zero_grad()
            loss.sum().backward()
            opt.step()
            loss_sum += loss.detach().double()
            kl_sum += kl.detach().mean(1).double()
            batches += 1
        del x_epoch
        epoch += 1
        v_recon, v_kl, v_elbo = validate(stack, valid)
        seconds = round(time.time() - t0, 2)
        losses, kls = (loss_sum / batches).tolist(), (kl_sum / batches).tolist()
        out_of_time = bool(args.deadline_min) and time.time() - started > 60 * args.deadline_min
        for r in range(r_all):
            if stopped[r] is not None:
                continue
            if v_elbo[r] > best[r]:
                best[r], best_epoch[r] = v_elbo[r], epoch
                best_state[r] = stack.slot(r)
            writers[r].writerow([epoch, losses[r], kls[r], v_elbo[r], v_kl[r], "", "", "", seconds])
            files[r].flush()
            if epoch - best_epoch[r] >= args.patience:
                stopped[r] = ("early stop", epoch)
            elif out_of_time:
                stopped[r] = ("deadline", epoch)
            elif stop_requested:
                stopped[r] = ("SIGTERM", epoch)
        on = sum(s is None for s in stopped)
        if epoch % 10 == 0 or on != on_before:
            print(f"epoch {epoch} ({seconds} s): {on} of {r_all} runs on", flush=True)
        on_before = on
    for f in files:
        f.close()
    train_minutes = round((time.time() - started) / 60, 1)

    # Each run's best weights back into svae_reference's model: its estimator and units.
    for r, (d, head, seed) in enumerate(args.runs):
        model = unstacked(best_state[r], ref.Vae("normal", d, normal_scale=head).to(dev)).eval()
        t0 = time.time()
        ll = ref.log_likelihood(model, test, args.samples, args.chunk)
        why, at = stopped[r] if stopped[r] else ("epoch budget", epoch)
        result = {
            "dist": "normal", "d": d, "z_dim": d, "seed": seed,
            "log_likelihood": float(ll.mean()), "se": float(ll.std(ddof=1) / math.sqrt(len(ll))),
            "samples": args.samples, "sampler": None, "direction": None, "normal_scale": head,
            "epochs": at, "best_epoch": best_epoch[r], "stopped_by": why, "best_valid_elbo": best[r],
            "test": ref.evaluate(model, test), "units": ref.units(model, test),
            "train_minutes": train_minutes, "eval_minutes": round((time.time() - t0) / 60, 1),
            "torch": torch.__version__, "threads": args.threads,
            "cpu": platform.processor() or platform.machine(),
            "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
            "batched_with": r_all,
        }
        with open(os.path.join(dirs[r], "result.json"), "w") as f:
            json.dump(result, f, indent=1)
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, os.path.join(dirs[r], "best.pt"))
        ref.write_examples(os.path.join(dirs[r], "examples.csv"), ll)
        print(f"{names[r]}: log p(x) {result['log_likelihood']:.2f} +- {result['se']:.2f}, "
              f"{at} epochs (best {best_epoch[r]}, {why}), active units {result['units']['active_units']}",
              flush=True)


if __name__ == "__main__":
    main()
