"""Can the embedded model act as a terminal assistant? Everyday look-ups through the real agent loop.

    ECHO_AGENT_CACHE=.cache/test-models .venv/bin/python benchmarks/assistant_tasks.py [--sets tune] [--json F]

43 tasks in 10 categories (files and folders, sizes and disk, counting, text in files, recent changes, config
values, processes and ports, environment and users, dates and times, git), each worded two ways for tuning and
once more, held out. A workspace is built from a seed with `echo_agent.bench.world.World`; the harness also
starts a small web server and a named worker process in it, and sets one environment variable in the agent's
shell. Facts a seed cannot fix (the user, free disk, the worker's pid, today's date) are computed at check time.

Sets (`--sets`, comma-separated; all three by default):
- tune:            the tuning wordings on the tuning seed (`--seed`, 0);
- heldout-wording: the held-out wording of every task on the tuning seed;
- heldout-seed:    the first tuning wording of every task on the held-out seed (`--heldout-seed`, 1).
The two held-out sets are never run while a lever is tuned; they are reported apart, and together as `heldout_*`.

Each wording is one episode of `echo_agent.agent.Agent` on the embedded model (`--backend`: the assistant's
default) and the adapter a fresh install runs (the shipped starter; `--adapter none` for the base model alone),
a real `ShellSession` in the workspace and a fresh `TrajectoryStore` in a temporary home (the user's store is
never touched), with the assistant's own prompt. It is non-interactive (`SilentUI`, no `--yes`): only read-only commands run.
- well-formed: the first reply is a command that ran and exited 0, or an answer block;
- correct: every expected fact appears in the answer (whole words, case-insensitive, white space folded; a fact
  may have alternatives, e.g. date formats) and none of the task's distractors does (the workspace's other values
  of the same kind: the other files' sizes, the other lines).

The bundled in-context examples must not contain a task wording or a workspace file name: checked first. The last
line is machine-readable:
    RESULT wellformed=… correct=… tasks=… wellformed_rate=… correct_rate=… heldout_wellformed_rate=…
           heldout_correct_rate=… seconds_per_task=…
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from echo_agent.bench.world import World
from echo_agent.records import task_identity
from echo_agent.ui import literal

Fact = str | tuple[str, ...]
"""Text the answer must hold; a tuple holds alternatives, any of which will do."""
Facts = dict[str, dict]
TEAM_VARIABLE = "ECHO_BENCH_TEAM"
SETS = ("tune", "heldout-wording", "heldout-seed")


@dataclass(frozen=True)
class AssistantTask:
    id: str
    category: str
    wordings: tuple[str, ...]
    """How people would ask it, for tuning."""
    heldout: str
    """One more wording, never run while tuning."""
    check: Callable[[Facts], tuple[list[Fact], list[str]]]
    """(expected facts, distractors) from the workspace's facts and the live ones (`facts["live"]`)."""


def t(id: str, category: str, wordings: list[str], heldout: str,
      check: Callable[[Facts], tuple[list[Fact], list[str]]]) -> AssistantTask:
    return AssistantTask(id, category, tuple(wordings), heldout, check)


