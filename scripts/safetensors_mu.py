#!/usr/bin/env python3
"""Reads a model written by `export` (safetensors) with numpy alone and reproduces the
encoder's mu for the first MNIST test image, against the value `export` printed.

    cargo run --release --bin export -- --checkpoint runs/mnist/checkpoints/step-00030000 \\
        --out model.safetensors > expected.json
    python3 scripts/safetensors_mu.py model.safetensors expected.json

The image model's tensors: encoder.layers.{i}.weight [in, out] and .bias [out],
y = x W + b, ReLU after every layer but the last; the last layer gives mu before
normalisation. A conv model (model.arch = "conv") first runs the image, as
[channels, 28, 28], through conv_encoder.layers.{i}.weight [out, in, 4, 4] and .bias
(cross-correlation, stride 2, padding 1, ReLU after each) and flattens the result
channel by channel into the encoder's input (vMF, its first d columns: a kappa learned per example adds one; the
Gaussian's head is [mean, log-variance]). Pixels are grey
levels / 255 (configs with data.pixels = "grey"). With the `safetensors` wheel
installed, safetensors.numpy.load_file reads the file the same way.
"""
import gzip
import json
import os
import struct
import sys

import numpy as np


def load_safetensors(path):
    """The format: an 8-byte little-endian header length, a JSON header naming each
    tensor's dtype, shape and byte range, then the raw little-endian data."""
    try:
        from safetensors.numpy import load_file
        return load_file(path)
    except ImportError:
        pass
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    dtypes = {"F32": "<f4", "F64": "<f8"}
    out = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        lo, hi = spec["data_offsets"]
        out[name] = np.frombuffer(data[lo:hi], dtype=dtypes[spec["dtype"]]).reshape(spec["shape"])
    return out


def first_test_image():
    here = os.path.dirname(os.path.abspath(__file__))
    with gzip.open(os.path.join(here, "..", "datasets", "mnist", "t10k-images-idx3-ubyte.gz")) as f:
        raw = f.read()
    return np.frombuffer(raw[16:16 + 784], dtype=np.uint8).astype(np.float32) / 255.0


def conv_stride2(x, w, b):
    """Burn's Conv2d with a 4x4 kernel, stride 2, padding 1: x [c, h, w] -> [o, h/2, w/2]."""
    c, hh, ww = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    ho, wo = hh // 2, ww // 2
    out = np.broadcast_to(b[:, None, None], (w.shape[0], ho, wo)).copy()
    for ki in range(4):
        for kj in range(4):
            patch = xp[:, ki:ki + 2 * ho:2, kj:kj + 2 * wo:2]
            out += np.einsum("oc,chw->ohw", w[:, :, ki, kj], patch)
    return out


def main():
    weights = load_safetensors(sys.argv[1])
    expected = np.array(json.load(open(sys.argv[2]))["first_test_location"], dtype=np.float32)
    h = first_test_image()
    convs = sorted({int(k.split(".")[2]) for k in weights if k.startswith("conv_encoder.layers.")})
    if convs:
        h = h.reshape(1, 28, 28)
        for i in convs:
            w = weights[f"conv_encoder.layers.{i}.weight"]
            h = np.maximum(conv_stride2(h, w, weights[f"conv_encoder.layers.{i}.bias"]), 0.0)
        h = h.reshape(-1)
    h = h[None, :]
    layers = sorted({int(k.split(".")[2]) for k in weights if k.startswith("encoder.layers.")})
    for i in layers:
        h = h @ weights[f"encoder.layers.{i}.weight"] + weights[f"encoder.layers.{i}.bias"]
        if i != layers[-1]:
            h = np.maximum(h, 0.0)
    # With kappa learned per example the head has one more column (kappa's): mu is
    # the first d, d = the length of the location export printed.
    head = h[0][: expected.shape[0]]
    mu = head / np.linalg.norm(head)
    err = float(np.abs(mu - expected).max())
    print(json.dumps({"mu": mu.tolist(), "max_abs_difference": err}))
    if err > 1e-5:
        sys.exit(f"mu differs from export's by {err}")


if __name__ == "__main__":
    main()
