"""Per-command overhead of echo-agent's persistent shell against a fresh `subprocess.run(shell=True)`.

    .venv/bin/python benchmarks/shell_overhead.py [--runs 500]

Both run the same commands, interleaved in one process so machine noise hits both alike. The persistent shell
does more per command (sentinel, state snapshot, cleaning) but saves a fork+exec of bash.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time

from rich.console import Console
from rich.table import Table

from echo_agent.shell import ShellSession

COMMANDS = ["true", "echo hi", "ls /"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=500, help="runs per command and per method")
    args = parser.parse_args()

    persistent: dict[str, list[float]] = {c: [] for c in COMMANDS}
    fresh: dict[str, list[float]] = {c: [] for c in COMMANDS}
    with tempfile.TemporaryDirectory() as cwd, ShellSession(cwd=cwd) as shell:
        shell.run("true")  # start bash outside the measurement
        for _ in range(args.runs):
            for c in COMMANDS:
                t = time.perf_counter()
                r = shell.run(c)
                persistent[c].append(time.perf_counter() - t)
                assert r.exit_code == 0, r
                t = time.perf_counter()
                subprocess.run(c, shell=True, capture_output=True, cwd=cwd, check=True)
                fresh[c].append(time.perf_counter() - t)

    table = Table(title=f"median wall time per command, {args.runs} runs each")
    table.add_column("command")
    table.add_column("ShellSession ms", justify="right")
    table.add_column("subprocess ms", justify="right")
    table.add_column("ratio", justify="right")
    for c in COMMANDS:
        p, s = statistics.median(persistent[c]) * 1e3, statistics.median(fresh[c]) * 1e3
        table.add_row(c, f"{p:.3f}", f"{s:.3f}", f"{p / s:.2f}")
    Console().print(table)
    p_all = statistics.median([x for c in COMMANDS for x in persistent[c]]) * 1e3
    s_all = statistics.median([x for c in COMMANDS for x in fresh[c]]) * 1e3
    print(f"RESULT persistent_ms={p_all:.3f} subprocess_ms={s_all:.3f} ratio={p_all / s_all:.2f}")


if __name__ == "__main__":
    main()