TASKS = [
    # files and folders
    t("list-reports", "files and folders",
      ["what files are in the reports folder", "list the reports directory"],
      "which reports do we have in the reports dir?",
      lambda f: (f["reports"]["present"], f["mention"]["others"] + [f["mention"]["file"]])),
    t("find-kestrel", "files and folders",
      ["where is kestrel.cfg", "in which folder is kestrel.cfg"],
      "i lost kestrel.cfg somewhere, where is it?",
      lambda f: ([f["nested_config"]["folder"]], f["nested_config"]["others"])),
    t("project-folders", "files and folders",
      ["which folders are inside projects", "list the subdirectories of projects"],
      "what sub-folders does projects contain?",
      lambda f: (["alpha", "beta", "gamma"], [])),
    t("markdown-papers", "files and folders",
      ["which markdown files are in the papers folder", "list the .md files in papers"],
      "show me only the markdown documents inside papers",
      lambda f: (f["papers"]["markdown"], f["papers"]["text"])),
    # sizes and disk
    t("media-size", "sizes and disk",
      ["how big is the media folder", "how much disk space does media take up"],
      "what's the total size of everything in media?",
      lambda f: ([f["live"]["media_size"]], [])),
    t("archive-bytes", "sizes and disk",
      ["how many bytes is data/archive.bin", "what is the exact size of data/archive.bin in bytes"],
      "tell me the size of data/archive.bin, in bytes please",
      lambda f: ([f["archive"]["bytes"]], [f["archive"]["other_bytes"]])),
    t("largest-clip", "sizes and disk",
      ["which file in media is the largest", "what is the biggest file in the media folder"],
      "in media, which clip takes the most space?",
      lambda f: ([f["media"]["largest"]], f["media"]["others"])),
    t("free-disk", "sizes and disk",
      ["how much free disk space is left", "how much space is available on this disk"],
      "is there much room left on the drive? how much?",
      lambda f: ([f["live"]["disk_avail"]], [f["live"]["disk_size"], f["live"]["disk_used"]])),
    # counting
    t("inventory-lines", "counting",
      ["count the lines in inventory.csv", "how many lines does inventory.csv have"],
      "what's the line count of inventory.csv?",
      lambda f: ([f["inventory_csv"]["lines"]], [f["service_log"]["lines"]])),
    t("error-lines", "counting",
      ["how many ERROR lines are in logs/service.log", "count the errors in logs/service.log"],
      "how often does ERROR show up in logs/service.log?",
      lambda f: ([f["service_log"]["errors"]], [f["service_log"]["warnings"], f["service_log"]["infos"]])),
    t("python-files", "counting",
      ["how many python files are in the tools folder", "count the .py files in tools"],
      "number of python scripts inside tools?",
      lambda f: ([f["python_tools"]["python_files"]], [f["python_tools"]["files"]])),
    t("poem-words", "counting",
      ["how many words are in poem.txt", "count the words in poem.txt"],
      "what's the word count of poem.txt?",
      lambda f: ([f["poem"]["words"]], [f["poem"]["lines"]])),
    t("misc-files", "counting",
      ["how many files are in the misc folder", "count the files inside misc"],
      "how many things are stored in misc?",
      lambda f: ([f["mention"]["count"]], [])),
    # text in files
    t("password", "text in files",
      ["what is the meeting password", "show me notes.md"],
      "remind me of the password written in notes.md",
      lambda f: ([f["meeting_notes"]["secret"]], [])),
    t("history-last", "text in files",
      ["what is the last line of history.txt", "show the final line in history.txt"],
      "how does history.txt end?",
      lambda f: ([f["history"]["last"]], f["history"]["others"])),
    t("pineapple", "text in files",
      ["which file mentions pineapple", "find the file that talks about a pineapple"],
      "somewhere I wrote about a pineapple, which file was it?",
      lambda f: ([f["mention"]["file"]], f["mention"]["others"])),
    t("todo-first", "text in files",
      ["what is the first line of papers/chores.txt", "show me the top line of papers/chores.txt"],
      "what's at the very top of papers/chores.txt?",
      lambda f: ([f["todo"]["first"]], f["todo"]["others"])),
    t("poem-moon", "text in files",
      ["which line of poem.txt mentions the moon", "find the moon line in poem.txt"],
      "what does poem.txt say about the moon?",
      lambda f: ([f["poem"]["moon"]], f["poem"]["others"])),
    # recent changes
    t("journal-newest", "recent changes",
      ["which file in journal was modified most recently", "what is the newest file in the journal folder"],
      "what did I last change in journal?",
      lambda f: ([f["journal"]["newest"]], f["journal"]["others_newest"])),
    t("journal-oldest", "recent changes",
      ["which file in journal is the oldest", "what is the least recently modified file in journal"],
      "which journal entry hasn't been touched for the longest?",
      lambda f: ([f["journal"]["oldest"]], f["journal"]["others_oldest"])),
    t("settings-modified", "recent changes",
      ["when was settings.toml last modified", "what is the modification date of settings.toml"],
      "what day did settings.toml last change?",
      lambda f: ([_date_forms(f["settings_toml"]["modified"])], [])),
    # config values
    t("settings-port", "config values",
      ["what port is set in settings.toml", "which port does settings.toml configure"],
      "settings.toml: what's the port?",
      lambda f: ([f["settings_toml"]["port"]], [f["settings_toml"]["workers"]])),
    t("settings-workers", "config values",
      ["how many workers are configured in settings.toml", "what is the workers setting in settings.toml"],
      "settings.toml says how many workers?",
      lambda f: ([f["settings_toml"]["workers"]], [f["settings_toml"]["port"]])),
    t("settings-host", "config values",
      ["what host is configured in settings.toml", "which host does settings.toml point to"],
      "settings.toml has a host entry; what is it?",
      lambda f: ([f["settings_toml"]["host"]], [])),
    t("app-timeout", "config values",
      ["what is the timeout in app.json", "which timeout value does app.json set"],
      "how long is the timeout configured in app.json?",
      lambda f: ([f["app_json"]["timeout"]], [f["app_json"]["retries"]])),
    t("deploy-stage", "config values",
      ["what is STAGE set to in deploy.env", "show the STAGE value from deploy.env"],
      "deploy.env: which stage is it?",
      lambda f: ([f["deploy_env"]["stage"]], [f["deploy_env"]["region"]])),
    # processes and ports
    t("web-port", "processes and ports",
      ["which port is the local web server listening on", "what port is the http server using"],
      "there's a web server running here; on which port?",
      lambda f: ([f["live"]["web_port"]], [f["settings_toml"]["port"]])),
    t("worker-pid", "processes and ports",
      ["what is the pid of the {worker} process", "find the process id of {worker}"],
      "{worker} is running somewhere; what's its PID?",
      lambda f: ([f["live"]["worker_pid"]], [])),
    # environment and users
    t("username", "environment and users",
      ["what is my username", "which user am I logged in as"],
      "who am I on this machine?",
      lambda f: ([f["live"]["user"]], [])),
    t("home-dir", "environment and users",
      ["what is my home directory", "where is my home folder"],
      "path of my home dir?",
      lambda f: ([f["live"]["home"]], [])),
    t("cwd", "environment and users",
      ["what is my current directory", "what is the current working directory"],
      "where am I right now in the filesystem?",
      lambda f: ([f["live"]["cwd"]], [])),
    t("team-variable", "environment and users",
      [f"what is the value of the {TEAM_VARIABLE} environment variable", f"show me ${TEAM_VARIABLE}"],
      f"which team is in the {TEAM_VARIABLE} variable?",
      lambda f: ([f["live"]["team"]], [])),
    t("cpu-cores", "environment and users",
      ["how many cpu cores does this machine have", "how many processors are there"],
      "what's the core count here?",
      lambda f: ([f["live"]["cores"]], [])),
    t("hostname", "environment and users",
      ["what is the hostname of this machine", "what is this computer called"],
      "name of this host?",
      lambda f: ([f["live"]["hostname"]], [])),
    # dates and times
    t("today", "dates and times",
      ["tell me today's date", "what's today's date"],
      "which date is it?",
      lambda f: ([_date_forms(f["live"]["today"])], [])),
    t("weekday", "dates and times",
      ["what day of the week is it", "which weekday is today"],
      "tell me what day of the week we're on",
      lambda f: ([f["live"]["weekday"]], f["live"]["other_weekdays"])),
    t("timezone", "dates and times",
      ["what time zone is this machine in", "which timezone is configured"],
      "what's the local time zone here?",
      lambda f: ([f["live"]["timezone"]], [])),
    t("year", "dates and times",
      ["what year is it", "which year is it now"],
      "current year?",
      lambda f: ([f["live"]["today"][:4]], [])),
    # git
    t("last-commit", "git",
      ["what was the last commit message", "show the message of the latest commit"],
      "what did the most recent commit say?",
      lambda f: ([f["commits"]["message"]], f["commits"]["earlier"])),
    t("commit-count", "git",
      ["how many commits are in this repository", "count the git commits"],
      "how many commits does the history have?",
      lambda f: ([f["commits"]["count"]], [])),
    t("branch", "git",
      ["which branch am I working on", "which git branch is checked out"],
      "current branch name?",
      lambda f: ([f["commits"]["branch"]], [])),
    t("last-author", "git",
      ["who made the last commit", "who is the author of the latest commit"],
      "whose commit is the newest one?",
      lambda f: ([f["commits"]["author"]], f["commits"]["others"])),
    t("last-changed", "git",
      ["which files changed in the last commit", "what did the last commit modify"],
      "list the files touched by the newest commit",
      lambda f: ([f["commits"]["changed"]], f["commits"]["earlier_files"])),
]
KINDS = ("meeting_notes", "inventory_csv", "nested_config", "reports", "media", "archive", "service_log", "history",
         "mention", "settings_toml", "app_json", "deploy_env", "python_tools", "todo", "papers", "poem", "journal",
         "commits")
