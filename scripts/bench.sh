#!/usr/bin/env bash
# The benchmark suite: training throughput of the default MNIST config per backend at
# batch 100 and 1024, time per epoch, peak memory, the dev profile against release,
# PyTorch on the same model when it is installed, where a step's time goes, the text
# model's tokens/s against PyTorch's and its profile (with perf), and the sampler's
# table build and throughput. Prints one markdown report and writes it to
# BENCHMARKS.md, keeping the old report's GPU section (scripts/gpu_bench.sh) at its end.
#
#   scripts/bench.sh            # CPU backends (flex, ndarray)
#   scripts/bench.sh --wgpu     # also wgpu (first build with it: ~15 min)
#   scripts/bench.sh --text     # only the text model's section, replaced in BENCHMARKS.md
#   scripts/bench.sh --mpi      # only 2 MPI ranks against 2 shards (scripts/bench_mpi.sh),
#                               # its section replaced (a full run carries it over)
#   scripts/bench.sh --ratio    # only the default model against PyTorch on this CPU
#                               # (scripts/bench_ratio.sh): a row added to its by-CPU table
#
# STEPS (default 1800: three epochs, past the ~1.3 epochs after which denormals used
# to slow Intel cores) sets the steps of a batch-100 run; batch 1024 runs the same
# number of images. TEXT_STEPS (default 200) sets the text runs' steps. PYTHON (default
# python3) is the interpreter tried for PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."

steps=${STEPS:-1800}
python=${PYTHON:-python3}
backends=(flex ndarray)
features=ndarray
only_text=0
if [ "${1:-}" = "--wgpu" ]; then
  backends+=(wgpu)
  features=ndarray,wgpu
elif [ "${1:-}" = "--text" ]; then
  only_text=1
elif [ "${1:-}" = "--mpi" ]; then
  # The section between its heading and the next one (or before the GPU section).
  table=$(scripts/bench_mpi.sh)
  python3 - "$table" <<'EOF'
import sys
head = "## Training on 2 MPI ranks against 2 shards in one process"
section = (head + "\n\nTwo ranks with one shard each compute exactly what one process with two\n"
           "shards computes (docs/scale-out.md); the difference is the gradients' all-gather.\n\n"
           + sys.argv[1].strip("\n") + "\n\n")
old = open("BENCHMARKS.md").read()
if head in old:
    start = old.index(head)
    nxt = old.find("\n## ", start + len(head))
    end = len(old) if nxt < 0 else nxt + 1
else:
    gpu = old.find("## GPU")
    start = end = len(old) if gpu < 0 else gpu
open("BENCHMARKS.md", "w").write(old[:start] + section + old[end:])
EOF
  cat BENCHMARKS.md
  exit 0
fi
if [ "${1:-}" = "--ratio" ]; then
  row=$(PYTHON="$python" scripts/bench_ratio.sh)
  python3 - "$row" <<'EOF'
import sys
head = "## The default model against PyTorch, CPU by CPU"
intro = (head + "\n\nMade by `scripts/bench.sh --ratio` (scripts/bench_ratio.sh), a row per machine and\n"
         "day: flex (release) against scripts/bench_pytorch.py on the default MNIST model at\n"
         "batch 100, both on all cores, images/s in interleaved pairs; target: 1.5x.\n\n"
         "| date | CPU | commit | PyTorch | pairs (flex / PyTorch) | median |\n"
         "|---|---|---|---|---|---|\n")
old = open("BENCHMARKS.md").read()
if head in old:
    start = old.index(head)
    nxt = old.find("\n## ", start + len(head))
    end = len(old) if nxt < 0 else nxt + 1
    # The new row goes under the table's last row; text after the table stays.
    lines = old[start:end].rstrip("\n").split("\n")
    last = max(i for i, l in enumerate(lines) if l.startswith("| "))
    section = "\n".join(lines[: last + 1] + [sys.argv[1]] + lines[last + 1 :]) + "\n\n"
else:
    gpu = old.find("## GPU")
    start = end = len(old) if gpu < 0 else gpu
    section = intro + sys.argv[1] + "\n\n"
