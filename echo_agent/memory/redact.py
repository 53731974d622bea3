"""Secret redaction: applied to every command, reply and output before the store writes it.

All patterns are compiled into ONE alternation of named groups, so a text is scanned once whatever the number
of kinds. Speed (tests/test_redact.py checks >= 10 MB/s on log-like text) comes from two rules:
- every branch starts with a literal (`AKIA`, `ghp_`, `eyJ`, `://`, `=`...), so the scanner skips most positions
  on a first-character check; word-boundary look-behinds come *after* that literal, never before it;
- no branch nests unbounded repetitions, so nothing backtracks catastrophically.

`name=value` forms are anchored on the `=`/`:` itself, with a fixed-width look-behind on the last three
characters of the name (`…ord=`, `…ken:`, `…key=`); the name is then judged in Python: secret names
(password, token, secret, api_key…) always lose their value, key-like names (key, auth, session…) only when the
value looks random (Shannon entropy, length >= 20, not plain hex, so git SHAs and digests survive). Only the
value is replaced (`password=[REDACTED:password]`), so the text stays readable.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

ENTROPY_THRESHOLD = 3.5
"""Bits per character a value next to a key-like name needs to count as a secret (random base64 of 20+
characters scores about 4.2-5; words, paths and version strings score lower)."""

# Last three characters of names that may hold secrets, as the look-behind sees them (fixed width).
_ENDS = ["ord", "swd", "pwd", "ret", "ken", "key", "Key", "uth", "ion", "kie", "ure", "sig", "alt", "red", "als",
         "ssw", "cet"]
_ENDS += [e.upper() for e in _ENDS if e.upper() != e]
_E = "(?:" + "|".join(sorted(set(_ENDS))) + ")"
# `name=`, `name:`, `"name":`, `name = ` …: the operator, then fixed-width look-behinds for the name's end.
_LAST = "".join(sorted({e[-1] for e in _ENDS}))
_OPS = {
    op: rf"{op}(?<=[{_LAST}\"' ]{op})(?:(?<={_E}{op})|(?<={_E}[\"']{op})|(?<={_E} {op})|(?<={_E}[\"'] {op}))"
    for op in "=:"
}

# (kind, where it can start, regex). A branch that redacts only part of its match names that part `<kind>_v`.
# "Where it can start" is a literal the branch begins with (and how far before it the match starts): a
# separate pass finds those, because Python's `re` scans a large alternation position by position (~3 MB/s)
# but a single literal at memchr speed. The one alternation then decides, anchored at each such place.
_PATTERNS: list[tuple[str, tuple[str, ...], int, str]] = [
    ("private_key", ("-----BEGIN",), 0, r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
     r"(?:[\s\S]{0,20000}?-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s]*)"),
    ("aws_access_key", ("A(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA)",), 0,
     r"(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)(?<![A-Za-z0-9]....)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    ("github_token", ("gh[pousr]_", "github_pat_"), 0, r"gh[pousr]_(?<![A-Za-z0-9_]....)[A-Za-z0-9]{36,255}"
     r"|github_pat_(?<![A-Za-z0-9_]...........)[A-Za-z0-9_]{50,255}"),
    ("gitlab_token", ("glpat-",), 0, r"glpat-(?<![A-Za-z0-9_-]......)[A-Za-z0-9_-]{20,}"),
    ("slack_token", ("xox[abposr]-",), 0, r"xox[abposr]-(?<![A-Za-z0-9_-].....)[A-Za-z0-9-]{10,}"),
    ("stripe_key", ("k_live_",), -1, r"[sr]k_live_(?<![A-Za-z0-9_]........)[A-Za-z0-9]{16,}"),
    ("npm_token", ("npm_",), 0, r"npm_(?<![A-Za-z0-9_]....)[A-Za-z0-9]{36}(?![A-Za-z0-9])"),
    ("pypi_token", ("pypi-",), 0, r"pypi-(?<![A-Za-z0-9_-].....)[A-Za-z0-9_-]{50,}"),
    ("api_key", ("sk-",), 0, r"sk-(?<![A-Za-z0-9_-]...)(?:ant-|proj-|svcacct-)?[A-Za-z0-9_-]{20,}"),
    ("jwt", ("eyJ",), 0, r"eyJ(?<![A-Za-z0-9_-]...)[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ("url_password", ("://",), 0, r"://[^\s/:@'\"]{1,256}:(?P<url_password_v>[^\s/@'\"]{1,256})(?=@)"),
    ("bearer", ("earer[ \t]",), -1, r"[Bb]earer[ \t]+(?P<bearer_v>[A-Za-z0-9._~+/-]{20,}=*)"),
    ("assign", tuple(_OPS.values()), 0, "(?:" + "|".join(_OPS.values()) + r")[ \t]*[\"']?(?P<assign_v>[^\s\"',;&)}\]]+)"),
]

# Matched against the 82 characters before the operator, reversed: anchored, so linear.
_NAME_BEFORE_REVERSED = re.compile(r"[ \t]?[\"']?([A-Za-z0-9_.-]{1,80})")
_SECRET_NAME = re.compile(
    r"(?i)(?:^|[_.-]|(?<=[a-z]))(passw(?:or)?d|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|"
    r"private[_-]?key|credentials?)$"
)
_KEYISH_NAME = re.compile(r"(?i)(?:^|[_.-]|(?<=[a-z]))(key|auth|session|cookie|signature|sig|salt|cred)$")
_AWS_NAME = re.compile(r"(?i)aws|secret")
_AWS_SECRET = re.compile(r"[A-Za-z0-9/+]{40}")
# Values after secret names that are placeholders or settings, not secrets.
_PLACEHOLDER = re.compile(r"(?:[$<%*{(]|\[REDACTED).*|(?i:true|false|null|none|yes|no|on|off|required|optional)")
_HEX = re.compile(r"[0-9a-fA-F]+")


def shannon_entropy(s: str) -> float:
    """Bits per character of `s`."""
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values()) if n else 0.0


_META = re.compile(r"[\\.^$*+?{}\[\]|()]")


def literal_prefix(rx: str) -> str:
    """The plain text every match of `rx` starts with ("" when none is known)."""
    m = _META.search(rx)
    if m is None:
        return rx
    head = rx[: m.start()]
    return head[:-1] if m.group() in "*?{" else head  # a quantifier makes the last character optional


Start = tuple[re.Pattern[str], int, str]
"""(where a branch can start, offset of the match from there, plain text that start begins with)."""


@lru_cache(maxsize=32)
def _compiled(extra: tuple[str, ...]) -> tuple[re.Pattern[str], list[Start]]:
    """The one alternation of named groups, and the (literal, offset, prefix) passes that find where it can
    match."""
    branches = [f"(?P<{kind}>{rx})" for kind, _, _, rx in _PATTERNS]
    branches += [f"(?P<extra{i}>{rx})" for i, rx in enumerate(extra)]
    # One pass per literal: a single literal is found at memchr speed, an alternation of them is not. A pass
    # runs only when its plain prefix is in the text at all: on short texts (replies, commands) starting a
    # regex scan costs far more than `in` (measured: two short fields 23 us -> 3 us), and most texts hold no
    # `ghp_`, `-----BEGIN` or `eyJ`.
    starts = [(re.compile(lit), offset, literal_prefix(lit)) for _, lits, offset, _ in _PATTERNS for lit in lits]
    starts += [(re.compile(rx), 0, "") for rx in extra]  # a user pattern has no known literal: its own matches
    return re.compile("|".join(branches)), starts


def _candidates(text: str, starts: list[Start]) -> list[int]:
    found = {max(0, m.start() + offset) for rx, offset, prefix in starts if prefix in text
             for m in rx.finditer(text)}
    return sorted(found)


def _assignment_kind(text: str, op_start: int, value: str) -> str | None:
    """Kind of secret in `<name>=<value>`, judged by the name before `op_start`; None when it is not one."""
    m = _NAME_BEFORE_REVERSED.match(text[max(0, op_start - 82) : op_start][::-1])
    if not m or _PLACEHOLDER.fullmatch(value):
        return None
    name = m.group(1)[::-1]
    if _AWS_NAME.search(name) and _AWS_SECRET.fullmatch(value):
        return "aws_secret_key"
    if s := _SECRET_NAME.search(name):
        word = s.group(1).lower()
        return "password" if word.startswith("p") else word.replace("-", "_")
    if (_KEYISH_NAME.search(name) and len(value) >= 20 and not _HEX.fullmatch(value)
            and shannon_entropy(value) >= ENTROPY_THRESHOLD):
        return "high_entropy"
    return None


def redact(text: str, extra_patterns: Iterable[str] = ()) -> tuple[str, int]:
    """Replace secrets in `text` with `[REDACTED:<kind>]`; returns the new text and how many were replaced.

    `extra_patterns` are the user's own regular expressions (Settings.redact_patterns); their matches become
    `[REDACTED:custom]`.
    """
    if not text:
        return text, 0
    pattern, starts = _compiled(tuple(extra_patterns))
    parts: list[str] = []
    done = count = 0
    for pos in _candidates(text, starts):
        if pos < done:
            continue
        m = pattern.match(text, pos)
        if m is None:
            continue
        kind = m.lastgroup or "custom"
        start = m.start()
        if kind == "assign":
            kind = _assignment_kind(text, start, m.group("assign_v"))
            if kind is None:  # not a secret name; its value is still scanned (its own candidates follow)
                continue
            start = m.start("assign_v")
        elif kind.startswith("extra"):
            kind = "custom"
        elif f"{kind}_v" in pattern.groupindex:
            start = m.start(f"{kind}_v")
        if m.end() == start:  # an empty match (only possible in a user pattern) redacts nothing
            continue
        parts += [text[done:start], f"[REDACTED:{kind}]"]
        done = m.end()
        count += 1
    parts.append(text[done:])
    return "".join(parts), count
