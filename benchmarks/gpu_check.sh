#!/usr/bin/env bash
# Check the CUDA path on one GPU and measure it, in under 8 minutes.
#
#   benchmarks/gpu_check.sh            # writes into $OUT, or gpu-check/ when OUT is unset
#
# Uses the Python that has torch with CUDA ($PYTHON, else python3); it never
# installs torch. mkdbook itself runs from the checkout (PYTHONPATH), so
# nothing needs installing; a missing pure-Python dependency is installed
# with pip when the machine can reach an index, and otherwise the steps
# that need it are skipped.
#
# Steps, each under its own time limit (a failed or skipped step does not stop
# the others; steps.tsv lists how each ended):
#   1. versions: nvidia-smi, Python, torch, CUDA, cuDNN, the dependencies
#   2. tests/test_gpu.py: CUDA against CPU (tolerances in its docstring),
#      measured differences in gpu_numerics.json
#   3. benchmarks/train.py and benchmarks/distill.py on CUDA, float32 and
#      bfloat16 autocast (train-*.json, distill-*.json), while nvidia-smi
#      samples utilisation and memory every 0.5 s (nvidia-smi-samples.csv)
#   4. one fold of the paper grid (fold 1 of 10, seed 0, both targets, every
#      method) on a simulated cohort, epochs capped, with its wall time and
#      the per-cell costs (paper-fold.txt, grid-cost.json)
#   5. the fast-profile ablation grid serially and on a 2-worker local Dask
#      cluster sharing the GPU, and whether the two results.csv agree
#
# GPU_CHECK_BUDGET (seconds, default 450) skips the steps that would start
# after it is spent; GPU_CHECK_DEVICE=cpu runs the same steps on the CPU, a
# dry run of the script itself where there is no GPU.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"
OUT="${OUT:-$root/gpu-check}"
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1

export PYTHON="${PYTHON:-python3}"
export DEVICE="${GPU_CHECK_DEVICE:-cuda}"
export OUT
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
work="$(mktemp -d "${TMPDIR:-/tmp}/mkdbook-gpu.XXXXXX")"
export work
sampler=""
cleanup() {
  if [ -n "$sampler" ]; then kill "$sampler" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

started=$SECONDS
budget="${GPU_CHECK_BUDGET:-450}"  # seconds; a step is skipped once the budget is spent
printf 'step\tstatus\tseconds\n' > "$OUT/steps.tsv"

# step NAME LIMIT COMMAND...: run COMMAND under `timeout LIMIT`, record how it ended.
step() {
  local name=$1 limit=$2 began rc
  shift 2
  if (( SECONDS - started > budget )); then
    echo "== $name: skipped (budget of ${budget}s spent)"
    printf '%s\tskipped\t0\n' "$name" >> "$OUT/steps.tsv"
    return 0
  fi
  echo "== $name (limit ${limit}s)"
  began=$SECONDS
  rc=0
  timeout --kill-after=10 "$limit" "$@" || rc=$?
  if (( rc == 0 )); then
    printf '%s\tok\t%d\n' "$name" $((SECONDS - began)) >> "$OUT/steps.tsv"
  else
    echo "== $name: FAILED (exit $rc)"
    printf '%s\tfailed(%d)\t%d\n' "$name" "$rc" $((SECONDS - began)) >> "$OUT/steps.tsv"
  fi
  echo "== $name: $((SECONDS - began))s"
}

# -- 1. versions --------------------------------------------------------------------------
echo "== versions"
nvidia-smi || echo "nvidia-smi failed"
"$PYTHON" - <<'EOF' || echo "this Python cannot import torch: set PYTHON to one that can"
import importlib, platform, sys
import torch
print("python", sys.version.split()[0], platform.platform())
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())
print("cuda available", torch.cuda.is_available(),
      [torch.cuda.get_device_name(k) for k in range(torch.cuda.device_count())])
for name in ("numpy", "scipy", "pandas", "sklearn", "mne", "statsmodels", "matplotlib", "seaborn",
             "tqdm", "pytest", "dask", "distributed"):
    try:
        print(name, importlib.import_module(name).__version__)
    except Exception as err:
        print(name, "MISSING", type(err).__name__)
EOF
if [ "$DEVICE" = cuda ] && ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "torch sees no CUDA device: nothing to check (GPU_CHECK_DEVICE=cpu for a dry run)"
  exit 1
fi

# Pure-Python dependencies torch does not bring; pip only when missing (never torch).
missing=$("$PYTHON" - <<'EOF'
import importlib
wanted = {"numpy": "numpy", "scipy": "scipy", "pandas": "pandas", "sklearn": "scikit-learn",
          "mne": "mne", "statsmodels": "statsmodels", "matplotlib": "matplotlib", "seaborn": "seaborn",
          "tqdm": "tqdm", "pytest": "pytest", "distributed": "dask[distributed]"}
missing = []
for module, package in wanted.items():
    try:
        importlib.import_module(module)
    except Exception:
        missing.append(package)
print(" ".join(missing))
EOF
)
if [ -n "$missing" ]; then
  echo "installing missing packages: $missing"
  # shellcheck disable=SC2086
  timeout 60 "$PYTHON" -m pip install --quiet --retries 0 --timeout 5 $missing || echo "could not install: $missing"
fi
have() { "$PYTHON" -c "import $1" 2>/dev/null; }

# -- 2. tests -----------------------------------------------------------------------------
if have pytest; then
  export MKDBOOK_GPU_REPORT="$OUT/gpu_numerics.json"
  step gpu-tests 150 "$PYTHON" -m pytest tests/test_gpu.py -q -rs -p no:cacheprovider \
    --junitxml="$OUT/test_gpu.xml"
