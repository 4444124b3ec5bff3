#!/usr/bin/env bash
# AQR's CUDA checks, on a machine with an NVIDIA GPU and the environment of
# `CMT_CUDA=1 bash tools/setup_env.sh` (or any Python with torch+CUDA, triton and the
# OpenMMLab stack: --python). About 5-8 minutes on one H100/H200:
#   1. tests    the attention tests on CUDA: the compiled Triton kernels (and the
#               pure-PyTorch route) against float64 dense attention at small size
#               (tests/aqr_attention/test_cuda_kernels.py, TRITON_INTERPRET=0);
#   2. bench    tools/benchmark/attention_bias.py --device cuda at full nuScenes size
#               (float16 / bfloat16 / float32, batches 1 / 2 / 4, windows 5 / 15 / 25): time
#               and peak CUDA memory against unbiased SDPA and the dense bias;
#   3. train    ~50 training iterations of the synthetic AQR config with --amp (a small
#               generated data set is made first when data/synthetic_nuscenes is missing).
#
#   bash tools/gpu_check.sh [--python PY] [--out DIR] [--steps tests,bench,train] [--dry-run]
#   bash tools/gpu_check.sh --kernels-only [--python PY] [--out DIR]
#
# --kernels-only needs nothing but torch and triton (no OpenMMLab stack, no pytest, no
# build): step `kernels` runs the same CUDA checks as step 1 as a plain script
# (python -m tests.helpers.cuda_attention_checks), then step `bench` at batches 1 and 2
# without the pure-PyTorch route.
#
# Output: DIR/gpu_check.md (default work_dirs/gpu_check), a Markdown report with one
# section per step: "## <step>: PASS|FAIL (<seconds> s)" followed by that step's own
# output (pytest's summary line; the benchmark's Markdown table; the training log's
# iteration lines, its last loss and time per iteration), and the full logs beside it
# (DIR/<step>.log). The exit status is non-zero when any step failed.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PY=""
OUT=work_dirs/gpu_check
STEPS=tests,bench,train
DRY=0
KERNELS_ONLY=0
usage() { sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --python) PY="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --steps) STEPS="$2"; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --kernels-only) STEPS=kernels,bench; KERNELS_ONLY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
for s in ${STEPS//,/ }; do
  case "$s" in tests|kernels|bench|train) ;; *) echo "gpu_check.sh: unknown step '$s' (tests, kernels, bench, train)" >&2; exit 2 ;; esac
done

CONFIG=configs/synthetic/cmt-aqr_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py
DATA=data/synthetic_nuscenes
declare -A CMD
CMD[tests]="TRITON_INTERPRET=0 $PY -m pytest -q -rs tests/aqr_attention/test_cuda_kernels.py"
CMD[kernels]="TRITON_INTERPRET=0 $PY -m tests.helpers.cuda_attention_checks"
BENCH="TRITON_INTERPRET=0 $PY tools/benchmark/attention_bias.py --device cuda --dtypes float16 bfloat16 float32 --windows 5 15 25 --dense-batches 1 --rounds 1 --repeats 3"
if [ "$KERNELS_ONLY" = 1 ]; then CMD[bench]="$BENCH --batches 1 2"; else CMD[bench]="$BENCH --batches 1 2 4 --grouped-windows 15"; fi
DATA_CMD="$PY tools/create_synthetic_nuscenes.py --out $DATA --num-scenes 12 --samples-per-scene 10 --sweeps-per-sample 2 --image-size 800 450 --overwrite && $PY tools/create_data.py nuscenes --root-path $DATA --out-dir $DATA --extra-tag nuscenes --version v1.0-mini"
CMD[train]="{ [ -f $DATA/nuscenes_infos_train.pkl ] || { $DATA_CMD; }; } && $PY tools/train.py $CONFIG --amp --work-dir $OUT/train --cfg-options train_cfg.max_epochs=1 train_cfg.val_interval=1000 train_dataloader.dataset.indices=100 default_hooks.logger.interval=10 default_hooks.checkpoint.interval=1000"

if [ "$DRY" = 1 ]; then
  for s in ${STEPS//,/ }; do echo "$s: ${CMD[$s]}"; done
  exit 0
fi

mkdir -p "$OUT"
REPORT="$OUT/gpu_check.md"
{
  echo "# AQR GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  "$PY" -c "import torch; print('torch', torch.__version__, '| CUDA', torch.version.cuda, '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NO GPU')" 2>&1
  "$PY" -c "import triton; print('triton', triton.__version__)" 2>&1 | tail -1
} > "$REPORT"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
  || { cat "$REPORT"; echo "gpu_check.sh: no CUDA device visible to $PY" >&2; exit 1; }

FAILED=0
for s in ${STEPS//,/ }; do
  T0=$(date +%s)
  bash -c "${CMD[$s]}" > "$OUT/$s.log" 2>&1
  RC=$?
  STATUS=PASS; [ "$RC" -ne 0 ] && { STATUS=FAIL; FAILED=1; }
  {
    echo; echo "## $s: $STATUS ($(( $(date +%s) - T0 )) s)"; echo
    case "$s" in
      tests) grep -E "passed|failed|error|SKIPPED" "$OUT/$s.log" | tail -15 ;;
      kernels) grep -E "^(PASS|FAIL)|passed" "$OUT/$s.log" ;;
      bench) grep -E "^\||^device" "$OUT/$s.log" ;;
      train) grep -E "Iter\(train\)|Epoch\(train\)" "$OUT/$s.log" | tail -6 ;;
    esac
    [ "$RC" -ne 0 ] && { echo; echo '```'; tail -25 "$OUT/$s.log"; echo '```'; }
  } >> "$REPORT"
done
cat "$REPORT"
exit "$FAILED"
