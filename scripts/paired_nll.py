#!/usr/bin/env python3
"""Compare two checkpoints' importance-sampled likelihoods example by example.

    scripts/paired_nll.py A-examples.csv B-examples.csv

Each file is what `eval` writes beside its JSON (eval-kK-seedS-examples.csv: each test
example's log p(x) in the test file's order). Prints both mean NLLs and the mean of
NLL(B) - NLL(A) with its paired standard error. Why paired: on the Penn Treebank a
sentence's NLL spreads with its length (the mean's standard error is ~0.9 nats), but
two models see the same sentences, so their difference per sentence varies far less.
"""
import csv
import math
import sys


def read(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    if not rows or "log_px" not in rows[0]:
        sys.exit(f"{path}: not an eval examples file (needs a log_px column)")
    return [-float(r["log_px"]) for r in rows]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip())
    a, b = read(sys.argv[1]), read(sys.argv[2])
    if len(a) != len(b):
        sys.exit(f"{len(a)} examples against {len(b)}: not the same test set")
    n = len(a)
    d = [y - x for x, y in zip(a, b)]
    mean = sum(d) / n
    se = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1) / n)
    print(f"A: NLL {sum(a) / n:.3f}  ({sys.argv[1]})")
    print(f"B: NLL {sum(b) / n:.3f}  ({sys.argv[2]})")
    print(f"B - A: {mean:+.3f} +- {se:.3f} nats per example (paired, {n} examples)")


if __name__ == "__main__":
    main()
