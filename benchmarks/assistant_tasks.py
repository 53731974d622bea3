"""Can the embedded model act as a terminal assistant? Ten simple look-up tasks through the real agent loop.

    ECHO_AGENT_CACHE=/work/main/.cache/test-models .venv/bin/python benchmarks/assistant_tasks.py [--seed 0]

Each task runs as one episode of `echo_agent.agent.Agent` with `LocalBackend("embedded")`, a real `ShellSession`
in a workspace generated from the seed (files with known contents, subfolders, a log), and a `TrajectoryStore` in a
temporary home (the user's store is never touched). It is non-interactive: `SilentUI` and no `--yes`, so only
read-only commands run.

Per task:
- well-formed: the episode's first reply parsed to a command, and that command ran and exited 0;
- correct: the expected fact (a line count, a file name, a word from the file, …) appears in the final answer.

The bundled in-context examples must not contain a benchmark task (same wording, or one of the workspace's file
names): the script checks that first and stops if one does. The last line is machine-readable:
    RESULT wellformed=… correct=… tasks=10
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from echo_agent.bench.world import World
from echo_agent.prompting import bundled_examples, words
from echo_agent.records import task_identity


@dataclass
class AssistantTask:
    name: str
    text: str
    expected: list[str]
    """Facts the answer must contain, all of them (matched as whole words, case-insensitively)."""

    def check(self, answer: str | None) -> bool:
        if not answer:
            return False
        return all(
            re.search(rf"(?<![\w.]){re.escape(fact)}(?![\w]|\.\w)", answer, re.IGNORECASE)
            for fact in self.expected
        )


def make_workspace(root: Path, seed: int) -> list[AssistantTask]:
    """Write the workspace under `root` (deterministic for a seed) and return the tasks with their answers."""
    world = World(seed)
    secret = world.meeting_notes()["secret"]
    n_rows = world.inventory_csv()["lines"]
    hidden = world.nested_config()["folder"]
    reports = world.reports()
    world.media()
    n_errors = world.service_log()["errors"]
    last = world.history()["last"]
    fruit_file = world.mention()["file"]
    port = world.settings_toml()["port"]
    n_py = world.python_tools()["python_files"]
    world.build(root)
    # The size `du` prints depends on the filesystem, not only on the seed: measured on the built files.
    du = subprocess.run(["du", "-sh", "media"], cwd=root, capture_output=True, text=True, check=True)
    media_size = du.stdout.split()[0]
    return [
        AssistantTask("show a file", "show me the contents of notes.md", [secret]),
        AssistantTask("count lines", "count the lines in inventory.csv", [n_rows]),
        AssistantTask("find by name", "where is kestrel.cfg", [hidden]),
        AssistantTask("list a directory", "what files are in the reports folder", reports),
        AssistantTask("disk usage", "how much disk space does the media folder take up", [media_size]),
        AssistantTask("count matches", "how many ERROR lines are in logs/service.log", [n_errors]),
        AssistantTask("last line", "what is the last line of history.txt", [last]),
        AssistantTask("search text", "which file mentions pineapple", [fruit_file]),
        AssistantTask("config value", "what port is set in settings.toml", [port]),
        AssistantTask("count files", "how many python files are in the tools folder", [n_py]),
    ]


def check_examples_clean(tasks: list[AssistantTask], root: Path) -> None:
    """Fail loudly if a bundled in-context example is one of the benchmark's tasks (wording or file names)."""
    task_texts = {task_identity(t.text) for t in tasks}
    names = {p.name.lower() for p in root.rglob("*")}
    problems = []
    for ex in bundled_examples():
        if task_identity(ex.task) in task_texts:
            problems.append(f"example task {ex.task!r} is a benchmark task")
        shared = (words(ex.task) | words(ex.command)) & names
        if shared:
            problems.append(f"example {ex.task!r} / {ex.command!r} names benchmark file(s) {sorted(shared)}")
    if problems:
        sys.exit("echo_agent/data/examples.jsonl leaks the benchmark:\n  " + "\n  ".join(problems))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated workspace")
    parser.add_argument(
        "--max-steps", type=int, default=None, help="replies per task (default: AgentConfig's)"
    )
    parser.add_argument("--verbose", action="store_true", help="print every reply and observation")
    args = parser.parse_args()

    from echo_agent.agent import Agent, AgentConfig, SilentUI
    from echo_agent.config import Settings
    from echo_agent.memory.store import TrajectoryStore
    from echo_agent.models.local import LocalBackend
    from echo_agent.shell import ShellSession

    console = Console()
    with tempfile.TemporaryDirectory(prefix="echo-bench-") as tmp:
        home, ws = Path(tmp) / "home", Path(tmp) / "workspace"
        home.mkdir()
        ws.mkdir()
        tasks = make_workspace(ws, args.seed)
        check_examples_clean(tasks, ws)

        settings = Settings.load(home=home)
        config = AgentConfig() if args.max_steps is None else AgentConfig(max_steps=args.max_steps)
        backend = LocalBackend("embedded", device="cpu")
        table = Table(title=f"embedded model on 10 assistant tasks (seed {args.seed})")
        for col in ("task", "first command", "exit", "well-formed", "answer", "correct", "s"):
            table.add_column(col, justify="right" if col in ("exit", "s") else "left", overflow="fold")
        n_wellformed = n_correct = 0
        for i, task in enumerate(tasks):
            # A fresh store and shell per task: the prompt takes examples from the store's finished episodes,
            # so a shared store would let earlier tasks' episodes (and a `cd`) help or hurt later ones.
            with (
                TrajectoryStore(home / f"store-{i}.db", settings=settings) as store,
                ShellSession(cwd=ws, output_cap_bytes=settings.output_cap_bytes) as shell,
            ):
                agent = Agent(backend, shell, store, config=config, settings=settings, ui=SilentUI())
                t0 = time.perf_counter()
                result = agent.run(task.text)
                seconds = time.perf_counter() - t0
            first = result.steps[0] if result.steps else None
            command = first["command"] if first else None
            exit_code = first["exit_code"] if first else None
            wellformed = command is not None and exit_code == 0
            correct = task.check(result.answer)
            n_wellformed += wellformed
            n_correct += correct
            if args.verbose:
                console.rule(task.text)
                for s in result.steps:
                    console.print(repr(s["reply"]), s["output"][:300], s["status"], s["note"] or "")
                console.print(f"status={result.status} answer={result.answer!r} expected={task.expected}")
            answer = (result.answer or f"[{result.status}]").replace("\n", " ⏎ ")
            table.add_row(
                task.text,
                command or "—",
                "—" if exit_code is None else str(exit_code),
                "yes" if wellformed else "no",
                answer[:80],
                "yes" if correct else "no",
                f"{seconds:.1f}",
            )
    console.print(table)
    print(f"RESULT wellformed={n_wellformed} correct={n_correct} tasks={len(tasks)}")


if __name__ == "__main__":
    main()
