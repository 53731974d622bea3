"""Turning a terminal's bytes into the clean text the store keeps (docs/architecture.md, "The observation
contract")."""

from __future__ import annotations

import re

# CSI sequences (colours, cursor moves), OSC sequences (titles, hyperlinks), and the two-byte escapes.
_ANSI_RE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI ... final byte
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC ... BEL or ST
    r"|\x1b[PX^_][^\x1b]*\x1b\\"  # DCS/SOS/PM/APC ... ST
    r"|\x1b[@-Z\\-_]"  # other 7-bit C1 escapes
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
)


def clean_text(text: str) -> str:
    """Strip ANSI escapes, turn \\r\\n into \\n, and collapse carriage-return progress lines to their last state."""
    text = _ANSI_RE.sub("", text)
    text = text.replace("\r\n", "\n")
    if "\r" not in text:
        return text
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if "\r" in line:
            line = line.rstrip("\r")
            lines[i] = line[line.rfind("\r") + 1 :]
    return "\n".join(lines)


def decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")
