#!/usr/bin/env bash
# The default MNIST model against PyTorch on this CPU: PAIRS (default 3) interleaved
# pairs of flex (release) and scripts/bench_pytorch.py at batch 100, both on all cores,
# STEPS (default 1800) steps each; images/s over the training steps. Prints one row of
# the by-CPU table (date, CPU, commit, each pair's ratio, the median);
# `scripts/bench.sh --ratio` adds it to BENCHMARKS.md. The full suite (scripts/bench.sh)
# measures the same pairs beside everything else; this is the quick check that a new
# machine keeps the 1.5x.
#
#   PYTHON=/path/to/venv/bin/python scripts/bench_ratio.sh
#
# BIN names a folder with a release `train` (by default target/release, built here);
# PYTHON an interpreter with torch and numpy.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${STEPS:-1800}
pairs=${PAIRS:-3}
python=${PYTHON:-python3}
bin=${BIN:-target/release}
if [ -z "${BIN:-}" ]; then
  echo "building (release) ..." >&2
  # The features of scripts/bench.sh's build, so that the two share one build.
  cargo build --release -p vmf-train --features ndarray --bins -q
fi
"$python" -c 'import torch, numpy' 2> /dev/null || {
  echo "$python has no torch: PYTHON=... names an interpreter with torch and numpy" >&2
  exit 1
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed -e "s/^batch_size = .*/batch_size = 100/" -e "s/^images = .*/images = false/" \
  configs/mnist.toml > "$work/mnist.toml"

ours() {
  rm -rf "$work/run"
  "$bin/train" --config "$work/mnist.toml" --run-dir "$work/run" --max-steps "$steps" \
    --backend flex 2> "$work/stderr" | tail -n 1 |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["images_per_sec"])' || {
    cat "$work/stderr" >&2
    return 1
  }
}
theirs() {
  "$python" scripts/bench_pytorch.py --batch 100 --threads "$(nproc)" --steps "$steps" |
    python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["images_per_sec"], d["torch"])'
}

pairs_out=()
for i in $(seq "$pairs"); do
  echo "pair $i ..." >&2
  a=$(ours)
  read -r b version < <(theirs)
  pairs_out+=("$a,$b")
done
python3 - "$(date -u +%F)" "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" "$(nproc)" \
  "$(git rev-parse --short HEAD)$(git diff --quiet || echo '+')" "$version" "${pairs_out[@]}" <<'EOF'
import statistics, sys
date, cpu, cores, commit, version, *pairs = sys.argv[1:]
pairs = [tuple(map(float, p.split(","))) for p in pairs]
cells = ", ".join(f"{a:.0f} / {b:.0f} = {a / b:.2f}x" for a, b in pairs)
median = statistics.median(a / b for a, b in pairs)
print(f"| {date} | {cpu}, {cores} cores | {commit} | {version} | {cells} | {median:.2f}x |")
EOF
