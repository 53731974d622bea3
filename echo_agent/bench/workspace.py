"""The benchmark's world: facts no model can know, drawn from a seed, built as a suite (see `suite.py`).

The generated workspace holds a few config files (names, ports, versions, owners), notes, a tiny fake CLI (an
executable shell script with `--help` and subcommands printing facts) and a git repository with a few commits
(dates and names pinned, so the hashes depend on the seed alone). Outputs are a few lines each on purpose: on a
CPU the model trains at tens of tokens per second, and every token of every episode is paid for in each pass.
"""

from __future__ import annotations

import os
import random
import stat
import subprocess
from pathlib import Path

from echo_agent.bench.suite import Suite, SuiteError, SuiteTask

SYLLABLES = "ka lo mi ne ru ta vo zen dra qui bel sor fin gal mur tep".split()
WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday".split()
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid", "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid", "GIT_AUTHOR_DATE": "2024-01-02T10:00:00+00:00",
    "GIT_COMMITTER_DATE": "2024-01-02T10:00:00+00:00", "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def generated_suite(seed: int = 0, n_tasks: int = 12) -> Suite:
    """The default suite: a fresh world from `seed` and `n_tasks` tasks, half repeated, half paraphrased."""
    if n_tasks < 1:
        raise SuiteError("the generated suite needs at least one task")
    rng = random.Random(seed)

    def word(n: int = 2) -> str:
        return "".join(rng.choice(SYLLABLES) for _ in range(n))

    def version() -> str:
        return f"{rng.randrange(1, 10)}.{rng.randrange(30)}.{rng.randrange(100)}"

    n_conf = max(3, (n_tasks + 3) // 4 + 1)
    services = []
    files: dict[str, str] = {}
    for i in range(n_conf):
        svc = {"file": f"svc{i}.conf", "name": word(3), "port": str(rng.randrange(1024, 65536)),
               "version": version(), "owner": word(2)}
        services.append(svc)
        files[svc["file"]] = "".join(f"{k} = {svc[k]}\n" for k in ("name", "port", "version", "owner"))
    cli = word(2) + "ctl"
    cli_version, region, nodes, cluster = version(), f"{word(1)}-{word(1)}-{rng.randrange(1, 9)}", \
        rng.randrange(3, 40), word(2)
    files[cli] = (
        "#!/bin/sh\n"
        'case "$1" in\n'
        f"  --help|-h) printf 'usage: {cli} <command>\\ncommands: status region\\n' ;;\n"
        f"  --version) echo '{cli} {cli_version}' ;;\n"
        f"  status) echo 'cluster {cluster}: healthy, {nodes} nodes' ;;\n"
        f"  region) echo 'region: {region}' ;;\n"
        f"  *) echo \"{cli}: unknown command $1\" >&2; exit 2 ;;\n"
        "esac\n"
    )
    oncall, bucket, day = word(2), f"s3://{word(2)}-backups", rng.choice(WEEKDAYS)
    files["notes.md"] = f"oncall: {oncall}\ndeploy day: {day}\nbackup bucket: {bucket}\n"
    release = f"{word(2)}-{version()}"
    setup = (
        "git -c init.defaultBranch=main init -q",
        "git add svc*.conf && git commit -qm 'add service configs'",
        "git add notes.md && git commit -qm 'notes for the team'",
        f"git add -A && git commit -qm 'release {release}'",
    )

    run = f"./{cli}"
    repeated: list[SuiteTask] = [
        SuiteTask(f"what version is the {cli} cli", (f"{run} --version",), answer=cli_version),
        SuiteTask("who is on call", ("cat notes.md",), answer=oncall),
        SuiteTask(f"which region does {cli} target", (f"{run} --help", f"{run} region"), answer=region),
        SuiteTask("what is the newest release in git", ("git log --oneline -n 3",), answer=release),
    ]
    paraphrased: list[SuiteTask] = [
        SuiteTask("where do the backups go", ("cat notes.md",), ("grep bucket notes.md",), answer=bucket),
        SuiteTask(f"how many nodes does the {cli} cluster have", (f"{run} status",), (f"{run} status | head -n 1",),
             answer=f"{nodes} nodes"),
        SuiteTask("on which day do we deploy", ("cat notes.md",), ("grep day notes.md",), answer=day),
    ]
    for svc in services:
        f = svc["file"]
        repeated.append(SuiteTask(f"what port does {svc['name']} listen on", (f"cat {f}",), answer=svc["port"]))
        paraphrased.append(SuiteTask(f"what version of {svc['name']} is deployed", (f"cat {f}",),
                                (f"grep version {f}",), answer=svc["version"]))
        paraphrased.append(SuiteTask(f"who owns {svc['name']}", (f"head -n 4 {f}",), (f"grep owner {f}",),
                                answer=svc["owner"]))
    n_para = n_tasks // 2
    n_rep = n_tasks - n_para
    if n_rep > len(repeated) or n_para > len(paraphrased):
        raise SuiteError(f"the generated suite has at most {2 * min(len(repeated), len(paraphrased))} tasks")
    # Interleaved, so a run stopped early by its time budget still holds both kinds.
    rep, para = repeated[:n_rep], paraphrased[:n_para]
    tasks = [t for pair in zip(rep, para + [None] * (n_rep - n_para), strict=True) for t in pair if t is not None]
    return Suite(tuple(tasks), name=f"generated-seed{seed}", files=files, executables=(cli,), setup=setup,
                 read_only=(run,), env=dict(GIT_ENV))


def build_workspace(suite: Suite, root: Path) -> Path:
    """Create the suite's files in `root` (made if missing) and run its setup commands there, in order."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in suite.files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for rel in suite.executables:
        path = root / rel
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    env = {**os.environ, **suite.env}
    for command in suite.setup:
        done = subprocess.run(["bash", "-c", command], cwd=root, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SuiteError(f"suite {suite.name}: setup command {command!r} failed with exit code "
                             f"{done.returncode}: {(done.stderr or done.stdout).strip()[:300]}")
    return root