"""The world's kinds of content, in the order they are drawn (the seed's world depends on it)."""
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _date_forms(day: str) -> tuple[str, ...]:
    """A date as people and tools write it: 2024-03-05, Mar 5, 5 Mar, March 5, 5 March."""
    d = datetime.strptime(day, "%Y-%m-%d")
    return (day, f"{d:%b} {d.day}", f"{d.day} {d:%b}", f"{d:%B} {d.day}", f"{d.day} {d:%B}")


def holds(text: str, fact: Fact) -> bool:
    """Whether `text` holds the fact (any of its alternatives) as whole words, case and white space aside."""
    text = " ".join(text.split())
    return any(re.search(rf"(?<![\w.]){re.escape(' '.join(a.split()))}(?![\w]|\.\w)", text, re.IGNORECASE)
               for a in ((fact,) if isinstance(fact, str) else fact))


def correct(answer: str | None, expected: list[Fact], distractors: list[str]) -> bool:
    if not answer:
        return False
    expected_texts = {e for fact in expected for e in ((fact,) if isinstance(fact, str) else fact)}
    return (all(holds(answer, fact) for fact in expected)
            and not any(holds(answer, d) for d in distractors if d not in expected_texts))


# --- the workspace ----------------------------------------------------------------------------------------------


@dataclass
class Workspace:
    root: Path
    facts: Facts
    env: dict[str, str]
    worker: str


