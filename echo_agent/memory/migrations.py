"""The store's schema, created and changed only by these ordered, named migrations (sqlite-utils `Migrations`).

Each applied migration is recorded in `_sqlite_migrations` under the set name "echo_agent_store". A database
that records a migration this code does not know was written by a newer echo-agent: it is refused, untouched.
Add a change as a new function at the end (`m002_…`); never edit an applied one.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

MIGRATION_SET = "echo_agent_store"
migrations = Migrations(MIGRATION_SET)

_STEP_COLUMNS = """
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- monotonic, never reused: "newer than" for the updater
    id TEXT NOT NULL UNIQUE,
    episode_id TEXT NOT NULL REFERENCES episode(id),
    idx INTEGER NOT NULL,
    author TEXT NOT NULL DEFAULT 'agent',
    reply TEXT,
    command TEXT,
    output TEXT NOT NULL DEFAULT '',
    status TEXT,
    note TEXT NOT NULL DEFAULT '',
    exit_code INTEGER,
    cwd_before TEXT,
    cwd_after TEXT,
    started_at TEXT,
    duration_ms INTEGER,
    timed_out INTEGER NOT NULL DEFAULT 0,
    truncated INTEGER NOT NULL DEFAULT 0,
    output_bytes INTEGER,
    redactions INTEGER NOT NULL DEFAULT 0,
    kind TEXT NOT NULL DEFAULT 'action',
    source TEXT NOT NULL DEFAULT 'executed',
    predicted_output TEXT,
    confidence REAL,
    confidence_mean REAL,
    confidence_min REAL,
    verified INTEGER,
    verify_f1 REAL,
    surprise REAL,
    trainable INTEGER NOT NULL DEFAULT 1
"""


@migrations()
def m001_initial(db: Database) -> None:
    """The records of docs/architecture.md: session, episode, step (+ FTS5 over command and output), adapter,
    adapter_step.

    The step's rowid is `seq` (INTEGER PRIMARY KEY), so the external-content FTS index keeps pointing at the
    right rows through VACUUM; triggers keep it consistent on insert, update and delete.
    """
    for sql in [
        """CREATE TABLE session (
            id TEXT PRIMARY KEY, started_at TEXT NOT NULL, ended_at TEXT, hostname TEXT, shell TEXT,
            model TEXT, kind TEXT NOT NULL DEFAULT 'agent')""",
        """CREATE TABLE episode (
            id TEXT PRIMARY KEY, session_id TEXT NOT NULL REFERENCES session(id),
            parent_episode_id TEXT REFERENCES episode(id), task TEXT NOT NULL, prompt TEXT NOT NULL DEFAULT '[]',
            adapter_id TEXT, status TEXT NOT NULL DEFAULT 'running', answer TEXT, started_at TEXT NOT NULL,
            ended_at TEXT, pid INTEGER, heartbeat_at TEXT)""",
        "CREATE INDEX episode_started ON episode(started_at)",
        "CREATE INDEX episode_session ON episode(session_id)",
        "CREATE INDEX episode_parent ON episode(parent_episode_id)",
        f"CREATE TABLE step ({_STEP_COLUMNS})",
        "CREATE INDEX step_episode ON step(episode_id, idx)",
        "CREATE VIRTUAL TABLE step_fts USING fts5(command, output, content='step', content_rowid='seq')",
        """CREATE TRIGGER step_fts_ai AFTER INSERT ON step BEGIN
            INSERT INTO step_fts(rowid, command, output) VALUES (new.seq, new.command, new.output); END""",
        """CREATE TRIGGER step_fts_ad AFTER DELETE ON step BEGIN
            INSERT INTO step_fts(step_fts, rowid, command, output)
            VALUES ('delete', old.seq, old.command, old.output); END""",
        """CREATE TRIGGER step_fts_au AFTER UPDATE OF command, output ON step BEGIN
            INSERT INTO step_fts(step_fts, rowid, command, output)
            VALUES ('delete', old.seq, old.command, old.output);
            INSERT INTO step_fts(rowid, command, output) VALUES (new.seq, new.command, new.output); END""",
        """CREATE TABLE adapter (
            id TEXT PRIMARY KEY, parent_id TEXT, base_model TEXT, base_hash TEXT, path TEXT,
            status TEXT NOT NULL DEFAULT 'candidate', trained_through_seq INTEGER, n_env_tokens INTEGER,
            metrics TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL)""",
        """CREATE TABLE adapter_step (
            adapter_id TEXT NOT NULL REFERENCES adapter(id) ON DELETE CASCADE,
            step_id TEXT NOT NULL REFERENCES step(id) ON DELETE CASCADE,
            PRIMARY KEY (adapter_id, step_id))""",
        "CREATE INDEX adapter_step_step ON adapter_step(step_id)",
    ]:
        db.execute(sql)


@migrations()
def m002_adapter_chooses(db: Database) -> None:
    """Which promoted adapters choose the agent's commands (`chooses`): every promoted one recalls outputs, and
    one that passed every check but the gate's policy check serves recall only. Rows from before chose too."""
    db.execute("ALTER TABLE adapter ADD COLUMN chooses INTEGER NOT NULL DEFAULT 1")


@migrations()
def m003_cycle(db: Database) -> None:
    """One row per update cycle, whatever its outcome (`cycle`): what `updater report` and `updater status` read.
    A row left `running` by a killed cycle is marked `failed` by the next one."""
    db.execute("""CREATE TABLE cycle (
        id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL, ended_at TEXT,
        status TEXT NOT NULL DEFAULT 'running', adapter_id TEXT, message TEXT NOT NULL DEFAULT '',
        metrics TEXT NOT NULL DEFAULT '{}', pid INTEGER, cpu_s REAL, wall_s REAL, trigger TEXT)""")
    db.execute("CREATE INDEX cycle_started ON cycle(started_at)")



@migrations()
def m004_cycle_indexes(db: Database) -> None:
    """What a cycle asks of a large store, answered from indexes: the older episodes with trainable steps (the
    replay and retention samples) without reading the steps' text, and the running episodes (asked twice a second
    while a cycle runs, to give way to an agent episode) without reading every episode."""
    db.execute("CREATE INDEX step_trainable_seq ON step(trainable, seq, episode_id)")
    db.execute("CREATE INDEX episode_running ON episode(status) WHERE status = 'running'")


KNOWN = [m.name for m in migrations._migrations]
"""Names of every migration this code knows, in order."""
