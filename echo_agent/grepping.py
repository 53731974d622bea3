"""What `grep -n -i -E` prints, predicted: the pattern for a word, the lines it matches, the record around a
line, and grep's output with context.

The search (`searching.py`) builds its look-up from these: it chooses the context that keeps the output short
enough to show by predicting the output exactly (`grep_output`; a test holds it to what grep prints), and Python's
`re` reads each pattern as grep does (`matching_lines`).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

SETTING_RE = re.compile(r"(?:export\s+)?[\w.\"'-]+\s*(?::=|\?=|\+=|=|:)\s*\S")
"""A line that sets a value of its own: `KEY=value`, `key: value`, `key = value`, `VAR := value`."""


def pattern(word: str) -> str:
    """The grep -E (and Python re) pattern for a root: a short one must be a whole word ("ip" is not in
    "pipefail"); a longer one may start or end a longer word ("daily" in KEEP_DAILY)."""
    return rf"\b{word}\b" if len(word) <= 3 else word  # letters, digits, _ and -: nothing to escape


def matching_lines(text: str, word: str) -> set[int]:
    """The numbers of the lines of `text` that the word's pattern matches, as grep -i -E finds them."""
    regex = re.compile(pattern(word), re.IGNORECASE)
    return {i for i, line in enumerate(text.splitlines()) if regex.search(line)}


def grep_command(words: Sequence[str], files: Sequence[str], before: int = 1, after: int = 1,
                 first: bool = False) -> str:
    """`grep -n -i` for the words' patterns in `files`, with `before`/`after` lines of context, and only each
    file's first match when `first`."""
    flags = ["-n", "-i"] + (["-m1"] if first else [])
    flags += [f"-C{before}"] if before == after and before else [f"-B{before}"] * bool(before) + [
        f"-A{after}"] * bool(after)
    return f"grep {' '.join(flags)} -E {shlex.quote('|'.join(pattern(w) for w in words))} " + " ".join(
        map(shlex.quote, files))


def _indent(line: str) -> int:
    expanded = line.expandtabs()
    return len(expanded) - len(expanded.lstrip())


def block(lines: Sequence[str], i: int, alone: bool = True) -> tuple[int, int]:
    """The first and last line of the record that line `i` belongs to: the lines around it, up to a blank line,
    indented at least as deep, and the header above them (a YAML key, a JSON `{`). A line at the left margin
    belongs to its paragraph (an INI section, a table, a changelog's release), unless it holds a value of its
    own (`KEEP_DAILY := 38`, `motorcycle = 27.90`) and `alone`: that is shown alone, not among the settings
    beside it."""
    depth = _indent(lines[i])
    if alone and depth == 0 and SETTING_RE.match(lines[i]):
        return i, i
    first = last = i
    while first > 0 and lines[first - 1].strip() and _indent(lines[first - 1]) >= depth:
        first -= 1
    while last + 1 < len(lines) and lines[last + 1].strip() and _indent(lines[last + 1]) >= depth:
        last += 1
    if first > 0 and lines[first - 1].strip():
        first -= 1
    return first, last


def grep_output(texts: Sequence[Sequence[str]], files: Sequence[str], matched: Sequence[set[int]],
                before: int, after: int, first: bool = False) -> str:
    """What `grep_command` prints for the `matched` lines of each file (as grep -n prints them: the file's
    name first when there are several, `:` on a matching line, `-` on a line of context, `--` between
    groups of context)."""
    out: list[str] = []
    for lines, name, found in zip(texts, files, matched, strict=True):
        found = set(sorted(found)[:1]) if first else found
        prefix = f"{name}" if len(files) > 1 else ""
        end = -2
        for m in sorted(found):
            start = max(0, m - before, end + 1)
            if out and start > end + 1 and (before or after):
                out.append("--")
            for n in range(start, min(len(lines) - 1, m + after) + 1):
                mark = ":" if n in found else "-"
                out.append(f"{prefix}{mark if prefix else ''}{n + 1}{mark}{lines[n]}")
            end = max(end, min(len(lines) - 1, m + after))
    return "\n".join(out)
