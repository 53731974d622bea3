"""What a person pays who starts an `ask` while the background updater trains.

    .venv/bin/python benchmarks/concurrent_use.py [--repeats 3] [--files 40] [--new-tokens 96]

A scratch home on the embedded model gets agent episodes (scripted look-ups of `--files` generated config files,
each read twice), enough that a cycle trains for minutes. Then, `--repeats` times each:
- idle: the ask probe runs with no updater: a fresh process that starts an agent episode in the store (as `ask`
  does first), builds the backend the agent uses with its normal thread setting (`backend = "auto"`,
  `threads = 0`: one per core), and generates `--new-tokens` tokens greedily for a fixed question; its tok/s
  counts the tokens after the first over the time after the first (decode speed);
- during: the updater (`updater start`, the daemon as installed: idle CPU and I/O priority, one core left) runs a
  cycle; once its candidate row exists (training has begun) and 5 s have passed, the same probe starts.
  `yield_s` is the time from the probe's episode start to the end of the yielded cycle (the optimizer step in
  flight finishes, the cycle records its outcome and stops). Just before it, the same probe runs without
  starting an episode, so training goes on beside the whole generation: what idle priority alone leaves the
  user (`ask_tok_per_s_beside`; not what `ask` meets, which starts an episode and so makes training yield).
  Before training, each repeat also starts the probe 12 s into a cycle, while it loads and measures its baseline
  (`yield_eval_s`: evaluation gives way at its next batch).

The gate's policy check is switched off in the scratch home (`policy_check_tasks = 0`) so each cycle reaches
training sooner; it is not what is measured. Timings are medians with their ranges over repeats.

    RESULT yield_s=… yield_max_s=… yield_eval_s=… yield_eval_max_s=… ask_tok_per_s_idle=… ask_tok_per_s_during=… concurrent_ratio=…
           ask_tok_per_s_beside=… beside_ratio=… repeats=…
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUESTION = [{"role": "system", "content": "You are a helpful terminal assistant."},
            {"role": "user", "content": "Explain, step by step and in detail, how to find which directories use "
                                        "the most disk space on a Linux machine, and what to clean up first."}]

PROBE = r"""
import json, sys, time
from echo_agent.config import Settings
from echo_agent.memory.store import TrajectoryStore
from echo_agent.models import make_backend
from echo_agent.records import EpisodeStatus, SessionKind
settings = Settings.load()
with TrajectoryStore(settings=settings) as store:
    started = time.time()
    if sys.argv[3] == "episode":
        episode = store.start_episode(store.start_session(kind=SessionKind.AGENT), "concurrent-use probe", [])
    backend = make_backend(settings.backend, settings.model, threads=settings.threads)
    stamps = []
    backend.generate(json.loads(sys.argv[1]), max_new_tokens=int(sys.argv[2]),
                     on_token=lambda t: stamps.append(time.perf_counter()))
    if sys.argv[3] == "episode":
        store.finish_episode(episode, EpisodeStatus.DONE, "probe")
n = len(stamps) - 1
print(json.dumps({"episode_started": started, "tokens": n + 1,
                  "tok_per_s": n / (stamps[-1] - stamps[0]) if n > 0 else 0.0}))
