#!/bin/bash
# Two update cycles on the embedded model, run the way a user runs them, then the morning report.
#
#     bash benchmarks/two_cycles.sh [PLOT.png]
#
# A scratch home gets 30 config files read twice by the agent (a scripted policy), and `echo-agent update` runs;
# then 15 more files and as many look-ups with no lasting fact in them (`date`, `ps aux`, `df -h`, `ls -l`), twice,
# and `echo-agent update --budget-minutes 1.5`, whose new data is more than its budget holds. The report is
# printed as text and as JSON, and plotted (default docs/updater-report-two-cycles.png).
set -e
cd "$(dirname "$0")/.."
export ECHO_AGENT_HOME=$(mktemp -d /tmp/echo-two-cycles-XXXX)
export ECHO_AGENT_CACHE=${ECHO_AGENT_CACHE:-$PWD/.cache/test-models}
.venv/bin/python - <<'PY'
import os
from pathlib import Path
import sys
sys.path.insert(0, "benchmarks")
from concurrent_use import record
record(Path(os.environ["ECHO_AGENT_HOME"]), 30)
PY
.venv/bin/echo-agent update
.venv/bin/python - <<'PY'
import os
from pathlib import Path
from echo_agent.agent import Agent, AgentConfig
from echo_agent.memory.store import TrajectoryStore
from echo_agent.models.scripted import ScriptedBackend
from echo_agent.shell import ShellSession
home = Path(os.environ["ECHO_AGENT_HOME"])
ws = home / "ws"
for i in range(30, 45):
    (ws / f"svc{i}.conf").write_text(f"name = svc{i}\nport = {8000 + 7 * i}\nworkers = {2 + i % 5}\n")
noise = ["date", "ps aux", "df -h", "ls -l /proc/self/"]
with TrajectoryStore(home / "store.db") as store, ShellSession(cwd=ws) as shell:
    for r in range(2):
        for i in range(30, 45):
            for cmd in [f"cat svc{i}.conf", noise[i % 4]]:
                b = ScriptedBackend([f"```bash\n{cmd}\n```", "```answer\nok\n```"])
                Agent(b, shell, store, config=AgentConfig(examples=0, memory=False)).run(f"run {cmd}")
PY
.venv/bin/echo-agent update --budget-minutes 1.5
.venv/bin/echo-agent updater report --plot "$(realpath -m "${1:-docs/updater-report-two-cycles.png}")"
.venv/bin/echo-agent updater report --json
echo "home: $ECHO_AGENT_HOME"
