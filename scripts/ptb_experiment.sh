#!/usr/bin/env bash
# The Penn Treebank comparison (issue 11): trains the rows of configs/ptb*.toml for a
# step budget, evaluates the last checkpoint of each on the test set and writes the
# table to docs/ptb.md (OUT to write elsewhere).
#
#   scripts/ptb_experiment.sh [STEPS [SAMPLES]]      # default 1314 steps (one epoch), K = 10
#
# Every run continues with --resume auto, so a larger STEPS extends the runs of an
# earlier call (exact resume), and an interrupted call can simply be repeated (an
# evaluation already written for the last checkpoint is reused).
# Where OUT exists, only its block between `<!-- begin ptb_experiment.sh -->` and
# `<!-- end ptb_experiment.sh -->` is rewritten, and its ptb_progress.py blocks are
# regenerated (scripts/ptb_progress.py --update): the text around them is kept. A new
# OUT gets the table and a per-epoch block for the ROWS. The table holds the ROWS of
# this call only: to only continue some runs, call runs/bin/train with --resume auto
# (or set OUT elsewhere) and keep the table of every row.
# ROWS (default: every configs/ptb*.toml row, Standard then Inputless) picks configs;
# JOBS (default 2) trains that many at once; RUNS (default runs) holds the run folders.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-1314}
samples=${2:-10}
rows=${ROWS:-"ptb-lm ptb-gaussian ptb-gaussian-annealed ptb ptb-kl-budget ptb-kappa-per-example ptb-inputless-lm ptb-inputless-gaussian-annealed ptb-inputless"}
jobs=${JOBS:-2}
runs=${RUNS:-runs}
out=${OUT:-docs/ptb.md}

cargo build --release -q --bin train --bin eval
# The experiment runs its own copy of the binaries, so that rebuilding while it runs
# (hours) changes nothing under it.
mkdir -p "$runs/bin"
for b in train eval; do
  # Copied beside and renamed over: a binary that another run is executing cannot be
  # overwritten in place (ETXTBSY), and that run keeps the old file.
  cp "target/release/$b" "$runs/bin/$b.new" && mv "$runs/bin/$b.new" "$runs/bin/$b"
done
train() {
  "$runs/bin/train" --config "configs/$1.toml" --run-dir "$runs/$1" --resume auto \
    --max-steps "$steps" > "$runs/$1.summary.json" 2> "$runs/$1.log"
}
mkdir -p "$runs"
running=0
for r in $rows; do
  echo "training $r to step $steps ..." >&2
  train "$r" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait

{
  echo "<!-- begin ptb_experiment.sh -->"
  echo "Made by \`scripts/ptb_experiment.sh $steps $samples\` on $(date -u +%F) at commit $(git rev-parse --short HEAD)."
  echo "Machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores. Test set (3,761 sentences, 82,430"
  echo "tokens with the end tokens); NLL in nats per sentence; perplexities count end tokens."
  echo "ELBO NLL = reconstruction + KL (what Xu & Durrett report); IS = importance-sampled"
  echo "with K = $samples. MI = I(x; z), AU = active units (Var > 0.01) and, in brackets, the"
  echo "principal components of E_q[z] holding 90% of its variance; acc = the share of test"
  echo "tokens (end tokens counted) that the greedy decoding from mu gets at their position."
  echo
  echo "| config | steps (epochs) | ELBO NLL | KL | ppl (ELBO) | NLL (IS) | ppl (IS) | recon at mu | MI | AU | acc |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
} > "$out.gen"
for r in $rows; do
  ckpt=$(ls -d "$runs/$r"/checkpoints/step-* | tail -1)
  # A checkpoint evaluated before (same K, seed 0) is not evaluated again.
  [ -f "$ckpt/eval-k$samples-seed0.json" ] ||
    "$runs/bin/eval" --checkpoint "$ckpt" --samples "$samples" > /dev/null 2>> "$runs/$r.log"
  python3 - "$r" "$ckpt/eval-k$samples-seed0.json" >> "$out.tmp" <<'EOF'
import json, sys
name, path = sys.argv[1], sys.argv[2]
e = json.load(open(path))
m = e["metrics"]
lat = m.get("latent") or {}
epochs = e["step"] / 1314
print(f"| {name} | {e['step']} ({epochs:.2f}) | {-m['elbo']:.2f} | {m['kl']:.2f} | "
      f"{__import__('math').exp(-m['elbo'] / m['units_per_example']):.1f} | {-e['log_likelihood']:.2f} | "
      f"{e.get('perplexity', float('nan')):.1f} | {m['recon_mean']:.2f} | "
      f"{lat.get('mutual_information', float('nan')):.3f} | {lat.get('active_units', '-')} ({lat.get('components_90', '-')}) | "
      f"{100 * m.get('recon_accuracy', float('nan')):.1f}% |")
EOF
done
{
  echo
  echo "Xu & Durrett (2018), test set, ELBO NLL / KL / perplexity: Standard: LM 100 / - / 114,"
  echo "Gaussian annealed 99 / 4.4 / 109, vMF (kappa 35) 96 / 5.7 / 98. Inputless: LM 134 / - / 596,"
  echo "Gaussian annealed 125 / 6.3 / 379, vMF (kappa 80) 117 / 18.6 / 262."
  echo "<!-- end ptb_experiment.sh -->"
} >> "$out.gen"
if [ -f "$out" ] && grep -qx '<!-- begin ptb_experiment.sh -->' "$out"; then
  python3 - "$out" "$out.gen" <<'EOF'
import os, sys
path, gen = sys.argv[1], sys.argv[2]
text, block = open(path).read(), open(gen).read()
begin, end = "<!-- begin ptb_experiment.sh -->", "<!-- end ptb_experiment.sh -->\n"
i = text.index(begin)
j = text.index(end, i) + len(end)
open(path + ".tmp", "w").write(text[:i] + block + text[j:])
os.replace(path + ".tmp", path)
EOF
  rm "$out.gen"
else
  {
    echo "# The Penn Treebank comparison"
    echo
    cat "$out.gen"
    echo
    echo "Per epoch (test figures at the end of each epoch):"
    echo
    echo "<!-- begin ptb_progress.py $(for r in $rows; do printf '%s ' "$runs/$r"; done)-->"
    echo "<!-- end ptb_progress.py -->"
  } > "$out.tmp"
  rm "$out.gen"
  mv "$out.tmp" "$out"
fi
if grep -q '^<!-- begin ptb_progress.py ' "$out"; then
  python3 scripts/ptb_progress.py --update "$out"
fi
cat "$out"
