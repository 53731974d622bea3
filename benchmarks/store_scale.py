"""Store at scale: record_step vs the floor any design pays, FTS search latency, iteration, redaction, import.

    python benchmarks/store_scale.py --steps 5000

Runs in a temporary directory (never the user's store), removed at the end unless --keep. Ends with one
`RESULT …` line.
Targets: record_ratio >= 0.8, search p50 <= 50 ms, redaction >= 10 MB/s, import >= 3x record_per_s.

The floor (`bare_per_s`): a bare sqlite3 loop that inserts the very same rows (every step column, the same uuid
ids, reply, command, output text; values prepared before timing) into a plain rowid table whose only index is the
UNIQUE step id (steps are referenced by uuid: docs/architecture.md, "The records"), with an FTS5 external-content
index over command and output kept by an AFTER INSERT trigger: the same FTS5 definition and tokenizer as the store. Each row is its own
BEGIN IMMEDIATE … COMMIT, in WAL mode at the same synchronous level as the store it is compared with (FULL for
the default `durable=True`, NORMAL for `durable=False`). What the floor does not pay, and record_step does, is
what `record_ratio` prices: redaction of reply, command and output, uuid and timestamp, trainable rules, the
idx lookup, the AUTOINCREMENT `seq` (sqlite_sequence), the (episode_id, idx) index and the foreign-key check.
Episodes are created before timing, so both sides time step writes only. The two loops run interleaved in
rounds of 250 rows (alternating which goes first), so noise from other work on the machine hits both alike.

The import floor (`import_floor_per_s`): the same rows into the same bare table, batched like import (one
transaction per `IMPORT_BATCH` rows, executemany). `import_unsealed_per_s` imports the same export with its
redaction seals removed, so every step is redacted again (what an export from other rules costs).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from echo_agent.memory.exchange import export_episodes
from echo_agent.memory.store import STEP_FIELDS, TrajectoryStore

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


BARE_COLUMNS = [f for f in STEP_FIELDS if f not in ("seq", "id")]
BARE_SCHEMA = f"""
CREATE TABLE step (seq INTEGER PRIMARY KEY, id TEXT UNIQUE, {', '.join(BARE_COLUMNS)});
CREATE VIRTUAL TABLE step_fts USING fts5(command, output, content='step', content_rowid='seq');
CREATE TRIGGER step_ai AFTER INSERT ON step BEGIN
  INSERT INTO step_fts(rowid, command, output) VALUES (new.seq, new.command, new.output); END;
