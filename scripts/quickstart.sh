#!/usr/bin/env bash
# README's main command: set up .venv, then run the whole job on the embedded MNI152-derived
# tissue dataset (prepare -> search -> retrain -> evaluate -> export -> report).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
. .venv/bin/activate
medseg-nas run configs/quickstart.yaml "$@"
