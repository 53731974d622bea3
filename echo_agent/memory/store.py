"""TrajectoryStore: every session, episode and step, committed as it happens (SQLite via sqlite-utils).

- WAL mode, a 30 s busy timeout, foreign keys on.
- Durability (`durable=True`, the default): synchronous=FULL, so `record_step` returns only after its own
  transaction is committed *and fsynced*; a crash of the process, the OS or the power loses at most the step in
  flight. With `durable=False` (synchronous=NORMAL) a killed process still loses nothing committed (WAL), but an
  OS crash or power cut may lose the last few committed steps. FULL is the default on purpose: the fsync costs
  1-3 ms per step (benchmarks/store_scale.py measures both: ~350 vs ~800 steps/s back to back on a shared VM
  disk), invisible next to the model call and the command that produce each step, and the steps are the
  training data the updater cannot get back. Batched writes (import) pay one fsync per batch whichever mode.
- Writes start with BEGIN IMMEDIATE: a writer waits for the lock (busy timeout) instead of failing with
  SQLITE_BUSY when a deferred read transaction tries to upgrade; past the timeout it is a StoreBusy.
- The schema comes only from echo_agent/memory/migrations.py. A database that records a migration this code does
  not know is refused before anything is written to it.
- Hot paths (record_step, iter_steps, import) use plain SQL on the connection; sqlite-utils runs the migrations.
  record_step is one INSERT (idx computed inside it) between BEGIN IMMEDIATE and COMMIT.

This module holds opening, the schema check, and the writes and reads of sessions, episodes and steps. The other
modules of this package hold the rest, as functions of a store: `exchange` (export and import), `forget`,
`adapters` and `cycles` (their rows) and `queries` (counts and statistics). They, and only they, run SQL: they use
`transaction()` and `rows()` below; nothing outside `echo_agent/memory/` touches the connection.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from echo_agent.config import Settings, home_dir
from echo_agent.errors import StoreBusy, StoreError
from echo_agent.memory.migrations import KNOWN, MIGRATION_SET, migrations
from echo_agent.memory.redact import redact, redact_json, storable
from echo_agent.observation import exit_code_from_status
from echo_agent.records import EpisodeStatus, SessionKind, StepKind, StepSource, task_identity

if TYPE_CHECKING:
    from echo_agent.shell.result import ShellResult

__all__ = ["StoreError", "TrajectoryStore", "default_db_path", "now", "pid_alive", "task_identity"]

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
STEP_INSERT_FIELDS = [f for f in STEP_FIELDS if f != "seq"]
# record_step's one statement: idx is the episode's next index, read under the same write lock (BEGIN IMMEDIATE),
# so two writers cannot take the same idx and no separate SELECT round trip is needed.
_RECORD_STEP = (
    f"INSERT INTO step ({', '.join(STEP_INSERT_FIELDS)}) SELECT "
    + ", ".join("(SELECT coalesce(max(idx), -1) + 1 FROM step WHERE episode_id = :episode_id)" if f == "idx"
                else ":" + f for f in STEP_INSERT_FIELDS)
)
REDACTED_FIELDS = ("reply", "command", "output", "predicted_output")
"""Step text that is redacted before it is stored (and again on import, unless its seal matches)."""


def redacted_now(step: dict, extra_patterns: Iterable[str] = ()) -> dict:
    """`step` as today's redaction rules would store it. Rules grow and the store is never rewritten, so a step
    stored under older rules may hold a secret they missed: the copy has it redacted, counted in `redactions`,
    and `trainable` 0. What leaves the store for training or export passes through here."""
    out = dict(step)
    found = 0
    for name in REDACTED_FIELDS:
        if out.get(name):
            out[name], n = redact(out[name], extra_patterns)
            found += n
    if found:
        out["redactions"] = (out.get("redactions") or 0) + found
        out["trainable"] = 0
    return out


def episode_redacted_now(episode: dict, extra_patterns: Iterable[str] = ()) -> dict:
    """`episode` (a row, its prompt as JSON text or decoded) with its task, answer and prompt as today's
    redaction rules would store them: the episode's part of `redacted_now`."""
    out = dict(episode)
    for name in ("task", "answer"):
        if isinstance(out.get(name), str):
            out[name] = redact(out[name], extra_patterns)[0]
    prompt = out.get("prompt")
    if isinstance(prompt, str):
        if prompt:
            out["prompt"] = json.dumps(redact_json(json.loads(prompt), extra_patterns), ensure_ascii=False)
    elif prompt is not None:
        out["prompt"] = redact_json(prompt, extra_patterns)
    return out


