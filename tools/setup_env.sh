#!/usr/bin/env bash
# Creates (or refreshes) the project-local virtual environment with the pinned
# OpenMMLab stack. Idempotent: a second run on the same machine finishes in seconds.
#
#   bash tools/setup_env.sh            # CPU machine (torch CPU build)
#   CMT_CUDA=1 bash tools/setup_env.sh # force a CUDA build of mmcv's ops
#
# Environment knobs:
#   CMT_VENV     venv location (default: <repo>/.venv)
#   CMT_CACHE    where the built mmcv wheel is cached (default: ~/.cache/cmt_plugin)
#   TORCH_SPEC   pip spec for torch (default: torch==2.13.0 on CPU machines; on a CUDA
#                machine set it to the CUDA build you want, e.g. 'torch==2.4.1')
#   CMT_CUDA     1 builds mmcv with CUDA ops (auto when nvidia-smi is present); needs
#                nvcc matching torch.version.cuda, and TORCH_CUDA_ARCH_LIST for the GPUs
#                you target, e.g. TORCH_CUDA_ARCH_LIST="8.0;9.0".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CMT_VENV:-$ROOT/.venv}"
CACHE="${CMT_CACHE:-$HOME/.cache/cmt_plugin}"
PY="${PYTHON:-python3}"
CONSTRAINTS="$ROOT/requirements/constraints.txt"
T0=$(date +%s)
STEP=0
NSTEPS=7
step() { STEP=$((STEP + 1)); printf '\n[setup %d/%d +%ds] %s\n' "$STEP" "$NSTEPS" "$(( $(date +%s) - T0 ))" "$*"; }

