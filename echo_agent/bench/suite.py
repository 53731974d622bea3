"""A benchmark suite: a workspace to build, extra read-only commands, and repeated look-up tasks.

Users write suites as YAML or JSON (see README, "Measuring your own repeated tasks"); the generated world of
`echo-agent bench retrieval` is just the default suite (`echo_agent.bench.workspace.generated_suite`).

    name: my-project                 # optional
    read_only: [./deployctl]         # optional: more commands the suite declares read-only (retrievals)
    files:                           # optional: path (relative to the workspace) -> content
      app.conf: |
        port = 8123
    executables: [deployctl]         # optional: files above to chmod +x
    setup:                           # optional: bash commands run once in the workspace, in order
      - git init -q && git add -A && git commit -qm init
    tasks:                           # required, at least one
      - question: what port does the app use
        commands: [cat app.conf]     # 1 or 2 read-only look-ups, run in order every round
        paraphrased: [grep port app.conf]   # optional: run instead from round 2 on
        answer: "8123"               # the checker: text that must appear …
        # answer_regex: "port = 81\\d\\d"   # … or a regular expression that must match (one of the two)

A task whose `paraphrased` is set is a *paraphrased* task; the others are *repeated* tasks. The checker is
applied to the look-ups' observations (scripted policy) or to the model's answer (model policy).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from echo_agent.errors import SuiteError
from echo_agent.records import task_identity
from echo_agent.shell.risk import is_read_only


@dataclass(frozen=True)
class SuiteTask:
    question: str
    """What is asked (the episode's task text)."""
    commands: tuple[str, ...]
    """The look-ups that answer it, in order (round 1, and every round for a repeated task)."""
    paraphrased: tuple[str, ...] = ()
    """Other read-only look-ups over the same facts, used from round 2 on (empty: a repeated task)."""
    answer: str | None = None
    """Text that must appear in what is checked."""
    answer_regex: str | None = None
    """A regular expression that must match what is checked (`re.search`)."""

    @property
    def kind(self) -> str:
        return "paraphrased" if self.paraphrased else "repeated"

    def commands_for(self, round_no: int) -> tuple[str, ...]:
        """The look-ups of round `round_no` (1-based)."""
        return self.paraphrased if self.paraphrased and round_no > 1 else self.commands

    def check(self, text: str) -> bool:
        if self.answer is not None:
            return self.answer in text
        return re.search(self.answer_regex or "", text) is not None

    def matched(self, text: str) -> str | None:
        """The text the checker found in `text` (the scripted policy answers with it), else None."""
        if self.answer is not None:
            return self.answer if self.answer in text else None
        m = re.search(self.answer_regex or "", text)
        return m.group(0) if m else None


@dataclass(frozen=True)
class Suite:
    tasks: tuple[SuiteTask, ...]
    name: str = "suite"
    files: dict[str, str] = field(default_factory=dict)
    executables: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()
    read_only: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    """Environment for setup commands (the generated world pins git's dates and names with it)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "read_only": list(self.read_only), "files": dict(self.files),
            "executables": list(self.executables), "setup": list(self.setup),
            "tasks": [{k: v for k, v in (("question", t.question), ("commands", list(t.commands)),
                                         ("paraphrased", list(t.paraphrased) or None), ("answer", t.answer),
                                         ("answer_regex", t.answer_regex)) if v is not None}
                      for t in self.tasks],
        }


_TOP_KEYS = {"name", "read_only", "files", "executables", "setup", "tasks"}
_TASK_KEYS = {"question", "commands", "paraphrased", "answer", "answer_regex"}


def _str_list(value: Any, where: str, *, allow_empty: bool = True) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise SuiteError(f"{where}: expected a list of non-empty strings, got {value!r}")
    if not allow_empty and not value:
        raise SuiteError(f"{where}: needs at least one entry")
    return tuple(v.strip() for v in value)


def parse_suite(data: Any, source: str = "suite") -> Suite:
    """Validate a suite given as plain data (parsed YAML/JSON); raises SuiteError saying what is wrong where."""
    if not isinstance(data, dict):
        raise SuiteError(f"{source}: the top level must be a mapping with a `tasks` list")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise SuiteError(f"{source}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_TOP_KEYS))}")
    read_only = _str_list(data.get("read_only", []), f"{source}: read_only")
    files = data.get("files", {}) or {}
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise SuiteError(f"{source}: files must map relative paths to text contents")
    for path in files:
        if Path(path).is_absolute() or ".." in Path(path).parts or not path.strip():
            raise SuiteError(f"{source}: files: {path!r} must be a relative path inside the workspace")
    executables = _str_list(data.get("executables", []), f"{source}: executables")
    for path in executables:
        if path not in files:
            raise SuiteError(f"{source}: executables: {path!r} is not one of the files")
    setup = _str_list(data.get("setup", []), f"{source}: setup")
    tasks_data = data.get("tasks")
    if not isinstance(tasks_data, list) or not tasks_data:
        raise SuiteError(f"{source}: `tasks` must be a non-empty list")
    tasks = []
    for i, t in enumerate(tasks_data):
        where = f"{source}: tasks[{i}]"
        if not isinstance(t, dict):
            raise SuiteError(f"{where}: each task must be a mapping with question, commands and answer")
        unknown = sorted(set(t) - _TASK_KEYS)
        if unknown:
            raise SuiteError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_TASK_KEYS))}")
        question = t.get("question")
        if not isinstance(question, str) or not question.strip():
            raise SuiteError(f"{where}: `question` must be non-empty text")
        where = f"{where} ({question.strip()[:40]!r})"
        commands = _str_list(t.get("commands"), f"{where}: commands", allow_empty=False)
        paraphrased = _str_list(t.get("paraphrased", []) or [], f"{where}: paraphrased")
        for c in (*commands, *paraphrased):
            if not is_read_only(c, read_only):
                raise SuiteError(f"{where}: {c!r} is not read-only, and the benchmark only counts look-ups; "
                                 "use a read-only command, or declare its name under `read_only`")
        answer, regex = t.get("answer"), t.get("answer_regex")
        if (answer is None) == (regex is None):
            raise SuiteError(f"{where}: give exactly one checker, `answer` (text) or `answer_regex`")
        if answer is not None and (not isinstance(answer, (str, int, float)) or not str(answer).strip()):
            raise SuiteError(f"{where}: `answer` must be non-empty text")
        if regex is not None:
            if not isinstance(regex, str) or not regex:
                raise SuiteError(f"{where}: `answer_regex` must be a non-empty regular expression")
            try:
                re.compile(regex)
            except re.error as e:
                raise SuiteError(f"{where}: `answer_regex` {regex!r} is not a valid regular expression ({e})") from e
        tasks.append(SuiteTask(question.strip(), commands, paraphrased, None if answer is None else str(answer),
                          regex))
    identities = [task_identity(t.question) for t in tasks]
    dup = sorted({q for q in identities if identities.count(q) > 1})
    if dup:
        raise SuiteError(f"{source}: questions must be distinct (a task's identity is its text): {dup[0]!r}")
    return Suite(tuple(tasks), str(data.get("name") or "suite"), dict(files), executables, setup, read_only)


def load_suite(path: str | Path) -> Suite:
    """Read and validate a YAML (.yaml/.yml) or JSON suite file."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SuiteError(f"{path}: cannot read the suite file ({e.strerror or e})") from e
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise SuiteError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'} ({e})") from e
    return parse_suite(data, str(path))
