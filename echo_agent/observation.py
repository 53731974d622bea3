"""The observation contract: how terminal output becomes the text the model sees and is trained on.

Written down once, because the shell, the store, the transcript, the updater and recall depend on it.

An observation message for a step with a command is:
    the output (ending in a newline; one is added if missing; nothing when the output is empty),
    then any harness lines,
    then exactly one status line, last (no newline after it).

Status lines (environment text, trained on):
    [exit N]
    [exit N, interrupted after S s]       the harness stopped the command (timeout, or waiting for input)
    [exit N, shell restarted]             the command ended the shell itself (`exit 3`), which exited with N
    [no exit code: shell restarted]       the shell died with no status to report (killed by a signal, or
                                          stopped by the harness because it ignored the interrupt)
A restarted shell comes back in the same directory with the same exported variables.

Harness lines (the program's own words, never trained on; matched as exact whole lines):
    [… N bytes omitted …]                 elision marker inside a capped output
    [recalled, not executed]              first line of a recalled observation
    [command was waiting for input]       the command blocked reading the terminal and was interrupted
    [command timed out]                   the command ran past its timeout and was interrupted
    [format error: …]                     the reply had no command and no answer (see FORMAT_WARNING)
    [not run: declined by the user]       the user said no at the confirmation prompt (no status line follows)
    [not run: on the deny list]           the command is a known catastrophe and is refused in every mode
    [ran with B: A does not exist]        the look-up named a missing file A and the task's file B ran instead
                                          (repair.py)
    [not run: no command named X]         the reply's program X does not exist in the shell (repair.py), so
                                          there was nothing to ask the user about (no status line follows)

The user's words (what they typed after declining a command) are a user message of their own, never labelled.
"""

from __future__ import annotations

import re
from typing import AnyStr

RECALL_MARKER = "[recalled, not executed]"
INPUT_MARKER = "[command was waiting for input]"
TIMEOUT_MARKER = "[command timed out]"
FORMAT_WARNING = (
    "[format error: reply with exactly one ```bash block holding one command, "
    "or a final answer in an ```answer block]"
)
SHELL_RESTARTED = "[no exit code: shell restarted]"
DECLINED_MARKER = "[not run: declined by the user]"
DENIED_MARKER = "[not run: on the deny list]"

_ELISION_RE = re.compile(r"\[… \d+ bytes omitted …\]")
_CORRECTED_RE = re.compile(r"\[ran with \S+: \S+ does not exist\]")
_NO_COMMAND_RE = re.compile(r"\[not run: no command named \S+\]")
SHELL_EXITED_SUFFIX = ", shell restarted]"
_STATUS_RE = re.compile(
    r"\[exit -?\d+(, interrupted after \d+(\.\d+)? s|, shell restarted)?\]|\[no exit code: shell restarted\]")
_FIXED_HARNESS = {RECALL_MARKER, INPUT_MARKER, TIMEOUT_MARKER, FORMAT_WARNING, DECLINED_MARKER, DENIED_MARKER}


def elision_marker(n_bytes: int) -> str:
    return f"[… {n_bytes} bytes omitted …]"


def corrected_marker(ran: str, missing: str) -> str:
    return f"[ran with {ran}: {missing} does not exist]"


def no_command_marker(name: str) -> str:
    return f"[not run: no command named {name}]"


def did_not_work(status: str | None, note: str | None, output: str | None = None) -> bool:
    """Whether an executed step's command exited non-zero (its status line), did not run because its program is
    not here (its note), or, for a look-up (whose `output` is given), printed nothing to answer from: `who owns
    app.conf` runs `who`, which exits 0 and, with nobody logged in, prints nothing."""
    code = exit_code_from_status(status or "")
    return (code not in (None, 0) or _NO_COMMAND_RE.fullmatch(note or "") is not None
            or (code == 0 and output is not None and not output.strip()))


def is_harness_line(line: str) -> bool:
    """True for a whole line that is the program's own words (never trained on)."""
    return (line in _FIXED_HARNESS or _ELISION_RE.fullmatch(line) is not None
            or _CORRECTED_RE.fullmatch(line) is not None or _NO_COMMAND_RE.fullmatch(line) is not None)


def is_status_line(line: str) -> bool:
    return _STATUS_RE.fullmatch(line) is not None


def status_line(exit_code: int | None, interrupted_after: float | None = None, *, restarted: bool = False) -> str:
    """The status line for a finished command. `restarted`: the shell itself ended (with `exit_code`, or None
    when it reported none)."""
    if exit_code is None:
        return SHELL_RESTARTED
    if restarted:
        return f"[exit {exit_code}{SHELL_EXITED_SUFFIX}"
    if interrupted_after is not None:
        return f"[exit {exit_code}, interrupted after {_seconds(interrupted_after)} s]"
    return f"[exit {exit_code}]"


def exit_code_from_status(status: str) -> int | None:
    m = re.fullmatch(r"\[exit (-?\d+)(, .*)?\]", status)
    return int(m.group(1)) if m else None


def _seconds(s: float) -> str:
    return f"{s:.0f}" if s >= 10 or float(s).is_integer() else f"{s:.1f}"


def cap_text(text: str, head: int, tail: int) -> str:
    """Keep `head` + `tail` characters around an elision marker line; text within the cap is unchanged. The
    marker counts the omitted UTF-8 bytes. (The shell caps bytes the same way: `shell.session._OutputReader`.)"""
    if len(text) <= head + tail:
        return text
    h, t = snap_to_lines(text[:head], text[len(text) - tail :])
    omitted = text[len(h) : len(text) - len(t)]
    return join_capped(h, len(omitted.encode("utf-8", "surrogatepass")), t)


def snap_to_lines(head: AnyStr, tail: AnyStr) -> tuple[AnyStr, AnyStr]:
    """The head and tail of a capped text (str) or output (bytes), with their cut points moved to line
    boundaries when one is near (in the half of each part next to the cut), so the marker stands on a line of
    its own: a partial last head line and a partial first tail line are dropped."""
    newline = "\n" if isinstance(head, str) else b"\n"
    nl = head.rfind(newline)  # type: ignore[arg-type]
    if nl >= len(head) // 2:
        head = head[: nl + 1]
    nl = tail.find(newline)  # type: ignore[arg-type]
    if 0 <= nl < len(tail) // 2:
        tail = tail[nl + 1 :]
    return head, tail


def join_capped(head: str, omitted_bytes: int, tail: str) -> str:
    """Head, the elision marker on a line of its own, tail."""
    if not head.endswith("\n"):
        head += "\n"
    return f"{head}{elision_marker(omitted_bytes)}\n{tail}"


def render_observation(output: str, status: str | None, harness_lines: list[str] = ()) -> str:
    """The observation message text: output, harness lines, status line (see the module docstring)."""
    head = output if not output or output.endswith("\n") else output + "\n"
    tail = [*harness_lines, *([status] if status is not None else [])]
    return head + "\n".join(tail)