open("BENCHMARKS.md", "w").write(old[:start] + section + old[end:])
EOF
  cat BENCHMARKS.md
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
report="$work/report.md"

echo "building (release, features: default + $features) ..." >&2
cargo build --release -p vmf-train --features "$features" --bins -q
cp target/release/train "$work/train-release"
have_torch=0
"$python" -c 'import torch, numpy' 2>/dev/null && have_torch=1
pairs=${PAIRS:-3}
if [ "$only_text" = 0 ]; then
echo "building (dev profile, as \`cargo test --workspace --all-features\` does) ..." >&2
cargo build --workspace --all-features --bins -q
cp target/debug/train "$work/train-dev"

# A copy of configs/mnist.toml with another batch size (and no PNGs).
config_for() {
  sed -e "s/^batch_size = .*/batch_size = $1/" -e "s/^images = .*/images = false/" \
    configs/mnist.toml > "$work/mnist-$1.toml"
  echo "$work/mnist-$1.toml"
}

# run BINARY BACKEND BATCH -> "images/s peak_rss_mib"
run() {
  local bin=$1 backend=$2 batch=$3
  local n=$((steps * 100 / batch))
  rm -rf "$work/run"
  "$bin" --config "$(config_for "$batch")" --run-dir "$work/run" --max-steps "$n" \
    --backend "$backend" 2> "$work/stderr" | tail -n 1 > "$work/summary.json" || {
    cat "$work/stderr" >&2
    return 1
  }
  python3 - "$work/summary.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
print(round(d["images_per_sec"]), round(d["peak_rss_mib"]))
EOF
}

row() { # label ips rss
  printf '| %s | %s | %.1f s | %s MiB |\n' "$1" "$2" "$(python3 -c "print(60000/$2)")" "$3"
}

{
  echo "# Benchmarks"
  echo
  echo "Made by \`scripts/bench.sh $*\` on $(date -u +%F) at commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with local changes)')."
  echo "Machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB;" \
    "$(rustc -V); Burn 0.22.1. Shared machine: run-to-run noise is about +-10%, so compare"
  echo "rows of one report, not figures of different reports."
  echo
  echo "## Training throughput: default MNIST config (MLP 784-256-8-256-784, kappa 20, shards = 2)"
  echo
  echo "$steps steps at batch 100 (the same number of images at 1024); images/s over the"
  echo "training steps only (the per-epoch test evaluation is not counted); an epoch is"
  echo "60,000 images at that rate; peak RSS of the whole process (data set included)."
  echo
  echo "| run | images/s | epoch (steps) | peak RSS |"
  echo "|---|---|---|---|"
} > "$report"

for backend in "${backends[@]}"; do
  for batch in 100 1024; do
    echo "train: $backend, batch $batch ..." >&2
    read -r ips rss < <(run "$work/train-release" "$backend" "$batch")
    row "$backend, batch $batch, release" "$ips" "$rss" >> "$report"
    [ "$backend" = flex ] && [ "$batch" = 100 ] && flex100=$ips
  done
done
echo "train: flex, batch 100, dev profile ..." >&2
read -r ips rss < <(run "$work/train-dev" flex 100)
row "flex, batch 100, dev profile (\`cargo run\`)" "$ips" "$rss" >> "$report"

if [ "$have_torch" = 1 ]; then
  torch_ips() {
    "$python" scripts/bench_pytorch.py --batch 100 --threads "$(nproc)" --steps "$steps" |
      python3 -c 'import json, sys; d = json.load(sys.stdin); print(round(d["images_per_sec"]), d["torch"])'
  }
  echo "PyTorch ..." >&2
  read -r tips tver < <(torch_ips)
  printf '| PyTorch %s, batch 100, %s threads (scripts/bench_pytorch.py) | %s | %.1f s | - |\n' \
    "$tver" "$(nproc)" "$tips" "$(python3 -c "print(60000/$tips)")" >> "$report"
fi

