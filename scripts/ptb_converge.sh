#!/usr/bin/env bash
# Issue 26: Penn Treebank rows trained to their early stop on the validation set, the
# vMF started from the converged language model's decoder.
#
#   scripts/ptb_converge.sh
#
# 1. configs/ptb-lm.toml (or LM_CONFIG) to its early stop (RUNS/ptb-lm);
# 2. configs/ptb.toml (the vMF at kappa 35, or CONFIG=another row) with
#    model.decoder_from = the LM's best checkpoint and model.freeze_decoder_steps =
#    FREEZE (default 1314, one epoch: the encoder learns against the fixed LM first),
#    to its early stop (RUNS/NAME, NAME default ptb-from-lm);
# 3. `eval --samples K` (default 500) on both best checkpoints: the importance-sampled
#    NLL with the exact density, perplexity with end tokens, KL, MI, active units;
# 4. each run's config, per-epoch CSVs (eval.csv, valid.csv), summary, evaluation, the
#    commit and the CPU into OUT (default docs/ptb-converged/NAME and .../ptb-lm).
#
# Every training call is `--resume auto`, so the script can be called again to continue
# after an interruption (an early-stopped run stays stopped). BIN names a folder of
# built train and eval binaries (e.g. target/debug); by default the release ones are
# built. Both rows use the shipped configs' schedule: batch 32, Adam 1e-3, the rate
# halved after each epoch without a better validation ELBO, stop after 5 such epochs.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-runs/conv}
out=${OUT:-docs/ptb-converged}
name=${NAME:-ptb-from-lm}
config=${CONFIG:-configs/ptb.toml}
lm_config=${LM_CONFIG:-configs/ptb-lm.toml}
freeze=${FREEZE:-1314}
samples=${K:-500}
bin=${BIN:-target/release}
[ -n "${BIN:-}" ] || cargo build --release -q --bin train --bin eval
mkdir -p "$runs" "$out"

best() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["best_checkpoint"])' "$1"
}
evaluate() { # RUN_DIR SUMMARY -> the best checkpoint's evaluation
  local ckpt
  ckpt=$(best "$2")
  [ -f "$ckpt/eval-k$samples-seed0.json" ] ||
    "$bin/eval" --checkpoint "$ckpt" --samples "$samples" --seed 0 > "$1.eval.txt" 2>> "$1.log"
  echo "$ckpt"
}
keep() { # NAME RUN_DIR CKPT
  mkdir -p "$out/$1"
  cp "$2/config.toml" "$2/eval.csv" "$2/valid.csv" "$out/$1/"
  cp "$3/eval-k$samples-seed0.json" "$out/$1/eval-k$samples.json"
  [ -f "$2.eval.txt" ] && cp "$2.eval.txt" "$out/$1/eval-k$samples.txt"
  cp "$2.summary.json" "$out/$1/summary.json"
  {
    echo "commit $(git rev-parse --short HEAD)"
    echo "cpu $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
    echo "date $(date -u +%FT%TZ)"
  } > "$out/$1/machine.txt"
}

echo "training the language model to its early stop ..." >&2
"$bin/train" --config "$lm_config" --run-dir "$runs/ptb-lm" --resume auto \
  > "$runs/ptb-lm.summary.json" 2>> "$runs/ptb-lm.log"
lm=$(evaluate "$runs/ptb-lm" "$runs/ptb-lm.summary.json")
keep ptb-lm "$runs/ptb-lm" "$lm"

echo "training $name from $lm ..." >&2
cfg="$runs/$name.toml"
python3 - "$config" "$lm" "$freeze" > "$cfg" <<'PY'
import sys
text, lm, freeze = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
head, model, rest = text.partition("[model]\n")
print(head + model + f'decoder_from = "{lm}"\nfreeze_decoder_steps = {freeze}\n' + rest, end="")
PY
"$bin/train" --config "$cfg" --run-dir "$runs/$name" --resume auto \
  > "$runs/$name.summary.json" 2>> "$runs/$name.log"
vae=$(evaluate "$runs/$name" "$runs/$name.summary.json")
keep "$name" "$runs/$name" "$vae"
echo "done: $out/ptb-lm and $out/$name" >&2
