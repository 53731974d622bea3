"""Secret redaction: applied to every command, reply and output before the store writes it.

All patterns are compiled into ONE alternation of named groups, so a text is scanned once whatever the number
of kinds. Speed (benchmarks/store_scale.py; tests/test_redact.py checks >= 10 MB/s on log-like text) comes from
three rules:
- every branch starts with a plain keyword (`AKIA`, `ghp_`, `eyJ`, `://`...) or an operator (`=`, `:`); one
  Aho-Corasick pass (ahocorasick-rs, the keyword prefilter secret scanners such as gitleaks and trufflehog use)
  finds every keyword at once, and the alternation is then tried only where one was found. Python's `re` scans
  an alternation position by position (~3 MB/s), and a separate `in` per keyword costs ~2.5 us per 4 kB each;
- word-boundary look-behinds come *after* the keyword, never before it;
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
from typing import Any

from ahocorasick_rs import AhoCorasick

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

# (kind, keywords a match starts with, offset of the match from the keyword, regex). A branch that redacts only
# part of its match names that part `<kind>_v`. `assign` has no keyword: its operators are found by their own
# passes (`_OPS`), a single literal each, which `re` finds at memchr speed.
_PATTERNS: list[tuple[str, tuple[str, ...], int, str]] = [
    ("private_key", ("-----BEGIN",), 0, r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
     r"(?:[\s\S]{0,20000}?-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s]*)"),
    ("aws_access_key", ("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA"), 0,
     r"(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)(?<![A-Za-z0-9]....)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    ("github_token", (*(f"gh{c}_" for c in "pousr"), "github_pat_"), 0,
     r"gh[pousr]_(?<![A-Za-z0-9_]....)[A-Za-z0-9]{36,255}"
     r"|github_pat_(?<![A-Za-z0-9_]...........)[A-Za-z0-9_]{50,255}"),
    ("gitlab_token", ("glpat-",), 0, r"glpat-(?<![A-Za-z0-9_-]......)[A-Za-z0-9_-]{20,}"),
    ("slack_token", tuple(f"xox{c}-" for c in "abposr"), 0, r"xox[abposr]-(?<![A-Za-z0-9_-].....)[A-Za-z0-9-]{10,}"),
    ("stripe_key", ("k_live_",), -1, r"[sr]k_live_(?<![A-Za-z0-9_]........)[A-Za-z0-9]{16,}"),
    ("npm_token", ("npm_",), 0, r"npm_(?<![A-Za-z0-9_]....)[A-Za-z0-9]{36}(?![A-Za-z0-9])"),
    ("pypi_token", ("pypi-",), 0, r"pypi-(?<![A-Za-z0-9_-].....)[A-Za-z0-9_-]{50,}"),
    ("api_key", ("sk-",), 0, r"sk-(?<![A-Za-z0-9_-]...)(?:ant-|proj-|svcacct-)?[A-Za-z0-9_-]{20,}"),
    ("jwt", ("eyJ",), 0, r"eyJ(?<![A-Za-z0-9_-]...)[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ("url_password", ("://",), 0, r"://[^\s/:@'\"]{1,256}:(?P<url_password_v>[^\s/@'\"]{1,256})(?=@)"),
    ("bearer", ("earer ", "earer\t"), -1, r"[Bb]earer[ \t]+(?P<bearer_v>[A-Za-z0-9._~+/-]{20,}=*)"),
    ("assign", (), 0, "(?:" + "|".join(_OPS.values()) + r")[ \t]*[\"']?(?P<assign_v>[^\s\"',;&)}\]]+)"),
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


_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(text: str) -> str:
    """`text` as SQLite (UTF-8) can hold it: each lone surrogate (a JSON `\\udcff` escape in an import file, an
    undecodable byte in argv) becomes U+FFFD, so positions and length stay the same."""
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


@lru_cache(maxsize=32)
def _compiled(extra: tuple[str, ...]) -> tuple[re.Pattern[str], AhoCorasick, list[int], list[re.Pattern[str]]]:
    """The one alternation of named groups; the keyword automaton and each keyword's offset; the regex passes
    (the assignment operators, and each user pattern, which has no known keyword: its own matches)."""
    branches = [f"(?P<{kind}>{rx})" for kind, _, _, rx in _PATTERNS]
    branches += [f"(?P<extra{i}>{rx})" for i, rx in enumerate(extra)]
    keywords = [(kw, offset) for _, kws, offset, _ in _PATTERNS for kw in kws]
    automaton = AhoCorasick([kw for kw, _ in keywords])
    passes = [re.compile(op) for op in _OPS.values()] + [re.compile(rx) for rx in extra]
    return re.compile("|".join(branches)), automaton, [offset for _, offset in keywords], passes


def _candidates(text: str, automaton: AhoCorasick, offsets: list[int], passes: list[re.Pattern[str]]) -> list[int]:
    """Every position where a branch can match, in order."""
    hits = automaton.find_matches_as_indexes(text, overlapping=True)
    found = {max(0, start + offsets[i]) for i, start, _ in hits}
    found.update(m.start() for rx in passes for m in rx.finditer(text))
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
    `[REDACTED:custom]`. The text comes back `storable`.
    """
    if not text:
        return text, 0
    pattern, *where = _compiled(tuple(extra_patterns))
    try:
        candidates = _candidates(text, *where)
    except UnicodeEncodeError:  # a lone surrogate: neither the keyword automaton nor SQLite takes one
        text = storable(text)
        candidates = _candidates(text, *where)
    parts: list[str] = []
    done = count = 0
    for pos in candidates:
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


def redact_json(value: Any, extra_patterns: Iterable[str] = ()) -> Any:
    """`value` (a prompt: messages, dicts, lists) with every string in it redacted. Redacting the JSON text
    instead could cut an escape sequence in two and leave text that is no longer JSON."""
    if isinstance(value, str):
        return redact(value, extra_patterns)[0]
    if isinstance(value, dict):
        return {k: redact_json(v, extra_patterns) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_json(v, extra_patterns) for v in value]
    return value
