"""When the background updater may train: a daily window of local time, `HH:MM-HH:MM`.

A window whose end is earlier than its start runs over midnight (`23:00-06:00`). No window means any time (the
daemon still never trains while an agent episode runs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from echo_agent.errors import UpdaterError

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_DAY = 24 * 60


@dataclass(frozen=True)
class Window:
    start: int
    """Minutes after midnight."""
    end: int

    @classmethod
    def parse(cls, text: str) -> Window:
        """`01:00-07:00` → Window; one clear line (UpdaterError) for anything else."""
        parts = text.strip().split("-")
        clocks = [_CLOCK.match(p.strip()) for p in parts] if len(parts) == 2 else []
        if len(clocks) != 2 or not all(clocks):
            raise UpdaterError(f"bad window {text!r}: expected HH:MM-HH:MM in 24-hour local time, e.g. 01:00-07:00")
        start, end = (int(m.group(1)) * 60 + int(m.group(2)) for m in clocks if m)
        if start == end:
            raise UpdaterError(f"bad window {text!r}: it starts and ends at the same time (leave --window out to "
                               "train at any time)")
        return cls(start, end)

    def __str__(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"

    def _minute(self, t: datetime) -> float:
        return t.hour * 60 + t.minute + t.second / 60 + t.microsecond / 60e6

    def contains(self, t: datetime) -> bool:
        m = self._minute(t)
        if self.start < self.end:
            return self.start <= m < self.end
        return m >= self.start or m < self.end

    def next_start(self, t: datetime) -> datetime:
        """The next time the window opens after `t` (t itself when it opens exactly then)."""
        day = t.replace(hour=0, minute=0, second=0, microsecond=0)
        opens = day + timedelta(minutes=self.start)
        return opens if opens >= t else opens + timedelta(days=1)

    def end_of(self, t: datetime) -> datetime:
        """When the window that contains `t` closes (for `t` outside it: the end of the next one)."""
        ref = t if self.contains(t) else self.next_start(t)
        closes = ref.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(minutes=self.end)
        return closes if closes > ref else closes + timedelta(days=1)

    def minutes_left(self, t: datetime) -> float:
        """Minutes until the window closes (0 outside it)."""
        return (self.end_of(t) - t).total_seconds() / 60 if self.contains(t) else 0.0

    @property
    def length_minutes(self) -> int:
        return (self.end - self.start) % _DAY
