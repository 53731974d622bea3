"""Store at scale: record_step vs a bare sqlite3 loop, FTS search latency, iteration, redaction, import.

    python benchmarks/store_scale.py --steps 5000

Runs in a temporary home (never the user's store). Both write paths commit one step per transaction with the
same pragmas (WAL, synchronous=FULL) and an FTS5 external-content trigger, so `record_ratio` is the price of
everything record_step adds (redaction, idx, heartbeat, uuid). Ends with one `RESULT …` line.
Targets: record_ratio >= 0.8, search p50 <= 50 ms, redaction >= 10 MB/s, import >= 3x record_per_s.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

WORDS = ("error warning info debug request response user config server client cache build test deploy "
         "install package module import network socket timeout retry connect listen port nginx python "
         "docker kernel memory disk file directory permission denied success failed").split()


def synthetic_output(rnd: random.Random) -> str:
    """Realistic terminal text of 200 B - 20 kB: ls -l, logs, git log, or a config file."""
    target = int(200 * (100 ** rnd.random()))  # log-uniform 200 B .. 20 kB
    kind = rnd.randrange(4)
    lines: list[str] = []
    size = 0
    while size < target:
        i = len(lines)
        if kind == 0:
            line = (f"-rw-r--r--  1 user staff {rnd.randint(0, 10**6):>8} Jan {rnd.randint(1, 28):2} "
                    f"{rnd.randint(0, 23):02}:{rnd.randint(0, 59):02} {rnd.choice(WORDS)}_{i}.{rnd.choice(['py', 'md', 'log'])}")
        elif kind == 1:
            line = (f"2026-01-{rnd.randint(1, 28):02}T12:{rnd.randint(0, 59):02}:00Z {rnd.choice(['INFO', 'WARN', 'ERROR'])} "
                    f"[{rnd.choice(WORDS)}] {' '.join(rnd.choices(WORDS, k=8))} id={rnd.getrandbits(48):x}")
        elif kind == 2:
            line = f"{rnd.getrandbits(160):040x} {' '.join(rnd.choices(WORDS, k=6))}"
        else:
            line = f"{rnd.choice(WORDS)}_{rnd.choice(WORDS)} = {rnd.randint(0, 65535)}  # {' '.join(rnd.choices(WORDS, k=4))}"
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines) + "\n"


BARE_SCHEMA = """
CREATE TABLE step (seq INTEGER PRIMARY KEY, id TEXT UNIQUE, episode_id TEXT, idx INTEGER, reply TEXT, command TEXT,
  output TEXT, status TEXT, exit_code INTEGER, cwd_before TEXT, started_at TEXT, trainable INTEGER);