# The ratios, from interleaved pairs so that both sides see the same machine load.
{
  echo
  echo "Ratios from $pairs interleaved pairs (flex release at batch 100 against the other side,"
  echo "run back to back; the median pair ratio counts):"
  echo
  echo "| pair | flex release | dev profile | release / dev | PyTorch | flex / PyTorch |"
  echo "|---|---|---|---|---|---|"
} >> "$report"
rel=() dev=() tor=()
for i in $(seq "$pairs"); do
  echo "pair $i ..." >&2
  read -r r _ < <(run "$work/train-release" flex 100)
  read -r v _ < <(run "$work/train-dev" flex 100)
  t=""
  [ "$have_torch" = 1 ] && read -r t _ < <(torch_ips)
  rel+=("$r") dev+=("$v") tor+=("${t:-nan}")
done
python3 - "${rel[*]}" "${dev[*]}" "${tor[*]}" >> "$report" <<'EOF'
import statistics, sys
rel, dev, tor = ([float(v) for v in a.split()] for a in sys.argv[1:4])
for i, (r, v, t) in enumerate(zip(rel, dev, tor), 1):
    ts = "- | -" if t != t else f"{t:.0f} | {r / t:.2f}x"
    print(f"| {i} | {r:.0f} | {v:.0f} | {r / v:.2f}x | {ts} |")
print()
print(f"- release / dev profile: {statistics.median(r / v for r, v in zip(rel, dev)):.2f}x (target: <= 2x)")
if all(t == t for t in tor):
    print(f"- flex / PyTorch: {statistics.median(r / t for r, t in zip(rel, tor)):.2f}x (target: >= 1.5x)")
else:
    print("- PyTorch: not installed for this run (PYTHON=... with torch and numpy adds it)")
# 2 * (784*256 + 256*8 + 8*256 + 256*784) multiply-adds forward, x3 with the backward.
flop = 3 * 2 * (784 * 256 + 256 * 8 + 8 * 256 + 256 * 784)
print(f"- flex at batch 100: {statistics.median(rel) * flop / 1e9:.0f} GFLOP/s in the matmuls "
      f"({flop / 1e6:.1f} MFLOP per image and step)")
EOF

fi # only_text

# The text model: configs/ptb.toml (images off) against the same model in PyTorch.
if [ "$only_text" = 1 ]; then
  {
    echo "(This section re-measured alone by \`scripts/bench.sh --text\` on $(date -u +%F) at commit"
    echo "$(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with local changes)'), $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores.)"
  } > "$report"
fi
text_steps=${TEXT_STEPS:-200}
sed -e "s/^images = .*/images = false/" configs/ptb.toml > "$work/ptb.toml"
text_run() { # BINARY [perf output] -> tokens/s
  rm -rf "$work/trun"
  local cmd=("$1" --config "$work/ptb.toml" --run-dir "$work/trun" --max-steps "$text_steps")
  if [ -n "${2:-}" ]; then cmd=(perf record -q -F 499 -o "$2" -- "${cmd[@]}"); fi
  "${cmd[@]}" 2> "$work/stderr" | tail -n 1 |
    python3 -c 'import json, sys; print(round(json.load(sys.stdin)["tokens_per_sec"]))' || {
    cat "$work/stderr" >&2
    return 1
  }
}
{
  echo
  echo "## Training throughput: the text model (configs/ptb.toml, images off)"
  echo
  echo "Embedding 100, LSTM encoder and decoder with 400 units, d = 50, vocabulary 10,002,"
  echo "batch 32 bucketed by length; $text_steps steps; tokens/s with the end tokens, over"
  echo "the training steps. PyTorch: \`scripts/bench_pytorch_text.py --threads $(nproc)\`"
  echo "(nn.LSTM, the same sizes, bucketing, sampler and dropout, the loss read back every step)."
  echo "Interleaved pairs:"
  echo
  echo "| pair | vmf-vae (flex, release) | PyTorch | vmf-vae / PyTorch |"
  echo "|---|---|---|---|"
} >> "$report"
trel=() ttor=()
for i in $(seq "$pairs"); do
  echo "text pair $i ..." >&2
  trel+=("$(text_run "$work/train-release")")
  t=nan
  if [ "$have_torch" = 1 ]; then
    t=$("$python" scripts/bench_pytorch_text.py --threads "$(nproc)" --steps "$text_steps" |
      python3 -c 'import json, sys; print(round(json.load(sys.stdin)["tokens_per_sec"]))')
  fi
  ttor+=("$t")
