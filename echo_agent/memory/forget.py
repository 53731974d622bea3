"""Forgetting (`echo-agent logs forget`): delete steps and the episodes they empty; stale the adapters that
trained on them, so the agent stops using them at once and the next cycle trains from an adapter that never
saw them."""

from __future__ import annotations

import os
from dataclasses import dataclass

from echo_agent.errors import StoreError
from echo_agent.memory.redact import storable
from echo_agent.memory.store import TrajectoryStore, fts_query
from echo_agent.records import AdapterStatus


@dataclass(frozen=True)
class ForgetCriteria:
    """Which steps to forget: those matching ALL the given criteria."""

    episode_ids: tuple[str, ...] = ()
    """Every step of these episodes (and the episodes themselves)."""
    query: str | None = None
    """Steps whose command or output holds every word (full-text search)."""
    since: str | None = None
    """Steps started at or after this time (ISO text, UTC, as stored)."""
    until: str | None = None
    """Steps started before this time."""
    directory: str | None = None
    """Steps run in this directory or below it."""


@dataclass(frozen=True)
class ForgetPlan:
    step_seqs: list[int]
    episodes: list[str]
    """Episodes left empty (or named by id): deleted too."""
    adapters: list[str]
    """Adapters that trained on a step to forget: marked stale."""


def forget_plan(store: TrajectoryStore, criteria: ForgetCriteria) -> ForgetPlan:
    """What `forget_steps` would delete, without changing anything."""
    where, params = _where(criteria)
    steps = store.rows(f"SELECT seq, id, episode_id FROM step WHERE {' AND '.join(where)}", params)
    seqs = {s["seq"] for s in steps}
    touched = {s["episode_id"] for s in steps} | set(criteria.episode_ids)
    emptied = []
    for eid in sorted(touched):
        left = store.rows("SELECT seq FROM step WHERE episode_id=?", [eid])
        exists = store.rows("SELECT 1 FROM episode WHERE id=?", [eid])
        if exists and all(r["seq"] in seqs for r in left):
            emptied.append(eid)
    step_ids = [s["id"] for s in steps]
    adapters: set[str] = set()
    for i in range(0, len(step_ids), 500):
        part = step_ids[i : i + 500]
        adapters |= {r["adapter_id"] for r in store.rows(
            f"SELECT DISTINCT adapter_id FROM adapter_step WHERE step_id IN ({', '.join('?' * len(part))})", part)}
    return ForgetPlan(sorted(seqs), emptied, sorted(adapters))


def forget_steps(store: TrajectoryStore, criteria: ForgetCriteria) -> dict[str, int]:
    """Delete the steps `forget_plan` selects and the episodes left empty, and mark adapters that trained on
    them `stale`, in one transaction. The FTS index follows through its delete trigger. Returns counts."""
    plan = forget_plan(store, criteria)
    with store.transaction() as c:
        c.executemany("UPDATE adapter SET status=? WHERE id=?", [(AdapterStatus.STALE, a) for a in plan.adapters])
        c.executemany("DELETE FROM step WHERE seq=?", [(s,) for s in plan.step_seqs])
        c.executemany("UPDATE episode SET parent_episode_id=NULL WHERE parent_episode_id=?",
                      [(e,) for e in plan.episodes])
        c.executemany("DELETE FROM episode WHERE id=?", [(e,) for e in plan.episodes])
    return {"steps": len(plan.step_seqs), "episodes": len(plan.episodes), "adapters_stale": len(plan.adapters)}


def _where(criteria: ForgetCriteria) -> tuple[list[str], list[object]]:
    where: list[str] = []
    params: list[object] = []
    if criteria.episode_ids:
        where.append(f"episode_id IN ({', '.join('?' * len(criteria.episode_ids))})")
        params += criteria.episode_ids
    if criteria.query:
        where.append("seq IN (SELECT rowid FROM step_fts WHERE step_fts MATCH ?)")
        params.append(fts_query(criteria.query) or '""')
    if criteria.since:
        where.append("started_at >= ?")
        params.append(criteria.since)
    if criteria.until:
        where.append("started_at < ?")
        params.append(criteria.until)
    if criteria.directory:
        # as the shell stored it: normalised, no trailing slash
        d = storable(os.path.normpath(os.path.expanduser(criteria.directory)).rstrip("/") or "/")
        where.append("(cwd_before = ? OR cwd_before LIKE ? ESCAPE '\\')")
        params += [d, _like_escape(d.rstrip("/") + "/") + "%"]
    if not where:
        raise StoreError("forget needs at least one of: episode ids, a query, since/until, a directory")
    return where, params


def _like_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
