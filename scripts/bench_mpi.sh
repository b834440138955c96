#!/usr/bin/env bash
# The cost of training on MPI ranks: 2 ranks with one shard each against one process
# with `training.shards = 2` (the same computation, bit for bit: docs/scale-out.md), on
# the default MNIST config and the PTB config at batch 100 and 1024, in interleaved
# pairs. Prints a markdown table; `scripts/bench.sh --mpi` adds it to BENCHMARKS.md.
#
#   scripts/bench_mpi.sh
#
# BIN (default target/release, built with `--features mpi`) names the binaries' folder;
# PAIRS (default 2) the interleaved pairs. Throughput is the training steps' own
# (the summary's images/s or tokens/s), over steps that stop before the first
# epoch's evaluation; the gather's cost is in it.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-target/release}
pairs=${PAIRS:-2}
if [ -z "${BIN:-}" ]; then
  echo "building (release, features: default + mpi) ..." >&2
  cargo build --release -p vmf-train --features mpi --bins -q
fi
command -v mpirun > /dev/null || {
  echo "no mpirun: apt-get install openmpi-bin libopenmpi-dev libclang-dev" >&2
  exit 1
}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# config BASE BATCH SHARDS -> a copy of configs/BASE.toml without pictures or
# checkpoints along the way
config() {
  local out="$work/$1-$2-$3.toml"
  sed -e "s/^batch_size = .*/batch_size = $2/" -e "s/^images = .*/images = false/" \
    -e "s/^shards = .*/shards = $3/" -e "s/^every_steps = .*/every_steps = 0/" \
    "configs/$1.toml" > "$out"
  echo "$out"
}

# rate SUMMARY -> units per second
rate() {
  python3 -c 'import json, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(round(next(v for k, v in d.items() if k.endswith("_per_sec"))))' "$1"
}

# one BASE BATCH STEPS / ranks BASE BATCH STEPS -> units per second
one() {
  rm -rf "$work/run"
  "$bin/train" --config "$(config "$1" "$2" 2)" --run-dir "$work/run" --max-steps "$3" \
    > "$work/summary.json" 2> "$work/stderr" || { cat "$work/stderr" >&2; return 1; }
  rate "$work/summary.json"
}
ranks() {
  rm -rf "$work/run"
  mpirun --bind-to none -np 2 "$bin/train" --config "$(config "$1" "$2" 1)" \
    --run-dir "$work/run" --max-steps "$3" > "$work/summary.json" 2> "$work/stderr" ||
    { cat "$work/stderr" >&2; return 1; }
  rate "$work/summary.json"
}

echo "Made by \`scripts/bench_mpi.sh\` on $(date -u +%F) at commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with local changes)'),"
echo "$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; binaries of $bin; $(mpirun --version | head -1)."
echo
echo "| model, batch (steps) | pair | 1 process, shards = 2 | 2 ranks x 1 shard | ranks / process |"
echo "|---|---|---|---|---|"
# Steps that end before the first epoch's evaluation: MNIST has 600 batches of 100
# (58 of 1024), PTB 1,314 of 32 (421 of 100, 41 of 1024).
for spec in "mnist 100 500" "mnist 1024 50" "ptb 100 40" "ptb 1024 4"; do
  read -r base batch steps <<< "$spec"
  for i in $(seq "$pairs"); do
    echo "$base, batch $batch, pair $i ..." >&2
    p=$(one "$base" "$batch" "$steps")
    r=$(ranks "$base" "$batch" "$steps")
    echo "| $base, $batch ($steps) | $i | $p | $r | $(python3 -c "print(f'{$r / $p:.2f}')") |"
  done
done
