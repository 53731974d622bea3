"""Choosing a new task's first command: the model's own reply, or one of its examples adapted to the task.

A small model shown "how many commits are there → git rev-list --count HEAD" still writes `git commit -amf -m 1`
for "count the git commits". Copying is easier for it to judge than to do: so the first command is chosen by the
model from candidates, by the mean log-prob it gives each one as its reply (teacher-forced, `ModelBackend.score`).
The candidates are its greedy reply and every example in the prompt with the example's own names swapped for the
task's (`adapt`): "how many python files are in src → ls src/*.py | wc -l" becomes `ls tools/*.py | wc -l` for
"how many python files are in the tools folder". Candidates that cannot be right here (a look-up of a path that
is not there, a program the shell lacks, an `echo` of a literal, a command leaving out what the task names) are
left out while others remain (`candidates`). Every candidate is still classified and confirmed like any reply.

A task that names no file here may still be about one: "which region does the deploy script use" is about
scripts/deploy.sh, "what postgres version does docker compose run" about docker-compose.yml. When a file's name
shares a word with the task (`related_files`), the search of the files for the task's words (which counts a
file's path among its words: `searching.content_search`) is a candidate, and then only commands naming one of
its files are kept. An example that was such a search is not adapted word for word (its files were chosen for
its own words): the task's own search stands in for it. When the chosen look-up fails (it exits
non-zero, or prints nothing about the task: agent.py), the agent runs the search of the files here for the
task's words (`searching.content_search`), then the next candidate in the model's order (`fallbacks`), before
the model answers. A chosen look-up that worked and printed part of the files here but missed the lines that best
match the task gets that search (or read) once after it (`second_look`).
"""

from __future__ import annotations

import functools
import glob
import re
import shlex
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from echo_agent import observation as obs
from echo_agent.examples import stem
from echo_agent.grounding import LITERAL_ECHO
from echo_agent.replies import CLOSE
from echo_agent.searching import (
    READ_BYTES,
    content_search,
    held_words,
    is_path,
    names,
    read_command,
    reads_files,
    related_files,
    search_files,
    shows_best,
)
from echo_agent.shell.risk import is_read_only

if TYPE_CHECKING:
    from echo_agent.models.base import ChatMessage, ModelBackend

_PART_RE = re.compile(r"\w[\w.-]*\w|\w")
SEARCH_RE = re.compile(r"grep -n -i (-[mCBA]\d+ )*-E ")
"""A search of the files here built for a task's words (`grepping.grep_command`)."""
SUBCOMMANDS = frozenset("git docker kubectl systemctl npm pip apt cargo go".split())
"""Programs whose second word is a subcommand, which no task's wording may replace."""


def adapt(example_task: str, example_command: str, task: str, exists: Callable[[str], bool] = lambda _: False,
          ) -> str | None:
    """The example's command with its names swapped for the task's, or None when they do not line up.

    The example's names are the words its task and its command share, except those the task names too (they
    stay); the task's are its words the example's task lacks. Paths swap for paths and words for words, in the
    order they are written. Paths must pair up one to one. With no word to swap, the task's other words are only wording; with more of the task's words than the
    example's, those that name something that `exists` (here, in the working directory) are the ones to swap."""
    try:
        command_words = shlex.split(example_command)
    except ValueError:
        return None
    fixed = {w for i, w in enumerate(command_words)  # a program, or a subcommand (`git branch`): never swapped
             if i == 0 or command_words[i - 1] in ("|", "&&", ";") or (i == 1 and w.isalpha()
                                                                       and command_words[0] in SUBCOMMANDS)}
    in_command = {stem(w) for cw in command_words if cw not in fixed for w in [cw, *_PART_RE.findall(cw)]}
    seen = {stem(w) for w in names(example_task)}
    kept = {stem(w) for w in names(task)}  # a name the task shares stays as it is ("version" for "version")
    slots = [w for w in names(example_task) if stem(w) in in_command and stem(w) not in kept]
    fills = [w for w in names(task) if stem(w) not in seen]
    adapted = example_command
    for want_path in (True, False):
        s = [w for w in slots if is_path(w) == want_path]
        f = [w for w in fills if is_path(w) == want_path]
        if not want_path and len(f) > len(s):
            f = [] if not s else [w for w in f if exists(w)]
        if len(s) != len(f):
            return None
        for old, new in zip(s, f, strict=True):
            adapted, n = re.subn(rf"(?<![\w.-]){re.escape(old)}(?![\w-]|\.\w)", lambda _m, new=new: new, adapted,
                                 flags=re.IGNORECASE)
            if n == 0:
                return None
    return adapted


