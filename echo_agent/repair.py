"""Catching a slip before it runs.

- A look-up that names a file which does not exist, when the task names one that does (`wc -l files.txt` for
  "count the lines in inventory.csv"), runs with the task's file instead, and says so in a harness line
  (`[ran with inventory.csv: files.txt does not exist]`, see observation.py).
- A command whose only unknowns are programs the shell does not have (`list reports`, `kestrel.cfg`) can do
  nothing, so it is not put to the user: the classifier names them (`Risk.only_unknown`), `absence_check` asks the
  shell, and the agent records the step with
  `[not run: no command named list]` and lets the model try again.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from echo_agent.observation import corrected_marker

_PATH_RE = re.compile(r"(?<![\w./-])([\w.-]*[./][\w./-]*\w)")
_NOT_A_PATH = re.compile(r"[*?$=%:'\"`\\{}<>|&;]|^-|^\.+/*$|://")


def path_words(text: str) -> list[str]:
    """Words of `text` that look like file names or paths (they hold a dot or a slash)."""
    return [w for w in _PATH_RE.findall(text) if not _NOT_A_PATH.search(w)]


def _exists(cwd: Path, name: str) -> bool:
    return (cwd / name).exists()


def fix_missing_file(command: str, task: str, cwd: str | Path) -> tuple[str, str | None]:
    """(the command to run, the harness note or None). Changed only when exactly one file the command names is
    missing here and the task names exactly one file that exists and that the command does not name."""
    cwd = Path(cwd)
    try:
        words = shlex.split(command)
    except ValueError:
        return command, None
    missing = [w for w in dict.fromkeys(words) if path_words(w) == [w] and not _exists(cwd, w)]
    named = [w for w in dict.fromkeys(path_words(task)) if _exists(cwd, w) and w not in words]
    if len(missing) != 1 or len(named) != 1:
        return command, None
    wrong, right = missing[0], named[0]
    fixed = re.sub(rf"(?<![\w./-]){re.escape(wrong)}(?![\w./-])", right, command, count=1)
    return (fixed, corrected_marker(right, wrong)) if fixed != command else (command, None)


def absence_check(names: list[str]) -> str:
    """A bash command that exits 0 exactly when every name is a command there (a program on PATH, a builtin, a
    function or an alias)."""
    return "type -t -- " + " ".join(shlex.quote(n) for n in names) + " >/dev/null 2>&1"
