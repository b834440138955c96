#!/usr/bin/env python3
"""The PyTorch reference for scripts/bench.sh: the default MNIST config's training step
(MLP 784-256-8-256-784, L2-normalised mu, vMF sample with kappa 20 by an inverse-CDF
table, Bernoulli loss, Adam lr 1e-3), same batch, same thread count, the loss read back
every step. Prints one JSON line: {"images_per_sec": ..., "torch": ..., "threads": ...}.

Needs torch and numpy (timings in BENCHMARKS.md say which build). Usage:

    python3 scripts/bench_pytorch.py --batch 100 --threads 2 --steps 1200
    python3 scripts/bench_pytorch.py --device cuda --batch 1024 --steps 3000   # eager on a GPU
"""
import argparse
import gzip
import json
import math
import os
import struct
import time

import numpy as np
import torch


def read_images(path):
    with gzip.open(path, "rb") as f:
        magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
        assert magic == 2051, f"{path}: not an IDX image file"
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(n, rows * cols)


def w_table(d, kappa, m=16385, grid=200001):
    """Quantiles of w on [-1, 1] for density exp(kappa w) (1 - w^2)^((d-3)/2), by a
    trapezoid CDF on a fine grid (timing only: accuracy is vmf-core's business)."""
    w = np.linspace(-1.0, 1.0, grid)
    logp = kappa * w + (d - 3) / 2 * np.log(np.clip(1 - w * w, 1e-300, None))
    p = np.exp(logp - logp.max())
    cdf = np.concatenate([[0.0], np.cumsum((p[1:] + p[:-1]) / 2)])
    cdf /= cdf[-1]
    return torch.tensor(np.interp(np.linspace(0, 1, m), cdf, w), dtype=torch.float32)


def vmf_sample(mu, table):
    """z ~ vMF(mu, kappa) per row: w from the quantile table, nu uniform orthogonal to mu."""
    n, d = mu.shape
    pos = torch.rand(n, device=mu.device) * (table.numel() - 1)
    i = pos.floor().long().clamp(0, table.numel() - 2)
    frac = pos - i
    w = (table[i] + frac * (table[i + 1] - table[i])).unsqueeze(1)
    e = torch.randn(n, d, device=mu.device)
    nu = torch.nn.functional.normalize(e - (e * mu).sum(1, keepdim=True) * mu, dim=1)
    return w * mu + torch.sqrt(torch.clamp(1 - w * w, min=0)) * nu


class Vae(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.enc = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, d))
        self.dec = torch.nn.Sequential(torch.nn.Linear(d, 256), torch.nn.ReLU(), torch.nn.Linear(256, 784))

    def forward(self, x, table):
        mu = torch.nn.functional.normalize(self.enc(x), dim=1)
        z = vmf_sample(mu, table)
        return self.dec(z)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda for PyTorch eager on a GPU")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "datasets", "mnist"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    dev = torch.device(args.device)
    x_all = torch.tensor(read_images(os.path.join(args.data, "train-images-idx3-ubyte.gz")), dtype=torch.float32).to(dev) / 255
    table = w_table(8, 20.0).to(dev)
    model = Vae(8).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)
    per_epoch = x_all.shape[0] // args.batch

    def step(k, order):
        b = k % per_epoch
        x = x_all[order[b * args.batch:(b + 1) * args.batch]]
        logits = model(x, table)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum") / args.batch
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()  # a read-back every step, as the reference figure had

    order = torch.randperm(x_all.shape[0], device=dev)
    for k in range(50):  # warm-up
        step(k, order)
    t0 = time.perf_counter()
    for k in range(args.steps):
        if k % per_epoch == 0:
            order = torch.randperm(x_all.shape[0], device=dev)
        loss = step(k, order)
    secs = time.perf_counter() - t0
    assert math.isfinite(loss)
    print(json.dumps({
        "images_per_sec": args.steps * args.batch / secs,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "last_loss": loss,
    }))


if __name__ == "__main__":
    main()