SNIPPET_OPEN, SNIPPET_CLOSE = "\x02", "\x03"
"""Marks around each match in a search snippet: characters terminal output does not hold, unlike the brackets
FTS5 is often given, which real output is full of (`ui.highlighted` shows them as bold)."""
SEARCH_WINDOW = 2000
"""`search` ranks the newest this-many matches (see TrajectoryStore.search)."""
RECENT_RUNS_WINDOW = 2000
"""`recent_runs` looks at the newest this-many steps: a command not run in that long is not recalled."""


def default_db_path() -> Path:
    return home_dir() / "store.db"


def now() -> str:
    """ISO 8601 UTC, microseconds: sorts as text."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def fts_query(text: str) -> str:
    """User text as an FTS5 query that cannot raise: every whitespace-separated word a quoted phrase (AND)."""
    return " ".join('"' + word.replace('"', '""') + '"' for word in storable(text).split())


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
        with self.transaction():
            if migrations.pending(self.db):
                migrations.apply(self.db)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: BEGIN IMMEDIATE … COMMIT (rolled back on any exception). Everything written
        inside it lands together or not at all, a crash included."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise (StoreBusy(self.path) if "locked" in str(e) else e) from e
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

    def rows(self, sql: str, params: Iterable[Any] | Mapping[str, Any] = ()) -> list[dict]:
        """The rows of a query, as dicts (`params` positional, or named for `:name` placeholders)."""
        cur = self.conn.execute(sql, params if isinstance(params, Mapping) else list(params))
        keys = [d[0] for d in cur.description]
        return [dict(zip(keys, row, strict=True)) for row in cur]

    # --- sessions and episodes -----------------------------------------------------------------------------

    def start_session(self, kind: SessionKind = SessionKind.AGENT, model: str | None = None,
                      shell: str | None = None) -> str:
        sid = str(uuid.uuid4())
        with self.transaction() as c:
            c.execute("INSERT INTO session (id, started_at, hostname, shell, model, kind) VALUES (?,?,?,?,?,?)",
                      [sid, now(), socket.gethostname(), shell, model, kind])
        return sid

    def end_session(self, session_id: str) -> None:
        with self.transaction() as c:
            c.execute("UPDATE session SET ended_at=? WHERE id=?", [now(), session_id])

    def start_episode(self, session_id: str, task: str, prompt: dict | list, adapter_id: str | None = None,
                      parent_episode_id: str | None = None) -> str:
        """A new `running` episode; `prompt` is the system prompt and in-context examples the model saw."""
        eid = str(uuid.uuid4())
        t = now()
        extra = tuple(self.settings.redact_patterns)
        with self.transaction() as c:
            c.execute(
                "INSERT INTO episode (id, session_id, parent_episode_id, task, prompt, adapter_id, status, "
                "started_at, pid, heartbeat_at) VALUES (?,?,?,?,?,?,'running',?,?,?)",
                [eid, session_id, parent_episode_id, redact(task, extra)[0],
                 json.dumps(redact_json(prompt, extra), ensure_ascii=False), adapter_id, t, os.getpid(), t])
        return eid

    def heartbeat(self, episode_id: str) -> None:
        with self.transaction() as c:
            c.execute("UPDATE episode SET heartbeat_at=? WHERE id=?", [now(), episode_id])

    def finish_episode(self, episode_id: str, status: EpisodeStatus, answer: str | None = None) -> None:
        with self.transaction() as c:
            c.execute("UPDATE episode SET status=?, answer=?, ended_at=?, heartbeat_at=? WHERE id=?",
                      [status, answer and redact(answer, tuple(self.settings.redact_patterns))[0], now(), now(),
                       episode_id])

    def get_episode(self, episode_id: str) -> dict | None:
        """The episode (prompt decoded), or None. A unique id prefix of 8+ characters also works."""
        rows = self.rows("SELECT * FROM episode WHERE id=?", [episode_id])
        if not rows and len(episode_id) >= 8:
            rows = self.rows("SELECT * FROM episode WHERE id LIKE ? LIMIT 2", [episode_id + "%"])
            rows = rows if len(rows) == 1 else []
        return decode_episode(rows[0]) if rows else None

    def get_step(self, step_id: str) -> dict | None:
        rows = self.rows("SELECT * FROM step WHERE id=?", [step_id])
        return rows[0] if rows else None

    def episode_steps(self, episode_id: str) -> list[dict]:
        return self.rows("SELECT * FROM step WHERE episode_id=? ORDER BY idx", [episode_id])

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
        """Newest first, each with its step count, its session's kind and its first command."""
        rows = self.rows("SELECT e.*, (SELECT count(*) FROM step s WHERE s.episode_id=e.id) AS n_steps, "
                         "(SELECT kind FROM session x WHERE x.id=e.session_id) AS session_kind, (SELECT command FROM "
                         "step s WHERE s.episode_id=e.id ORDER BY s.idx LIMIT 1) AS first_command FROM episode e "
                         "ORDER BY e.started_at DESC LIMIT ?", [n])
        return [decode_episode(r) for r in rows]

    def running_episodes(self) -> list[dict]:
        """Episodes still running. One whose process is gone (same host) is marked `aborted` and left out."""
        host = socket.gethostname()
        rows = self.rows("SELECT e.*, s.hostname FROM episode e JOIN session s ON s.id=e.session_id "
                          "WHERE e.status='running'")
        dead = [r["id"] for r in rows if r["hostname"] == host and not pid_alive(r["pid"])]
        if dead:
            with self.transaction() as c:
                c.executemany("UPDATE episode SET status='aborted', ended_at=? WHERE id=? AND status='running'",
                              [(now(), i) for i in dead])
        return [decode_episode(r) for r in rows if r["id"] not in dead]

    # --- steps ---------------------------------------------------------------------------------------------

    def record_step(
        self, episode_id: str, *, reply: str | None, command: str | None, result: ShellResult | None = None,
        author: str = "agent", kind: StepKind = StepKind.ACTION, source: StepSource = StepSource.EXECUTED,
        note: str = "",
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
        for name, text in zip(REDACTED_FIELDS, (reply, command, output, predicted_output), strict=True):
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
            "trainable": int(trainable and not total and not excluded and source != StepSource.RECALLED),
        }
        for k in ("status", "note", "cwd_before", "cwd_after"):  # the redacted fields are storable already
            if row[k]:
                row[k] = storable(row[k])
        with self.transaction() as c:
            c.execute(_RECORD_STEP, row)
        return row["id"]

    def iter_steps(self, since_seq: int = 0, trainable_only: bool = False, batch: int = 500) -> Iterator[dict]:
        """Steps with seq > since_seq in seq order, read in batches (no long-lived read transaction)."""
        last = since_seq
        where = " AND trainable=1" if trainable_only else ""
        while True:
            rows = self.rows(f"SELECT * FROM step WHERE seq > ?{where} ORDER BY seq LIMIT ?", [last, batch])
            yield from rows
            if len(rows) < batch:
                return
            last = rows[-1]["seq"]

    def search(self, query: str, limit: int = 20) -> list[dict]:
        """Steps matching every word of `query` (FTS5), each with a snippet of its output (matches between
        SNIPPET_OPEN and SNIPPET_CLOSE): the newest SEARCH_WINDOW matches, ranked by bm25.

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
        return self.rows(
            "SELECT s.id, s.episode_id, s.idx, s.command, s.author, s.started_at, e.task, f.rank, f.snippet "
            "FROM (SELECT rowid, rank, snippet(step_fts, 1, ?, ?, '…', 12) AS snippet FROM step_fts "
            "      WHERE step_fts MATCH ? AND rowid >= ? ORDER BY rank LIMIT ?) f "
            "JOIN step s ON s.seq = f.rowid JOIN episode e ON e.id = s.episode_id ORDER BY f.rank",
            [SNIPPET_OPEN, SNIPPET_CLOSE, q, row[0], limit])

    def recent_runs(self, command: str, cwd: str | None, n: int, window: int = RECENT_RUNS_WINDOW
                    ) -> list[tuple[str, str | None]]:
        """(output, status) of the newest `n` runs of exactly `command` in `cwd` that the agent executed, newest
        first, among the newest `window` steps (a person's terminal prints the same command differently).

        A range scan on seq, newest first: no index on `command` is paid by every write, and the FTS index is no
        shortcut (`grep -r error`'s words have doclists as long as the store: ~300 ms at 100k steps, against a few
        ms for this scan). The command is redacted first, as stored: a command holding a secret matches nothing.
        """
        command, hidden = redact(command, tuple(self.settings.redact_patterns))
        if hidden:
            return []
        return [(r["output"], r["status"]) for r in self.rows(
            "SELECT output, status FROM step WHERE seq > (SELECT coalesce(max(seq), 0) FROM step) - ? "
            "AND command = ? AND cwd_before IS ? AND source = 'executed' AND author = 'agent' ORDER BY seq DESC LIMIT ?",
            [window, command, cwd, n])]

    def set_surprise(self, surprise: dict[str, float]) -> None:
        """Store each step's env-token CE under the adapter in use when the updater last saw it."""
        with self.transaction() as c:
            c.executemany("UPDATE step SET surprise=? WHERE id=?", [(v, k) for k, v in surprise.items()])

def decode_episode(row: dict) -> dict:
    """An episode row as the store's readers return it: the prompt decoded, the session's hostname dropped."""
    row = dict(row)
    row.pop("hostname", None)
    row["prompt"] = json.loads(row["prompt"]) if row.get("prompt") else []
    return row
