#!/usr/bin/env bash
# Copy one finished run of scripts/svae_protocol.sh into a docs folder, so that no table
# depends on runs/ (scratch space that does not outlive a working day):
#
#   scripts/svae_record.sh RUNS KIND D DEST [TAG]
#
# RUNS, KIND and D name the run as svae_protocol.sh made it (RUNS/KIND-dD); DEST is the
# docs folder; TAG (e.g. seed1) goes into the file names. It writes
# DEST/KIND-dD[-TAG]-valid.csv and -test.csv (the per-epoch validation and test rows),
# -summary.json (train's last line: best checkpoint, steps, test metrics) and
# -eval-kK.json (the K-sample evaluation of the best checkpoint, seed 0),
# -examples.csv.gz (its per-image log p(x), for scripts/paired_nll.py) and .toml (the
# run's config, seed and all), then prints the run's result line: log p(x), its standard
# error, epochs, best epoch, KL.
set -euo pipefail
[ $# -ge 4 ] || { sed -n '2,14p' "$0" >&2; exit 2; }
runs=$1 kind=$2 d=$3 dest=$4 tag=${5:+-$5}
dir="$runs/$kind-d$d"
summary="$runs/$kind-d$d.json"
for f in "$dir/valid.csv" "$dir/eval.csv" "$summary" "$runs/$kind-d$d.result"; do
  [ -s "$f" ] || { echo "svae_record: $f is missing or empty: has the run finished and been evaluated?" >&2; exit 1; }
done
best=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["best_checkpoint"])' "$summary")
shopt -s nullglob
evals=("$best"/eval-k*-seed0.json)
[ ${#evals[@]} -eq 1 ] || { echo "svae_record: expected one eval-k*-seed0.json in $best, found ${#evals[@]}" >&2; exit 1; }
k=$(basename "${evals[0]}" | sed -e 's/^eval-k\([0-9]*\)-seed0.json$/\1/')
mkdir -p "$dest"
out="$dest/$kind-d$d$tag"
cp "$dir/valid.csv" "$out-valid.csv"
cp "$dir/eval.csv" "$out-test.csv"
cp "$summary" "$out-summary.json"
cp "${evals[0]}" "$out-eval-k$k.json"
examples="${evals[0]%.json}-examples.csv"
[ -s "$examples" ] && gzip -nc "$examples" > "$out-examples.csv.gz"
cp "$dir/config.toml" "$out.toml"
echo "$kind d = $d$tag: $(cat "$runs/$kind-d$d.result")"
