#!/usr/bin/env bash
# The GPU check of the benchmark suite, run on a machine with an NVIDIA GPU and no
# network: the adapter that the wgpu backend finds, the default MNIST config on wgpu at
# batch 100 and 1024 and the PTB text model (configs/ptb.toml), and the same models in
# PyTorch CUDA eager (scripts/bench_pytorch.py and bench_pytorch_text.py --device cuda)
# when a CUDA torch is installed. Writes a markdown report to
# $OUT/gpu-report.md (default OUT=/tmp/gpu-bench) and prints it.
#
#   BIN=path/to/train scripts/gpu_bench.sh
#
# BIN is a `train` built with the wgpu feature (default target/release/train). The
# Vulkan loader comes from the system, or from Debian packages unpacked from .gl/ (see
# the GPU section of BENCHMARKS.md for how they were fetched). STEPS100 and STEPS1024
# set the steps. TESTBIN, when set, is the test binary of crates/vmf-train/tests/backends.rs
# built with the wgpu feature (`cargo test --release -p vmf-train --features wgpu --test
# backends --no-run` prints its path): it runs first, with CI=1 so that a wgpu device
# that does not open fails it rather than skipping, and the report gets its summary:
# every backend test trained on the GPU against flex on the CPU.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-target/release/train}
out=${OUT:-/tmp/gpu-bench}
steps100=${STEPS100:-3000}
steps1024=${STEPS1024:-600}
steps_text=${STEPS_TEXT:-300}
mkdir -p "$out"
work=$(mktemp -d)
report="$out/gpu-report.md"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
chmod 0700 "$XDG_RUNTIME_DIR"

# Unpacked even where the system has a Vulkan loader: NVIDIA's Vulkan driver
# (libGLX_nvidia.so.0) needs libglvnd's libraries, which a bare CUDA image may lack
# (on the H200 of 2026-12-04 the loader found the ICD manifest and then "no drivers").
if ls .gl/*.deb >/dev/null 2>&1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi

config_for() { # batch -> config path; TRAIN_LIMIT, when set, caps the training images
  local limit=""
  [ -n "${TRAIN_LIMIT:-}" ] && limit="train_limit = $TRAIN_LIMIT"
  sed -e "s/^batch_size = .*/batch_size = $1/" -e "s/^images = .*/images = false/" \
    -e "s/^dataset = \"mnist\"/dataset = \"mnist\"\n$limit/" \
    configs/mnist.toml > "$work/mnist-$1.toml"
  echo "$work/mnist-$1.toml"
}

# run_text BACKEND STEPS -> the summary JSON of configs/ptb.toml (no sentence outputs)
run_text() {
  rm -rf "$work/run"
  sed -e "s/^images = .*/images = false/" configs/ptb.toml > "$work/ptb.toml"
  "$bin" --config "$work/ptb.toml" --run-dir "$work/run" --max-steps "$2" --backend "$1" \
    2> "$out/train-text-$1.log" | tail -n 1
}

# run BACKEND BATCH STEPS -> prints the summary JSON; stderr to $out/train-BACKEND-BATCH.log
run() {
  rm -rf "$work/run"
  "$bin" --config "$(config_for "$2")" --run-dir "$work/run" --max-steps "$3" --backend "$1" \
    2> "$out/train-$1-$2.log" | tail -n 1
}

{
  echo "# GPU check"
  echo
  echo "Made by \`scripts/gpu_bench.sh\` on $(date -u +%F) at commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')."
  echo "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'nvidia-smi not found')."
  echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores. Binary: $bin."
  echo
  echo "## The wgpu adapter"
  echo
  echo '```'
  echo "libvulkan: $(ldconfig -p | grep -m1 libvulkan.so.1 || echo none)"
  for d in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/nvidia/share/vulkan/icd.d; do
    [ -d "$d" ] && echo "ICDs in $d: $(ls "$d" | tr '\n' ' ')"
  done
} > "$report"

