#!/usr/bin/env bash
# Set everything up, then run echo-agent with the given arguments in the directory you called this from.
set -euo pipefail
here=$PWD
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$here"
exec "$root/.venv/bin/echo-agent" "$@"
