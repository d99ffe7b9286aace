#!/usr/bin/env bash
# The CUDA-only checks in one short run, for a machine that has a GPU and a CUDA torch but maybe not
# this project's other dependencies (wheels in .whl/ are installed to /tmp/site first, if present).
# Each stage has its own time limit and writes what it has before the next starts, so a run cut
# short still returns its earlier stages:
#   1. tests/test_train_gpu.py (AMP fit, fp32 fit, OOM recorded as failed and memory freed);
#   2. scripts/bench_gpu.py: seconds, peak memory and val Dice per trial, AMP against fp32;
#   3. the hippocampus CPU config's whole job with the GPU it finds (device: auto), summarised.
# Usage: bash scripts/gpu_check.sh OUT_DIR [SECONDS_FOR_ALL]   (data/Task04_Hippocampus prepared)
set -u
OUT=${1:?usage: gpu_check.sh OUT_DIR [SECONDS_FOR_ALL]}
ALL=${2:-540}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="/tmp/site:$PWD" || exit 1
fi
left() { echo $(( ALL - SECONDS )); }
{ nvidia-smi; python3 -c "import torch, monai, pymoo, sklearn; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'monai', monai.__version__, 'pymoo', pymoo.__version__, 'sklearn', sklearn.__version__)"; nproc; } >"$OUT/env.txt" 2>&1
echo "[$SECONDS s] gpu tests"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_train_gpu.py >"$OUT/pytest_gpu.txt" 2>&1
echo "[$SECONDS s] bench_gpu (rc of tests $?)"
timeout 170 python3 scripts/bench_gpu.py --config configs/hippocampus_cpu.yaml --trials 4 --work-dir /tmp/bench_gpu \
    --out "$OUT/gpu_trials.json" >"$OUT/bench_gpu.log" 2>&1
echo "[$SECONDS s] whole job, $(left) s left (rc of bench $?)"
timeout $(( $(left) - 25 )) python3 -m medseg_nas run configs/hippocampus_cpu.yaml --run-dir /tmp/gpu_job \
    --set 'data.prepare.source=""' >"$OUT/whole_job.log" 2>&1
echo "[$SECONDS s] summary (rc of job $?)"
timeout 20 python3 scripts/whole_job_summary.py /tmp/gpu_job --out "$OUT/whole_job.json" >/dev/null 2>>"$OUT/whole_job.log"
tar czf "$OUT/gpu_job.tgz" -C /tmp --exclude='*.onnx' --exclude='*.pt' --exclude='model.ts' --exclude='bundle' --exclude='predictions' gpu_job
echo "[$SECONDS s] done"
