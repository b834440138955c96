#!/usr/bin/env python3
"""Groups `perf report --no-children --sort symbol --stdio` output (stdin) into the
kinds of work a training step does, and prints a markdown table of their shares."""
import re
import sys

GROUPS = [
    ("matmul (gemm microkernels and packing)", r"gemm"),
    ("exp, tanh, log (libm, one value at a time)", r"__(exp|expm1|tanh|log|log1p)f"),
    ("element-wise ops (burn-flex, macerator SIMD)", r"macerator|burn_flex::"),
    ("memory copies and fills (memmove, memset)", r"__mem(move|cpy|set)"),
    ("page faults and zeroing (kernel)", r"^\[k\]"),
    ("allocator (mimalloc)", r"\b_?mi_"),
]

shares = {name: 0.0 for name, _ in GROUPS}
other = 0.0
for line in sys.stdin:
    m = re.match(r"\s*([\d.]+)%\s+(\[.\])\s+(.*)", line)
    if not m:
        continue
    share, text = float(m.group(1)), f"{m.group(2)} {m.group(3)}"
    for name, pattern in GROUPS:
        if re.search(pattern, text):
            shares[name] += share
            break
    else:
        other += share
print("| work | share of samples |")
print("|---|---|")
for name, _ in GROUPS:
    print(f"| {name} | {shares[name]:.1f}% |")
print(f"| everything else | {other:.1f}% |")