# The probe: one step on wgpu, with the Vulkan loader saying which driver it loads.
probe() {
  VK_LOADER_DEBUG=driver run wgpu 100 1 > "$work/probe.json" 2> /dev/null
  grep -q '"steps":1' "$work/probe.json"
}
if ! probe && [ -e /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  echo "first probe failed; retrying with VK_DRIVER_FILES set to the NVIDIA ICD" >> "$report"
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  probe
fi
ok=$?
grep -iE "backend: wgpu|driver|nvidia|error" "$out/train-wgpu-100.log" | grep -v "^$" | head -20 >> "$report"
echo '```' >> "$report"

if [ -n "${TESTBIN:-}" ]; then
  {
    echo
    echo "## The backend tests on this GPU (wgpu) against flex on the CPU"
    echo
    echo '```'
    CI=1 "$TESTBIN" --test-threads 1 2>&1 | tee "$out/backends-tests.log" | grep -E '^test |^test result' || echo "the test binary did not run: see $out/backends-tests.log"
    echo '```'
  } >> "$report"
fi

row() { # label json [key per-epoch-units]
  python3 - "$1" "$2" "${3:-images_per_sec}" "${4:-60000}" <<'EOF'
import json, sys
label, text, key, epoch = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
try:
    d = json.loads(text)
    ips = d[key]
    print(f"| {label} | {ips:.0f} | {epoch / ips:.2f} s |")
except Exception as e:  # a failed run is a row too
    print(f"| {label} | failed ({e.__class__.__name__}) | - |")
EOF
}

{
  echo
  echo "## Training throughput: default MNIST config (MLP 784-256-8-256-784, kappa 20)"
  echo
  echo "images/s over the training steps (the per-epoch test evaluation not counted),"
  echo "after a warm-up run that compiled the kernels; an epoch is 60,000 images."
  echo
  echo "| run | images/s | epoch |"
  echo "|---|---|---|"
} >> "$report"
if [ "$ok" = 0 ]; then
  # The whole training set is one 188 MB buffer; an adapter whose buffers are
  # smaller (lavapipe's) refuses it: then 40,000 images (125 MB) are used.
  if ! run wgpu 100 "${WARM:-200}" | grep -q steps; then
    export TRAIN_LIMIT=40000
    note="The full training set did not fit one buffer of this adapter: the wgpu rows use train_limit = 40000."
    run wgpu 100 "${WARM:-200}" > /dev/null
  fi
  run wgpu 1024 "${WARM:-50}" > /dev/null
  row "vmf-vae wgpu, batch 100, $steps100 steps" "$(run wgpu 100 "$steps100")" >> "$report"
  row "vmf-vae wgpu, batch 1024, $steps1024 steps" "$(run wgpu 1024 "$steps1024")" >> "$report"
  unset TRAIN_LIMIT
else
  echo "| vmf-vae wgpu | no usable adapter: see the log above | - |" >> "$report"
fi
row "vmf-vae flex (this machine's CPU), batch 100, 1200 steps" "$(TRAIN_LIMIT= run flex 100 1200)" >> "$report"
if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  tv=$(python3 -c 'import torch; print(torch.__version__)')
  for b in 100 1024; do
    s=$([ "$b" = 100 ] && echo "$steps100" || echo "$steps1024")
    row "PyTorch $tv CUDA eager, batch $b, $s steps" \
      "$(python3 scripts/bench_pytorch.py --device cuda --batch "$b" --steps "$s")" >> "$report"
  done
else
  echo "| PyTorch CUDA | not installed on this machine | - |" >> "$report"
fi
[ -n "${note:-}" ] && printf '\n%s\n' "$note" >> "$report"
{
  echo
  echo "## Text: configs/ptb.toml (embedding 100, LSTM 400, d = 50, batch 32)"
  echo
  echo "tokens/s (end tokens counted) over $steps_text training steps after a warm-up run;"
  echo "an epoch of PTB's training split is 929,589 tokens."
  echo
  echo "| run | tokens/s | epoch |"
  echo "|---|---|---|"
} >> "$report"
if [ "$ok" = 0 ]; then
  run_text wgpu "${WARM:-20}" > /dev/null # warm-up
  row "vmf-vae wgpu" "$(run_text wgpu "$steps_text")" tokens_per_sec 929589 >> "$report"
fi
if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  row "PyTorch $tv CUDA eager (nn.LSTM)" \
    "$(python3 scripts/bench_pytorch_text.py --device cuda --steps "$steps_text")" tokens_per_sec 929589 >> "$report"
fi
cat "$report"
