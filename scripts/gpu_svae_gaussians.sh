#!/usr/bin/env bash
# Seeds of the reference's Gaussian under our S-VAE protocol, all at once on one GPU
# (scripts/svae_gaussians_batched.py), as run on a lent GPU machine for
# docs/svae-reference.md. That machine's image has PyTorch, NumPy and SciPy but not the
# authors' package, and installs nothing: PYREF names a folder holding a copy of
# `hyperspherical_vae` (e.g. `cp -r /tmp/torchvenv/lib/python3.*/site-packages/hyperspherical_vae
# .pyref/`, a folder that .git/info/exclude ignores and the device call carries).
#
#   OUT=DIR [RUNS="10:logvar:1 ..."] [DEADLINE=7.3] [PYREF=.pyref] scripts/gpu_svae_gaussians.sh
#
# (DEVICE=cpu SAMPLES=5 DEADLINE=0.2 and two small RUNS: a dry run of the whole script on
# a machine without a GPU.)
# Writes OUT/log.txt and the runs' folders, five to an archive (OUT/runs-N.tar.gz: each
# run's epochs.csv, result.json, examples.csv and best.pt); while it trains, OUT/partial.tar.gz holds the
# runs' files so far (without best.pt), so that a call stopped at its time limit still
# brings the curves back. DEADLINE: minutes of training, then every run is evaluated.
# PYTHON (default python3): the interpreter that has PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:?"OUT: the folder for the log and the archives"}
runs=${RUNS:-"10:logvar:1 10:logvar:2 10:logvar:3 10:logvar:4 10:logvar:5 10:logvar:6 10:logvar:7 10:logvar:8
  20:logvar:1 20:logvar:2 20:logvar:3 20:logvar:4 20:logvar:5 40:logvar:1 40:logvar:2 40:logvar:3 40:logvar:4 40:logvar:5
  20:softplus:1 20:softplus:2 20:softplus:3 40:softplus:1 40:softplus:2 40:softplus:3"}
export PYTHONPATH=${PYREF:-.pyref}${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
mkdir -p "$out"
work=$(mktemp -d)
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  "${PYTHON:-python3}" -c 'import torch, scipy, hyperspherical_vae; print("torch", torch.__version__, "scipy", scipy.__version__)'
} 2>&1 | tee "$out/log.txt"
( while sleep 60; do tar czf "$out/partial.tar.gz.tmp" --exclude=best.pt -C "$work" . 2>/dev/null &&
    mv "$out/partial.tar.gz.tmp" "$out/partial.tar.gz"; done ) &
snap=$!
# shellcheck disable=SC2086 # RUNS is a list of words
"${PYTHON:-python3}" scripts/svae_gaussians_batched.py --device "${DEVICE:-cuda}" --chunk 100 --deadline-min "${DEADLINE:-7.3}" \
  --samples "${SAMPLES:-500}" --mnist datasets/mnist --out "$work" --runs $runs 2>&1 |
  { grep -v -e UserWarning -e 'super(Hyper' || true; } | tee -a "$out/log.txt" ||
  echo "svae_gaussians_batched.py failed; archiving what it wrote" | tee -a "$out/log.txt"
kill "$snap" 2> /dev/null || true
rm -f "$out/partial.tar.gz" "$out/partial.tar.gz.tmp"
# Five runs an archive (best.pt is about 2 MB): each under what a device call brings
# back per file (16 MiB), at most 5 archives for the default 24 runs.
mapfile -t dirs < <(cd "$work" && ls -d normal-*)
for ((i = 0; i < ${#dirs[@]}; i += 5)); do
  (cd "$work" && tar czf "$out/runs-$((i / 5 + 1)).tar.gz" "${dirs[@]:i:5}")
done
ls -la "$out"
