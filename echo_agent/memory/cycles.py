"""Cycle rows: one per update cycle, whatever its outcome; what `updater report` and `updater status` read.

A cycle's row is written `running` when it starts (after it holds the home's update lock) and gets its outcome
when it ends, failures included. A row still `running` when the next cycle holds the lock was left by a killed
process (or one that could not write its outcome): `mark_killed` says so in it, and the next cycle's row names
the rows it recovered.
"""

from __future__ import annotations

import json
from typing import Any

from echo_agent.memory.store import TrajectoryStore, now

RUNNING = "running"
FAILED = "failed"


def begin(store: TrajectoryStore, pid: int, trigger: str = "") -> int:
    """A new `running` row; returns its id."""
    with store.transaction() as c:
        cur = c.execute("INSERT INTO cycle (started_at, status, pid, trigger) VALUES (?, ?, ?, ?)",
                        [now(), RUNNING, pid, trigger])
    return int(cur.lastrowid)


def end(store: TrajectoryStore, cycle_id: int, *, status: str, message: str = "", adapter_id: str | None = None,
        metrics: dict[str, Any] | None = None, cpu_s: float | None = None, wall_s: float | None = None) -> None:
    with store.transaction() as c:
        c.execute("UPDATE cycle SET ended_at=?, status=?, message=?, adapter_id=?, metrics=?, cpu_s=?, wall_s=? "
                  "WHERE id=?", [now(), str(status), message, adapter_id, json.dumps(metrics or {}),
                                 None if cpu_s is None else round(cpu_s, 2),
                                 None if wall_s is None else round(wall_s, 2), cycle_id])


def mark_killed(store: TrajectoryStore) -> list[int]:
    """Rows left `running` (the caller holds the update lock, so no cycle runs): marked `failed`, with why."""
    rows = store.rows("SELECT id, pid FROM cycle WHERE status=?", [RUNNING])
    if rows:
        with store.transaction() as c:
            c.executemany("UPDATE cycle SET status=?, message=? WHERE id=? AND status=?",
                          [(FAILED, f"it ended without recording how (pid {r['pid']} was killed, or its store "
                                    "was busy); nothing of it was promoted", r["id"], RUNNING) for r in rows])
    return [r["id"] for r in rows]


def list_cycles(store: TrajectoryStore, since: str | None = None) -> list[dict]:
    """Cycle rows started at or after `since` (ISO text; None: all), oldest first, metrics decoded."""
    rows = store.rows("SELECT * FROM cycle WHERE started_at >= ? ORDER BY id", [since or ""])
    return [{**r, "metrics": json.loads(r["metrics"] or "{}")} for r in rows]


def last_cycle(store: TrajectoryStore) -> dict | None:
    rows = store.rows("SELECT * FROM cycle ORDER BY id DESC LIMIT 1")
    return {**rows[0], "metrics": json.loads(rows[0]["metrics"] or "{}")} if rows else None
