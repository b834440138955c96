#!/usr/bin/env bash
# The S-VAE MNIST protocol (Davidson et al. 2018): for manifold dimension d in
# {2, 5, 10, 20, 40}, train the Gaussian VAE (configs/svae-gaussian.toml, z in R^d) and
# the vMF VAE (configs/svae-vmf.toml, z on S^d, ambient d + 1), each early-stopped on
# the validation ELBO within an epoch budget; evaluate the best checkpoint's test
# log-likelihood with K importance samples; write the table (OUT, below).
# Two more vMF kinds learn kappa instead of fixing it: vmf-learned (one kappa,
# configs/svae-vmf-learned.toml) and vmf-per-example (kappa(x), as S-VAE,
# configs/svae-vmf-per-example.toml); KINDS="gaussian vmf vmf-learned vmf-per-example"
# runs all four, each a column group of the table. ps-per-example is the Power Spherical
# posterior with a kappa per example (configs/svae-ps-per-example.toml), on the same
# sphere S^d. vmf-product (configs/svae-vmf-product.toml) is a product of d / BLOCK
# spheres S^BLOCK, each with its own kappa per example (BLOCK default 5; where BLOCK
# does not divide d, or d <= BLOCK, one S^d as vmf-per-example); BLOCKS="14 6" instead
# gives the spheres' dimensions one by one (here S^14 x S^6, model.blocks = [15, 7]),
# which must sum to d; BLOCK_KAPPA="10 100" starts each sphere's kappa at its own value,
# in that order (kappa.block_init), in place of the one kappa.init: one value per sphere,
# of BLOCKS or of the equal blocks of BLOCK.
#
#   scripts/svae_protocol.sh [EPOCHS [SAMPLES]]
#
# EPOCHS: the epoch budget per run (default 4000: in effect only early stopping, as the
# protocol; at patience 100 the vMF runs at d = 40 take 1,300-1,650 epochs). SAMPLES: K
# (default 500). DIMS="2 5" restricts the rows, KINDS="vmf" the models; RUNS (default runs/svae) is where the runs go (each run starts fresh, unless
# FROM names the RUNS of an earlier, shorter budget: then each run is a copy of that
# one, resumed from its last checkpoint up to the new budget, which gives the same run
# as training from scratch since the epoch budget is no part of a run's identity and
# resume is exact; an early-stopped run stays stopped); OUT the table (default
# docs/svae-protocol.md when RUNS is the default, else RUNS/table.md, so that a piece of
# work in its own RUNS, a seed or a resumed run, never overwrites the committed table).
# JOBS=2 trains two runs at a time, each on one shard (training.shards = 1): at batch
# 64 a step is too small for two shards to pay, and two one-shard processes train ~2x
# the images per second of one two-shard process on a 2-core machine (measured: 2 x
# 10.5k vs 9.4k images/s, d = 10). SHARDS sets training.shards for every run whatever
# JOBS is (e.g. SHARDS=1 with JOBS=1: runs one after another that train as JOBS=2's
# do, for a queue of its own beside another script). SEED (default 0, the
# configs' seed) seeds the trainings, for the run-to-run spread; PATIENCE (default 100,
# twice the S-VAE authors' look-ahead of 50, which stopped runs at d = 20 and 40 that
# were still improving: docs/svae-learned-kappa.md) is the early stopping's patience in
# epochs (with FROM,
# a larger one restarts runs that stopped: patience does not change the training
# before the stop). RESUME=1 continues each run already in RUNS from its last
# checkpoint instead of starting it afresh (FROM then only seeds the runs not yet
# there): a protocol of many hours is run in pieces by calling the script again with
# the same settings; runs that stopped stay stopped and keep their evaluation. BIN
# names a folder of already built train and eval binaries (e.g. target/debug, whose
# dev profile optimises as release does here); by default the release ones are built.
# WARMUP=E gives every run the authors' later protocol (their product-space code's
# kl_warmup and burn_in): the KL's weight rises linearly from 0 to 1 over the first E
# epochs (model.kl_warmup_steps) and the early stop acts only after them
# (training.burn_in); configs/svae-vmf-product.toml has E = 100 already. Not for the
# fixed-kappa vmf kind, whose KL is no part of the gradient (the config error says so).
# LR_DECAY (default 1: none) and LR_PATIENCE (default 10) add a plateau schedule to every
# run: the learning rate is multiplied by LR_DECAY each time LR_PATIENCE epochs pass
# without a better validation ELBO (optimizer.lr_decay and lr_patience); the early stop
# still waits PATIENCE epochs. With FROM, LR_DECAY continues each run of FROM that an
# early stop of patience LR_PATIENCE ended as the plateau schedule would have trained it
# from scratch: up to that stop the two are the same run, and at it the schedule's first
# decay falls (LR_PATIENCE epochs without a better ELBO). The continued run's config is
# the source run's own (its seed, blocks and the rest: the environment's other settings
# are not read) with lr times LR_DECAY, the schedule (its next decay after 2 x
# LR_PATIENCE epochs without a better ELBO, as from scratch), PATIENCE and EPOCHS; it
# resumes with --force, its optimiser's config being another. KAPPA_INIT (default: the
# config's, 10) starts a learned kappa there (kappa.init; the per-example head's
# start); KAPPA_MIN (default: the config's, S-VAE's 1) is its floor (kappa.min): a
# product's unused blocks rest there and pay the vMF's KL at that kappa. VALIDATION
# (default: the config's, 10000) holds out that many of the last training images for
# validation (data.validation): 5000 is the split of the TensorFlow loader that the
# paper's example code reads MNIST through (55,000 training images, 5,000 validation).
#
# The vMF model's kappa follows a constant KL budget (kl_target) from the first step:
# BUDGETS="6 12 19 20 21" gives one per entry of DIMS, else the best budget of the
# 20-epoch search in docs/svae-kl-budget-search.md (6.3, 12, 19, 30, 30 nats for
# d = 2, 5, 10, 20, 40; min(4 d, 30) for another d).
set -euo pipefail
cd "$(dirname "$0")/.."

