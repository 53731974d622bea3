#!/usr/bin/env bash
# Set everything up from scratch where needed, lint, and run the whole test suite (slow tests included).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# One model cache for the whole run: the embedded model is converted once, not once per test.
export ECHO_AGENT_TEST_CACHE=${ECHO_AGENT_TEST_CACHE:-$PWD/.cache/test-models}
.venv/bin/ruff check echo_agent tests benchmarks
.venv/bin/python -m pytest "$@"
