"""TrajectoryStore: every session, episode and step, committed as it happens (SQLite via sqlite-utils).

- WAL mode, a 30 s busy timeout, foreign keys on.
- Durability (`durable=True`, the default): synchronous=FULL, so `record_step` returns only after its own
  transaction is committed *and fsynced*; a crash of the process, the OS or the power loses at most the step in
  flight. With `durable=False` (synchronous=NORMAL) a killed process still loses nothing committed (WAL), but an
  OS crash or power cut may lose the last few committed steps. FULL is the default on purpose: the fsync costs
  1-3 ms per step (benchmarks/store_scale.py measures both: ~350 vs ~800 steps/s back to back on a shared VM
  disk), invisible next to the model call and the command that produce each step, and the steps are the
  training data the updater cannot get back. The
  benchmark compares each mode with a bare sqlite3 loop at the same level. Batched writes (import) pay one
  fsync per batch whichever mode.
- Writes start with BEGIN IMMEDIATE: a writer waits for the lock (busy timeout) instead of failing with
  SQLITE_BUSY when a deferred read transaction tries to upgrade.
- The schema comes only from echo_agent/memory/migrations.py. A database that records a migration this code does
  not know is refused before anything is written to it.
- Hot paths (record_step, iter_steps, import) use plain SQL on the connection; sqlite-utils runs the migrations.
  record_step is one INSERT (idx computed inside it) between BEGIN IMMEDIATE and COMMIT.
- Exports carry a `redaction_seal` per step: a hash of the redaction rules that produced the text (the redact
  module's source and the user's patterns) and of the text itself. Import re-redacts every step whose seal does
  not match this store's rules and the step's text exactly, so only unchanged exports from the same rules skip
  the (idempotent) second pass.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import socket
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from echo_agent.config import Settings, home_dir
from echo_agent.memory.migrations import KNOWN, MIGRATION_SET, migrations
from echo_agent.memory.redact import redact, storable
from echo_agent.observation import exit_code_from_status

if TYPE_CHECKING:
    from echo_agent.shell.result import ShellResult


class StoreError(Exception):
    """The store cannot be used; the message says which file, why, and what to do."""


STEP_FIELDS = [
    "id", "seq", "episode_id", "idx", "author", "reply", "command", "output", "status", "note", "exit_code",
    "cwd_before", "cwd_after", "started_at", "duration_ms", "timed_out", "truncated", "output_bytes",
    "redactions", "kind", "source", "predicted_output", "confidence", "confidence_mean", "confidence_min",
    "verified", "verify_f1", "surprise", "trainable",
]
EPISODE_FIELDS = [
    "id", "session_id", "parent_episode_id", "task", "prompt", "adapter_id", "status", "answer", "started_at",
    "ended_at", "pid", "heartbeat_at",
]
SESSION_FIELDS = ["id", "started_at", "ended_at", "hostname", "shell", "model", "kind"]
_STEP_INSERT_FIELDS = [f for f in STEP_FIELDS if f != "seq"]
_INSERT_STEP = (
    f"INSERT INTO step ({', '.join(_STEP_INSERT_FIELDS)}) "
    f"VALUES ({', '.join(':' + f for f in _STEP_INSERT_FIELDS)})"
)
# record_step's one statement: idx is the episode's next index, read under the same write lock (BEGIN IMMEDIATE),
# so two writers cannot take the same idx and no separate SELECT round trip is needed.
_RECORD_STEP = (
    f"INSERT INTO step ({', '.join(_STEP_INSERT_FIELDS)}) SELECT "
    + ", ".join("(SELECT coalesce(max(idx), -1) + 1 FROM step WHERE episode_id = :episode_id)" if f == "idx"
                else ":" + f for f in _STEP_INSERT_FIELDS)
)
_REDACTED_FIELDS = ("reply", "command", "output", "predicted_output")
"""Step text that is redacted before it is stored (and again on import, unless its seal matches)."""


SEARCH_WINDOW = 2000
"""`search` ranks the newest this-many matches (see TrajectoryStore.search)."""
RECENT_RUNS_WINDOW = 2000
"""`recent_runs` looks at the newest this-many steps: a command not run in that long is not recalled."""


def default_db_path() -> Path:
    return home_dir() / "store.db"


def now() -> str:
    """ISO 8601 UTC, microseconds: sorts as text."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def task_identity(task: str) -> str:
    """A task's identity for per-task statistics: lower-cased, whitespace collapsed (DESIGN.md)."""
    return " ".join(task.lower().split())