done
python3 - "${trel[*]}" "${ttor[*]}" >> "$report" <<'EOF'
import statistics, sys
rel, tor = ([float(v) for v in a.split()] for a in sys.argv[1:3])
for i, (r, t) in enumerate(zip(rel, tor), 1):
    ts = "- | -" if t != t else f"{t:.0f} | {r / t:.2f}x"
    print(f"| {i} | {r:.0f} | {ts} |")
print()
if all(t == t for t in tor):
    print(f"- vmf-vae / PyTorch on text: {statistics.median(r / t for r, t in zip(rel, tor)):.2f}x "
          "(targets: >= 1x, issue 11; >= 1.5x, issue 13)")
print(f"- a PTB epoch (929,589 tokens) at the median: {929589 / statistics.median(rel) / 60:.1f} min")
EOF
if command -v perf > /dev/null; then
  echo "text profile ..." >&2
  text_run "$work/train-release" "$work/perf.data" > /dev/null
  {
    echo
    echo "Where the text step's time goes (\`perf record\` of one such run, whole process,"
    echo "samples grouped by the function they fell in):"
    echo
    perf report -i "$work/perf.data" --no-children --sort symbol --stdio 2> /dev/null |
      python3 scripts/perf_groups.py
  } >> "$report"
fi

if [ "$only_text" = 1 ]; then
  # Replace the text section of BENCHMARKS.md (up to the next "## " heading).
  python3 - "$report" <<'EOF'
import sys
new = open(sys.argv[1]).read().strip("\n")
old = open("BENCHMARKS.md").read()
head = "## Training throughput: the text model"
start = old.index(head)
nxt = old.find("\n## ", start + len(head))
end = len(old) if nxt < 0 else nxt + 1
body = new[new.index(head):]
note = new[:new.index(head)].strip("\n")
open("BENCHMARKS.md", "w").write(old[:start] + body + "\n\n" + note + "\n\n" + old[end:])
EOF
  cat BENCHMARKS.md
  exit 0
fi

{
  echo
  echo "## Where a step's time goes (\`cargo bench -p vmf-train --bench step\`, flex, batch 100)"
  echo
  echo '```'
  cargo bench -q -p vmf-train --bench step 2>/dev/null
  echo '```'
  echo
  echo "## Sampler (\`cargo bench -p vmf-core --bench sampler\`)"
  echo
  cargo bench -q -p vmf-core --bench sampler 2>/dev/null | sed "s/^## /### /"
} >> "$report"

# The MPI section (`--mpi`), the by-CPU table (`--ratio`: its rows are other machines')
# and the GPU section (from scripts/gpu_bench.sh on a lent machine, which this suite
# cannot rerun here) are carried over from the old report.
if [ -f BENCHMARKS.md ]; then
  awk '/^## / { keep = /^## Training on 2 MPI ranks/ } keep' BENCHMARKS.md > "$work/mpi.md"
  if [ -s "$work/mpi.md" ]; then { echo; cat "$work/mpi.md"; } >> "$report"; fi
  awk '/^## / { keep = /^## The default model against PyTorch, CPU by CPU/ } keep' \
    BENCHMARKS.md > "$work/ratio.md"
  if [ -s "$work/ratio.md" ]; then { echo; cat "$work/ratio.md"; } >> "$report"; fi
  awk '/^## GPU/ { keep = 1 } keep' BENCHMARKS.md > "$work/gpu.md"
  if [ -s "$work/gpu.md" ]; then { echo; cat "$work/gpu.md"; } >> "$report"; fi
fi
cp "$report" BENCHMARKS.md
cat BENCHMARKS.md