epochs=${1:-4000}
samples=${2:-500}
dims=${DIMS:-"2 5 10 20 40"}
kinds=${KINDS:-"gaussian vmf"}
declare -A label=([gaussian]="Gaussian here" [vmf]="vMF here" [vmf-learned]="vMF, learned kappa"
  [vmf-per-example]="vMF, kappa per example" [ps-per-example]="Power Spherical, kappa per example"
  [vmf-product]="vMF, product of spheres")
read -r -a budgets <<< "${BUDGETS:-}"
declare -A searched=([2]=6.3 [5]=12 [10]=19 [20]=30 [40]=30)
jobs=${JOBS:-1}
runs=${RUNS:-runs/svae}
if [ -n "${RUNS:-}" ]; then default_out=$runs/table.md; else default_out=docs/svae-protocol.md; fi
out=${OUT:-$default_out}
mkdir -p "$runs/configs" docs

bin=${BIN:-target/release}
[ -n "${BIN:-}" ] || cargo build --release -q -p vmf-train --bins

# Published test log-likelihoods (Davidson et al. 2018, table 1): N-VAE, S-VAE.
declare -A published=(
  [2]="-135.73 -132.50" [5]="-110.21 -108.43" [10]="-93.84 -93.16"
  [20]="-88.90 -89.02" [40]="-88.93 -90.87"
)

# set_key VAR KEY VALUE SECTION: in run's config ($cfg, of $kind), KEY = VALUE, the
# override of the environment's VAR. It must take: a key that the config lacks would
# leave the run untouched, so that fails the run, naming the key.
set_key() {
  sed -i -e "s|^$2 = .*|$2 = $3|" "$cfg"
  grep -q "^$2 = $3\$" "$cfg" ||
    { echo "$1: configs/svae-$kind.toml has no $2 line in [$4]" >&2; return 1; }
}