def prompt_examples(prompt: Sequence[ChatMessage]) -> list[tuple[str, str]]:
    """(task, command) of every example turn in a prompt: a user message followed by a bash-block reply."""
    out = []
    for user, reply in zip(prompt, prompt[1:], strict=False):
        m = re.fullmatch(r"```bash\n(.*)\n```", reply["content"], re.DOTALL)
        if user["role"] == "user" and reply["role"] == "assistant" and m:
            out.append((user["content"], m.group(1)))
    return out


def _missing_path(command: str, cwd: Path) -> bool:
    """Whether the command names a path that is not there (a pattern that matches nothing counts)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return True
    for w in words:
        if not is_path(w) or w.startswith(("-", "~", "$")) or re.search(r"[{}$]", w):
            continue
        if re.search(r"[*?\[]", w):
            if not glob.glob(str(cwd / w)):  # cwd / an absolute path is that path
                return True
        elif not (cwd / w).exists():
            return True
    return False


def _keep(commands: list[str], wrong: Callable[[str], bool]) -> list[str]:
    """The commands `wrong` does not reject, unless it rejects them all."""
    return [c for c in commands if not wrong(c)] or commands


def degenerate(command: str) -> bool:
    """A generation gone wrong, not a command to run: eight words or more, two in three of them repeats
    (`git branch -m -l -m -l -m …`); a status line in it, or text bash cannot parse (`bash -n`). After env-only
    training a model once wrote the output it had learned as its command: `kamictl --version) echo 'kamictl
    7.22.85' ;;` and `[exit 0]` lines after it (docs/measurements.md)."""
    words = command.split()
    if len(words) >= 8 and len(set(words)) * 3 <= len(words):
        return True
    if any(obs.is_status_line(line) for line in command.splitlines()):
        return True
    try:
        return subprocess.run(["bash", "-n", "-c", command], capture_output=True, timeout=5).returncode != 0
    except (OSError, subprocess.TimeoutExpired):
        return False  # no verdict: the command stays a candidate like any other


_QUOTED_RE = re.compile(r"`([^`\n]+)`")


def quoted_commands(task: str) -> list[str]:
    """Commands the task quotes in backticks ("how many nodes does `./clusterctl status` report")."""
    return list(dict.fromkeys(q.strip() for q in _QUOTED_RE.findall(task) if q.strip()))


def candidates(task: str, prompt: Sequence[ChatMessage], own: str, cwd: str | Path,
               runnable: Callable[[str], bool] = lambda _: True) -> list[str]:
    """The commands to choose among, the model's own first (unless it is degenerate: then, with no example to
    adapt, what a failed look-up falls back to), each distinct. A task that quotes commands in backticks gets
    those alone: the person said what to run. Then, as long as some are left:
    no look-up naming a path missing in `cwd` (an action may name one it is about to make); none that
    `runnable` rejects (a program the shell lacks); no `echo` of a literal (it looks nothing up); and, when the
    task names something that is here, only those that name it too. A task that names nothing here but shares a
    word with files' names here (`related_files`) gets the search of the files for its words
    (`content_search`), and keeps only the commands that name one of the search's files (`search_files`)."""
    here = Path(cwd)
    if quoted := quoted_commands(task):
        return quoted
    broken = degenerate(own)
    found = [] if broken else [own]
    # Each reads the files here: at most once per call.
    top = functools.cache(lambda: search_files(task, here))
    search = functools.cache(lambda: content_search(task, here, top()))
    for example_task, example_command in prompt_examples(prompt):
        if SEARCH_RE.match(example_command):  # its files were chosen for the example's words, not the task's
            adapted = search()
        else:
            adapted = adapt(example_task, example_command, task, lambda name: (here / name).exists())
        if adapted and adapted not in found:
            found.append(adapted)
    if not found and broken:  # nothing to run in its place but what a failed look-up falls back to
        found = fallbacks(task, [], here)
    found = found or [own]
    found = _keep(found, lambda c: is_read_only(c) and _missing_path(c, here))
    found = _keep(found, lambda c: not runnable(c))
    found = _keep(found, lambda c: LITERAL_ECHO.fullmatch(c) is not None)
    named = [w for w in names(task) if (here / w).exists()]
    if not named and related_files(task, here) and top():
        if search() and search() not in found:
            found.append(search())
        return _keep(found, lambda c: not any(_mentions(c, f) for f in top()))
    return _keep(found, lambda c: not all(_mentions(c, w) for w in named))