else
  printf 'gpu-tests\tskipped(no pytest)\t0\n' >> "$OUT/steps.tsv"
fi

# -- 3. benchmarks, with utilisation sampled ----------------------------------------------
nvidia-smi --query-gpu=timestamp,utilization.gpu,utilization.memory,memory.used,power.draw \
  --format=csv -lms 500 > "$OUT/nvidia-smi-samples.csv" 2>/dev/null &
sampler=$!  # a missing nvidia-smi only leaves the file empty
step train-fp32 75 "$PYTHON" benchmarks/train.py --device "$DEVICE" --steps 30 --literal-steps 3 \
  --json "$OUT/train-fp32.json"
step train-bf16 75 "$PYTHON" benchmarks/train.py --device "$DEVICE" --steps 30 --literal-steps 0 --amp bf16 \
  --json "$OUT/train-bf16.json"
step distill-fp32 50 "$PYTHON" benchmarks/distill.py --device "$DEVICE" --repeats 7 --first-order \
  --json "$OUT/distill-fp32.json"
step distill-bf16 50 "$PYTHON" benchmarks/distill.py --device "$DEVICE" --repeats 7 --amp bf16 \
  --json "$OUT/distill-bf16.json"

# -- 4. one fold of the paper grid --------------------------------------------------------
# Eight simulated subjects (32 take minutes to simulate) and two epochs per
# network: the per-epoch costs in grid-cost.json scale to the full protocol.
paper_fold() {
  export MKDBOOK_HOME="$work/paper"
  "$PYTHON" -m mkdbook.cli simulate "$work/cohort8" --subjects 8 --quiet
  local began=$SECONDS
  MKDBOOK_PROFILE=paper "$PYTHON" -m mkdbook.cli experiment "$work/cohort8" --grid paper --folds 1 \
    --seeds 1 --epochs 2 --device "$DEVICE" --quiet --out "$OUT/paper-fold"
  echo "paper grid, fold 1 of 10, seed 0, 8 subjects, 2 epochs per network: $((SECONDS - began))s" \
    | tee "$OUT/paper-fold.txt"
  "$PYTHON" benchmarks/grid_cost.py --home "$MKDBOOK_HOME" --json "$OUT/grid-cost.json"
}
export -f paper_fold
step paper-fold 200 bash -euo pipefail -c paper_fold

# -- 5. serial against Dask ---------------------------------------------------------------
serial_vs_dask() {
  export MKDBOOK_PROFILE=fast
  MKDBOOK_HOME="$work/serial" "$PYTHON" -m mkdbook.cli simulate "$work/cohort3" --subjects 3 --quiet
  MKDBOOK_HOME="$work/serial" "$PYTHON" -m mkdbook.cli experiment "$work/cohort3" --grid ablation \
    --folds 1 --seeds 1 --device "$DEVICE" --quiet --out "$OUT/ablation-serial"
  MKDBOOK_HOME="$work/dask" "$PYTHON" -m mkdbook.cli experiment "$work/cohort3" --grid ablation \
    --folds 1 --seeds 1 --device "$DEVICE" --quiet --executor dask --workers 2 --out "$OUT/ablation-dask"
  "$PYTHON" - "$OUT" <<'EOF'
import sys
import pandas as pd
out = sys.argv[1]
serial = pd.read_csv(f"{out}/ablation-serial/results.csv")
dask = pd.read_csv(f"{out}/ablation-dask/results.csv")
same = serial.equals(dask)
gap = (serial[["accuracy", "f1"]] - dask[["accuracy", "f1"]]).abs().max().max()
print(f"serial and Dask results.csv identical: {same}; largest accuracy/F1 difference {gap:.4f}"
      " (CUDA kernels are not all bit-reproducible)")
EOF
}
if have distributed; then
  export -f serial_vs_dask
  step serial-vs-dask 120 bash -euo pipefail -c serial_vs_dask
else
  printf 'serial-vs-dask\tskipped(no dask)\t0\n' >> "$OUT/steps.tsv"
fi

kill "$sampler" 2>/dev/null || true
sampler=""
echo "== summary ($((SECONDS - started))s in all)"
cat "$OUT/steps.tsv"
"$PYTHON" - "$OUT" <<'EOF'
import csv, json, statistics, sys
from pathlib import Path
out = Path(sys.argv[1])
samples = out / "nvidia-smi-samples.csv"
if samples.exists():
    rows = list(csv.reader(samples.open()))[1:]
    util = [float(r[1].strip().split()[0]) for r in rows if len(r) > 1 and r[1].strip()[:1].isdigit()]
    if util:
        print(f"GPU utilisation during the benchmarks and grids: median {statistics.median(util):.0f} %, "
              f"max {max(util):.0f} % over {len(util)} samples")
for name in ("train-fp32", "train-bf16"):
    path = out / f"{name}.json"
    if path.exists():
        record = json.loads(path.read_text())
        for row in record["networks"]:
            print(f"{name} {row['network']}: {row['segments_per_second']:.0f} segments/s, "
                  f"{row['seconds_per_epoch']:.1f} s per 19,200-segment epoch, MFU {row['mfu']:.0%}")
for name in ("distill-fp32", "distill-bf16"):
    path = out / f"{name}.json"
    if path.exists():
        record = json.loads(path.read_text())
        print(f"{name}: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in record["median_seconds"].items()))
path = out / "gpu_numerics.json"
if path.exists():
    print("largest CUDA-CPU / bf16-fp32 differences:", path.read_text())
EOF
