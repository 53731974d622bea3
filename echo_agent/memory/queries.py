"""Read-only questions about a store: counts, per-task look-ups, recall outcomes, pending training data.

`echo-agent logs stats` and `echo-agent stats` (echo_agent/stats.py) ask these; they shape the answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from echo_agent.memory.store import RECENT_RUNS_WINDOW, TrajectoryStore
from echo_agent.records import StepKind, StepSource, task_identity

_ASKED = "e.session_id NOT IN (SELECT id FROM session WHERE kind = 'human')"
"""Episodes that were a task for the agent: not the commands a person typed in `echo-agent shell`."""


def store_counts(store: TrajectoryStore) -> dict[str, Any]:
    """Sessions, episodes, steps (trainable, redacted), stored output characters, bytes on disk, episodes by
    status, and `task_counts`."""

    def one(sql: str) -> Any:
        return next(iter(store.rows(sql)[0].values()))

    files = [store.path, Path(f"{store.path}-wal"), Path(f"{store.path}-shm")]
    return {
        "path": str(store.path),
        "sessions": one("SELECT count(*) FROM session"),
        "episodes": one("SELECT count(*) FROM episode"),
        "steps": one("SELECT count(*) FROM step"),
        "trainable_steps": one("SELECT count(*) FROM step WHERE trainable=1"),
        "redacted_steps": one("SELECT count(*) FROM step WHERE redactions > 0"),
        "output_chars": one("SELECT coalesce(sum(length(output)), 0) FROM step"),
        "bytes": sum(f.stat().st_size for f in files if f.exists()),
        "max_seq": one("SELECT coalesce(max(seq), 0) FROM step"),
        "episodes_by_status": {r["status"]: r["n"] for r in
                               store.rows("SELECT status, count(*) AS n FROM episode GROUP BY status")},
        "tasks": task_counts(store),
    }


def task_counts(store: TrajectoryStore) -> list[dict]:
    """Per task identity (tasks asked of the agent): episode count, first and last start, and episodes per day;
    most frequent first."""
    tasks: dict[str, dict] = {}
    for row in store.rows(f"SELECT task, started_at FROM episode e WHERE {_ASKED} ORDER BY started_at"):
        task, started = task_identity(row["task"]), row["started_at"]
        t = tasks.setdefault(task, {"task": task, "episodes": 0, "first": started, "last": started, "by_day": {}})
        t["episodes"] += 1
        t["last"] = started
        t["by_day"][started[:10]] = t["by_day"].get(started[:10], 0) + 1
    return sorted(tasks.values(), key=lambda t: (-t["episodes"], t["task"]))


def episode_lookups(store: TrajectoryStore) -> list[dict[str, Any]]:
    """Every episode asked of the agent, oldest first, with its status, answer and executed and recalled
    retrievals."""
    return store.rows(
        "SELECT e.id AS episode_id, e.task, e.started_at, e.adapter_id, e.status, e.answer, "
        "  coalesce(sum(s.kind=:retrieval AND s.source=:executed), 0) AS executed, "
        "  coalesce(sum(s.kind=:retrieval AND s.source=:recalled), 0) AS recalled "
        f"FROM episode e LEFT JOIN step s ON s.episode_id = e.id WHERE {_ASKED} GROUP BY e.id "
        "ORDER BY e.started_at, e.rowid",
        {"retrieval": StepKind.RETRIEVAL, "executed": StepSource.EXECUTED, "recalled": StepSource.RECALLED})


def recall_counts(store: TrajectoryStore, threshold: float) -> dict[str, int]:
    """Recalled steps, and verified recalls at or above `threshold` (checked, and exactly right)."""
    recalled = store.rows("SELECT count(*) AS n FROM step WHERE source=?", [StepSource.RECALLED])[0]["n"]
    row = store.rows(
        "SELECT count(*) AS checked, coalesce(sum(verified=1), 0) AS right FROM step WHERE source=? "
        "AND verified IS NOT NULL AND confidence_min IS NOT NULL AND confidence_min >= ?",
        [StepSource.EXECUTED, threshold])[0]
    return {"recalled": int(recalled), "verified": int(row["checked"]), "verified_right": int(row["right"])}


def verified_predictions(store: TrajectoryStore) -> list[tuple[float, int]]:
    """(weakest-token log-prob, verified 0/1) of every executed retrieval whose prediction was checked."""
    return [(r["confidence_min"], r["verified"]) for r in store.rows(
        "SELECT confidence_min, verified FROM step WHERE kind=? AND source=? "
        "AND verified IS NOT NULL AND confidence_min IS NOT NULL", [StepKind.RETRIEVAL, StepSource.EXECUTED])]


def older_trainable_episodes(store: TrajectoryStore, through_seq: int) -> list[str]:
    """Ids of the episodes with a trainable step at or before `through_seq`, sorted: read from the
    (trainable, seq, episode_id) index, never the steps themselves."""
    return [r["episode_id"] for r in store.rows(
        "SELECT DISTINCT episode_id FROM step WHERE trainable=1 AND seq <= ? ORDER BY episode_id", [through_seq])]


_LINEAGE = """WITH RECURSIVE lineage(id) AS (SELECT :adapter UNION SELECT a.parent_id FROM adapter a
    JOIN lineage l ON a.id = l.id WHERE a.parent_id IS NOT NULL)"""
_PENDING = ("FROM step s WHERE s.trainable=1 AND s.seq > :since AND NOT EXISTS (SELECT 1 FROM adapter_step x "
            "WHERE x.step_id = s.id AND x.adapter_id IN (SELECT id FROM lineage))")


def pending_steps(store: TrajectoryStore, since_seq: int, adapter_id: str | None) -> list[dict]:
    """Trainable steps after `since_seq` (the adapter's watermark) that neither `adapter_id` nor an adapter it
    descends from trained on (`adapter_step`), in seq order: what the next cycle may train. A step a cycle left
    out for its budget stays here until one trains it."""
    return store.rows(f"{_LINEAGE} SELECT s.* {_PENDING} ORDER BY s.seq", {"adapter": adapter_id, "since": since_seq})


def pending_output_chars(store: TrajectoryStore, since_seq: int, adapter_id: str | None = None) -> int:
    """Characters of the output of `pending_steps` (the updater's "enough new data" check)."""
    return int(store.rows(f"{_LINEAGE} SELECT coalesce(sum(length(s.output)), 0) AS n {_PENDING}",
                          {"adapter": adapter_id, "since": since_seq})[0]["n"])


def train_speed(store: TrajectoryStore) -> float | None:
    """Training tokens per second of the newest cycle that trained (None before any): what a budget buys."""
    rows = store.rows("SELECT metrics FROM cycle WHERE metrics LIKE '%tokens_per_s%' ORDER BY id DESC LIMIT 1")
    if not rows:
        return None
    speed = json.loads(rows[0]["metrics"]).get("train", {}).get("tokens_per_s")
    return float(speed) if speed else None


def recallable_lookups(store: TrajectoryStore, min_runs: int, limit: int) -> list[dict]:
    """The newest run of each look-up the agent may recall now (the two-run rule of `Agent._stable`: its newest
    `min_runs` runs in one directory agree), newest first, at most `limit`: step id, episode id, command, cwd."""
    rows = store.rows(
        "SELECT id, episode_id, command, cwd_before, max(seq) AS seq FROM step "
        "WHERE seq > (SELECT coalesce(max(seq), 0) FROM step) - ? AND kind=? AND source=? AND trainable=1 "
        "AND command IS NOT NULL GROUP BY command, cwd_before ORDER BY seq DESC",
        [RECENT_RUNS_WINDOW, StepKind.RETRIEVAL, StepSource.EXECUTED])
    out = []
    for r in rows:
        runs = store.recent_runs(r["command"], r["cwd_before"], max(1, min_runs))
        if len(runs) >= min_runs and len(set(runs)) == 1:
            out.append({k: r[k] for k in ("id", "episode_id", "command", "cwd_before")})
            if len(out) >= limit:
                break
    return out
