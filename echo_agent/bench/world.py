"""The one seeded generator of benchmark workspaces: facts no model can know, built up by kinds of content.

A `World` holds a seeded random generator and the files, executables and setup commands its kinds have added.
Each kind (a method below) writes some content and returns the facts it wrote, for the tasks that ask about
them; the same seed and the same calls give the same world. `build(root)` writes it to disk.

Kinds, by the benchmark that uses them:
- retrieval bench (`workspace.generated_suite`): `service_configs`, `cli_tool`, `team_notes`, `git_history`;
- ECHO learning (benchmarks/echo_learning.py): `service_configs`;
- assistant tasks (benchmarks/assistant_tasks.py): the everyday files, from `meeting_notes` to `commits`.
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

    def service_configs(self, n: int, first_major: int = 1, named: bool = False) -> list[dict[str, str]]:
        """`svc<i>.conf` files (`<name>.conf` when `named`) of `key = value` lines: name, port, version, owner
        (and the file's name)."""
        services = []
        for i in range(n):
            svc = {"file": f"svc{i}.conf", "name": self.word(3), "port": str(self.rng.randrange(1024, 65536)),
                   "version": self.version(first_major), "owner": self.word(2)}
            while named and any(s["name"] == svc["name"] for s in services):  # one file per name
                svc["name"] = self.word(3)
            if named:
                svc["file"] = f"{svc['name']}.conf"
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
            "git add *.conf && git commit -qm 'add service configs'",
            "git add notes.md && git commit -qm 'notes for the team'",
            f"git add -A && git commit -qm 'release {release}'",
        ]
        self.env.update(GIT_ENV)
        return {"release": release}

    # --- kinds: everyday files (the assistant tasks) ------------------------------------------------------------
    # Each returns the fact its tasks ask for and, where the workspace holds others of the same kind, those too
    # (the benchmark's distractors: an answer that names them is not right).

    def touch(self, path: str, when: str) -> None:
        """Set a file's modification time at build time (`when`: a date and time `touch -d` reads)."""
        self.setup.append(f"touch -d '{when}' '{path}'")

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

    def nested_config(self) -> dict[str, object]:
        """kestrel.cfg a few folders down; the other project folders hold configs of their own."""
        projects = ["alpha", "beta", "gamma"]
        home = self.rng.choice(projects)
        for name, cfg in zip(projects, ("osprey.cfg", "heron.cfg", "plover.cfg"), strict=True):
            self.add(f"projects/{name}/etc/{'kestrel.cfg' if name == home else cfg}", "mode = fast\n")
        return {"folder": f"projects/{home}/etc", "others": [f"projects/{p}/etc" for p in projects if p != home]}

    def reports(self) -> dict[str, list[str]]:
        """Three of five report files in reports/."""
        names = sorted(self.rng.sample(["q1.txt", "q2.txt", "q3.txt", "q4.txt", "annual.txt"], 3))
        for r in names:
            self.add(f"reports/{r}", f"report {r}\n")
        return {"present": names}

    def media(self) -> dict[str, object]:
        """Four to six binary clips in media/, of distinct sizes (60-400 kB)."""
        sizes = self.rng.sample(range(60_000, 400_000, 1000), self.rng.randint(4, 6))
        names = [f"clip{i}.bin" for i in range(len(sizes))]
        for name, size in zip(names, sizes, strict=True):
            self.add(f"media/{name}", self.rng.randbytes(size))
        largest = names[sizes.index(max(sizes))]
        return {"largest": largest, "others": [n for n in names if n != largest]}

    def archive(self) -> dict[str, str]:
        """data/archive.bin and data/spare.bin, of different sizes in bytes."""
        size, other = self.rng.sample(range(10_000, 90_000), 2)
        self.add("data/archive.bin", self.rng.randbytes(size))
        self.add("data/spare.bin", self.rng.randbytes(other))
        return {"bytes": str(size), "other_bytes": str(other)}

    def service_log(self) -> dict[str, str]:
        """logs/service.log: dated INFO/WARN/ERROR lines, and how many of each."""
        levels = [self.rng.choice(["INFO", "INFO", "WARN", "ERROR"]) for _ in range(self.rng.randint(20, 40))]
        self.add("logs/service.log",
                 "".join(f"2024-05-0{1 + i % 9} 12:{i:02d}:00 {lv} event {i}\n" for i, lv in enumerate(levels)))
        return {"errors": str(levels.count("ERROR")), "warnings": str(levels.count("WARN")),
                "infos": str(levels.count("INFO")), "lines": str(len(levels))}

    def history(self) -> dict[str, object]:
        """history.txt: five `visited … street` lines."""
        streets = self.rng.sample(WORDS, 5)
        self.add("history.txt", "".join(f"visited {w} street\n" for w in streets))
        return {"last": f"visited {streets[-1]} street", "others": streets[:-1]}

    def mention(self) -> dict[str, object]:
        """Three files in misc/, one of which mentions a pineapple."""
        names = ["shopping.txt", "recipes.txt", "letters.txt"]
        found = self.rng.choice(names)
        for f in names:
            self.add(f"misc/{f}", "buy a pineapple\n" if f == found else "nothing special here\n")
        return {"file": found, "others": [n for n in names if n != found], "count": str(len(names))}

    def settings_toml(self) -> dict[str, str]:
        """settings.toml (host, port, workers), last modified on a fixed date."""
        host = f"db-{self.word(2)}.internal"
        port, workers = self.rng.randint(2000, 7999), self.rng.randint(2, 9)
        self.add("settings.toml", f'[server]\nhost = "{host}"\nport = {port}\nworkers = {workers}\n')
        day = f"2024-0{self.rng.randint(1, 9)}-{self.rng.randint(10, 28)}"
        self.touch("settings.toml", f"{day} 12:00")
        return {"host": host, "port": str(port), "workers": str(workers), "modified": day}

    def app_json(self) -> dict[str, str]:
        timeout, retries = self.rng.sample(range(3, 120), 2)
        self.add("app.json", f'{{\n  "name": "{self.word(2)}",\n  "timeout": {timeout},\n  "retries": {retries}\n}}\n')
        return {"timeout": str(timeout), "retries": str(retries)}

    def deploy_env(self) -> dict[str, str]:
        stage, region = self.word(2), f"{self.word(1)}-{self.rng.randint(1, 9)}"
        self.add("deploy.env", f"STAGE={stage}\nREGION={region}\n")
        return {"stage": stage, "region": region}

    def python_tools(self) -> dict[str, str]:
        """tools/ holding a few .py files and one file that is not Python."""
        n_py = self.rng.randint(2, 5)
        for i in range(n_py):
            self.add(f"tools/tool{i}.py", "print('hi')\n")
        self.add("tools/notes.txt", "not python\n")
        return {"python_files": str(n_py), "files": str(n_py + 1)}

    def todo(self) -> dict[str, object]:
        """papers/chores.txt: four chores, one word each to tell them apart."""
        chores = self.rng.sample(WORDS, 4)
        self.add("papers/chores.txt", "".join(f"- order the {w}\n" for w in chores))
        return {"first": chores[0], "others": chores[1:]}

    def papers(self) -> dict[str, list[str]]:
        """papers/ also holds two markdown files and a text file."""
        md = sorted(f"{w}.md" for w in self.rng.sample(["budget", "roadmap", "minutes", "charter"], 2))
        for name in md:
            self.add(f"papers/{name}", f"# {name[:-3]}\n")
        return {"markdown": md, "text": ["chores.txt"]}

    def poem(self) -> dict[str, object]:
        """poem.txt: five lines, one about the moon."""
        words = self.rng.sample(WORDS, 5)
        moon = self.rng.randrange(5)
        lines = [f"the {w} {'sleeps beneath the moon' if i == moon else 'waits by the road'}" for i, w in
                 enumerate(words)]
        self.add("poem.txt", "\n".join(lines) + "\n")
        return {"moon": words[moon], "others": [w for i, w in enumerate(words) if i != moon],
                "words": str(sum(len(line.split()) for line in lines)), "lines": str(len(lines))}

    def journal(self) -> dict[str, object]:
        """journal/: four entries with modification times days apart."""
        names = [f"{w}.txt" for w in self.rng.sample(WORDS, 4)]
        for i, name in enumerate(names):
            self.add(f"journal/{name}", f"entry {i}\n")
        order = self.rng.sample(names, len(names))  # oldest first
        for i, name in enumerate(order):
            self.touch(f"journal/{name}", f"2024-02-{10 + 3 * i} 12:00")
        return {"newest": order[-1], "oldest": order[0], "others_newest": order[:-1], "others_oldest": order[1:]}

    def commits(self) -> dict[str, object]:
        """A git repository of three commits by three authors; the newest adds CHANGELOG.md."""
        authors = [self.word(2).capitalize() for _ in range(3)]
        words = [self.word(2) for _ in range(2)]
        release = f"{self.word(2)}-{self.version()}"
        self.add("CHANGELOG.md", f"# {release}\n")
        self.setup += [
            "git -c init.defaultBranch=main init -q",
            f"git add -A . ':!CHANGELOG.md' ':!settings.toml' && "
            f"GIT_AUTHOR_NAME={authors[0]} git commit -qm 'import {words[0]} data'",
            f"git add settings.toml && GIT_AUTHOR_NAME={authors[1]} git commit -qm 'tweak {words[1]} config'",
            f"git add CHANGELOG.md && GIT_AUTHOR_NAME={authors[2]} git commit -qm 'release {release}'",
        ]
        self.env.update(GIT_ENV)
        return {"message": release, "earlier": words, "author": authors[2], "others": authors[:2], "count": "3",
                "branch": "main", "changed": "CHANGELOG.md", "earlier_files": ["settings.toml"]}


    # --- kinds: the example library's files (scripts/make_starter.py) ------------------------------------------

    def library_home(self, vocab: Mapping[str, list]) -> dict[str, object]:
        """Every file and folder the example library names (scripts/make_examples.py's vocabulary), with
        contents drawn from the seed, so the library's commands print real outputs; a git history of a few
        commits. Returns the environment variables and process names the library asks about, with values."""
        sentences = [f"the {a} and the {b}" for a in WORDS for b in WORDS if a != b]
        for name in vocab["text"]:
            lines = self.rng.sample(sentences, self.rng.randint(3, 9))
            if self.rng.random() < 0.5:
                lines[self.rng.randrange(len(lines))] += f" {self.rng.choice(vocab['search'])}"
            self.add(name, "\n".join(lines) + "\n")
        for name in vocab["logs"]:
            self.add(name, "".join(f"2024-0{self.rng.randint(1, 9)}-1{i % 9} 0{i % 9}:00 "
                                   f"{self.rng.choice(vocab['levels'])} job {i}\n" for i in range(self.rng.randint(5, 30))))
        for name in vocab["configs"]:
            keys = self.rng.sample(vocab["keys"], 4)
            self.add(name, "".join(f"{k} = {self._value(k)}\n" for k in keys))
            self.touch(name, f"2024-{self.rng.randint(1, 12):02d}-{self.rng.randint(10, 28)} 12:00")
        for name in vocab["jsons"]:
            keys = self.rng.sample(vocab["keys"], 3)
            self.add(name, "{\n" + ",\n".join(f'  "{k}": {self._value(k, quoted=True)}' for k in keys) + "\n}\n")
        for name in vocab["envs"]:
            self.add(name, "".join(f"{k}={self.word(2)}\n" for k in self.rng.sample(vocab["env_keys"], 3)))
        for name in vocab["tables"]:
            self.add(name, "id,name,amount\n" + "".join(f"{i},{self.rng.choice(WORDS)},{self.rng.randint(1, 900)}\n"
                                                        for i in range(self.rng.randint(3, 20))))
        for name in vocab["blobs"]:
            self.add(name, self.rng.randbytes(self.rng.randint(500, 40_000)))
        for d in vocab["dirs"]:
            for j in range(self.rng.randint(2, 6)):
                ext = self.rng.choice(vocab["exts"])
                path = f"{d}/{self.word(2)}.{ext}"
                self.add(path, self.rng.randbytes(self.rng.randint(50, 5000)) if ext in ("bin", "dat") else "x\n")
                self.touch(path, f"2024-0{self.rng.randint(1, 9)}-{10 + j * 3} 12:00")
        authors = [self.word(2).capitalize() for _ in range(3)]
        self.setup.append("git -c init.defaultBranch=main init -q && git add -A")
        for _ in range(self.rng.randint(2, 4)):
            self.setup.append(f"GIT_AUTHOR_NAME={self.rng.choice(authors)} git commit -q --allow-empty "
                              f"-m '{self.rng.choice(['fix', 'add', 'update', 'tidy'])} {self.word(2)}'")
        self.env.update(GIT_ENV)
        return {"variables": {v: self.word(2) for v in vocab["variables"]},
                "processes": list(vocab["processes"])}

    def _value(self, key: str, quoted: bool = False) -> str:
        if key in ("host", "user", "mode", "level", "version"):
            value = f"{self.word(2)}.internal" if key == "host" else self.version() if key == "version" \
                else self.word(2)
            return f'"{value}"' if quoted else value
        return str(self.rng.randint(2, 9000))


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
