from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ShellResult:
    """What one command did, in the shape the store records (see echo_agent/observation.py)."""

    command: str
    output: str
    """Clean text: UTF-8 with replacement, ANSI escapes removed, \\r\\n -> \\n, progress lines collapsed, capped."""
    status: str
    """The status line: `[exit N]`, `[exit N, interrupted after S s]` or `[no exit code: shell restarted]`."""
    note: str
    """Harness lines (never trained on), newline-separated; empty when there are none."""
    exit_code: int | None
    cwd_before: str
    cwd_after: str
    started_at: str
    """ISO 8601 UTC."""
    duration_ms: int
    timed_out: bool
    truncated: bool
    output_bytes: int
    """Raw size of everything the command printed, before cleaning and capping."""

    @property
    def note_lines(self) -> list[str]:
        return self.note.splitlines()