"""


def record(home: Path, files: int) -> None:
    from echo_agent.agent import Agent, AgentConfig
    from echo_agent.memory.store import TrajectoryStore
    from echo_agent.models.scripted import ScriptedBackend
    from echo_agent.shell import ShellSession

    ws = home / "ws"
    ws.mkdir()
    for i in range(files):
        (ws / f"svc{i}.conf").write_text(f"name = svc{i}\nport = {8000 + 7 * i}\nworkers = {2 + i % 5}\n"
                                         f"log = /var/log/svc{i}.log\n" + "".join(
                                             f"option_{j} = {(i * 31 + j * 17) % 97}\n" for j in range(12)))
    with TrajectoryStore(home / "store.db") as store, ShellSession(cwd=ws) as shell:
        for _ in range(2):
            for i in range(files):
                backend = ScriptedBackend([f"```bash\ncat svc{i}.conf\n```", "```answer\nok\n```"])
                Agent(backend, shell, store, config=AgentConfig(examples=0, memory=False)).run(f"show svc{i}.conf")


def probe(env: dict[str, str], new_tokens: int, episode: bool = True) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(QUESTION), str(new_tokens),
                          "episode" if episode else "none"], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def rows(home: Path, sql: str) -> list[tuple]:
    import sqlite3

    with sqlite3.connect(home / "store.db", timeout=30) as c:
        return c.execute(sql).fetchall()


def wait_for(home: Path, sql: str, timeout: float = 900) -> None:
    """Until `sql` (one count) is positive: a new cycle row, or a new candidate row (inserted just before the
    cycle's first optimizer step)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rows(home, sql)[0][0] > 0:
            return
        time.sleep(0.2)
    raise SystemExit("the updater did not get there; see " + str(home / "updater.log"))


def yielded_end(home: Path, after: int, timeout: float = 120) -> float:
    """The end time (epoch s) of the first cycle after row `after` that ended."""
    from datetime import datetime

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = rows(home, f"SELECT status, ended_at FROM cycle WHERE id > {after} AND ended_at IS NOT NULL")
        if got:
            status, ended = got[0]
            if status != "yielded":
                raise SystemExit(f"the cycle ended {status}, not yielded; see {home / 'updater.log'}")
            return datetime.fromisoformat(ended).timestamp()
        time.sleep(0.2)
    raise SystemExit("training did not yield within 120 s")


def spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} [{min(xs):.2f}-{max(xs):.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--new-tokens", type=int, default=96)
    args = parser.parse_args()
    from echo_agent.updater import daemon

    home = Path(tempfile.mkdtemp(prefix="echo-concurrent-"))
    (home / "config.toml").write_text("policy_check_tasks = 0\n")
    env = {**os.environ, "ECHO_AGENT_HOME": str(home)}
    os.environ["ECHO_AGENT_HOME"] = str(home)
    print(f"scratch home {home}; recording {2 * args.files} episodes", flush=True)
    record(home, args.files)
    idle, during, beside, yields = [], [], [], []
    probe(env, 8)  # first load converts nothing later: warm the caches once
    for r in range(args.repeats):
        idle.append(probe(env, args.new_tokens)["tok_per_s"])
        print(f"repeat {r + 1}: idle {idle[-1]:.1f} tok/s", flush=True)
    daemon.start(home, interval=1.0, min_new_tokens=1)
    evaluating, yields_eval = [], []
    try:
        for r in range(args.repeats):
            # While the cycle evaluates (the baseline, before training): 12 s after it starts.
            seen = rows(home, "SELECT count(*) FROM adapter")[0][0]
            last_cycle = rows(home, "SELECT coalesce(max(id), 0) FROM cycle WHERE ended_at IS NOT NULL")[0][0]
            wait_for(home, f"SELECT count(*) FROM cycle WHERE id > {last_cycle}")
            time.sleep(12)
            phase = "training" if rows(home, "SELECT count(*) FROM adapter")[0][0] > seen else "evaluating"
            got = probe(env, args.new_tokens)
            yields_eval.append(yielded_end(home, last_cycle) - got["episode_started"])
            evaluating.append(got["tok_per_s"])
            print(f"repeat {r + 1}: started while the cycle was {phase}: {evaluating[-1]:.1f} tok/s, the cycle "
                  f"yielded after {yields_eval[-1]:.1f} s", flush=True)
            # While it trains: 5 s after its candidate row appears.
            seen = rows(home, "SELECT count(*) FROM adapter")[0][0]
            last_cycle = rows(home, "SELECT coalesce(max(id), 0) FROM cycle WHERE ended_at IS NOT NULL")[0][0]
            wait_for(home, f"SELECT count(*) - {seen} FROM adapter")
            time.sleep(5)
            beside.append(probe(env, args.new_tokens, episode=False)["tok_per_s"])
            got = probe(env, args.new_tokens)
            end = yielded_end(home, last_cycle)
            during.append(got["tok_per_s"])
            yields.append(end - got["episode_started"])
            print(f"repeat {r + 1}: during training {during[-1]:.1f} tok/s, training yielded after "
                  f"{yields[-1]:.1f} s; beside training that does not yield {beside[-1]:.1f} tok/s", flush=True)
    finally:
        daemon.stop(home)
    ratio = statistics.median(during) / statistics.median(idle)
    print(f"\n{'':24}{'median [range]':>22}")
    print(f"{'ask tok/s, idle':24}{spread(idle):>22}")
    print(f"{'ask tok/s, during':24}{spread(during):>22}")
    print(f"{'ask tok/s, evaluating':24}{spread(evaluating):>22}")
    print(f"{'ask tok/s, beside':24}{spread(beside):>22}")
    print(f"{'yield s, training':24}{spread(yields):>22}")
    print(f"{'yield s, evaluating':24}{spread(yields_eval):>22}")
    print(f"cores {os.cpu_count()}; the updater's torch threads {daemon.training_threads()}; "
          f"the ask's backend threads: one per core")
    print(f"RESULT yield_s={statistics.median(yields):.2f} yield_max_s={max(yields):.2f} "
          f"yield_eval_s={statistics.median(yields_eval):.2f} yield_eval_max_s={max(yields_eval):.2f} "
          f"ask_tok_per_s_idle={statistics.median(idle):.1f} ask_tok_per_s_during={statistics.median(during):.1f} "
          f"concurrent_ratio={ratio:.3f} ask_tok_per_s_beside={statistics.median(beside):.1f} "
          f"beside_ratio={statistics.median(beside) / statistics.median(idle):.3f} repeats={args.repeats}")


if __name__ == "__main__":
    main()