if [ -z "${CMT_CUDA:-}" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then CMT_CUDA=1; else CMT_CUDA=0; fi
fi
if [ -z "${TORCH_SPEC:-}" ]; then
  # torch 2.13.0 (CPU build) ships on this machine's disk; elsewhere pip takes it from PyPI.
  TORCH_SPEC="torch==2.13.0"
fi
PIP_EXTRA=()
[ -d /opt/wheels ] && PIP_EXTRA+=(--find-links /opt/wheels)

# A stamp of everything that decides the environment: if unchanged and the imports work,
# there is nothing to do.
STAMP_SRC="$(cat "$0" "$ROOT"/requirements/*.txt "$ROOT/setup.py" "$ROOT"/aqr_attention/csrc/*; echo "$TORCH_SPEC $CMT_CUDA")"
STAMP="$(printf '%s' "$STAMP_SRC" | sha1sum | cut -c1-16)"
if [ -f "$VENV/.cmt_setup_stamp" ] && [ "$(cat "$VENV/.cmt_setup_stamp")" = "$STAMP" ] \
   && "$VENV/bin/python" -c "import mmcv.ops, mmdet3d, plugin, aqr_attention._window_attention_cpu" >/dev/null 2>&1; then
  echo "[setup] $VENV is up to date (stamp $STAMP)."
  exit 0
fi

step "virtual environment at $VENV"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
VPY="$VENV/bin/python"
pip_install() { "$VPY" -m pip install --progress-bar off "${PIP_EXTRA[@]}" -c "$CONSTRAINTS" "$@"; }
"$VPY" -m pip install --progress-bar off -q --upgrade "pip<25" wheel ninja

step "torch ($TORCH_SPEC, CUDA ops: $CMT_CUDA)"
if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
  pip_install "$TORCH_SPEC"
fi
TORCH_VER=$("$VPY" -c "import torch; print(torch.__version__)")
TORCH_CUDA=$("$VPY" -c "import torch; print(torch.version.cuda or 'cpu')")
echo "torch $TORCH_VER (cuda: $TORCH_CUDA)"

step "base packages (numpy<2, opencv<4.11, pandas<2.3, mmengine 0.10.x)"
pip_install "numpy<2" "opencv-python<4.11" "pandas<2.3" "mmengine>=0.10.4,<0.11" \
  addict pyyaml yapf termcolor rich packaging pillow

step "mmcv 2.1.0 with ops (built from source once, then cached)"
PYTAG=$("$VPY" -c "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')")
WHEEL_DIR="$CACHE/wheels/mmcv-2.1.0_${PYTAG}_torch-${TORCH_VER}_${TORCH_CUDA}"
if ! "$VPY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" >/dev/null 2>&1; then
  if ! ls "$WHEEL_DIR"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
    echo "No cached mmcv wheel in $WHEEL_DIR: building (about 4 min on 2 cores; CUDA builds take longer)."
    mkdir -p "$WHEEL_DIR"
    # mmcv 2.1.0's setup.py needs setuptools<70 at build time, while torch>=2.6 asks for
    # a newer one at run time: downgrade only for the build, then restore.
    SETUPTOOLS_NOW=$("$VPY" -c "import setuptools; print(setuptools.__version__)")
    "$VPY" -m pip install --progress-bar off -q "setuptools<70"
    # MMCV_WITH_OPS=1 compiles mmcv's C++ ops; FORCE_CUDA adds the CUDA kernels.
    # No build isolation: the build must see the torch installed above. -g0: Python's own
    # CFLAGS carry -g, and debug info for torch's headers makes the build about 1.5x slower
    # and the wheel 20x larger (docs/results/setup_and_tests.md); the code is the same.
    BUILD_LOG="$WHEEL_DIR/build.log"
    CFLAGS="${CFLAGS:-} -g0" CXXFLAGS="${CXXFLAGS:-} -g0" \
    MMCV_WITH_OPS=1 FORCE_CUDA="$CMT_CUDA" MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
      "$VPY" -m pip wheel --no-build-isolation --no-deps --progress-bar off -v \
      -c "$CONSTRAINTS" -w "$WHEEL_DIR" "mmcv==2.1.0" > "$BUILD_LOG" 2>&1 &
    BUILD_PID=$!
    B0=$(date +%s)
    while kill -0 "$BUILD_PID" 2>/dev/null; do  # heartbeat: ninja's [done/total] counter
      sleep 30
      printf '  building mmcv: %4ds, %s\n' "$(( $(date +%s) - B0 ))" \
        "$(grep -oE '\[[0-9]+/[0-9]+\]' "$BUILD_LOG" | tail -1 || true)"
    done
    wait "$BUILD_PID" || { tail -40 "$BUILD_LOG"; echo "mmcv build failed; full log: $BUILD_LOG"; }
    "$VPY" -m pip install --progress-bar off -q "setuptools==$SETUPTOOLS_NOW"
    ls "$WHEEL_DIR"/mmcv-2.1.0-*.whl >/dev/null 2>&1 || { echo "mmcv build failed (see above)"; exit 1; }
  else
    echo "Using cached wheel from $WHEEL_DIR"
  fi
  pip_install --no-deps "$WHEEL_DIR"/mmcv-2.1.0-*.whl
fi

step "mmdet 3.2.0, mmdet3d 1.4.0 (without open3d), nuscenes-devkit 1.2.0, spconv (CPU)"
pip_install "mmdet==3.2.0"
pip_install --no-deps "mmdet3d==1.4.0"
pip_install -r "$ROOT/requirements/runtime.txt"
if [ "$CMT_CUDA" = "1" ]; then
  echo "CUDA machine: install the spconv-cuXXX wheel matching torch.version.cuda ($TORCH_CUDA) by hand if you need SparseEncoder."
else
  pip_install spconv || echo "WARNING: spconv CPU wheel not available; voxel SparseEncoder configs need it."
fi

step "tests and the plugin itself (pip install -e ., compiles the CPU window kernel, ~1 min)"
pip_install -r "$ROOT/requirements/tests.txt"
if [ "$CMT_CUDA" = "0" ]; then
  # the tests run AQR's Triton kernels in Triton's interpreter on CPU tensors; CUDA builds
  # of torch bring their own matching triton, which must not be replaced
  pip_install --no-deps "triton==3.9.0"
fi
# PEP 660 editable install: builds aqr_attention/_window_attention_cpu*.so in place against
# the torch above (no build isolation: the build must see that torch)
pip_install --no-deps --no-build-isolation --use-pep517 -e "$ROOT"

step "check imports"
"$VPY" - <<'PYCHECK'
import torch, mmcv, mmcv.ops, mmdet, mmdet3d, mmengine, nuscenes, numpy
from mmdet3d.utils import register_all_modules
register_all_modules()
import plugin  # registers the project's modules
import aqr_attention._window_attention_cpu  # the compiled window kernel (setup.py)
print(f"torch {torch.__version__} | mmengine {mmengine.__version__} | mmcv {mmcv.__version__} | "
      f"mmdet {mmdet.__version__} | mmdet3d {mmdet3d.__version__} | numpy {numpy.__version__}")
PYCHECK
echo "$STAMP" > "$VENV/.cmt_setup_stamp"
echo "[setup] done in $(( $(date +%s) - T0 ))s. Activate with: source $VENV/bin/activate"