"""
BARE_INSERT = (f"INSERT INTO step (id, {', '.join(BARE_COLUMNS)}) "
               f"VALUES ({', '.join('?' * (len(BARE_COLUMNS) + 1))})")
STEPS_PER_EPISODE = 20
ROUND = 250  # rows per interleaved round
IMPORT_BATCH = 500 * STEPS_PER_EPISODE  # import_episodes' default: 500 episodes per transaction


def open_bare(path: Path, synchronous: str) -> sqlite3.Connection:
    bare = sqlite3.connect(path, isolation_level=None)
    bare.execute("PRAGMA journal_mode=wal")
    bare.execute(f"PRAGMA synchronous={synchronous}")
    bare.executescript(BARE_SCHEMA)
    return bare


def compare_record(tmp: Path, name: str, durable: bool, inputs: list[tuple], bare_rows: list[tuple]):
    """Record every input through record_step and the same rows through the bare loop, interleaved.
    Returns (store, record_per_s, bare_per_s); the store stays open."""
    store = TrajectoryStore(tmp / f"{name}.db", durable=durable)
    bare = open_bare(tmp / f"{name}-bare.db", "FULL" if durable else "NORMAL")
    sid = store.start_session(kind="bench")
    episodes = [store.start_episode(sid, f"task {i % 50}", []) for i in range(0, len(inputs), STEPS_PER_EPISODE)]
    record_s = bare_s = 0.0

    def record(lo: int, hi: int) -> float:
        t0 = time.perf_counter()
        for i in range(lo, hi):
            reply, cmd, result = inputs[i]
            store.record_step(episodes[i // STEPS_PER_EPISODE], reply=reply, command=cmd, result=result)
        return time.perf_counter() - t0

    def floor(lo: int, hi: int) -> float:
        t0 = time.perf_counter()
        for row in bare_rows[lo:hi]:
            bare.execute("BEGIN IMMEDIATE")
            bare.execute(BARE_INSERT, row)
            bare.execute("COMMIT")
        return time.perf_counter() - t0

    for k, lo in enumerate(range(0, len(inputs), ROUND)):
        hi = min(lo + ROUND, len(inputs))
        if k % 2:
            bare_s += floor(lo, hi)
            record_s += record(lo, hi)
        else:
            record_s += record(lo, hi)
            bare_s += floor(lo, hi)
    bare.close()
    return store, len(inputs) / record_s, len(inputs) / bare_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100_000, help="Steps to record (default 100k).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="Keep the databases (about 4.6 GB at 100k steps).")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="echo-store-bench-"))
    try:
        run(args, tmp)
    finally:
        if args.keep:
            print(f"databases kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: Path) -> None:
    os.environ["ECHO_AGENT_HOME"] = str(tmp / "home")
    from echo_agent.memory.redact import redact
    from echo_agent.shell.result import ShellResult

    rnd = random.Random(args.seed)
    n = args.steps
    outputs = [synthetic_output(rnd) for _ in range(min(n, 2000))]  # reused cyclically
    commands = [f"{rnd.choice(['ls -l', 'cat', 'grep -r', 'git log', 'tail -n 50'])} {rnd.choice(WORDS)}_{i}"
                for i in range(len(outputs))]
    inputs, bare_rows = [], []
    for i in range(n):
        out, cmd = outputs[i % len(outputs)], commands[i % len(commands)]
        started = "2026-01-01T00:00:00+00:00"
        r = ShellResult(cmd, out, "[exit 0]", "", 0, "/home/u", "/home/u", started, 3, False, False, len(out))
        inputs.append((f"```bash\n{cmd}\n```", cmd, r))
        row = {"episode_id": f"e{i // STEPS_PER_EPISODE}", "idx": i % STEPS_PER_EPISODE, "author": "agent",
               "reply": inputs[-1][0], "command": cmd, "output": out, "status": "[exit 0]", "note": "",
               "exit_code": 0, "cwd_before": "/home/u", "cwd_after": "/home/u", "started_at": started,
               "duration_ms": 3, "timed_out": 0, "truncated": 0, "output_bytes": len(out), "redactions": 0,
               "kind": "action", "source": "executed", "trainable": 1}
        bare_rows.append((str(uuid.uuid4()), *(row.get(c) for c in BARE_COLUMNS)))

    normal, record_normal_per_s, bare_normal_per_s = compare_record(tmp, "normal", False, inputs, bare_rows)
    normal.close()
    store, record_per_s, bare_per_s = compare_record(tmp, "store", True, inputs, bare_rows)

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
    records = list(export_episodes(store))
    store.close()

    def timed_import(name: str, recs: list[dict]) -> float:
        target = TrajectoryStore(tmp / f"{name}.db")
        t0 = time.perf_counter()
        counts = target.import_episodes(recs)
        per_s = counts["steps"] / (time.perf_counter() - t0)
        target.close()
        assert counts["steps"] == n, counts
        return per_s

    import_per_s = timed_import("imported", records)
    unsealed = [{**r, "steps": [{k: v for k, v in s.items() if k != "redaction_seal"} for s in r["steps"]]}
                for r in records]
    import_unsealed_per_s = timed_import("imported-unsealed", unsealed)
    bare = open_bare(tmp / "import-bare.db", "FULL")
    t0 = time.perf_counter()
    for lo in range(0, n, IMPORT_BATCH):
        bare.execute("BEGIN IMMEDIATE")
        bare.executemany(BARE_INSERT, bare_rows[lo : lo + IMPORT_BATCH])
        bare.execute("COMMIT")
    import_floor_per_s = n / (time.perf_counter() - t0)
    bare.close()

    ratio, ratio_normal = record_per_s / bare_per_s, record_normal_per_s / bare_normal_per_s
    table = [
        ("steps", f"{n}", ""),
        ("record_step per s", f"{record_per_s:.0f}", "durable=True (synchronous=FULL)"),
        ("bare sqlite3 per s", f"{bare_per_s:.0f}", "synchronous=FULL"),
        ("record ratio", f"{ratio:.2f}", ">= 0.8"),
        ("record_step per s", f"{record_normal_per_s:.0f}", "durable=False (synchronous=NORMAL)"),
        ("bare sqlite3 per s", f"{bare_normal_per_s:.0f}", "synchronous=NORMAL"),
        ("record ratio", f"{ratio_normal:.2f}", ">= 0.8"),
        ("search p50 ms", f"{search_p50:.2f}", "<= 50"),
        ("iter_steps per s", f"{iter_per_s:.0f}", ""),
        ("redaction MB/s", f"{redact_mb_s:.1f}", ">= 10"),
        ("import steps per s", f"{import_per_s:.0f}", f">= {3 * record_per_s:.0f}"),
        ("import unsealed per s", f"{import_unsealed_per_s:.0f}", "every step redacted again"),
        ("import floor per s", f"{import_floor_per_s:.0f}", "bare batched insert + FTS"),
        ("bytes per step", f"{bytes_per_step:.0f}", ""),
    ]
    for name, value, goal in table:
        print(f"{name:22} {value:>12}  {goal}")
    print(f"RESULT steps={n} record_per_s={record_per_s:.0f} bare_per_s={bare_per_s:.0f} record_ratio={ratio:.2f} "
          f"record_normal_per_s={record_normal_per_s:.0f} bare_normal_per_s={bare_normal_per_s:.0f} "
          f"record_ratio_normal={ratio_normal:.2f} search_p50_ms={search_p50:.2f} iter_per_s={iter_per_s:.0f} "
          f"redact_mb_per_s={redact_mb_s:.1f} import_per_s={import_per_s:.0f} "
          f"import_unsealed_per_s={import_unsealed_per_s:.0f} import_floor_per_s={import_floor_per_s:.0f} "
          f"import_x_record={import_per_s / record_per_s:.2f} bytes_per_step={bytes_per_step:.0f}")


if __name__ == "__main__":
    main()
