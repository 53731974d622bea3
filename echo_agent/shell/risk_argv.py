"""What the argument-based rules share: the analysis they report to, and argv parsing helpers.

Handlers (risk_commands.py, risk_git.py) take the analysis in progress, the command name and its arguments, and
record findings with `add`; handlers for commands that run other commands (`find -exec`, `su -c`, `eval`) hand
those back through `argv` and `script`. Nothing here imports risk.py: the analysis reaches the handlers as a
`Findings` object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol


class Findings(Protocol):
    """What a handler may do with the analysis in progress (risk_walk.Analysis)."""

    def add(self, level: str, reason: str, denied: bool = False) -> None:
        """Record one finding."""

    def script(self, text: str) -> None:
        """Classify a bash script string (`su -c`, `eval`)."""

    def argv(self, argv: list[str]) -> None:
        """Classify one simple command (`find -exec`)."""


Handler = Callable[[Findings, str, list[str]], None]


# --- argv helpers ----------------------------------------------------------------------------------------


def short_flags(args: Iterable[str]) -> str:
    """The letters of every short-option cluster (`-rf -v` -> "rfv")."""
    return "".join(a[1:] for a in args if a.startswith("-") and not a.startswith("--"))


def parse_options(args: list[str], takes_value: frozenset[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """Leading options as (option, value) pairs, and the arguments after them."""
    options: list[tuple[str, str]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return options, args[i + 1 :]
        if not arg.startswith("-") or arg == "-":
            break
        if arg in takes_value and i + 1 < len(args):
            options.append((arg, args[i + 1]))
            i += 2
        else:
            options.append((arg, ""))
            i += 1
    return options, args[i:]


def program_and_operands(
    args: list[str], takes_value: frozenset[str]
) -> tuple[list[tuple[str, str]], list[str]]:
    """Options anywhere on the line (sed, awk style) and the remaining operands."""
    options: list[tuple[str, str]] = []
    operands: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            operands.extend(args[i + 1 :])
            break
        if arg.startswith("-") and arg != "-":
            if arg in takes_value and i + 1 < len(args):
                options.append((arg, args[i + 1]))
                i += 1
            else:
                options.append((arg, ""))
        else:
            operands.append(arg)
        i += 1
    return options, operands
