#!/usr/bin/env bash
# Behaviour kept bit for bit across a refactor: trains the same short runs with two
# `train` binaries (say, one built before a change and one after) and compares their
# run folders, and evaluates their checkpoints with the two `eval` binaries beside them.
#
#   scripts/same_runs.sh OLD/train NEW/train [WORK]
#
# The runs cover every path of the loop on MNIST and the Penn Treebank: a scheduled
# kappa with validation, early stopping, importance sampling, pictures and checkpoints
# every 9 steps (keep 2); a kappa per example with KL warm-up, gradient clipping and
# rate decay; the Gaussian; the text vMF with a KL budget, dropout and word dropout;
# the language model; and a run interrupted at step 30 and resumed. Compared: every
# file, except metrics.csv's last column (throughput), config.toml's run_dir,
# state.json's SHA-256 lines and optim.bpk (Burn lays the optimiser's tensors out in
# hash-map order; the weights are compared through model.bpk, byte for byte, and the
# optimiser through the runs that follow a resume). Exit 0 when all are identical.
#
# To build the old binaries beside the new ones without a second dependency build:
#   git worktree add /tmp/old HEAD~1
#   (cd /tmp/old && CARGO_TARGET_DIR=$PWD/../main/target cargo build --workspace --all-features --bins)
#   and copy target/debug/{train,eval} away before building the new ones.
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 OLD/train NEW/train [WORK]" >&2; exit 2; }
OLD=$1; NEW=$2; WORK=${3:-runs/same-runs}
D=$(cd ../shared/datasets 2>/dev/null && pwd) || { echo "error: ../shared/datasets not found" >&2; exit 2; }
rm -rf "$WORK"; mkdir -p "$WORK/cfg"
C=$WORK/cfg
cat > $C/img.toml <<T
seed = 3
run_dir = "unused"
[data]
dataset = "mnist"
dir = "$D/mnist"
pixels = "dynamic_binary"
train_limit = 1200
test_limit = 300
validation = 200
[model]
latent_dim = 6
hidden = [64]
[kappa]
schedule = "linear"
start = 5.0
end = 30.0
steps = 20
[training]
epochs = 3
batch_size = 50
log_every = 7
eval_batch_size = 128
eval_samples = 5
images = true
shards = 2
patience = 2
[checkpoint]
every_steps = 9
keep = 2
T
cat > $C/pe.toml <<T
seed = 1
run_dir = "unused"
[data]
dataset = "mnist"
dir = "$D/mnist"
pixels = "dynamic_binary"
train_limit = 1000
test_limit = 200
validation = 200
[model]
latent_dim = 5
hidden = [32, 16]
kl_warmup_steps = 15
[kappa]
schedule = "per_example"
init = 10.0
min = 1.0
max = 10000.0
[optimizer]
clip_norm = 5.0
lr_decay = 0.5
[training]
epochs = 3
batch_size = 64
log_every = 5
eval_batch_size = 100
eval_samples = 4
images = false
shards = 2
patience = 3
[checkpoint]
every_steps = 0
keep = 1
T
cat > $C/gauss.toml <<T
seed = 2
run_dir = "unused"
[data]
dataset = "mnist"
dir = "$D/mnist"
train_limit = 600
test_limit = 100
[model]
kind = "gaussian"
latent_dim = 4
hidden = [32]
kl_warmup_steps = 10
[training]
epochs = 2
batch_size = 50
log_every = 4
eval_samples = 3
images = false
[checkpoint]
every_steps = 5
keep = 1
T
cat > $C/text.toml <<T
seed = 0
run_dir = "unused"
[data]
dataset = "ptb"
dir = "$D/ptb"
max_length = 40
train_limit = 300
test_limit = 60
[model]
latent_dim = 8
hidden = [32]
embed_dim = 16
cell = "lstm"
dropout = 0.2
word_dropout = 0.1
[kappa]
schedule = "kl_target"
kl = { schedule = "constant", value = 3.0 }
[optimizer]
lr_decay = 0.5
[training]
epochs = 2
batch_size = 16
log_every = 5
eval_batch_size = 30
eval_samples = 3
images = true
shards = 2
patience = 2
[checkpoint]
every_steps = 8
keep = 2
T
cat > $C/lm.toml <<T
seed = 0
run_dir = "unused"
[data]
dataset = "ptb"
dir = "$D/ptb"
max_length = 40
train_limit = 200
test_limit = 40
[model]
kind = "lm"
latent_dim = 8
hidden = [32]
embed_dim = 16
[training]
epochs = 1
batch_size = 16
log_every = 4
eval_batch_size = 20
images = true
[checkpoint]
every_steps = 0
keep = 1
T

train_all() { # BIN OUT
  local bin=$1 out=$2 rc=0
  mkdir -p "$out"
  for c in img pe gauss text lm; do
    "$bin" --config "$C/$c.toml" --run-dir "$out/$c" > "$out/$c.log" 2>&1 || { echo "error: $c failed with $bin (see $out/$c.log)"; rc=1; }
  done
  "$bin" --config "$C/img.toml" --run-dir "$out/img-resumed" --max-steps 30 > "$out/img-r1.log" 2>&1 || { echo "error: the interrupted run failed with $bin (see $out/img-r1.log)"; rc=1; }
  "$bin" --config "$C/img.toml" --run-dir "$out/img-resumed" --resume auto > "$out/img-r2.log" 2>&1 || { echo "error: the resumed run failed with $bin (see $out/img-r2.log)"; rc=1; }
  return $rc
}
train_all "$OLD" "$WORK/old" && train_all "$NEW" "$WORK/new" || exit 1

bad=0
differ() { echo "differs: $1"; bad=1; }
A=$WORK/old; B=$WORK/new
for d in img pe gauss text lm img-resumed; do
  while IFS= read -r f; do
    a=$A/$d/$f; b=$B/$d/$f
    [ -f "$b" ] || { echo "missing in new: $d/$f"; bad=1; continue; }
    case $f in
      *metrics.csv) cmp -s <(sed 's/,[^,]*$//' "$a") <(sed 's/,[^,]*$//' "$b") || differ "$d/$f" ;;
      *optim.bpk) ;;
      *state.json) cmp -s <(grep -v sha256 "$a") <(grep -v sha256 "$b") || differ "$d/$f" ;;
      *config.toml) cmp -s <(grep -v run_dir "$a") <(grep -v run_dir "$b") || differ "$d/$f" ;;
      *) cmp -s "$a" "$b" || differ "$d/$f" ;;
    esac
  done < <(cd "$A/$d" && find . -type f | sort)
  while IFS= read -r f; do [ -f "$A/$d/$f" ] || { echo "only in new: $d/$f"; bad=1; }; done < <(cd "$B/$d" && find . -type f | sort)
  # The eval tool of each on the old run's last checkpoint.
  ck=$(ls -d "$A/$d"/checkpoints/step-* | tail -n 1)
  "$(dirname "$OLD")/eval" --checkpoint "$ck" --samples 7 --seed 4 > "$WORK/eval-old-$d.txt" 2>/dev/null
  cp "$ck/eval-k7-seed4.json" "$WORK/eval-old-$d.json"
  "$(dirname "$NEW")/eval" --checkpoint "$ck" --samples 7 --seed 4 > "$WORK/eval-new-$d.txt" 2>/dev/null
  cmp -s "$WORK/eval-old-$d.txt" "$WORK/eval-new-$d.txt" && cmp -s "$WORK/eval-old-$d.json" "$ck/eval-k7-seed4.json" || differ "eval of $d"
done
if [ $bad = 0 ]; then echo "identical: 6 runs and their evaluations"; else exit 1; fi
