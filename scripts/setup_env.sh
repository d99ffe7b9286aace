#!/usr/bin/env bash
# Create (or reuse) ./.venv and install medseg-nas with everything it needs.
# CPU machines get the pinned CPU build of torch (torch==2.13.0). GPU users: install the torch
# build for your CUDA into .venv first (see README); an importable torch is never replaced.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null
if ! python -c "import torch" >/dev/null 2>&1; then
    python -m pip install -q "torch==${MEDSEG_TORCH_VERSION:-2.13.0}"
fi
python -m pip install -q -e ".[dev,export,ray]"
