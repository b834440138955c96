#!/usr/bin/env bash
# Issue 26: Penn Treebank rows trained under one schedule, each to its end (or its early
# stop), and evaluated as the literature does.
#
#   scripts/ptb_converge.sh ROW...            e.g.  scripts/ptb_converge.sh ptb-lm ptb
#
# ROW is a config of configs/ without .toml (ptb-lm, ptb, ptb-gaussian-annealed, ...),
# or the path of a .toml file (a probe's config; its name is the file's, without .toml);
# ROW+lm starts that config from the language model's best checkpoint
# (model.decoder_from, the LM's Adam moments carried over, model.freeze_decoder_steps =
# FREEZE, default 1314: one epoch), so ptb-lm must come before it or be done in RUNS.
# Every row gets the same schedule, written into its copy of the config: EPOCHS epochs
# (default 20) with the learning rate scaled by LR_FACTOR (optimizer.lr_factor, a TOML
# inline table; default: 1 until the last DECAY epochs (default 4), then halved at
# the start of each of them, 1/2 to 1/16; a cosine from 1 to 0.01 over 12 epochs
# undertrained the LM: docs/ptb.md), the config's plateau halving and early stop
# (patience 5) kept as guards, SHARDS shards (default 2; 1 to run two rows side by
# side), and no per-epoch importance sampling or sample sentences (the final
# evaluation does that).
# Then `eval --samples K` (default 500) on each row's best-validation checkpoint (the
# importance-sampled NLL with the exact density, perplexity with end tokens, KL, MI,
# active units), and its config, per-epoch CSVs (eval.csv: test, valid.csv:
# validation), summary, evaluation (with each sentence's log p(x) for
# scripts/paired_nll.py), commit and CPU into OUT/NAME (NAME: ROW, or ROW-from-lm).
#
# PRIOR=A evaluates with `--prior-share A` (A of the K draws from the prior, the
# mixture proposal that text needs: docs/ptb.md), its files named as eval names them
# (`eval-kK-seed0-priorN`); the LM, without z, is exact either way.
#
# Every training call is `--resume auto`: call the script again to continue after an
# interruption (a finished run stays finished). BIN names a folder of built train and
# eval binaries (e.g. target/debug); by default the release ones are built.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { sed -n 2,32p "$0" >&2; exit 2; }
runs=${RUNS:-runs/conv}
out=${OUT:-docs/ptb-converged}
epochs=${EPOCHS:-20}
decay=${DECAY:-4}
shards=${SHARDS:-2}
freeze=${FREEZE:-1314}
samples=${K:-500}
prior=${PRIOR:-0}
# 42,068 training sentences, batch 32, the last partial batch dropped.
epoch_steps=$((42068 / 32))
[ "$decay" -lt "$epochs" ] || { echo "DECAY=$decay must be below EPOCHS=$epochs" >&2; exit 2; }
default_factor=$(python3 -c '
import sys
epochs, decay, per = map(int, sys.argv[1:4])
steps = [0] + [(epochs - decay + i) * per for i in range(decay)]
values = [1.0] + [0.5 ** (i + 1) for i in range(decay)]
print("{ schedule = %spiecewise%s, steps = %s, values = %s }" % (chr(34), chr(34), steps, values))
' "$epochs" "$decay" "$epoch_steps")
lr_factor=${LR_FACTOR:-$default_factor}
bin=${BIN:-target/release}
[ -n "${BIN:-}" ] || cargo build --release -q --bin train --bin eval
mkdir -p "$runs" "$out"

best() { # SUMMARY -> the best checkpoint
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["best_checkpoint"])' "$1"
}

