"""Adapter rows: the registry's records of every adapter (`echo_agent/updater/registry.py` owns the files).

Every change of state is one transaction: a promotion that retires newer adapters, or a cycle's verdict with
the steps the adapter trained on, lands whole or not at all, a crash included.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from echo_agent.memory.store import TrajectoryStore, now
from echo_agent.records import AdapterStatus

_COLUMNS = {"id", "parent_id", "base_model", "base_hash", "path", "status", "trained_through_seq", "n_env_tokens",
            "metrics", "created_at", "chooses"}


def next_adapter_id(store: TrajectoryStore) -> str:
    """The next id in the monotonic series a0001, a0002, …"""
    row = store.rows("SELECT max(CAST(substr(id, 2) AS INTEGER)) AS n FROM adapter")[0]
    return f"a{(row['n'] or 0) + 1:04d}"


def insert_adapter(store: TrajectoryStore, **fields: Any) -> str:
    """A new adapter row (id: the next one unless given; metrics may be a dict); returns its id."""
    if set(fields) - _COLUMNS:
        raise TypeError(f"insert_adapter takes {sorted(_COLUMNS)}, got {sorted(set(fields) - _COLUMNS)}")
    fields.setdefault("id", next_adapter_id(store))
    fields.setdefault("created_at", now())
    if isinstance(fields.get("metrics"), dict):
        fields["metrics"] = json.dumps(fields["metrics"])
    cols = list(fields)
    with store.transaction() as c:
        c.execute(f"INSERT INTO adapter ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                  [fields[k] for k in cols])
    return fields["id"]


def get_adapter(store: TrajectoryStore, adapter_id: str) -> dict | None:
    rows = store.rows("SELECT * FROM adapter WHERE id=?", [adapter_id])
    return _decode(rows[0]) if rows else None


def recall_exclusions(store: TrajectoryStore, adapter_id: str | None) -> set[tuple[str, str | None]]:
    """(command, cwd) of the look-ups the adapter's recall check found it would recall wrong (always run)."""
    row = get_adapter(store, adapter_id) if adapter_id else None
    check = (row or {}).get("metrics", {}).get("recall_check") or {}
    return {(w["command"], w["cwd"]) for w in check.get("wrong", [])}


def list_adapters(store: TrajectoryStore, status: AdapterStatus | None = None) -> list[dict]:
    """Adapter rows, oldest first (metrics decoded), optionally of one status."""
    if status is not None:
        return [_decode(r) for r in store.rows("SELECT * FROM adapter WHERE status=? ORDER BY id", [status])]
    return [_decode(r) for r in store.rows("SELECT * FROM adapter ORDER BY id")]


def set_status(store: TrajectoryStore, changes: Mapping[str, AdapterStatus], chooses: Iterable[str] = ()) -> None:
    """Give each adapter in `changes` its new status, and make those in `chooses` choose commands too, all in one
    transaction."""
    with store.transaction() as c:
        c.executemany("UPDATE adapter SET status=? WHERE id=?", [(s, a) for a, s in changes.items()])
        c.executemany("UPDATE adapter SET chooses=1 WHERE id=?", [(a,) for a in chooses])


def record_verdict(store: TrajectoryStore, adapter_id: str, *, status: AdapterStatus, metrics: dict[str, Any],
                   step_ids: Iterable[str], chooses: bool = True) -> None:
    """A cycle's outcome for its candidate, in one transaction: the steps it trained on (`adapter_step`, what
    `logs forget` follows), its metrics, its status and whether it chooses commands."""
    with store.transaction() as c:
        c.executemany("INSERT OR IGNORE INTO adapter_step (adapter_id, step_id) VALUES (?, ?)",
                      [(adapter_id, s) for s in step_ids])
        c.execute("UPDATE adapter SET metrics=?, status=?, chooses=? WHERE id=?",
                  [json.dumps(metrics), status, int(chooses), adapter_id])


def _decode(row: dict) -> dict:
    row = dict(row)
    row["metrics"] = json.loads(row["metrics"]) if row.get("metrics") else {}
    return row