@contextmanager
def workspace(base: Path, seed: int) -> Iterator[Workspace]:
    """The seed's world built under `base`, with its web server and worker running (stopped on exit) and the
    live facts measured."""
    world = World(seed)
    facts: Facts = {kind: getattr(world, kind)() for kind in KINDS}
    worker = f"{world.word(2)}-worker"
    team = world.word(2)
    web_port = 8000 + world.rng.randrange(1000)
    root = world.build(base / f"seed{seed}")
    bin_dir = base / f"bin{seed}"
    bin_dir.mkdir()
    (bin_dir / worker).symlink_to(shutil.which("sleep"))
    procs = []
    try:
        procs.append(subprocess.Popen([str(bin_dir / worker), "7200"], cwd=root, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        web_port = _free_port(web_port)
        procs.append(subprocess.Popen([sys.executable, "-m", "http.server", str(web_port), "--bind", "127.0.0.1",
                                       "--directory", str(bin_dir)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        _wait_for_port(web_port)
        facts["live"] = live_facts(root, team, web_port, procs[0].pid)
        yield Workspace(root, facts, {TEAM_VARIABLE: team}, worker)
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _free_port(start: int) -> int:
    for port in range(start, start + 200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError(f"no free port from {start}")


def _wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the web server did not start on port {port}")


def live_facts(root: Path, team: str, web_port: int, worker_pid: int) -> dict:
    """What the machine says now, as the tools print it."""
    def run(*cmd: str) -> str:
        return subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=True).stdout

    size, used, avail = run("df", "-h", ".").splitlines()[1].split()[1:4]
    now = datetime.now().astimezone()
    return {"user": getpass.getuser(), "home": str(Path.home()), "cwd": str(root), "team": team,
            "cores": str(len(os.sched_getaffinity(0))), "hostname": socket.gethostname(),
            "today": f"{now:%Y-%m-%d}", "weekday": (now.strftime("%A"), now.strftime("%a")),
            "other_weekdays": [d for d in WEEKDAYS if d != now.strftime("%A")], "timezone": now.strftime("%Z"),
            "media_size": run("du", "-sh", "media").split()[0], "disk_size": size, "disk_used": used,
            "disk_avail": avail, "web_port": str(web_port), "worker_pid": str(worker_pid)}


def check_examples_clean(root: Path) -> None:
    """Fail loudly if a bundled in-context example is a task's wording or names a workspace file."""
    from echo_agent.examples import bundled_examples, words

    texts = {task_identity(w) for task in TASKS for w in (*task.wordings, task.heldout)}
    names = {p.name.lower() for p in root.rglob("*") if ".git" not in p.parts}
    problems = []
    for ex in bundled_examples():
        if task_identity(ex.task) in texts:
            problems.append(f"example task {ex.task!r} is a benchmark task")
        shared = (words(ex.task) | words(ex.command)) & names
        if shared:
            problems.append(f"example {ex.task!r} / {ex.command!r} names benchmark file(s) {sorted(shared)}")
    if problems:
        sys.exit("the bundled examples leak the benchmark:\n  " + "\n  ".join(problems))


# --- running ----------------------------------------------------------------------------------------------------


@dataclass
class Row:
    set: str
    task: str
    category: str
    wording: str
    first_command: str | None
    first_exit: int | None
    wellformed: bool
    correct: bool
    answer: str | None
    status: str
    seconds: float
    expected: list = field(default_factory=list)


def run_set(name: str, ws: Workspace, jobs: list[tuple[AssistantTask, str]], backend, home: Path,
            max_steps: int | None, verbose: Console | None) -> list[Row]:
    from echo_agent.agent import Agent, AgentConfig, SilentUI
    from echo_agent.config import Settings
    from echo_agent.memory.store import TrajectoryStore
    from echo_agent.shell import ShellSession

    settings = Settings.load(home=home)
    config = AgentConfig() if max_steps is None else AgentConfig(max_steps=max_steps)
    rows = []
    for i, (task, wording) in enumerate(jobs):
        wording = wording.format(worker=ws.worker)
        expected, distractors = task.check(ws.facts)
        # A fresh store and shell per episode: the prompt takes examples from the store's finished episodes, so a
        # shared store would let earlier episodes (and a `cd`) help or hurt later ones.
        with (TrajectoryStore(home / f"{name}-{i}.db", settings=settings) as store,
              ShellSession(cwd=ws.root, env=ws.env, output_cap_bytes=settings.output_cap_bytes) as shell):
            agent = Agent(backend, shell, store, config=config, settings=settings, ui=SilentUI())
            t0 = time.perf_counter()
            result = agent.run(wording)
            seconds = time.perf_counter() - t0
        first = result.steps[0] if result.steps else None
        command = first["command"] if first else None
        exit_code = first["exit_code"] if first else None
        answered_at_once = first is None and result.answer is not None
        wellformed = answered_at_once or (command is not None and exit_code == 0 and first["source"] == "executed")
        ok = correct(result.answer, expected, distractors)
        rows.append(Row(name, task.id, task.category, wording, command, exit_code, wellformed, ok, result.answer,
                        str(result.status), seconds, [list(e) if isinstance(e, tuple) else e for e in expected]))
        if verbose is not None:
            verbose.rule(literal(f"{name} {task.id}: {wording}"))
            for s in result.steps:
                verbose.print(literal(f"{s['reply']!r}\n{(s['output'] or '')[:300]}{s['status'] or ''} {s['note']}"))
            verbose.print(literal(f"status={result.status} answer={result.answer!r} expected={expected} "
                                  f"distractors={distractors} correct={ok}"))
    return rows


def summary_tables(rows: list[Row]) -> tuple[Table, Table]:
    per_task = Table(title="assistant tasks, embedded model")
    for col in ("set", "task", "wording", "first command", "exit", "wf", "ok", "answer", "s"):
        per_task.add_column(col, overflow="fold", justify="right" if col in ("exit", "s") else "left")
    for r in rows:
        per_task.add_row(r.set, r.task, literal(r.wording), literal(r.first_command or "—"),
                         "—" if r.first_exit is None else str(r.first_exit), "yes" if r.wellformed else "no",
                         "yes" if r.correct else "no", literal((r.answer or f"[{r.status}]").replace("\n", " ⏎ ")[:70]),
                         f"{r.seconds:.1f}")
    per_category = Table(title="per category: well-formed / correct (tune | held-out)")
    for col in ("category", "tasks", "tune wf", "tune ok", "held-out wf", "held-out ok"):
        per_category.add_column(col, justify="left" if col == "category" else "right")
    for category in dict.fromkeys(t.category for t in TASKS):
        tune = [r for r in rows if r.category == category and r.set == "tune"]
        held = [r for r in rows if r.category == category and r.set != "tune"]
        per_category.add_row(category, str(len({r.task for r in rows if r.category == category})),
                             _frac(tune, "wellformed"), _frac(tune, "correct"), _frac(held, "wellformed"),
                             _frac(held, "correct"))
    return per_task, per_category


def _frac(rows: list[Row], key: str) -> str:
    return f"{sum(getattr(r, key) for r in rows)}/{len(rows)}" if rows else "–"


def result_values(rows: list[Row]) -> dict[str, float | int | None]:
    tune = [r for r in rows if r.set == "tune"]
    held = [r for r in rows if r.set != "tune"]

    def rate(rs: list[Row], key: str) -> float | None:
        return sum(getattr(r, key) for r in rs) / len(rs) if rs else None

    return {"wellformed": sum(r.wellformed for r in tune), "correct": sum(r.correct for r in tune),
            "tasks": len(tune), "wellformed_rate": rate(tune, "wellformed"), "correct_rate": rate(tune, "correct"),
            "heldout_wellformed_rate": rate(held, "wellformed"), "heldout_correct_rate": rate(held, "correct"),
            "seconds_per_task": sum(r.seconds for r in rows) / len(rows) if rows else None}


def result_line(values: dict) -> str:
    return "RESULT " + " ".join(
        f"{k}=na" if v is None else f"{k}={v}" if isinstance(v, int) else f"{k}={v:.3f}" for k, v in values.items())


def chosen_adapter(choice: str, model: str) -> Path | None:
    """--adapter: 'starter' is the shipped starter where it was made for `model` (as on a fresh install)."""
    from echo_agent.updater import registry

    if choice == "none":
        return None
    if choice == "starter":
        row = registry.starter_row(registry.model_identity(model)[1])
        return Path(row["path"]) if row else None
    if not registry.adapter_complete(Path(choice)):
        sys.exit(f"--adapter: {choice} is not a whole adapter directory")
    return Path(choice)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="the tuning workspace's seed")
    parser.add_argument("--heldout-seed", type=int, default=1, help="the held-out workspace's seed")
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of {', '.join(SETS)}")
    parser.add_argument("--only", default=None, help="comma-separated task ids or categories (a quick look)")
    parser.add_argument("--max-steps", type=int, default=None, help="replies per task (default: AgentConfig's)")
    parser.add_argument("--model", default="embedded", help="'embedded', a transformers directory or a GGUF file")
    parser.add_argument("--adapter", default="starter", help="'starter' (the default: what a fresh install runs, the "
                        "shipped starter where it was made for --model), 'none' (the base model alone), or a LoRA "
                        "adapter directory (e.g. one from scripts/make_starter.py)")
    parser.add_argument("--backend", default="auto", help="auto (llama.cpp for a GGUF model where it runs, as the "
                        "assistant does), llamacpp or local (transformers)")
    parser.add_argument("--json", type=Path, default=None, help="also write every row and the result here")
    parser.add_argument("--verbose", action="store_true", help="print every reply and observation")
    args = parser.parse_args()
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    if not sets or set(sets) - set(SETS):
        sys.exit(f"--sets: choose from {', '.join(SETS)}")
    only = {x.strip() for x in args.only.split(",")} if args.only else None
    tasks = [task for task in TASKS if only is None or task.id in only or task.category in only]

    from echo_agent.models import make_backend, resolve_backend

    console = Console(width=200) if not Console().is_terminal else Console()
    started = time.perf_counter()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="echo-assistant-") as tmp:
        base, home = Path(tmp), Path(tmp) / "home"
        home.mkdir()
        name, why = resolve_backend(args.backend, args.model)
        console.print(literal(f"backend: {name}{f' ({why})' if why else ''}"))
        backend = make_backend(name, args.model, **({"device": "cpu"} if name == "local" else {}))
        adapter = chosen_adapter(args.adapter, args.model)
        console.print(literal(f"adapter: {adapter or 'none (the base model alone)'}"))
        if adapter is not None:
            backend.use_adapter(adapter)
        with workspace(base, args.seed) as ws:
            check_examples_clean(ws.root)
            plan = {"tune": [(task, w) for task in tasks for w in task.wordings],
                    "heldout-wording": [(task, task.heldout) for task in tasks]}
            for name in ("tune", "heldout-wording"):
                if name in sets:
                    rows += run_set(name, ws, plan[name], backend, home, args.max_steps,
                                    console if args.verbose else None)
        if "heldout-seed" in sets:
            with workspace(base, args.heldout_seed) as ws:
                check_examples_clean(ws.root)
                rows += run_set("heldout-seed", ws, [(task, task.wordings[0]) for task in tasks], backend, home,
                                args.max_steps, console if args.verbose else None)
    per_task, per_category = summary_tables(rows)
    console.print(per_task)
    console.print(per_category)
    values = result_values(rows)
    minutes = (time.perf_counter() - started) / 60
    for name in sets:
        rs = [r for r in rows if r.set == name]
        console.print(literal(f"{name}: well-formed {_frac(rs, 'wellformed')}, correct {_frac(rs, 'correct')}"))
    console.print(literal(f"whole run: {minutes:.1f} minutes"))
    if args.json:
        args.json.write_text(json.dumps({"rows": [asdict(r) for r in rows], "result": values, "minutes": minutes},
                                        indent=1))
    print(result_line(values))


if __name__ == "__main__":
    main()
