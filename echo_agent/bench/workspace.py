"""The retrieval bench's default suite: a world from a seed (`world.py`) and look-up tasks over its facts.

The world holds a few config files (names, ports, versions, owners), notes, a tiny fake CLI (an executable shell
script with `--help` and subcommands printing facts) and a git repository with a few commits.
"""

from __future__ import annotations

from pathlib import Path

from echo_agent.bench.suite import Suite, SuiteTask
from echo_agent.bench.world import World, materialize
from echo_agent.errors import SuiteError


def generated_suite(seed: int = 0, n_tasks: int = 12) -> Suite:
    """The default suite: a fresh world from `seed` and `n_tasks` tasks, half repeated, half paraphrased.

    Each question names where its fact lives (a file, a command in backticks, git), as a person asks about their
    own files: a model that chooses the look-ups can then find the fact, and no model can know it without
    looking.
    """
    if n_tasks < 1:
        raise SuiteError("the generated suite needs at least one task")
    world = World(seed)
    services = world.service_configs(max(3, (n_tasks + 3) // 4 + 1), named=True)
    tool = world.cli_tool()
    notes = world.team_notes()
    release = world.git_history()["release"]
    cli, cli_version, region, nodes = tool["cli"], tool["version"], tool["region"], tool["nodes"]
    oncall, bucket, day = notes["oncall"], notes["bucket"], notes["day"]

    run = f"./{cli}"
    repeated: list[SuiteTask] = [
        SuiteTask(f"what version is the {cli} cli", (f"{run} --version",), answer=cli_version),
        SuiteTask("who is on call, according to notes.md", ("cat notes.md",), answer=oncall),
        SuiteTask(f"which region does `{run} region` report", (f"{run} --help", f"{run} region"), answer=region),
        SuiteTask("what does the latest commit message say", ("git log --oneline -n 3",), answer=release),
    ]
    paraphrased: list[SuiteTask] = [
        SuiteTask("where do the backups go, according to notes.md", ("cat notes.md",), ("grep bucket notes.md",),
                  answer=bucket),
        SuiteTask(f"how many nodes does `{run} status` report", (f"{run} status",), (f"{run} status | head -n 1",),
                  answer=f"{nodes} nodes"),
        SuiteTask("on which day do we deploy, according to notes.md", ("cat notes.md",), ("grep day notes.md",),
                  answer=day),
    ]
    for svc in services:
        f = svc["file"]
        repeated.append(SuiteTask(f"what port is set in {f}", (f"cat {f}",), answer=svc["port"]))
        paraphrased.append(SuiteTask(f"what version is set in {f}", (f"cat {f}",), (f"grep version {f}",),
                                     answer=svc["version"]))
        paraphrased.append(SuiteTask(f"who owns {svc['name']}, according to {f}", (f"head -n 4 {f}",),
                                     (f"grep owner {f}",), answer=svc["owner"]))
    n_para = n_tasks // 2
    n_rep = n_tasks - n_para
    if n_rep > len(repeated) or n_para > len(paraphrased):
        raise SuiteError(f"the generated suite has at most {2 * min(len(repeated), len(paraphrased))} tasks")
    # Interleaved, so a run stopped early by its time budget still holds both kinds.
    rep, para = repeated[:n_rep], paraphrased[:n_para]
    tasks = [t for pair in zip(rep, para + [None] * (n_rep - n_para), strict=True) for t in pair if t is not None]
    return Suite(tuple(tasks), name=f"generated-seed{seed}", files=dict(world.files),  # type: ignore[arg-type]
                 executables=tuple(world.executables), setup=tuple(world.setup), read_only=(run,),
                 env=dict(world.env))


def build_workspace(suite: Suite, root: Path) -> Path:
    """Create the suite's files in `root` (made if missing) and run its setup commands there, in order."""
    return materialize(root, suite.files, suite.executables, suite.setup, suite.env, name=suite.name)
