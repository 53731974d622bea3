"""Grounded answers: what the agent says must come from what it observed.

A small model reads an output and then writes numbers, names and dates that are not in it ("The date in
config.ini is 2026-12-24" after `date` printed Dec 2). An answer that contradicts the output is worse than the
output alone. So an answer's checkable claims (numbers, dates, versions, file names and paths, identifiers,
names, `quoted` text) must each appear in the evidence: the outputs the episode observed (not a literal it echoed) and the task. An
answer with an unsupported claim is replaced by the last output when that output is short, and otherwise by
saying that the agent could not tell.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SHORT_LINES = 8
SHORT_CHARS = 600
"""An output this small is shown in place of an answer that it does not support."""
_CLAIM_RE = re.compile(
    r"`([^`\n]+)`"                              # quoted code or text
    r"|(?<![\w.])(\d[\w.:/%+-]*\w|\d)"          # numbers, sizes, dates, times, versions
    r"|(?<![\w/])([\w-]*[./][\w./-]*\w)"        # file names and paths
    r"|(?<![\w-])([A-Za-z]\w*[-_][\w-]*\w)"      # identifiers: lolo-worker, ECHO_BENCH_TEAM
    r"|(?<=[a-z,;:] )([A-Z][a-z]+)\b"            # a name inside a sentence: Saturday, Sorsor
)


@dataclass(frozen=True)
class Grounded:
    text: str
    """What the agent answers."""
    supported: bool
    """Whether the model's own answer was supported by the evidence (else `text` is the output or a refusal)."""
    unsupported: tuple[str, ...] = ()


def claims(answer: str) -> list[str]:
    """The checkable claims an answer makes, in order: numbers, dates, versions, paths and file names,
    identifiers, quoted text, and capitalised names inside a sentence (a weekday, a person, a host)."""
    return [next(g for g in m.groups() if g) for m in _CLAIM_RE.finditer(answer)]


def _fold(text: str) -> str:
    return " ".join(text.lower().split())


def supported(claim: str, evidence: str) -> bool:
    """Whether the claim stands in the (folded) evidence as whole words. A bare number must stand alone too: not
    as part of a file name, a time, a date or a version ("1" is not in `a1.py`, `10:01` or `v1.2`)."""
    if claim.isdigit():
        pattern = rf"(?<![\w./:-]){claim}(?![\w]|[./:-]\w)"
    else:
        pattern = rf"(?<![\w.]){re.escape(_fold(claim))}(?!\w)"
    return re.search(pattern, evidence) is not None


LITERAL_ECHO = re.compile(r"\s*(echo|printf)\b[^$`]*")


def evidence_of(steps: Sequence[Mapping[str, Any]], task: str) -> str:
    """The task, every output, and how many lines each output of more than one line has (an answer may count
    them). Not the commands, not the command's own words where a failed one's error message repeats them, and not
    what `echo`/`printf` of a literal printed: that is the model's own words, not the machine's (a model that runs
    `echo "2023"` has observed nothing about the year)."""
    parts = [task]
    for s in steps:
        output, command = s.get("output") or "", s.get("command") or ""
        if not command or LITERAL_ECHO.fullmatch(command):
            continue
        if s.get("exit_code") not in (0, None):  # an error message repeats the command's words: not evidence
            for word in {w.strip("'\"") for w in command.split()} - {""}:
                output = re.sub(rf"(?<![\w.]){re.escape(word)}(?!\w)", " ", output)
        lines = sum(1 for line in output.splitlines() if line.strip())
        parts += [output, f"[{lines}]" if lines > 1 else ""]  # "1" is in every one-line output: no evidence
    return _fold("\n".join(parts))


def ground(answer: str, steps: Sequence[Mapping[str, Any]], task: str, *, with_output: bool = False) -> Grounded:
    """The answer to give for `answer`, written after `steps` (as stored) for `task`. `with_output`: a supported
    answer is followed by the last output too, when that is short and the answer does not already hold it."""
    evidence = evidence_of(steps, task)
    missing = tuple(c for c in claims(answer) if not supported(c.strip("."), evidence))
    last = next((s for s in reversed(steps) if s.get("command") and s.get("status")
                 and not LITERAL_ECHO.fullmatch(s["command"])), None)
    output = (last.get("output") or "").strip() if last else ""
    shown = last is not None and last.get("exit_code") == 0 and output and is_short(output)
    if not missing and answer.strip():
        if with_output and shown and _fold(output) not in _fold(answer):
            return Grounded(f"{answer}\n`{last['command']}` printed:\n{output}", True)
        return Grounded(answer, True)
    if shown:
        return Grounded(f"`{last['command']}` printed:\n{output}", False, missing)
    return Grounded(COULD_NOT_TELL + (f" (`{last['command']}`)." if last else "."), False,
                    missing)


COULD_NOT_TELL = "I could not tell from what I ran"
_SHOWN_RE = re.compile(r"`[^`\n]+` printed:\n")


def replaced(answer: str) -> bool:
    """Whether `answer` is what `ground` puts in place of an unsupported answer (the last output, or saying
    that the agent could not tell), rather than the model's own supported words."""
    return answer.startswith(COULD_NOT_TELL) or _SHOWN_RE.match(answer) is not None


def stated(answer: str) -> str:
    """The model's own words in an answer: what comes before an output shown under it, and nothing when the
    answer is the output or "could not tell" put in place of unsupported words."""
    if replaced(answer):
        return ""
    shown = _SHOWN_RE.search(answer)
    return answer[:shown.start()] if shown else answer


def is_short(output: str) -> bool:
    return len(output) <= SHORT_CHARS and output.count("\n") < SHORT_LINES