def _mentions(command: str, name: str) -> bool:
    return re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", command) is not None


def rank(backend: ModelBackend, messages: Sequence[ChatMessage], prefill: str, commands: list[str]) -> list[str]:
    """The commands, best scored first as the model's reply (mean token log-prob after `prefill`); on a tie, in
    the order given."""
    if len(commands) == 1:
        return list(commands)
    skip = len(backend.score(messages, "assistant", prefill)) if prefill else 0

    def mean_logprob(command: str) -> float:
        lps = backend.score(messages, "assistant", f"{prefill}{command}{CLOSE}")[skip:]
        return sum(lps) / max(1, len(lps))

    scores = [mean_logprob(c) for c in commands]
    return [commands[i] for i in sorted(range(len(commands)), key=lambda i: (-scores[i], i))]


def _named_files(task: str, here: Path) -> list[str]:
    return [w for w in names(task) if (here / w).is_file() and (here / w).stat().st_size <= READ_BYTES]


def second_look(task: str, command: str, output: str, cwd: str | Path) -> str | None:
    """What to run after a look-up that read part of the files here but missed the lines that best match the
    task (`searching.shows_best`): the read or search a failed look-up falls back to, unless that is what ran.
    The lines are those of the files the task names, else of those the search chooses (when files here hold the
    task's words). `grep dump Makefile` printed `dump:` lines but not `KEEP_DUMPS := 46`. A look-up that read
    no file here (`ss -ltnp`, `python3 --version`, `ls`, `wc -l`) is what the model chose to ask the machine:
    it is kept. None when nothing is missed."""
    here = Path(cwd)
    if not reads_files(output, here):
        return None
    named = any((here / w).exists() for w in names(task))
    if named:
        files = _named_files(task, here)
    else:
        files = search_files(task, here) if held_words(task, here) else []
    if not files or shows_best(output, task, files, here):
        return None
    # what `fallbacks` runs first, from the files already chosen
    look = read_command(task, files[0], here) if named else content_search(task, here, files)
    return look if look and look != command else None


def fallbacks(task: str, ranked: list[str], cwd: str | Path, limit: int = 2) -> list[str]:
    """What to run, in order, when the chosen look-up fails: a read of the files the task names
    (`read_command`), a search of the files here for the task's words (`searching.content_search`), then the
    next candidates in the model's order; read-only commands only, at most `limit`."""
    here = Path(cwd)
    out = [read_command(task, w, here) for w in _named_files(task, here)]
    if search := content_search(task, here):
        out.append(search)
    out += [c for c in ranked[1:] if is_read_only(c)]
    return list(dict.fromkeys(out))[:limit]
