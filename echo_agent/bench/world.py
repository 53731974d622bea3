"""The one seeded generator of benchmark workspaces: facts no model can know, built up by kinds of content.

A `World` holds a seeded random generator and the files, executables and setup commands its kinds have added.
Each kind (a method below) writes some content and returns the facts it wrote, for the tasks that ask about
them; the same seed and the same calls give the same world. `build(root)` writes it to disk.

Kinds, by the benchmark that uses them:
- retrieval bench (`workspace.generated_suite`): `service_configs`, `cli_tool`, `team_notes`, `git_history`;
- ECHO learning (benchmarks/echo_learning.py): `service_configs`;
- assistant tasks (benchmarks/assistant_tasks.py): `meeting_notes`, `inventory_csv`, `nested_config`,
  `reports`, `media`, `service_log`, `history`, `mention`, `settings_toml`, `python_tools`.
Outputs are a few lines each on purpose: on a CPU the model trains at tens of tokens per second, and every token
of every episode is paid for in each pass. A new benchmark adds the kinds it needs here.
"""

from __future__ import annotations

import os
import random
import stat
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from echo_agent.errors import SuiteError

SYLLABLES = "ka lo mi ne ru ta vo zen dra qui bel sor fin gal mur tep".split()
"""Invented names are syllables (`kalomi`, `zenqui`): no model can know them."""
WORDS = "amber cobalt falcon harbor juniper lantern meadow nickel orchid pebble quartz raven saffron timber willow".split()
"""Plain words, for content that should read like a person's files."""
WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday".split()
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid", "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid", "GIT_AUTHOR_DATE": "2024-01-02T10:00:00+00:00",
    "GIT_COMMITTER_DATE": "2024-01-02T10:00:00+00:00", "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}
"""Dates and names pinned, so a world's commit hashes depend on its seed alone."""


