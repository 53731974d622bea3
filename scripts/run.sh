#!/usr/bin/env bash
# Set everything up, then run echo-agent with the given arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/echo-agent "$@"
