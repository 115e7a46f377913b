#!/usr/bin/env bash
# Install mmlit and the OpenMMLab stack it plugs into, into the current Python environment.
#
#   bash tools/install.sh
#
# Idempotent: every step checks first and skips what already works, so running it again is fast.
#
# Environment variables:
#   PYTHON          interpreter to install into (default: python3)
#   MMLIT_TORCH     pip requirement(s) for torch + torchvision, used only when no working pair is
#                   installed (default: the pinned "torch==2.14.1 torchvision==0.29.1"). The floor stack:
#                   MMLIT_TORCH="torch==2.1.2 torchvision==0.16.2" (see "Supported versions" in README.md).
#                   GPU users: install the torch/torchvision build for your CUDA first (see
#                   https://pytorch.org/get-started/locally/), this script then keeps it and builds
#                   mmcv against it, with CUDA ops when a GPU (or FORCE_CUDA=1) is present.
#
# Everything else is pinned to what the torch in use supports: requirements/constraints.txt (the newest
# tested stack) for torch >= 2.3, requirements/constraints-floor.txt (numpy 1.26, mmengine 0.10.2, ...)
# for older torch, whose builds cannot use numpy 2. A torch that is kept is never replaced, and neither
# is what it needs.
#   MMLIT_CACHE     where built mmcv wheels are kept, per torch version (default: ~/.cache/mmlit)
#   MAX_JOBS        parallel compile jobs for mmcv (default: number of cores)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
PIP=("$PY" -m pip install --disable-pip-version-check --progress-bar off)
MMCV_VERSION="2.1.0"
CACHE="${MMLIT_CACHE:-$HOME/.cache/mmlit}"
export MAX_JOBS="${MAX_JOBS:-$(nproc 2>/dev/null || echo 2)}"

log() { printf '\n[mmlit install] %s\n' "$*"; }

# 1. torch + torchvision ---------------------------------------------------------------------------
if "$PY" -c "import torch, torchvision, torchvision.ops" 2>/dev/null; then
    KEEP_TORCH=1
    log "keeping installed torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
    KEEP_TORCH=0
    log "installing ${MMLIT_TORCH:-torch==2.14.1 torchvision==0.29.1}"
    # shellcheck disable=SC2086
    "${PIP[@]}" ${MMLIT_TORCH:-torch==2.14.1 torchvision==0.29.1}
fi
TORCH_VERSION="$("$PY" -c 'import torch; print(torch.__version__)')"
# torch_at_least MAJOR MINOR: compares the torch in use by (major, minor)
torch_at_least() {
    "$PY" - "$1" "$2" <<'EOF'
import sys
import torch
version = tuple(int(part) for part in torch.__version__.split('+')[0].split('.')[:2])
sys.exit(version < (int(sys.argv[1]), int(sys.argv[2])))
EOF
}
# torch < 2.3 was built against numpy 1: the floor stack's pins
if torch_at_least 2 3; then
    CONSTRAINTS="$ROOT/requirements/constraints.txt"
else
    CONSTRAINTS="$ROOT/requirements/constraints-floor.txt"
fi
log "pinning to requirements/$(basename "$CONSTRAINTS") for torch $TORCH_VERSION"
if [ "$KEEP_TORCH" = 1 ]; then
    # The user's own torch build wins: pin everything else, but not torch/torchvision.
    TMP_CONSTRAINTS="$(mktemp)"
    grep -vE '^(torch|torchvision)==' "$CONSTRAINTS" > "$TMP_CONSTRAINTS"
    CONSTRAINTS="$TMP_CONSTRAINTS"
fi
# numpy first: what is installed next is resolved against the numpy this torch can use
"${PIP[@]}" -c "$CONSTRAINTS" numpy

# 2. mmcv (full, with ops) built against this torch ------------------------------------------------
mmcv_ok() {
    "$PY" - "$MMCV_VERSION" <<'EOF' 2>/dev/null
import sys
import mmcv, mmcv.ops  # noqa: E401  (mmcv.ops fails with an ABI error if built for another torch)
from mmcv.ops import deform_conv2d  # noqa: F401
sys.exit(mmcv.__version__ != sys.argv[1])
EOF
}
if mmcv_ok; then
    log "mmcv $MMCV_VERSION with ops already works with torch $TORCH_VERSION"
else
    "${PIP[@]}" -c "$CONSTRAINTS" "setuptools<81" ninja wheel packaging
    WHEEL_DIR="$CACHE/mmcv-$MMCV_VERSION-torch-$TORCH_VERSION"
    mkdir -p "$WHEEL_DIR"
    if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
        log "building mmcv $MMCV_VERSION from source for torch $TORCH_VERSION (about 15 min on 2 cores)"
        SRC="$(mktemp -d)"
        "$PY" -m pip download --no-deps --no-binary :all: --no-cache-dir "mmcv==$MMCV_VERSION" -d "$SRC"
        tar -xzf "$SRC"/mmcv-"$MMCV_VERSION".tar.gz -C "$SRC"
        # mmcv 2.1.0 hard-codes C++17, which older torch builds with; torch >= 2.10 headers need C++20.
        if torch_at_least 2 10; then
            sed -i 's/-std=c++17/-std=c++20/g' "$SRC/mmcv-$MMCV_VERSION/setup.py"
        fi
        MMCV_WITH_OPS=1 "$PY" -m pip wheel --no-build-isolation --no-deps --no-cache-dir \
            -w "$WHEEL_DIR" "$SRC/mmcv-$MMCV_VERSION"
        rm -rf "$SRC"
    fi
    log "installing mmcv from $WHEEL_DIR"
    "${PIP[@]}" --no-deps --force-reinstall --no-cache-dir "$WHEEL_DIR"/mmcv-*.whl
    # mmcv's own runtime dependencies (its wheel was installed without them)
    "${PIP[@]}" -c "$CONSTRAINTS" addict numpy packaging Pillow pyyaml yapf opencv-python mmengine
    mmcv_ok || { echo "mmcv $MMCV_VERSION was installed but 'import mmcv.ops' fails" >&2; exit 1; }
fi

# 3. the downstream OpenMMLab packages, mmlit itself (editable) and the test tools ----------------
log "installing mmengine, mmdet, mmsegmentation, mmpretrain and mmlit"
EXTRA=()
# torch's dynamo ONNX exporter (onnxscript) only for a torch whose torch.onnx.export has it
if "$PY" -c "import inspect, sys, torch.onnx; sys.exit('dynamo' not in inspect.signature(torch.onnx.export).parameters)"
then
    EXTRA=(-r "$ROOT/requirements/export.txt")
elif ! torch_at_least 2 2; then
    # torch 2.0 / 2.1 (what mmdeploy 1.3.1 supports): whole models through mmdeploy instead
    EXTRA=(-r "$ROOT/requirements/mmdeploy.txt")
fi
"${PIP[@]}" -c "$CONSTRAINTS" -r "$ROOT/requirements/mminstall.txt" \
    -r "$ROOT/requirements/optional.txt" -r "$ROOT/requirements/tests.txt" "${EXTRA[@]}"
"${PIP[@]}" -c "$CONSTRAINTS" --no-build-isolation --no-deps -e "$ROOT"

# The final check fails (exit 1) when anything cannot work together, torch and numpy included.
"$PY" -m mmlit.utils.collect_env || { echo "[mmlit install] FAILED (see above)" >&2; exit 1; }
echo "[mmlit install] ok"
