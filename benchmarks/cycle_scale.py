"""A cycle's cost outside training grows with its new data, not with the store.

    ECHO_AGENT_CACHE=.cache/test-models .venv/bin/python benchmarks/cycle_scale.py [--sizes 1000,10000,100000]
        [--new-files 100] [--keep DIR]

For each size N, a scratch home on the embedded model holds N older steps on disk (look-up episodes of varied
commands and outputs, two steps each, written at synchronous=NORMAL to build them faster), all of them covered by
a promoted adapter (the shipped starter, copied, whose row says it trained through the last older step), and then
the same new data: `--new-files` config files read twice each by the real agent with a scripted policy
(2 x new-files episodes). One cycle runs with one training epoch, stopped after a minute (`max_minutes`; what
training costs is not what is measured). Its time outside training is the cycle's wall
time minus the training loop's own seconds (model load, choosing and rendering the data, the baseline, the
policy check, the candidate's evaluation, the gate, writing the adapter, the recall check).
Stores are kept under `--keep` (default: a temp dir) so a second run skips building them.

    overhead_ratio = overhead at the largest size / overhead at the smallest

    RESULT overhead_1k_s=… overhead_10k_s=… overhead_100k_s=… overhead_ratio=…
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path


def label(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def build_older(home: Path, n_steps: int, seed: int = 0) -> int:
    """N older steps in `home`'s store; returns the last seq."""
    from echo_agent.config import Settings
    from echo_agent.memory.store import TrajectoryStore
    from echo_agent.records import EpisodeStatus, StepKind

    rng = random.Random(seed)
    dirs = [f"/srv/app{i}" for i in range(50)]
    with TrajectoryStore(home / "store.db", settings=Settings.load(home), durable=False) as store:
        session = store.start_session()
        for e in range(n_steps // 2):
            cwd = rng.choice(dirs)
            name = f"file{rng.randrange(2000)}.conf"
            episode = store.start_episode(session, f"what is in {name}?", [])
            lines = "".join(f"key_{j} = {rng.randrange(10**6)}\n" for j in range(rng.randrange(3, 30)))
            store.record_step(episode, reply=f"```bash\ncat {name}\n```", command=f"cat {name}", output=lines,
                              status="[exit 0]", cwd_before=cwd, kind=StepKind.RETRIEVAL)
            store.record_step(episode, reply="```answer\nok\n```", command=None, output="", status=None,
                              cwd_before=cwd)
            store.finish_episode(episode, EpisodeStatus.DONE, "ok")
            if e % 5000 == 4999:
                print(f"  {2 * (e + 1)} older steps", flush=True)
        return store.rows("SELECT max(seq) AS s FROM step")[0]["s"]


def covered_by_an_adapter(home: Path, through_seq: int) -> None:
    """A promoted adapter that trained through `through_seq`: the starter's weights, as a previous cycle's."""
    import json

    from echo_agent.memory.adapters import insert_adapter
    from echo_agent.memory.store import TrajectoryStore
    from echo_agent.updater import registry

    path = registry.adapters_dir(home) / "a0001"
    shutil.copytree(registry.STARTER_DIR, path)
    meta = json.loads((path / registry.META_FILE).read_text())
    meta.pop("starter", None)
    (path / registry.META_FILE).write_text(json.dumps({**meta, "id": "a0001"}))
    with TrajectoryStore(home / "store.db") as store:
        insert_adapter(store, id="a0001", path=str(path), status="promoted", base_model=meta.get("base_model"),
                       base_hash=meta["base_hash"], trained_through_seq=through_seq, n_env_tokens=0)


def add_new(home: Path, files: int) -> None:
    from echo_agent.agent import Agent, AgentConfig
    from echo_agent.memory.store import TrajectoryStore
    from echo_agent.models.scripted import ScriptedBackend
    from echo_agent.shell import ShellSession

    ws = home / "ws"
    ws.mkdir()
    for i in range(files):
        (ws / f"svc{i}.conf").write_text(f"name = svc{i}\nport = {8000 + 7 * i}\nworkers = {2 + i % 5}\n")
    with TrajectoryStore(home / "store.db") as store, ShellSession(cwd=ws) as shell:
        for _ in range(2):
            for i in range(files):
                backend = ScriptedBackend([f"```bash\ncat svc{i}.conf\n```", "```answer\nok\n```"])
                Agent(backend, shell, store, config=AgentConfig(examples=0, memory=False)).run(f"show svc{i}.conf")


def prepared(root: Path, n: int, files: int) -> Path:
    """The store for size n, with the new data, built once (a copy is what each run changes)."""
    base = root / f"base-{label(n)}"
    if not (base / "ready").exists():
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        print(f"building {n} older steps in {base}", flush=True)
        os.environ["ECHO_AGENT_HOME"] = str(base)
        last = build_older(base, n)
        covered_by_an_adapter(base, last)
        add_new(base, files)
        (base / "ready").write_text("")
    run = root / f"run-{label(n)}"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(base, run, symlinks=True)
    # The adapter row names its directory: point it at the copy.
    import sqlite3

    with sqlite3.connect(run / "store.db") as c:
        c.execute("UPDATE adapter SET path=? WHERE id='a0001'", [str(run / "adapters" / "a0001")])
    return run


def one_cycle(home: Path) -> dict:
    from echo_agent.config import Settings
    from echo_agent.memory.store import TrajectoryStore
    from echo_agent.updater.cycle import run_cycle
    from echo_agent.updater.train import TrainConfig

    os.environ["ECHO_AGENT_HOME"] = str(home)
    settings = Settings.load(home)
    with TrajectoryStore(home / "store.db", settings=settings) as store:
        t0 = time.monotonic()
        report = run_cycle(store, settings, home=home, cfg=TrainConfig.from_settings(settings, epochs=1, max_minutes=1.0),
                           device="cpu")
        wall = time.monotonic() - t0
    train_s = report.metrics.get("train", {}).get("seconds", 0.0)
    return {"status": report.status, "wall_s": wall, "train_s": train_s, "overhead_s": wall - train_s,
            "train_tokens": report.metrics.get("train", {}).get("tokens", 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--new-files", type=int, default=100)
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    root = args.keep or Path(tempfile.mkdtemp(prefix="echo-cycle-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    results = {}
    for n in sizes:
        home = prepared(root, n, args.new_files)
        results[n] = one_cycle(home)
        r = results[n]
        print(f"{label(n)}: {r['status']}, wall {r['wall_s']:.1f} s, training {r['train_s']:.1f} s "
              f"({r['train_tokens']} tokens), outside training {r['overhead_s']:.1f} s", flush=True)
    print(f"\n{'older steps':>12}{'store MB':>10}{'cycle s':>10}{'training s':>12}{'outside s':>11}")
    for n in sizes:
        r = results[n]
        mb = (root / f"run-{label(n)}" / "store.db").stat().st_size / 1e6
        print(f"{n:>12}{mb:>10.1f}{r['wall_s']:>10.1f}{r['train_s']:>12.1f}{r['overhead_s']:>11.1f}")
    keys = " ".join(f"overhead_{label(n)}_s={results[n]['overhead_s']:.1f}" for n in sizes)
    ratio = results[sizes[-1]]["overhead_s"] / results[sizes[0]]["overhead_s"]
    print(f"RESULT {keys} overhead_ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