def fts_query(text: str) -> str:
    """User text as an FTS5 query that cannot raise: every whitespace-separated word a quoted phrase (AND)."""
    return " ".join('"' + word.replace('"', '""') + '"' for word in storable(text).split())


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
    for name in _REDACTED_FIELDS:
        text = step.get(name)
        data = b"" if text is None else text.encode("utf-8", "surrogatepass")
        h.update(b"N" if text is None else b"T" + len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _under(path: str | None, directory: str) -> bool:
    if not path:
        return False
    d = os.path.normpath(os.path.expanduser(directory))
    p = os.path.normpath(path)
    return p == d or p.startswith(d.rstrip("/") + "/")


def pid_alive(pid: int | None) -> bool:
    """Is a process with this pid running on this machine?"""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class TrajectoryStore:
    """The trajectory store. Open one per process; it is not shared between threads.

    `durable`: fsync every commit (synchronous=FULL), so an OS crash or power cut also loses at most the step in
    flight; False (synchronous=NORMAL) still survives any crash of this process. See the module docstring.
    """

    def __init__(self, path: str | Path | None = None, settings: Settings | None = None, *,
                 durable: bool = True, must_exist: bool = False) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        if must_exist and not self.path.exists():  # a mistyped --db should not become a new, empty store
            raise StoreError(f"there is no store at {self.path}; `echo-agent logs path` shows the default one")
        self.settings = settings or Settings.load()
        self.durable = durable
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=30.0)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot open {self.path} as a store ({e}); pass --db with a file path") from e
        self.conn = conn
        self.db = Database(conn, execute_plugins=False)
        try:
            pending = self._check_schema()
            self.db.enable_wal()
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
                raise
            conn.close()
            raise StoreError(
                f"{self.path} is not a usable echo-agent store ({e}); move it aside and run again, or pass --db"
            ) from e
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        if pending:
            self._migrate()

    # --- opening -------------------------------------------------------------------------------------------

    def _check_schema(self) -> bool:
        """Read-only checks; True when migrations are pending. Raises StoreError for a newer or foreign schema."""
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        applied: list[str] = []
        if migrations.migrations_table in tables:
            applied = [r[0] for r in self.conn.execute(
                f"SELECT name FROM {migrations.migrations_table} WHERE migration_set=? ORDER BY rowid",
                [MIGRATION_SET])]
        unknown = [name for name in applied if name not in KNOWN]
        if unknown:
            raise StoreError(
                f"{self.path} was written by a newer echo-agent (schema migration {', '.join(unknown)} is unknown "
                "here); upgrade echo-agent, or pass --db to use another store. The file was not changed."
            )
        if not applied and tables - {migrations.migrations_table}:
            raise StoreError(
                f"{self.path} is not a usable echo-agent store (it holds other tables: "
                f"{', '.join(sorted(tables)[:5])}); move it aside and run again, or pass --db"
            )
        return len(applied) < len(KNOWN)

    def _migrate(self) -> None:
        # Two processes may open a fresh file at once: take the write lock, then look again.
        with self._write():
            if migrations.pending(self.db):
                migrations.apply(self.db)

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: BEGIN IMMEDIATE … COMMIT (rolled back on any exception)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        try:
            self.conn.execute("COMMIT")
        except sqlite3.DatabaseError:  # e.g. a deferred foreign key failed: leave no transaction open
            self.conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> TrajectoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[dict]:
        cur = self.conn.execute(sql, list(params))
        keys = [d[0] for d in cur.description]
        return [dict(zip(keys, row, strict=True)) for row in cur]

    # --- sessions and episodes -----------------------------------------------------------------------------

    def start_session(self, kind: str = "agent", model: str | None = None, shell: str | None = None) -> str:
        sid = str(uuid.uuid4())
        with self._write() as c:
            c.execute("INSERT INTO session (id, started_at, hostname, shell, model, kind) VALUES (?,?,?,?,?,?)",
                      [sid, now(), socket.gethostname(), shell, model, kind])
        return sid

    def end_session(self, session_id: str) -> None:
        with self._write() as c:
            c.execute("UPDATE session SET ended_at=? WHERE id=?", [now(), session_id])

    def start_episode(self, session_id: str, task: str, prompt: dict | list, adapter_id: str | None = None,
                      parent_episode_id: str | None = None) -> str:
        """A new `running` episode; `prompt` is the system prompt and in-context examples the model saw."""
        eid = str(uuid.uuid4())
        t = now()
        extra = tuple(self.settings.redact_patterns)
        with self._write() as c:
            c.execute(
                "INSERT INTO episode (id, session_id, parent_episode_id, task, prompt, adapter_id, status, "
                "started_at, pid, heartbeat_at) VALUES (?,?,?,?,?,?,'running',?,?,?)",
                [eid, session_id, parent_episode_id, redact(task, extra)[0],
                 json.dumps(_redact_json(prompt, extra), ensure_ascii=False), adapter_id, t, os.getpid(), t])
        return eid

    def heartbeat(self, episode_id: str) -> None:
        with self._write() as c:
            c.execute("UPDATE episode SET heartbeat_at=? WHERE id=?", [now(), episode_id])

    def finish_episode(self, episode_id: str, status: str, answer: str | None = None) -> None:
        with self._write() as c:
            c.execute("UPDATE episode SET status=?, answer=?, ended_at=?, heartbeat_at=? WHERE id=?",
                      [status, answer and redact(answer, tuple(self.settings.redact_patterns))[0], now(), now(),
                       episode_id])

    def get_episode(self, episode_id: str) -> dict | None:
        """The episode (prompt decoded), or None. A unique id prefix of 8+ characters also works."""
        rows = self._rows("SELECT * FROM episode WHERE id=?", [episode_id])
        if not rows and len(episode_id) >= 8:
            rows = self._rows("SELECT * FROM episode WHERE id LIKE ? LIMIT 2", [episode_id + "%"])
            rows = rows if len(rows) == 1 else []
        return _decode_episode(rows[0]) if rows else None

    def get_step(self, step_id: str) -> dict | None:
        rows = self._rows("SELECT * FROM step WHERE id=?", [step_id])
        return rows[0] if rows else None

    def episode_steps(self, episode_id: str) -> list[dict]:
        return self._rows("SELECT * FROM step WHERE episode_id=? ORDER BY idx", [episode_id])

    def episode_chain(self, episode_id: str) -> list[dict]:
        """The earlier turns of a chat episode, oldest first (not including the episode itself)."""
        chain: list[dict] = []
        ep = self.get_episode(episode_id)
        seen = {episode_id}
        while ep and ep["parent_episode_id"] and ep["parent_episode_id"] not in seen:
            seen.add(ep["parent_episode_id"])
            ep = self.get_episode(ep["parent_episode_id"])
            if ep:
                chain.append(ep)
        return chain[::-1]

    def recent_episodes(self, n: int = 20) -> list[dict]:
        """Newest first, each with its step count."""
        rows = self._rows(
            "SELECT e.*, (SELECT count(*) FROM step s WHERE s.episode_id=e.id) AS n_steps "
            "FROM episode e ORDER BY e.started_at DESC LIMIT ?", [n])
        return [_decode_episode(r) for r in rows]

    def running_episodes(self) -> list[dict]:
        """Episodes still running. One whose process is gone (same host) is marked `aborted` and left out."""
        host = socket.gethostname()
        rows = self._rows("SELECT e.*, s.hostname FROM episode e JOIN session s ON s.id=e.session_id "
                          "WHERE e.status='running'")
        dead = [r["id"] for r in rows if r["hostname"] == host and not pid_alive(r["pid"])]
        if dead:
            with self._write() as c:
                c.executemany("UPDATE episode SET status='aborted', ended_at=? WHERE id=? AND status='running'",
                              [(now(), i) for i in dead])
        return [_decode_episode(r) for r in rows if r["id"] not in dead]

    # --- steps ---------------------------------------------------------------------------------------------

    def record_step(
        self, episode_id: str, *, reply: str | None, command: str | None, result: ShellResult | None = None,
        author: str = "agent", kind: str = "action", source: str = "executed", note: str = "",
        output: str = "", status: str | None = None, cwd_before: str | None = None,
        predicted_output: str | None = None, confidence: float | None = None,
        confidence_mean: float | None = None, confidence_min: float | None = None, verified: int | None = None,
        verify_f1: float | None = None, surprise: float | None = None, trainable: bool = True,
    ) -> str:
        """Store one step in its own transaction; returns its id after the commit.

        With `result`, the shell's fields are used; without one (a format error, or a recalled step whose
        prediction is given as `output`/`status`) the keyword arguments are. Command, reply, output and the
        prediction are redacted first; a step with redactions, run under an excluded directory, or recalled, is
        stored with trainable=0.
        """
        extra = tuple(self.settings.redact_patterns)
        if result is not None:
            output, status, cwd_before = result.output, result.status, result.cwd_before
            note = "\n".join(x for x in (result.note, note) if x)
        total = 0
        red: dict[str, str | None] = {}
        for name, text in zip(_REDACTED_FIELDS, (reply, command, output, predicted_output), strict=True):
            if text:
                text, n = redact(text, extra)
                total += n
            red[name] = text
        excluded = any(_under(cwd_before, d) for d in self.settings.excluded_dirs)
        row = {
            "id": str(uuid.uuid4()), "episode_id": episode_id, "author": author, "reply": red["reply"],
            "command": red["command"], "output": red["output"] or "", "status": status, "note": note,
            "exit_code": result.exit_code if result is not None else exit_code_from_status(status or ""),
            "cwd_before": cwd_before, "cwd_after": result.cwd_after if result is not None else None,
            "started_at": result.started_at if result is not None else now(),
            "duration_ms": result.duration_ms if result is not None else None,
            "timed_out": int(result.timed_out) if result is not None else 0,
            "truncated": int(result.truncated) if result is not None else 0,
            "output_bytes": (result.output_bytes if result is not None
                             else len((output or "").encode("utf-8", "surrogatepass"))),
            "redactions": total, "kind": kind, "source": source, "predicted_output": red["predicted_output"],
            "confidence": confidence, "confidence_mean": confidence_mean, "confidence_min": confidence_min,
            "verified": verified, "verify_f1": verify_f1, "surprise": surprise,
            "trainable": int(trainable and not total and not excluded and source != "recalled"),
        }
        for k in ("status", "note", "cwd_before", "cwd_after"):  # the redacted fields are storable already
            if row[k]:
                row[k] = storable(row[k])
        with self._write() as c:
            c.execute(_RECORD_STEP, row)
        return row["id"]

    def iter_steps(self, since_seq: int = 0, trainable_only: bool = False, batch: int = 500) -> Iterator[dict]:
        """Steps with seq > since_seq in seq order, read in batches (no long-lived read transaction)."""
        last = since_seq
        where = " AND trainable=1" if trainable_only else ""
        while True:
            rows = self._rows(f"SELECT * FROM step WHERE seq > ?{where} ORDER BY seq LIMIT ?", [last, batch])
            yield from rows
            if len(rows) < batch:
                return
            last = rows[-1]["seq"]

    def search(self, query: str, limit: int = 20) -> list[dict]:
        """Steps matching every word of `query` (FTS5), each with a snippet of its output: the newest
        SEARCH_WINDOW matches, ranked by bm25.

        bm25 costs a read per matching row, so ranking every match of a common word grows with the store (~65 ms
        at 20k steps); ranking the newest matches keeps a search a few milliseconds at any size, and recent
        history is what a user looks for. The window is found from the doclist alone (rowid order is free).
        """
        q = fts_query(query)
        if not q:
            return []
        row = self.conn.execute("SELECT min(rowid) FROM (SELECT rowid FROM step_fts WHERE step_fts MATCH ? "
                                "ORDER BY rowid DESC LIMIT ?)", [q, SEARCH_WINDOW]).fetchone()
        if row[0] is None:
            return []
        # Rank and cut inside FTS5 first, then read only those `limit` step rows: joining every match to `step`
        # would walk each large output's overflow pages to reach the later columns.
        return self._rows(
            "SELECT s.id, s.episode_id, s.idx, s.command, s.started_at, e.task, f.rank, f.snippet "
            "FROM (SELECT rowid, rank, snippet(step_fts, 1, '[', ']', '…', 12) AS snippet FROM step_fts "
            "      WHERE step_fts MATCH ? AND rowid >= ? ORDER BY rank LIMIT ?) f "
            "JOIN step s ON s.seq = f.rowid JOIN episode e ON e.id = s.episode_id ORDER BY f.rank",
            [q, row[0], limit])

    def recent_runs(self, command: str, cwd: str | None, n: int, window: int = RECENT_RUNS_WINDOW
                    ) -> list[tuple[str, str | None]]:
        """(output, status) of the newest `n` executed runs of exactly `command` in `cwd`, newest first, among
        the newest `window` steps.

        A range scan on seq, newest first: no index on `command` is paid by every write, and the FTS index is no
        shortcut (a command's common words, `grep -r error`, have doclists as long as the store: ~300 ms at 100k
        steps, against a few ms for this scan). The command is redacted first, as it was stored: a command
        holding a secret matches nothing.
        """
        command, hidden = redact(command, tuple(self.settings.redact_patterns))
        if hidden:
            return []
        return [(r["output"], r["status"]) for r in self._rows(
            "SELECT output, status FROM step WHERE seq > (SELECT coalesce(max(seq), 0) FROM step) - ? "
            "AND command = ? AND cwd_before IS ? AND source = 'executed' ORDER BY seq DESC LIMIT ?",
            [window, command, cwd, n])]

    # --- adapters (minimal; the updater extends them) -------------------------------------------------------

    def next_adapter_id(self) -> str:
        row = self.conn.execute("SELECT max(CAST(substr(id, 2) AS INTEGER)) FROM adapter").fetchone()
        return f"a{(row[0] or 0) + 1:04d}"

    def insert_adapter(self, **fields: Any) -> str:
        fields.setdefault("id", self.next_adapter_id())
        fields.setdefault("created_at", now())
        if isinstance(fields.get("metrics"), dict):
            fields["metrics"] = json.dumps(fields["metrics"])
        cols = list(fields)
        with self._write() as c:
            c.execute(f"INSERT INTO adapter ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                      [fields[k] for k in cols])
        return fields["id"]

    def get_adapter(self, adapter_id: str) -> dict | None:
        rows = self._rows("SELECT * FROM adapter WHERE id=?", [adapter_id])
        return _decode_adapter(rows[0]) if rows else None

    def list_adapters(self, status: str | None = None) -> list[dict]:
        if status:
            return [_decode_adapter(r) for r in self._rows("SELECT * FROM adapter WHERE status=? ORDER BY id",
                                                           [status])]
        return [_decode_adapter(r) for r in self._rows("SELECT * FROM adapter ORDER BY id")]

    def set_adapter_status(self, adapter_id: str, status: str) -> None:
        with self._write() as c:
            c.execute("UPDATE adapter SET status=? WHERE id=?", [status, adapter_id])

    def update_adapter(self, adapter_id: str, **fields: Any) -> None:
        """Set columns of one adapter row (status, metrics as JSON text, …) in one transaction."""
        allowed = {"status", "metrics", "path", "trained_through_seq", "n_env_tokens"}
        if not fields or set(fields) - allowed:
            raise ValueError(f"update_adapter takes {sorted(allowed)}, got {sorted(fields)}")
        cols = ", ".join(f"{k}=?" for k in fields)
        with self._write() as c:
            c.execute(f"UPDATE adapter SET {cols} WHERE id=?", [*fields.values(), adapter_id])

    def pending_output_chars(self, since_seq: int) -> int:
        """Characters of trainable output recorded after `since_seq` (the updater's "enough new data" check)."""
        row = self.conn.execute("SELECT coalesce(sum(length(output)), 0) FROM step WHERE trainable=1 AND seq > ?",
                                [since_seq]).fetchone()
        return int(row[0])

    def set_surprise(self, surprise: dict[str, float]) -> None:
        """Store each step's env-token CE under the adapter in use when the updater last saw it."""
        with self._write() as c:
            c.executemany("UPDATE step SET surprise=? WHERE id=?", [(v, k) for k, v in surprise.items()])

    def record_adapter_steps(self, adapter_id: str, step_ids: Iterable[str]) -> None:
        with self._write() as c:
            c.executemany("INSERT OR IGNORE INTO adapter_step (adapter_id, step_id) VALUES (?, ?)",
                          [(adapter_id, s) for s in step_ids])

    # --- export / import ---------------------------------------------------------------------------------

    def export_episodes(self, since: str | None = None) -> Iterator[dict]:
        """Every episode (started at or after `since`, ISO text) with its session, steps and chat messages.

        Each record has the same keys and value types, so `datasets.load_dataset("json", …)` reads a JSONL of
        them: `prompt` is the stored JSON text, `messages` the transcript as {role, content}. Each step carries
        its `redaction_seal` (see the module docstring).
        """
        from echo_agent.transcript import render_episode

        rules = redaction_rules_id(tuple(self.settings.redact_patterns))

        sql = "SELECT * FROM episode" + (" WHERE started_at >= ?" if since else "") + " ORDER BY started_at"
        sessions: dict[str, dict] = {}
        for ep in self._rows(sql, [since] if since else []):
            if ep["session_id"] not in sessions:
                sessions[ep["session_id"]] = self._rows("SELECT * FROM session WHERE id=?", [ep["session_id"]])[0]
            steps = self.episode_steps(ep["id"])
            decoded = _decode_episode(ep)
            messages = render_episode(decoded, steps, settings=self.settings)
            yield {
                **{k: ep[k] for k in EPISODE_FIELDS},
                "session": sessions[ep["session_id"]],
                "messages": [{"role": m.role, "content": m.content} for m in messages],
                "steps": [{**{k: s[k] for k in STEP_FIELDS if k != "seq"}, "redaction_seal": redaction_seal(rules, s)}
                          for s in steps],
            }

    def import_episodes(self, records: Iterable[dict], batch: int = 500) -> dict[str, int]:
        """Insert exported episodes; ids already present are skipped, so importing twice changes nothing.

        Batches of `batch` episodes share one transaction. Text is redacted again (an import file is outside
        data) unless the step's `redaction_seal` shows it is exactly the text these redaction rules produced;
        a step with any redactions is not trainable. Imported steps get new local `seq` numbers: they are new to
        this store's updater.
        """
        counts = {"sessions": 0, "episodes": 0, "steps": 0, "skipped_episodes": 0}
        chunk: list[dict] = []
        extra = tuple(self.settings.redact_patterns)
        rules = redaction_rules_id(extra)

        def flush() -> None:
            if not chunk:
                return
            sessions, episodes, steps = {}, [], []
            for rec in chunk:
                session = _storable_row({k: rec["session"].get(k) for k in SESSION_FIELDS})
                session["kind"] = session["kind"] or "agent"
                session["started_at"] = session["started_at"] or rec.get("started_at")
                sessions[session["id"]] = session
                ep = {k: rec.get(k) for k in EPISODE_FIELDS}
                ep["status"] = ep["status"] or "done"
                prompt = json.loads(ep["prompt"]) if isinstance(ep["prompt"], str) else ep["prompt"] or []
                ep["prompt"] = json.dumps(_redact_json(prompt, extra), ensure_ascii=False)
                for k in ("task", "answer"):  # an episode's own text is redacted every time: it has no seal
                    if isinstance(ep[k], str):
                        ep[k] = redact(ep[k], extra)[0]
                episodes.append(_storable_row(ep))
                for s in rec.get("steps", []):
                    row = _storable_row({k: s.get(k) for k in _STEP_INSERT_FIELDS})
                    row["episode_id"] = ep["id"]
                    n = 0
                    if rules is None or s.get("redaction_seal") != redaction_seal(rules, row):
                        for k in _REDACTED_FIELDS:
                            if row[k]:
                                row[k], m = redact(row[k], extra)
                                n += m
                    row["output"] = row["output"] or ""
                    row["redactions"] = (row["redactions"] or 0) + n
                    trainable = row["trainable"] if row["trainable"] is not None else 1
                    row["trainable"] = int(bool(trainable) and not row["redactions"])
                    for k, default in (("note", ""), ("author", "agent"), ("kind", "action"),
                                       ("source", "executed"), ("timed_out", 0), ("truncated", 0)):
                        if row[k] is None:
                            row[k] = default
                    steps.append(row)
            try:
                insert(sessions, episodes, steps)
            except sqlite3.IntegrityError as e:
                raise StoreError(f"cannot import these records ({e}); is this a file from `logs export`?") from e
            chunk.clear()

        def insert(sessions: dict, episodes: list, steps: list) -> None:
            with self._write() as c:
                c.execute("PRAGMA defer_foreign_keys=ON")  # a chat turn may arrive before its parent
                # ON CONFLICT(id) DO NOTHING skips known ids only; OR IGNORE would also hide NOT NULL failures.
                counts["sessions"] += c.executemany(
                    f"INSERT INTO session ({', '.join(SESSION_FIELDS)}) "
                    f"VALUES ({', '.join(':' + f for f in SESSION_FIELDS)}) ON CONFLICT(id) DO NOTHING", list(sessions.values())).rowcount
                added = c.executemany(
                    f"INSERT INTO episode ({', '.join(EPISODE_FIELDS)}) "
                    f"VALUES ({', '.join(':' + f for f in EPISODE_FIELDS)}) ON CONFLICT(id) DO NOTHING", episodes).rowcount
                counts["episodes"] += added
                counts["skipped_episodes"] += len(episodes) - added
                counts["steps"] += c.executemany(_INSERT_STEP + " ON CONFLICT(id) DO NOTHING", steps).rowcount

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
            if problem := _record_problem(rec):
                raise stop(f"record {n} is not an episode from `logs export`: {problem}", n - 1)
            chunk.append(rec)
            if len(chunk) >= batch:
                flush()
        if chunk:
            flush()
        return counts

    # --- forget ----------------------------------------------------------------------------------------------

    def forget_plan(self, episode_ids: Iterable[str] = (), query: str | None = None, since: str | None = None,
                    until: str | None = None, directory: str | None = None) -> dict:
        """What `forget` would delete: steps matching ALL the given criteria, the episodes they would empty
        (or that were named by id), and the adapters that trained on those steps."""
        where, params = [], []
        ids = list(episode_ids)
        if ids:
            where.append(f"episode_id IN ({', '.join('?' * len(ids))})")
            params += ids
        if query:
            q = fts_query(query)
            where.append("seq IN (SELECT rowid FROM step_fts WHERE step_fts MATCH ?)")
            params.append(q or '""')
        if since:
            where.append("started_at >= ?")
            params.append(since)
        if until:
            where.append("started_at < ?")
            params.append(until)
        if directory:
            d = storable(os.path.normpath(os.path.expanduser(directory)).rstrip("/") or "/")  # as the shell stored it
            where.append("(cwd_before = ? OR cwd_before LIKE ? ESCAPE '\\')")
            params += [d, _like_escape(d.rstrip("/") + "/") + "%"]
        if not where:
            raise StoreError("forget needs at least one of: episode ids, a query, since/until, a directory")
        steps = self._rows(f"SELECT seq, id, episode_id FROM step WHERE {' AND '.join(where)}", params)
        seqs = {s["seq"] for s in steps}
        touched = {s["episode_id"] for s in steps} | set(ids)
        emptied = []
        for eid in sorted(touched):
            left = self.conn.execute("SELECT seq FROM step WHERE episode_id=?", [eid]).fetchall()
            exists = self.conn.execute("SELECT 1 FROM episode WHERE id=?", [eid]).fetchone()
            if exists and all(r[0] in seqs for r in left):
                emptied.append(eid)
        step_ids = [s["id"] for s in steps]
        adapters: set[str] = set()
        for i in range(0, len(step_ids), 500):
            part = step_ids[i : i + 500]
            adapters |= {r[0] for r in self.conn.execute(
                f"SELECT DISTINCT adapter_id FROM adapter_step WHERE step_id IN ({', '.join('?' * len(part))})",
                part)}
        return {"step_seqs": sorted(seqs), "episodes": emptied, "adapters": sorted(adapters)}

    def forget(self, episode_ids: Iterable[str] = (), query: str | None = None, since: str | None = None,
               until: str | None = None, directory: str | None = None) -> dict[str, int]:
        """Delete the steps `forget_plan` selects and the episodes left empty; mark adapters that trained on
        them `stale`. The FTS index follows through its delete trigger. Returns counts."""
        plan = self.forget_plan(episode_ids, query, since, until, directory)
        with self._write() as c:
            c.executemany("UPDATE adapter SET status='stale' WHERE id=?", [(a,) for a in plan["adapters"]])
            c.executemany("DELETE FROM step WHERE seq=?", [(s,) for s in plan["step_seqs"]])
            c.executemany("UPDATE episode SET parent_episode_id=NULL WHERE parent_episode_id=?",
                          [(e,) for e in plan["episodes"]])
            c.executemany("DELETE FROM episode WHERE id=?", [(e,) for e in plan["episodes"]])
        return {"steps": len(plan["step_seqs"]), "episodes": len(plan["episodes"]),
                "adapters_stale": len(plan["adapters"])}

    # --- statistics -----------------------------------------------------------------------------------------

    def task_counts(self) -> list[dict]:
        """Per task identity: episode count, first and last start, and episodes per day; most frequent first."""
        tasks: dict[str, dict] = {}
        for task, started in self.conn.execute("SELECT task, started_at FROM episode ORDER BY started_at"):
            t = tasks.setdefault(task_identity(task), {"task": task_identity(task), "episodes": 0,
                                                       "first": started, "last": started, "by_day": {}})
            t["episodes"] += 1
            t["last"] = started
            day = started[:10]
            t["by_day"][day] = t["by_day"].get(day, 0) + 1
        return sorted(tasks.values(), key=lambda t: (-t["episodes"], t["task"]))

    def stats(self) -> dict:
        def one(sql: str) -> Any:
            return self.conn.execute(sql).fetchone()[0]

        files = [self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")]
        return {
            "path": str(self.path),
            "sessions": one("SELECT count(*) FROM session"),
            "episodes": one("SELECT count(*) FROM episode"),
            "steps": one("SELECT count(*) FROM step"),
            "trainable_steps": one("SELECT count(*) FROM step WHERE trainable=1"),
            "redacted_steps": one("SELECT count(*) FROM step WHERE redactions > 0"),
            "output_chars": one("SELECT coalesce(sum(length(output)), 0) FROM step"),
            "bytes": sum(f.stat().st_size for f in files if f.exists()),
            "max_seq": one("SELECT coalesce(max(seq), 0) FROM step"),
            "episodes_by_status": dict(self.conn.execute("SELECT status, count(*) FROM episode GROUP BY status")),
            "tasks": self.task_counts(),
        }


_SCALAR = (str, int, float, type(None))
_END = object()


def _record_problem(rec: Any) -> str | None:
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
                              *(("step " + st["id"], st, _STEP_INSERT_FIELDS) for st in steps)]:
        bad = [f for f in fields if not isinstance(row.get(f), _SCALAR) and not (f == "prompt" and what == "episode")]
        if bad:
            return f"episode {rec['id']}: {what} has a non-text value in {', '.join(bad)}"
    return None


def _redact_json(value: Any, extra: tuple[str, ...]) -> Any:
    """`value` (a prompt: messages, dicts, lists) with every string in it redacted. Redacting the JSON text
    instead could cut an escape sequence in two and leave text that is no longer JSON."""
    if isinstance(value, str):
        return redact(value, extra)[0]
    if isinstance(value, dict):
        return {k: _redact_json(v, extra) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_json(v, extra) for v in value]
    return value


def _storable_row(row: dict) -> dict:
    """Every text of an imported row `storable`: an import file is outside data, and JSON can carry a lone
    surrogate (`\\udcff`) that SQLite's UTF-8 cannot."""
    return {k: storable(v) if isinstance(v, str) else v for k, v in row.items()}


def _like_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _decode_episode(row: dict) -> dict:
    row = dict(row)
    row.pop("hostname", None)
    row["prompt"] = json.loads(row["prompt"]) if row.get("prompt") else []
    return row


def _decode_adapter(row: dict) -> dict:
    row = dict(row)
    row["metrics"] = json.loads(row["metrics"]) if row.get("metrics") else {}
    return row
