#!/usr/bin/env python3
"""Compare two checkpoints' importance-sampled likelihoods example by example.

    scripts/paired_nll.py A-examples.csv B-examples.csv [--by-length TEST_TEXT]

Each file is what `eval` writes beside its JSON (eval-kK-seedS-examples.csv: each test
example's log p(x) in the test file's order; gzipped too). Prints both mean NLLs and the mean of
NLL(B) - NLL(A) with its paired standard error. Why paired: on the Penn Treebank a
sentence's NLL spreads with its length (the mean's standard error is ~0.9 nats), but
two models see the same sentences, so their difference per sentence varies far less.
--by-length names the test text the examples came from (one sentence a line, .gz or
plain, e.g. datasets/ptb/ptb.test.txt.gz) and adds the difference by sentence length
in words, and the share of sentences where B is better.
"""
import csv
import gzip
import math
import sys


def read(path):
    opener = gzip.open if path.endswith(".gz") else open  # docs/ keeps them gzipped
    with opener(path, "rt") as f:
        rows = list(csv.DictReader(f))
    if not rows or "log_px" not in rows[0]:
        sys.exit(f"{path}: not an eval examples file (needs a log_px column)")
    return [-float(r["log_px"]) for r in rows]


def mean_se(d):
    n = len(d)
    mean = sum(d) / n
    se = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1) / n) if n > 1 else float("nan")
    return mean, se


def lengths(path, n):
    """Words per sentence of the test text, in eval's order (blank lines skipped)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        counts = [len(line.split()) for line in f if line.split()]
    if len(counts) != n:
        sys.exit(f"{path}: {len(counts)} sentences against {n} examples: not this test set")
    return counts


def main():
    args = sys.argv[1:]
    text = None
    if "--by-length" in args:
        i = args.index("--by-length")
        if i + 1 >= len(args):
            sys.exit("--by-length needs the test text's path")
        text = args[i + 1]
        del args[i : i + 2]
    if len(args) != 2:
        sys.exit(__doc__.strip())
    a, b = read(args[0]), read(args[1])
    if len(a) != len(b):
        sys.exit(f"{len(a)} examples against {len(b)}: not the same test set")
    n = len(a)
    d = [y - x for x, y in zip(a, b)]
    mean, se = mean_se(d)
    print(f"A: NLL {sum(a) / n:.3f}  ({args[0]})")
    print(f"B: NLL {sum(b) / n:.3f}  ({args[1]})")
    print(f"B - A: {mean:+.3f} +- {se:.3f} nats per example (paired, {n} examples)")
    if text is not None:
        words = lengths(text, n)
        for lo, hi in [(1, 10), (11, 20), (21, 30), (31, 40), (41, None)]:
            part = [v for v, w in zip(d, words) if w >= lo and (hi is None or w <= hi)]
            if not part:
                continue
            m, s = mean_se(part)
            span = f"{lo}-{hi}" if hi is not None else f"{lo}+"
            print(f"  {span:>5} words: {m:+.3f} +- {s:.3f} ({len(part)} sentences)")
        better = sum(1 for v in d if v < 0) / n
        print(f"  B better on {better:.1%} of the sentences")


if __name__ == "__main__":
    main()