CREATE VIRTUAL TABLE step_fts USING fts5(command, output, content='step', content_rowid='seq');
CREATE TRIGGER step_ai AFTER INSERT ON step BEGIN
  INSERT INTO step_fts(rowid, command, output) VALUES (new.seq, new.command, new.output); END;
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100_000, help="Steps to record (default 100k).")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="echo-store-bench-"))
    os.environ["ECHO_AGENT_HOME"] = str(tmp / "home")
    from echo_agent.memory.redact import redact
    from echo_agent.memory.store import TrajectoryStore
    from echo_agent.shell.result import ShellResult

    rnd = random.Random(args.seed)
    n = args.steps
    outputs = [synthetic_output(rnd) for _ in range(min(n, 2000))]  # reused cyclically
    commands = [f"{rnd.choice(['ls -l', 'cat', 'grep -r', 'git log', 'tail -n 50'])} {rnd.choice(WORDS)}_{i}"
                for i in range(len(outputs))]
    rows = []

    store = TrajectoryStore(tmp / "store.db")
    sid = store.start_session(kind="bench")
    eid = None
    t0 = time.perf_counter()
    for i in range(n):
        if i % 20 == 0:
            eid = store.start_episode(sid, f"task {i // 20 % 50}", [])
        out, cmd = outputs[i % len(outputs)], commands[i % len(commands)]
        r = ShellResult(cmd, out, "[exit 0]", "", 0, "/home/u", "/home/u", "2026-01-01T00:00:00+00:00", 3,
                        False, False, len(out))
        store.record_step(eid, reply=f"```bash\n{cmd}\n```", command=cmd, result=r)
    record_s = time.perf_counter() - t0
    record_per_s = n / record_s

    bare = sqlite3.connect(tmp / "bare.db", isolation_level=None)
    bare.execute("PRAGMA journal_mode=wal")
    bare.execute("PRAGMA synchronous=FULL")
    bare.executescript(BARE_SCHEMA)
    t0 = time.perf_counter()
    for i in range(n):
        out, cmd = outputs[i % len(outputs)], commands[i % len(commands)]
        bare.execute("BEGIN IMMEDIATE")
        bare.execute("INSERT INTO step (id, episode_id, idx, reply, command, output, status, exit_code, cwd_before, "
                     "started_at, trainable) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                     [f"s{i}", "e", i % 20, f"```bash\n{cmd}\n```", cmd, out, "[exit 0]", 0, "/home/u",
                      "2026-01-01T00:00:00+00:00", 1])
        bare.execute("COMMIT")
    bare_per_s = n / (time.perf_counter() - t0)
    bare.close()

    queries = ["error", "nginx port", "permission denied", "timeout retry", "docker", "listen", "kernel memory",
               "foo-bar", "config server", "install package", "deploy failed", "socket", "user cache", "disk",
               "build test", "python module", "connect", "warning request", "directory", "success"]
    lat = []
    for q in queries:
        t = time.perf_counter()
        store.search(q, 20)
        lat.append((time.perf_counter() - t) * 1000)
    search_p50 = statistics.median(lat)

    t0 = time.perf_counter()
    n_iter = sum(1 for _ in store.iter_steps())
    iter_per_s = n_iter / (time.perf_counter() - t0)

    text = "".join(outputs)
    t0 = time.perf_counter()
    redact(text)
    redact_mb_s = len(text.encode()) / (time.perf_counter() - t0) / 1e6

    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    bytes_per_step = sum(p.stat().st_size for p in tmp.glob("store.db*")) / n
    rows = list(store.export_episodes())
    store.close()
    target = TrajectoryStore(tmp / "imported.db")
    t0 = time.perf_counter()
    counts = target.import_episodes(rows)
    import_per_s = counts["steps"] / (time.perf_counter() - t0)
    target.close()

    ratio = record_per_s / bare_per_s
    table = [
        ("steps", f"{n}", ""),
        ("record_step per s", f"{record_per_s:.0f}", ""),
        ("bare sqlite3 per s", f"{bare_per_s:.0f}", ""),
        ("record ratio", f"{ratio:.2f}", ">= 0.8"),
        ("search p50 ms", f"{search_p50:.2f}", "<= 50"),
        ("iter_steps per s", f"{iter_per_s:.0f}", ""),
        ("redaction MB/s", f"{redact_mb_s:.1f}", ">= 10"),
        ("import steps per s", f"{import_per_s:.0f}", f">= {3 * record_per_s:.0f}"),
        ("bytes per step", f"{bytes_per_step:.0f}", ""),
    ]
    for name, value, goal in table:
        print(f"{name:22} {value:>12}  {goal}")
    print(f"RESULT steps={n} record_per_s={record_per_s:.0f} bare_per_s={bare_per_s:.0f} record_ratio={ratio:.2f} "
          f"search_p50_ms={search_p50:.2f} iter_per_s={iter_per_s:.0f} redact_mb_per_s={redact_mb_s:.1f} "
          f"import_per_s={import_per_s:.0f} bytes_per_step={bytes_per_step:.0f}")


if __name__ == "__main__":
    main()
