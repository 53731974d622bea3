"""The deny list: known catastrophes refused in every mode, even with --yes (rm -rf / or ~, mkfs, dd of=/dev/…,
a recursive chmod/chown of a system directory, fork bombs, downloaded code piped to an interpreter)."""

from __future__ import annotations

import re

from echo_agent.shell.risk_argv import short_flags
from echo_agent.shell.risk_tables import HARMLESS_DEVICES

FORK_BOMB = re.compile(r"(?P<f>[\w:.-]+)\s*\(\s*\)\s*\{\s*(?P=f)\s*\|\s*(?P=f)\s*&?\s*;?\s*\}\s*;?\s*(?P=f)")
PIPED_DOWNLOAD = re.compile(
    r"\b(?:curl|wget|fetch)\b[^;\n]*\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:env\s+)?"
    r"(?:(?:ba|z|da|k)?sh|fish|python[23]?|perl|ruby|node)\b"
)
_SYSTEM_DIRS = frozenset(
    "/ /bin /boot /dev /etc /home /lib /lib64 /opt /proc /root /sbin /srv /sys /usr /var".split()
)
_HOME = frozenset({"~", "$HOME", "${HOME}"})
BLOCK_DEVICE = re.compile(
    r"/dev/(sd[a-z]|hd[a-z]|vd[a-z]|xvd[a-z]|nvme\d|mmcblk\d|disk\d|dm-\d|md\d|mapper/|loop\d)"
)


def _is_catastrophic_target(path: str) -> bool:
    """`/`, `/*`, `~`, `$HOME/`, or a top-level system directory such as /etc."""
    path = re.sub(r"(/\*|/\.|/)+$", "", path) or "/"
    return path in _SYSTEM_DIRS or path in _HOME


def _is_recursive(args: list[str]) -> bool:
    return "--recursive" in args or any(c in short_flags(args) for c in "rR")


def deny_reason(name: str, args: list[str]) -> str | None:
    """The deny-list entry this argv matches, if any."""
    shown = " ".join([name, *args])[:80]
    operands = [a for a in args if not a.startswith("-")]
    if (
        name == "rm"
        and _is_recursive(args)
        and ("--no-preserve-root" in args or any(_is_catastrophic_target(a) for a in operands))
    ):
        return shown
    if (name.startswith("mkfs") or name == "mke2fs") and operands:
        return shown
    if name == "dd" and any(
        a.startswith("of=/dev/") and a[3:] not in HARMLESS_DEVICES and not a.startswith("of=/dev/fd/")
        for a in args
    ):
        return shown
    if (
        name in ("chmod", "chown", "chgrp")
        and _is_recursive(args)
        and any(_is_catastrophic_target(a) for a in operands[1:])
    ):
        return shown
    return None