class World:
    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.files: dict[str, str | bytes] = {}
        self.executables: list[str] = []
        self.setup: list[str] = []
        self.env: dict[str, str] = {}

    # --- building blocks ------------------------------------------------------------------------------------

    def word(self, syllables: int = 2) -> str:
        return "".join(self.rng.choice(SYLLABLES) for _ in range(syllables))

    def version(self, first_major: int = 1) -> str:
        return f"{self.rng.randrange(first_major, 10)}.{self.rng.randrange(30)}.{self.rng.randrange(100)}"

    def add(self, path: str, content: str | bytes, executable: bool = False) -> str:
        self.files[path] = content
        if executable:
            self.executables.append(path)
        return path

    def build(self, root: Path) -> Path:
        """Write the world under `root` (made if missing) and run its setup commands there, in order."""
        return materialize(root, self.files, self.executables, self.setup, self.env, name="world")

    # --- kinds: the retrieval bench ---------------------------------------------------------------------------

    def service_configs(self, n: int, first_major: int = 1) -> list[dict[str, str]]:
        """`svc<i>.conf` files of `key = value` lines: name, port, version, owner (and the file's name)."""
        services = []
        for i in range(n):
            svc = {"file": f"svc{i}.conf", "name": self.word(3), "port": str(self.rng.randrange(1024, 65536)),
                   "version": self.version(first_major), "owner": self.word(2)}
            self.add(svc["file"], "".join(f"{k} = {svc[k]}\n" for k in ("name", "port", "version", "owner")))
            services.append(svc)
        return services

    def cli_tool(self) -> dict[str, str]:
        """A tiny executable `<name>ctl` with --help, --version, `status` and `region`."""
        cli = self.word(2) + "ctl"
        facts = {"cli": cli, "version": self.version(), "region": f"{self.word(1)}-{self.word(1)}-"
                 f"{self.rng.randrange(1, 9)}", "nodes": str(self.rng.randrange(3, 40)), "cluster": self.word(2)}
        self.add(cli, (
            "#!/bin/sh\n"
            'case "$1" in\n'
            f"  --help|-h) printf 'usage: {cli} <command>\\ncommands: status region\\n' ;;\n"
            f"  --version) echo '{cli} {facts['version']}' ;;\n"
            f"  status) echo 'cluster {facts['cluster']}: healthy, {facts['nodes']} nodes' ;;\n"
            f"  region) echo 'region: {facts['region']}' ;;\n"
            f"  *) echo \"{cli}: unknown command $1\" >&2; exit 2 ;;\n"
            "esac\n"), executable=True)
        return facts

    def team_notes(self) -> dict[str, str]:
        """notes.md: who is on call, the deploy day, the backup bucket."""
        facts = {"oncall": self.word(2), "bucket": f"s3://{self.word(2)}-backups", "day": self.rng.choice(WEEKDAYS)}
        self.add("notes.md", f"oncall: {facts['oncall']}\ndeploy day: {facts['day']}\n"
                             f"backup bucket: {facts['bucket']}\n")
        return facts

    def git_history(self) -> dict[str, str]:
        """A git repository of three commits over the files so far; the newest is a named release."""
        release = f"{self.word(2)}-{self.version()}"
        self.setup += [
            "git -c init.defaultBranch=main init -q",
            "git add svc*.conf && git commit -qm 'add service configs'",
            "git add notes.md && git commit -qm 'notes for the team'",
            f"git add -A && git commit -qm 'release {release}'",
        ]
        self.env.update(GIT_ENV)
        return {"release": release}

    # --- kinds: the assistant tasks ---------------------------------------------------------------------------

    def meeting_notes(self) -> dict[str, str]:
        secret = self.rng.choice(WORDS)
        self.add("notes.md", f"# Notes\nThe meeting password is {secret}.\nBring the slides.\n")
        return {"secret": secret}

    def inventory_csv(self) -> dict[str, str]:
        """inventory.csv with a header; `lines` counts the header too."""
        n_rows = self.rng.randint(12, 40)
        rows = [f"{i},{self.rng.choice(WORDS)},{self.rng.randint(1, 99)}" for i in range(1, n_rows)]
        self.add("inventory.csv", "id,item,qty\n" + "\n".join(rows) + "\n")
        return {"lines": str(n_rows)}

    def nested_config(self) -> dict[str, str]:
        """kestrel.cfg a few folders down, beside an unrelated readme."""
        hidden = f"projects/{self.rng.choice(['alpha', 'beta', 'gamma'])}/etc"
        self.add(f"{hidden}/kestrel.cfg", "mode = fast\n")
        self.add("projects/readme.txt", "project folders\n")
        return {"folder": hidden}

    def reports(self) -> list[str]:
        """Three of five report files in reports/; returns their names."""
        names = sorted(self.rng.sample(["q1.txt", "q2.txt", "q3.txt", "q4.txt", "annual.txt"], 3))
        for r in names:
            self.add(f"reports/{r}", f"report {r}\n")
        return names

    def media(self) -> int:
        """A few random binary files in media/ (100-400 kB each); returns their total size in bytes."""
        total = 0
        for i in range(self.rng.randint(3, 6)):
            data = bytes(self.rng.getrandbits(8) for _ in range(self.rng.randint(100_000, 400_000)))
            self.add(f"media/clip{i}.bin", data)
            total += len(data)
        return total

    def service_log(self) -> dict[str, str]:
        """logs/service.log: dated INFO/WARN/ERROR lines; `errors` counts the ERROR lines."""
        levels = [self.rng.choice(["INFO", "INFO", "WARN", "ERROR"]) for _ in range(self.rng.randint(20, 40))]
        self.add("logs/service.log",
                 "".join(f"2024-05-0{1 + i % 9} 12:{i:02d}:00 {lv} event {i}\n" for i, lv in enumerate(levels)))
        return {"errors": str(levels.count("ERROR"))}

    def history(self) -> dict[str, str]:
        """history.txt: five `visited … street` lines; `last` is the last one."""
        last = f"visited {self.rng.choice(WORDS)} street"
        self.add("history.txt", "".join(f"visited {w} street\n" for w in self.rng.sample(WORDS, 4)) + last + "\n")
        return {"last": last}

    def mention(self) -> dict[str, str]:
        """Three files in misc/, one of which mentions a pineapple."""
        names = ["shopping.txt", "recipes.txt", "letters.txt"]
        found = self.rng.choice(names)
        for f in names:
            self.add(f"misc/{f}", "buy a pineapple\n" if f == found else "nothing special here\n")
        return {"file": found}

    def settings_toml(self) -> dict[str, str]:
        port = self.rng.randint(2000, 9999)
        self.add("settings.toml", f'[server]\nhost = "localhost"\nport = {port}\nworkers = {self.rng.randint(2, 8)}\n')
        return {"port": str(port)}

    def python_tools(self) -> dict[str, str]:
        """tools/ holding a few .py files and one file that is not Python."""
        n_py = self.rng.randint(2, 5)
        for i in range(n_py):
            self.add(f"tools/tool{i}.py", "print('hi')\n")
        self.add("tools/notes.txt", "not python\n")
        return {"python_files": str(n_py)}


def materialize(root: Path, files: Mapping[str, str | bytes], executables: Iterable[str] = (),
                setup: Iterable[str] = (), env: Mapping[str, str] | None = None, name: str = "workspace") -> Path:
    """Create `files` under `root` (made if missing), make `executables` executable, and run the `setup`
    commands there in order (with `env` added to the environment); a failing command is a SuiteError."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    for rel in executables:
        path = root / rel
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    for command in setup:
        done = subprocess.run(["bash", "-c", command], cwd=root, env={**os.environ, **(env or {})},
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SuiteError(f"suite {name}: setup command {command!r} failed with exit code "
                             f"{done.returncode}: {(done.stderr or done.stdout).strip()[:300]}")
    return root