# fork_config FROM KIND D DIR CFG: CFG becomes the config of FROM's run continued under
# the plateau schedule (LR_DECAY, above); refused where that run is not the schedule's
# from scratch up to its stop (another patience than LR_PATIENCE, a schedule of its own,
# or a run that ended otherwise than by its early stop).
fork_config() {
  local from=$1 kind=$2 d=$3 dir=$4 cfg=$5
  local src="$from/configs/$kind-d$d.toml" valid="$from/$kind-d$d/valid.csv" pat lr ends
  [ -s "$src" ] && [ -s "$valid" ] ||
    { echo "FROM=$from with LR_DECAY: no $src or $valid to continue" >&2; return 1; }
  pat=$(sed -n -e 's|^patience = \([0-9]*\)$|\1|p' "$src")
  [ "$pat" = "${LR_PATIENCE:-10}" ] ||
    { echo "FROM=$from: $src has patience = $pat, not LR_PATIENCE = ${LR_PATIENCE:-10}: its stop is not the schedule's first decay" >&2; return 1; }
  ! grep -q '^lr_decay = ' "$src" ||
    { echo "FROM=$from: $src has a learning-rate schedule already" >&2; return 1; }
  ends=$(python3 -c '
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
best = max(range(len(rows)), key=lambda i: float(rows[i]["elbo"]))
print(len(rows) - 1 - best)' "$valid")
  [ "$ends" = "$pat" ] ||
    { echo "FROM=$from: $valid ends $ends epochs after its best, not at its early stop ($pat)" >&2; return 1; }
  lr=$(sed -n -e 's|^lr = \(.*\)$|\1|p' "$src")
  lr=$(awk -v a="$lr" -v b="$LR_DECAY" 'BEGIN { printf "%g", a * b }')
  sed -e "s|^run_dir = .*|run_dir = \"$dir\"|" \
    -e "s|^patience = .*|patience = ${PATIENCE:-100}|" \
    -e "s|^epochs = .*|epochs = $epochs|" \
    -e "s|^lr = .*|lr = $lr|" \
    -e "s|^eps = .*|&\nlr_decay = $LR_DECAY\nlr_patience = $pat|" \
    "$src" > "$cfg"
  grep -q "^lr = $lr\$" "$cfg" && grep -q "^lr_decay = $LR_DECAY\$" "$cfg" ||
    { echo "FROM=$from: $src has no lr or eps line in [optimizer]" >&2; return 1; }
}

# run KIND D BUDGET -> writes "LL SE EPOCHS BEST_EPOCH KL" to $runs/KIND-dD.result
run() {
  local kind=$1 d=$2 budget=$3 latent dir cfg
  if [[ "$kind" == vmf* || "$kind" == ps* ]]; then latent=$((d + 1)); else latent=$d; fi
  local factors=1 block=${BLOCK:-5} blocks=""
  if [[ "$kind" == *-product ]] && [ -n "${BLOCKS:-}" ]; then
    local -a spheres=($BLOCKS)
    local b sum=0
    latent=0
    for b in "${spheres[@]}"; do
      sum=$((sum + b)) latent=$((latent + b + 1)) blocks="${blocks:+$blocks, }$((b + 1))"
    done
    ((sum == d)) ||
      { echo "BLOCKS=\"$BLOCKS\": the spheres' dimensions sum to $sum, not d = $d" >&2; return 1; }
    factors=${#spheres[@]}
  elif [[ "$kind" == *-product ]] && ((d % block == 0 && d > block)); then
    factors=$((d / block)) latent=$((d / block * (block + 1)))
  fi
  dir="$runs/$kind-d$d"
  cfg="$runs/configs/$kind-d$d.toml"
  sed -e "s|^run_dir = .*|run_dir = \"$dir\"|" \
    -e "s|^seed = .*|seed = ${SEED:-0}|" \
    -e "s|^patience = .*|patience = ${PATIENCE:-100}|" \
    -e "s|^latent_dim = .*|latent_dim = $latent|" \
    -e "s|^factors = .*|factors = $factors|" \
    -e "s|^epochs = .*|epochs = $epochs|" \
    -e "s|value = 8.0 }|value = $budget }|" \
    "configs/svae-$kind.toml" > "$cfg"
  if [ "${LR_DECAY:-1}" != 1 ]; then
    sed -i -e "s|^eps = .*|&\nlr_decay = $LR_DECAY\nlr_patience = ${LR_PATIENCE:-10}|" "$cfg"
    # The keys go after [optimizer]'s eps line; a config without one would train undecayed.
    grep -q '^lr_decay' "$cfg" ||
      { echo "LR_DECAY: configs/svae-$kind.toml has no eps line in [optimizer] to add it after" >&2; return 1; }
  fi
  if [ -n "$blocks" ]; then
    sed -i -e "s|^factors = .*|&\nblocks = [$blocks]|" "$cfg"
    grep -q "^blocks = \[$blocks\]\$" "$cfg" ||
      { echo "BLOCKS: configs/svae-$kind.toml has no factors line in [model] to add blocks after" >&2; return 1; }
  fi
  [ -z "${KAPPA_INIT:-}" ] || set_key KAPPA_INIT init "$KAPPA_INIT" kappa || return 1
  if [ -n "${BLOCK_KAPPA:-}" ]; then
    local -a starts_in=($BLOCK_KAPPA)
    ((factors > 1 && ${#starts_in[@]} == factors)) ||
      { echo "BLOCK_KAPPA=\"$BLOCK_KAPPA\": one start per sphere of a product ($kind, d = $d has $factors)" >&2; return 1; }
    local starts
    starts=$(printf '%s\n' $BLOCK_KAPPA | awk '{printf "%s%.1f", (NR > 1 ? ", " : ""), $1}')
    sed -i -e "s|^init = .*|&\nblock_init = [$starts]|" "$cfg"
    grep -q "^block_init = \[$starts\]\$" "$cfg" ||
      { echo "BLOCK_KAPPA: configs/svae-$kind.toml has no init line in [kappa] to add block_init after" >&2; return 1; }
  fi
  [ -z "${KAPPA_MIN:-}" ] || set_key KAPPA_MIN min "$KAPPA_MIN" kappa || return 1
  [ -z "${VALIDATION:-}" ] || set_key VALIDATION validation "$VALIDATION" data || return 1
  if [ -n "${WARMUP:-}" ]; then
    # The KL weight rises linearly over WARMUP epochs of this config's steps (MNIST's
    # 60,000 training images less the validation split, in batches; the loader drops
    # the last partial one), and the early stop acts only after as many epochs.
    local images batch steps
    images=$(sed -n -e 's|^validation = \([0-9]*\)$|\1|p' "$cfg")
    batch=$(sed -n -e 's|^batch_size = \([0-9]*\)$|\1|p' "$cfg")
    steps=$(( WARMUP * ((60000 - images) / batch) ))
    if grep -q '^kl_warmup_steps = ' "$cfg"; then
      sed -i -e "s|^kl_warmup_steps = .*|kl_warmup_steps = $steps|" "$cfg"
    else
      sed -i -e "s|^latent_dim = .*|&\nkl_warmup_steps = $steps|" "$cfg"
    fi
    if grep -q '^burn_in = ' "$cfg"; then
      sed -i -e "s|^burn_in = .*|burn_in = $WARMUP|" "$cfg"
    else
      sed -i -e "s|^patience = .*|&\nburn_in = $WARMUP|" "$cfg"
    fi
    grep -q "^kl_warmup_steps = $steps\$" "$cfg" && grep -q "^burn_in = $WARMUP\$" "$cfg" ||
      { echo "WARMUP: configs/svae-$kind.toml has no latent_dim or patience line to add it after" >&2; return 1; }
  fi
  local fork=""
  if [ -n "${FROM:-}" ] && [ "${LR_DECAY:-1}" != 1 ]; then
    fork_config "$FROM" "$kind" "$d" "$dir" "$cfg" || return 1
    fork=1
    # The shape is the source run's, whatever the environment says.
    latent=$(sed -n -e 's|^latent_dim = ||p' "$cfg")
    factors=$(sed -n -e 's|^factors = ||p' "$cfg")
    factors=${factors:-1}
    blocks=$(sed -n -e 's|^blocks = \[\(.*\)\]$|\1|p' "$cfg")
  fi
  if [ -n "${SHARDS:-}" ]; then
    sed -i -e "s|^shards = .*|shards = $SHARDS|" "$cfg"
  elif [ "$jobs" -gt 1 ]; then
    sed -i -e "s|^shards = .*|shards = 1|" "$cfg"
  fi
  local resume=() from=""
  if [ -n "${RESUME:-}" ] && [ -d "$dir/checkpoints" ]; then
    resume=(--resume auto)
    from="resumed "
  else
    rm -rf "$dir"
    : > "$runs/$kind-d$d.log"
    if [ -n "${FROM:-}" ]; then
      cp -r "$FROM/$kind-d$d" "$dir"
      resume=(--resume auto)
      from="from $FROM "
    fi
  fi
  # A continued run resumes under another optimiser config than its source's checkpoints.
  [ -z "$fork" ] || { resume+=(--force); from="${from}with the plateau schedule "; }
  echo "train $kind d = $d (latent_dim $latent, factors $factors${blocks:+, blocks [$blocks]}) $from..." >&2
  "$bin/train" --config "$cfg" "${resume[@]}" 2>> "$runs/$kind-d$d.log" |
    tail -n 1 > "$runs/$kind-d$d.json"
  local best
  best=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["best_checkpoint"])' \
    "$runs/$kind-d$d.json")
  # A resumed run that had already stopped and been evaluated keeps its evaluation
  # (same checkpoint, same K and seed: the same figures).
  if [ ! -f "$best/eval-k$samples-seed0.json" ]; then
    echo "eval $kind d = $d: $best, K = $samples ..." >&2
    "$bin/eval" --checkpoint "$best" --samples "$samples" --seed 0 > /dev/null 2>> "$runs/$kind-d$d.log"
  fi
  python3 - "$best/eval-k$samples-seed0.json" "$dir/valid.csv" > "$runs/$kind-d$d.result" <<'EOF'
import csv, json, sys
e = json.load(open(sys.argv[1]))
rows = list(csv.DictReader(open(sys.argv[2])))
best = max(range(len(rows)), key=lambda i: float(rows[i]["elbo"]))
print(f'{e["log_likelihood"]:.2f} {e["log_likelihood_se"]:.2f} {len(rows)} {best + 1} {e["metrics"]["kl"]:.2f}')
EOF
}

# Train and evaluate every run, at most $jobs at a time.
i=0
for d in $dims; do
  budget=${budgets[$i]:-${searched[$d]:-$((4 * d < 30 ? 4 * d : 30))}}
  i=$((i + 1))
  for kind in $kinds; do
    [ -f "configs/svae-$kind.toml" ] || { echo "no configs/svae-$kind.toml" >&2; exit 1; }
    rm -f "$runs/$kind-d$d.result"
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    run "$kind" "$d" "$budget" &
  done
done
wait || true

# row KIND D -> "LL +- SE | EPOCHS (BEST) | KL"; a failed run says so and fails the script.
row() {
  local ll se ep best kl
  if [ -s "$runs/$1-d$2.result" ]; then
    read -r ll se ep best kl < "$runs/$1-d$2.result"
    echo "$ll +- $se | $ep ($best) | $kl"
  else
    echo "failed, see $runs/$1-d$2.log | - | -"
  fi
}

{
  echo "# The S-VAE MNIST protocol"
  echo
  echo "Made by \`${BIN:+BIN=$BIN }${JOBS:+JOBS=$JOBS }${SHARDS:+SHARDS=$SHARDS }${DIMS:+DIMS=\"$DIMS\" }${KINDS:+KINDS=\"$KINDS\" }${BUDGETS:+BUDGETS=\"$BUDGETS\" }${SEED:+SEED=$SEED }${KAPPA_INIT:+KAPPA_INIT=$KAPPA_INIT }${KAPPA_MIN:+KAPPA_MIN=$KAPPA_MIN }${VALIDATION:+VALIDATION=$VALIDATION }${LR_DECAY:+LR_DECAY=$LR_DECAY }${LR_PATIENCE:+LR_PATIENCE=$LR_PATIENCE }${PATIENCE:+PATIENCE=$PATIENCE }${BLOCK:+BLOCK=$BLOCK }${BLOCKS:+BLOCKS=\"$BLOCKS\" }${BLOCK_KAPPA:+BLOCK_KAPPA=\"$BLOCK_KAPPA\" }${WARMUP:+WARMUP=$WARMUP }${FROM:+FROM=$FROM }${RESUME:+RESUME=$RESUME }${RUNS:+RUNS=$RUNS }scripts/svae_protocol.sh $epochs $samples\` on $(date -u +%F) at commit" \
    "$(git rev-parse --short HEAD), epoch budget $epochs per run (early stopping on the validation"
  echo "ELBO with patience ${PATIENCE:-100} inside it), test log-likelihood of the best checkpoint with"
  echo "K = $samples importance samples (nats, +- its standard error over the 10,000 test images)."
  lr_note=""
  if [ "${LR_DECAY:-1}" != 1 ]; then
    lr_note=", times $LR_DECAY after every ${LR_PATIENCE:-10} epochs without a better validation ELBO"
  fi
  echo "Dynamically binarised MNIST, MLP 784-256-128-d, batch 64, Adam 1e-3$lr_note. The vMF model"
  echo "schedules kappa by a KL budget (nats, in the KL column; ${BUDGETS:+BUDGETS=\"$BUDGETS\", otherwise }the best of a 20-epoch search); S-VAE learns kappa per example."
  echo
  if [[ " $kinds " == *" vmf-"* || " $kinds " == *" ps-"* ]]; then
    echo "vmf-learned, vmf-per-example and ps-per-example learn kappa (KL column: the test set's mean KL)."
  fi
  echo
  header="| d | N-VAE (paper) | S-VAE (paper) |" rule="|---|---|---|"
  for kind in $kinds; do
    header+=" ${label[$kind]:-$kind} | epochs (best) | KL |" rule+="---|---|---|"
  done
  echo "$header"
  echo "$rule"
} > "$runs/table.md"
for d in $dims; do
  read -r n_paper s_paper <<< "${published[$d]}"
  line="| $d | $n_paper | $s_paper |"
  for kind in $kinds; do line+=" $(row "$kind" "$d") |"; done
  echo "$line" >> "$runs/table.md"
done
# With RUNS set the table is written where it is built: nothing to copy.
[ "$out" -ef "$runs/table.md" ] || cp "$runs/table.md" "$out"
cat "$out"
if grep -q '| failed, see' "$out"; then echo "some runs failed: see the logs named in the table" >&2; exit 1; fi
