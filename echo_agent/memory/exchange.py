"""Export and import of episodes as JSONL (`echo-agent logs export` / `logs import`).

An export record is one episode with its session, its steps and its chat messages; every record has the same
keys and value types, so `datasets.load_dataset("json", …)` reads a file of them.

Exports carry a `redaction_seal` per step: a hash of the redaction rules that produced the text (the redact
module's source and the user's patterns) and of the text itself. Import re-redacts every step whose seal does
not match this store's rules and the step's text exactly, so only unchanged exports from the same rules skip
the (idempotent) second pass. An import file is outside data: its shape is checked, every text made storable,
and the database's own constraints judge the rest.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from echo_agent.errors import StoreError
from echo_agent.memory.redact import redact, storable
from echo_agent.memory.store import (
    EPISODE_FIELDS,
    REDACTED_FIELDS,
    SESSION_FIELDS,
    STEP_FIELDS,
    STEP_INSERT_FIELDS,
    TrajectoryStore,
    decode_episode,
    episode_redacted_now,
    redacted_now,
)

_INSERT_STEP = (
    f"INSERT INTO step ({', '.join(STEP_INSERT_FIELDS)}) "
    f"VALUES ({', '.join(':' + f for f in STEP_INSERT_FIELDS)}) ON CONFLICT(id) DO NOTHING"
)
# ON CONFLICT(id) DO NOTHING skips known ids only; OR IGNORE would also hide NOT NULL failures.
_INSERT_SESSION = (f"INSERT INTO session ({', '.join(SESSION_FIELDS)}) "
                   f"VALUES ({', '.join(':' + f for f in SESSION_FIELDS)}) ON CONFLICT(id) DO NOTHING")
_INSERT_EPISODE = (f"INSERT INTO episode ({', '.join(EPISODE_FIELDS)}) "
                   f"VALUES ({', '.join(':' + f for f in EPISODE_FIELDS)}) ON CONFLICT(id) DO NOTHING")
_STEP_DEFAULTS = (("note", ""), ("author", "agent"), ("kind", "action"), ("source", "executed"), ("timed_out", 0),
                  ("truncated", 0))
_SCALAR = (str, int, float, type(None))
_END = object()


@functools.cache
def redaction_rules_id(extra_patterns: tuple[str, ...]) -> str | None:
    """Identity of the redaction rules: the redact module's source plus the user's patterns (None when the
    source cannot be read; then nothing is sealed and every import is redacted again)."""
    try:
        source = Path(redact.__code__.co_filename).read_bytes()  # echo_agent/memory/redact.py
    except OSError:
        return None
    h = hashlib.sha256(source)
    for pattern in extra_patterns:
        h.update(b"\0" + pattern.encode())
    return h.hexdigest()


def redaction_seal(rules_id: str | None, step: dict) -> str | None:
    """Hash of the rules and of the step's redacted text: import skips redaction only when it matches exactly."""
    if rules_id is None:
        return None
    h = hashlib.sha256(rules_id.encode())
    for name in REDACTED_FIELDS:
        text = step.get(name)
        data = b"" if text is None else text.encode("utf-8", "surrogatepass")
        h.update(b"N" if text is None else b"T" + len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


# --- export --------------------------------------------------------------------------------------------------


def export_episodes(store: TrajectoryStore, since: str | None = None) -> Iterator[dict]:
    """Every episode (started at or after `since`, ISO text) with its session, steps and chat messages.

    `prompt` is the stored JSON text, `messages` the transcript as {role, content}; the episode's and each step's
    text pass through today's redaction rules (idempotent on text they produced), and each step carries its
    `redaction_seal`.
    """
    from echo_agent.transcript import render_episode

    extra = tuple(store.settings.redact_patterns)
    rules = redaction_rules_id(extra)

    def current(step: dict) -> dict:
        return {k: v for k, v in redacted_now(step, extra).items() if k in STEP_FIELDS and k != "seq"}

    sql = "SELECT * FROM episode" + (" WHERE started_at >= ?" if since else "") + " ORDER BY started_at"
    sessions: dict[str, dict] = {}
    for row in store.rows(sql, [since] if since else []):
        ep = episode_redacted_now(row, extra)
        if ep["session_id"] not in sessions:
            sessions[ep["session_id"]] = store.rows("SELECT * FROM session WHERE id=?", [ep["session_id"]])[0]
        steps = store.episode_steps(ep["id"])
        messages = render_episode(decode_episode(ep), [current(s) for s in steps], settings=store.settings)
        yield {
            **{k: ep[k] for k in EPISODE_FIELDS},
            "session": sessions[ep["session_id"]],
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "steps": [{**s, "redaction_seal": redaction_seal(rules, s)} for s in map(current, steps)],
        }


def jsonl_line(record: dict) -> str:
    """One export record as a line of JSONL."""
    return json.dumps(record, ensure_ascii=False) + "\n"


# --- import --------------------------------------------------------------------------------------------------


def read_jsonl(path: Path, f: IO[bytes]) -> Iterator[Any]:
    """The JSON value on each non-blank line; a line that is not JSON (or not UTF-8) stops with its number."""
    for n, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            yield json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise StoreError(f"{path} line {n} is not JSONL from `logs export` ({e})") from None


def import_episodes(store: TrajectoryStore, records: Iterable[Any], batch: int = 500) -> dict[str, int]:
    """Insert exported episodes; ids already present are skipped, so importing twice changes nothing.

    Batches of `batch` episodes share one transaction. Text is redacted again unless the step's
    `redaction_seal` shows it is exactly the text these redaction rules produced; a step with any redactions is
    not trainable. Imported steps get new local `seq` numbers: they are new to this store's updater. A bad
    record stops the import with a StoreError naming it; what came before it stays imported.
    """
    counts = {"sessions": 0, "episodes": 0, "steps": 0, "skipped_episodes": 0}
    extra = tuple(store.settings.redact_patterns)
    rules = redaction_rules_id(extra)
    chunk: list[dict] = []

    def flush() -> None:
        if chunk:
            _insert(store, [_import_rows(rec, extra, rules) for rec in chunk], counts)
            chunk.clear()

    def stop(problem: str, before: int) -> StoreError:
        flush()  # what came before is good: keep it, so a rerun after the fix adds only the rest
        if before:
            problem += (f"; everything before it was imported ({before} episodes, {counts['episodes']} new), and "
                        "importing again skips it")
        return StoreError(problem)

    it, n = iter(records), 0
    while True:
        try:
            rec = next(it, _END)
        except StoreError as e:  # the reader's own complaint, e.g. a line that is not JSON
            raise stop(str(e), n) from None
        if rec is _END:
            break
        n += 1
        if problem := record_problem(rec):
            raise stop(f"record {n} is not an episode from `logs export`: {problem}", n - 1)
        chunk.append(rec)
        if len(chunk) >= batch:
            flush()
    flush()
    return counts


def _import_rows(rec: dict, extra: tuple[str, ...], rules: str | None) -> tuple[dict, dict, list[dict]]:
    """(session, episode, steps) rows for one record, redacted and storable."""
    session = _storable_row({k: rec["session"].get(k) for k in SESSION_FIELDS})
    session["kind"] = session["kind"] or "agent"
    session["started_at"] = session["started_at"] or rec.get("started_at")
    ep = {k: rec.get(k) for k in EPISODE_FIELDS}
    ep["status"] = ep["status"] or "done"
    ep["prompt"] = json.loads(ep["prompt"]) if isinstance(ep["prompt"], str) else ep["prompt"] or []
    ep = episode_redacted_now(ep, extra)  # an episode's own text is redacted every time: it has no seal
    ep["prompt"] = json.dumps(ep["prompt"], ensure_ascii=False)
    steps = []
    for s in rec.get("steps", []):
        row = _storable_row({k: s.get(k) for k in STEP_INSERT_FIELDS})
        row["episode_id"] = ep["id"]
        if rules is None or s.get("redaction_seal") != redaction_seal(rules, row):
            row = redacted_now(row, extra)
        row["output"] = row["output"] or ""
        row["redactions"] = row["redactions"] or 0
        trainable = row["trainable"] if row["trainable"] is not None else 1
        row["trainable"] = int(bool(trainable) and not row["redactions"])
        for k, default in _STEP_DEFAULTS:
            if row[k] is None:
                row[k] = default
        steps.append(row)
    return session, _storable_row(ep), steps


def _insert(store: TrajectoryStore, rows: list[tuple[dict, dict, list[dict]]], counts: dict[str, int]) -> None:
    """One transaction for a batch of records."""
    sessions = {session["id"]: session for session, _, _ in rows}
    episodes = [ep for _, ep, _ in rows]
    steps = [s for _, _, ep_steps in rows for s in ep_steps]
    try:
        with store.transaction() as c:
            c.execute("PRAGMA defer_foreign_keys=ON")  # a chat turn may arrive before its parent
            counts["sessions"] += c.executemany(_INSERT_SESSION, list(sessions.values())).rowcount
            added = c.executemany(_INSERT_EPISODE, episodes).rowcount
            counts["episodes"] += added
            counts["skipped_episodes"] += len(episodes) - added
            counts["steps"] += c.executemany(_INSERT_STEP, steps).rowcount
    except sqlite3.IntegrityError as e:
        raise StoreError(f"cannot import these records ({e}); is this a file from `logs export`?") from e


def record_problem(rec: Any) -> str | None:
    """Why `rec` cannot be imported as an exported episode, or None. Only the shape is checked here; values
    are redacted, and the database's own constraints judge the rest."""
    if not isinstance(rec, dict):
        return f"a JSON {type(rec).__name__}, not an object"
    if not isinstance(rec.get("id"), str) or not rec["id"]:
        return "it has no episode id"
    session = rec.get("session")
    if not isinstance(session, dict) or not isinstance(session.get("id"), str):
        return f"episode {rec['id']} has no session with an id"
    steps = rec.get("steps", [])
    if not isinstance(steps, list) or not all(isinstance(st, dict) and isinstance(st.get("id"), str) for st in steps):
        return f"episode {rec['id']}: `steps` is not a list of steps with ids"
    if isinstance(rec.get("prompt"), str):
        try:
            json.loads(rec["prompt"])
        except json.JSONDecodeError:
            return f"episode {rec['id']}: its prompt is text but not JSON"
    for what, row, fields in [("episode", rec, EPISODE_FIELDS), ("session", session, SESSION_FIELDS),
                              *(("step " + st["id"], st, STEP_INSERT_FIELDS) for st in steps)]:
        bad = [f for f in fields if not isinstance(row.get(f), _SCALAR) and not (f == "prompt" and what == "episode")]
        if bad:
            return f"episode {rec['id']}: {what} has a non-text value in {', '.join(bad)}"
    return None


def _storable_row(row: dict) -> dict:
    """Every text of an imported row `storable`: an import file is outside data, and JSON can carry a lone
    surrogate (`\\udcff`) that SQLite's UTF-8 cannot."""
    return {k: storable(v) if isinstance(v, str) else v for k, v in row.items()}
