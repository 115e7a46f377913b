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
#                   installed (default: the pinned "torch==2.14.1 torchvision==0.29.1").
#                   GPU users: install the torch/torchvision build for your CUDA first (see
#                   https://pytorch.org/get-started/locally/), this script then keeps it and builds
#                   mmcv against it, with CUDA ops when a GPU (or FORCE_CUDA=1) is present.
#   MMLIT_CACHE     where built mmcv wheels are kept, per torch version (default: ~/.cache/mmlit)
#   MAX_JOBS        parallel compile jobs for mmcv (default: number of cores)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
PIP=("$PY" -m pip install --disable-pip-version-check --progress-bar off)
CONSTRAINTS="$ROOT/requirements/constraints.txt"
MMCV_VERSION="2.1.0"
CACHE="${MMLIT_CACHE:-$HOME/.cache/mmlit}"
export MAX_JOBS="${MAX_JOBS:-$(nproc 2>/dev/null || echo 2)}"

log() { printf '\n[mmlit install] %s\n' "$*"; }

# 1. torch + torchvision ---------------------------------------------------------------------------
if "$PY" -c "import torch, torchvision, torchvision.ops" 2>/dev/null; then
    log "keeping installed torch $("$PY" -c 'import torch; print(torch.__version__)')"
    # The user's own torch build wins: pin everything else, but not torch/torchvision.
    TMP_CONSTRAINTS="$(mktemp)"
    grep -vE '^(torch|torchvision)==' "$CONSTRAINTS" > "$TMP_CONSTRAINTS"
    CONSTRAINTS="$TMP_CONSTRAINTS"
else
    log "installing ${MMLIT_TORCH:-torch==2.14.1 torchvision==0.29.1}"
    # shellcheck disable=SC2086
    "${PIP[@]}" ${MMLIT_TORCH:-torch==2.14.1 torchvision==0.29.1}
fi
TORCH_VERSION="$("$PY" -c 'import torch; print(torch.__version__)')"

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
        # mmcv 2.1.0 hard-codes C++17; torch >= 2.10 headers need C++20.
        sed -i 's/-std=c++17/-std=c++20/g' "$SRC/mmcv-$MMCV_VERSION/setup.py"
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
"${PIP[@]}" -c "$CONSTRAINTS" -r "$ROOT/requirements/mminstall.txt" \
    -r "$ROOT/requirements/optional.txt" -r "$ROOT/requirements/tests.txt"
"${PIP[@]}" -c "$CONSTRAINTS" --no-build-isolation --no-deps -e "$ROOT"

"$PY" - <<'EOF'
import mmcv, mmdet, mmengine, mmpretrain, mmseg, torch
import mmlit
print(f'[mmlit install] ok: mmlit {mmlit.__version__}, torch {torch.__version__}, '
      f'mmengine {mmengine.__version__}, mmcv {mmcv.__version__}, mmdet {mmdet.__version__}, '
      f'mmseg {mmseg.__version__}, mmpretrain {mmpretrain.__version__}')
EOF