# config ROW_CONFIG OUT_CONFIG RUN_DIR [LM_CHECKPOINT]: the row's config under the schedule.
config() {
  python3 - "$@" "$epochs" "$shards" "$freeze" "$lr_factor" <<'PY'
import re, sys
src, dst, run_dir, lm, epochs, shards, freeze, lr_factor = sys.argv[1:9]
epochs, shards = int(epochs), int(shards)
text = open(src).read()
def setkey(text, section, key, value):
    head, sec, rest = text.partition(f"[{section}]\n")
    assert sec, f"{src}: no [{section}]"
    body, nxt, tail = rest.partition("\n[")
    body = re.sub(rf"(?m)^{key} = .*\n?", "", body + "\n").rstrip("\n") + "\n"
    return head + sec + body + f"{key} = {value}\n" + (nxt.lstrip("\n") and "\n[" + tail)
text = re.sub(r'(?m)^run_dir = .*$', f'run_dir = "{run_dir}"', text)
text = setkey(text, "optimizer", "lr_factor", lr_factor)
for key, value in [("epochs", epochs), ("shards", shards), ("eval_samples", 0),
                   ("images", "false")]:
    text = setkey(text, "training", key, value)
if lm:
    text = setkey(text, "model", "decoder_from", f'"{lm}"')
    text = setkey(text, "model", "freeze_decoder_steps", freeze)
open(dst, "w").write(text)
PY
}

# row ROW: train it under the schedule, evaluate its best checkpoint, keep its records.
row() {
  local spec=$1 cfg name lm="" dir ckpt
  name=${spec%+lm}
  case $name in
    *.toml) cfg=$name; name=$(basename "$name" .toml) ;;
    *) cfg=configs/$name.toml ;;
  esac
  [ -f "$cfg" ] || { echo "no config $cfg for row $spec" >&2; exit 2; }
  if [ "$spec" != "$name" ]; then
    [ -f "$runs/ptb-lm.summary.json" ] || { echo "row $spec needs ptb-lm first" >&2; exit 2; }
    lm=$(best "$runs/ptb-lm.summary.json")
    name=$name-from-lm
  fi
  dir=$runs/$name
  config "$cfg" "$runs/$name.toml" "$dir" "$lm"
  echo "$(date -u +%T) training $name ($epochs epochs, $shards shards) ..." >&2
  "$bin/train" --config "$runs/$name.toml" --run-dir "$dir" --resume auto \
    > "$runs/$name.summary.json" 2>> "$runs/$name.log"
  ckpt=$(best "$runs/$name.summary.json")
  # eval's file stem: the prior's draws are named, except for the LM (no z, none drawn).
  local stem=eval-k$samples-seed0 tag=k$samples
  if ! grep -q '^kind = "lm"' "$runs/$name.toml"; then
    local n
    # Rounded half up, as eval rounds (Python's round() would go to even).
    n=$(python3 -c 'import sys; print(int(float(sys.argv[1]) * int(sys.argv[2]) + 0.5))' "$prior" "$samples")
    [ "$n" = 0 ] || { stem=$stem-prior$n; tag=$tag-prior$n; }
  fi
  echo "$(date -u +%T) evaluating $ckpt with K = $samples (prior share $prior) ..." >&2
  [ -f "$ckpt/$stem.json" ] ||
    "$bin/eval" --checkpoint "$ckpt" --samples "$samples" --prior-share "$prior" --seed 0 \
      > "$dir.$tag.txt" 2>> "$runs/$name.log"
  mkdir -p "$out/$name"
  cp "$dir/config.toml" "$dir/eval.csv" "$dir/valid.csv" "$out/$name/"
  cp "$ckpt/$stem.json" "$out/$name/eval-$tag.json"
  cp "$ckpt/$stem-examples.csv" "$out/$name/eval-$tag-examples.csv"
  cp "$dir.$tag.txt" "$out/$name/eval-$tag.txt"
  cp "$runs/$name.summary.json" "$out/$name/summary.json"
  {
    echo "command scripts/ptb_converge.sh (EPOCHS=$epochs SHARDS=$shards K=$samples PRIOR=$prior LR_FACTOR='$lr_factor') row $spec"
    echo "commit $(git rev-parse --short HEAD)"
    echo "cpu $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
    echo "finished $(date -u +%FT%TZ)"
  } > "$out/$name/machine.txt"
  echo "$(date -u +%T) done: $out/$name" >&2
}

for spec in "$@"; do
  row "$spec"
done
