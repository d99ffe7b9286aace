#!/usr/bin/env bash
# The CUDA-only checks in one short run, for a machine that has a GPU and a CUDA torch but maybe not
# this project's other dependencies (wheels in .whl/ are installed to /tmp/site first, if present;
# docs/studies/gpu.md lists them). Each stage has its own time limit and writes what it has before
# the next starts, so a run cut short still returns its earlier stages:
#   tests   tests/test_train_gpu.py (AMP fit, fp32 fit, OOM recorded as failed and memory freed);
#   bench   scripts/bench_gpu.py: seconds, peak memory and val Dice per trial, AMP against fp32;
#   workers the same trials with AMP and 6 data-loading workers (num_workers=0 left the GPU waiting);
#   job     the hippocampus CPU config's whole job on the GPU it finds (device: auto), recorded by
#           scripts/gpu_job_record.py even when the time limit cuts it short;
#   strategies  the strategy comparison of docs/studies/search_strategies.md ("Planned") on the GPU,
#           STRATEGY_JOBS (8) worker processes filling the tracked CUDA trial cache, which starts
#           from benchmarks/cache/ and comes back in OUT/cache/ (copy it over the tracked one).
#           STRATEGY_BUDGET=30 runs the 30-trial plan instead (its own record and stated tests; the
#           same cache: a 30-trial run's first 14 trials are the 14-trial run's, answered from it).
#           STRATEGY_PROXY=best: f1 = 1 - the trial's best-epoch validation Dice (dice_at best,
#           alpha = beta = 0) in its own cache (..._cuda_best.jsonl), the authors'-f1 cache's trials
#           answering it rescored (bench_search --rescore-from); its own records (suffix _best).
# Usage: bash scripts/gpu_check.sh OUT_DIR [SECONDS_FOR_ALL] [STAGES]   (data/Task04_Hippocampus prepared)
#   e.g. bash scripts/gpu_check.sh $OUT 540 tests,job       (the 2026-12-04 lease ran tests,bench,job)
set -u
OUT=${1:?usage: gpu_check.sh OUT_DIR [SECONDS_FOR_ALL] [STAGES]}
ALL=${2:-540}
STAGES=",${3:-tests,bench,job},"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="/tmp/site:$PWD" || exit 1
fi
left() { echo $(( ALL - SECONDS )); }
want() { [[ $STAGES == *",$1,"* ]]; }
{ nvidia-smi; python3 -c "import torch, monai, pymoo, sklearn; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'monai', monai.__version__, 'pymoo', pymoo.__version__, 'sklearn', sklearn.__version__)"; nproc; } >"$OUT/env.txt" 2>&1
if want tests; then
    echo "[$SECONDS s] gpu tests"
    timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_train_gpu.py >"$OUT/pytest_gpu.txt" 2>&1
    echo "[$SECONDS s] rc of tests $?"
fi
if want bench; then
    timeout 170 python3 scripts/bench_gpu.py --config configs/hippocampus_cpu.yaml --trials 4 --work-dir /tmp/bench_gpu \
        --out "$OUT/gpu_trials.json" >"$OUT/bench_gpu.log" 2>&1
    echo "[$SECONDS s] rc of bench $?"
fi
if want workers; then
    timeout 120 python3 scripts/bench_gpu.py --config configs/hippocampus_cpu.yaml --trials 4 --modes amp \
        --set data.num_workers=6 --work-dir /tmp/bench_gpu_w6 --out "$OUT/gpu_trials_w6.json" >"$OUT/bench_gpu_w6.log" 2>&1
    echo "[$SECONDS s] rc of workers $?"
fi
if want job; then
    echo "[$SECONDS s] whole job, $(left) s left"
    timeout $(( $(left) - 25 )) python3 -m medseg_nas run configs/hippocampus_cpu.yaml --run-dir /tmp/gpu_job \
        --set 'data.prepare.source=""' >"$OUT/whole_job.log" 2>&1
    echo "[$SECONDS s] rc of job $?"
    timeout 20 python3 scripts/gpu_job_record.py /tmp/gpu_job "$OUT/whole_job.log" --out "$OUT/gpu_job.json" >/dev/null 2>>"$OUT/whole_job.log"
    if [ -f /tmp/gpu_job/best/summary.json ]; then
        timeout 20 python3 scripts/whole_job_summary.py /tmp/gpu_job --out "$OUT/whole_job.json" >/dev/null 2>>"$OUT/whole_job.log"
    fi
    tar czf "$OUT/gpu_job.tgz" -C /tmp --exclude='*.onnx' --exclude='*.pt' --exclude='model.ts' --exclude='bundle' \
        --exclude='predictions' gpu_job
fi
if want strategies; then
    CACHE=search_hippocampus_4x50_cuda.jsonl
    B=${STRATEGY_BUDGET:-14}
    SUFFIX=$([ "$B" = 14 ] || echo "_b$B")
    PROXY=()
    if [ "${STRATEGY_PROXY:-authors}" = best ]; then
        PROXY=(--set objectives.dice_at=best --set objectives.alpha=0 --set objectives.beta=0
               --rescore-from "benchmarks/cache/$CACHE")
        CACHE=search_hippocampus_4x50_cuda_best.jsonl SUFFIX="${SUFFIX}_best"
    fi
    mkdir -p "$OUT/cache"
    [ -f "benchmarks/cache/$CACHE" ] && cp "benchmarks/cache/$CACHE" "$OUT/cache/$CACHE"
    echo "[$SECONDS s] strategies, $(left) s left"
    timeout $(( $(left) - 15 )) python3 scripts/bench_search.py --mode train --config configs/hippocampus_cpu.yaml \
        --data-root data/Task04_Hippocampus --spacing auto --patch auto --epochs 4 --iters 50 \
        --variants samea,samea_adaptive,dmls,dmls_linear,nsga2,random --set search.nsga2.pop_size=6 "${PROXY[@]}" \
        --seeds 0-14 --budget "$B" --device cuda --jobs "${STRATEGY_JOBS:-8}" --stop-after $(( $(left) - 200 )) \
        --cache "$OUT/cache/$CACHE" --work-dir "/tmp/bench_search_hippo$SUFFIX" \
        --out "$OUT/search_hippocampus_4x50_cuda$SUFFIX.json" >"$OUT/strategies$SUFFIX.log" 2>&1
    echo "[$SECONDS s] rc of strategies $?"
    tar czf "$OUT/worker_logs.tgz" -C "/tmp/bench_search_hippo$SUFFIX" $(cd "/tmp/bench_search_hippo$SUFFIX" && ls worker*.log) 2>/dev/null  # 8 files come back at most
fi
echo "[$SECONDS s] done"
