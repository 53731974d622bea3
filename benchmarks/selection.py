"""Choosing within a budget: surprise-first against newest-first and random, at the same budget.

    ECHO_AGENT_CACHE=.cache/test-models .venv/bin/python benchmarks/selection.py [--seeds 0] [--budget-minutes 1.5]
        [--facts 40] [--keep DIR]

Each seed builds a home on the embedded model (the shipped starter in use) holding a day of terminal use with
more new data than the budget trains: `--facts` look-ups of configuration files (the lasting facts: each file's
keys and values, drawn from the seed) among the output that makes up most terminal use and holds no lasting fact
— `ps aux`, `date`, `uptime`, `df -h`, `ls -l` of a log directory and `git log` (different on every run), `git
status` and `python3 --version` (the same output again and again) — in a seeded order. Steps are written to the
store directly, one look-up per episode.

For each selection (`cycle_selection` = surprise, newest, random), a copy of the home runs one update cycle with
`cycle_budget_minutes` = `--budget-minutes` (the gate never promotes: the candidate is what is measured, and the
surprise pass counts against the surprise arm's budget). The candidate is then evaluated on held-out look-ups:
each fact file read again in a new episode, never trained on. Reported per arm: the held-out env CE (nats/token)
and the share of held-out look-ups recallable at the recall threshold (every output token's CE within it,
teacher-forced), with the starter's own figures as a reference.

    RESULT surprise_ce=… newest_ce=… random_ce=… surprise_recall=… newest_recall=… random_recall=…
        budget_minutes=… seeds=…

(the mean over seeds; one line per seed above it). Seed 0 is the one the weights were looked at on; report
seeds 1 and 2 apart as held out.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

ARMS = ("surprise", "newest", "random")
WORDS = ["alpha", "bravo", "cedar", "delta", "ember", "fjord", "gamma", "harbor", "indigo", "juniper", "kilo",
         "lumen", "maple", "nova", "onyx", "pine", "quartz", "raven", "sierra", "tango", "umber", "violet"]
KEYS = ["name", "port", "workers", "region", "owner", "timeout", "replicas", "log_level", "bucket", "queue"]


def fact_files(rng: random.Random, n: int) -> dict[str, str]:
    out = {}
    for i in range(n):
        keys = rng.sample(KEYS, rng.randint(3, 5))
        lines = []
        for k in keys:
            v = (str(rng.randrange(1000, 65000)) if k in ("port", "timeout") else str(rng.randint(1, 64))
                 if k in ("workers", "replicas") else f"{rng.choice(WORDS)}-{rng.choice(WORDS)}")
            lines.append(f"{k} = {v}\n")
        out[f"{rng.choice(WORDS)}{i}.conf"] = "".join(lines)
    return out


def noise(rng: random.Random, clock: list[float]) -> tuple[str, str]:
    """(command, output) of one look-up with no lasting fact in it."""
    clock[0] += rng.uniform(30, 900)
    t = time.gmtime(1796000000 + clock[0])
    kind = rng.choice(["ps", "date", "uptime", "df", "ls", "gitlog", "gitstatus", "python"])
    if kind == "ps":
        rows = ["USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND"]
        for _ in range(rng.randint(15, 30)):
            rows.append(f"{rng.choice(['root', 'me', 'www-data']):<10}{rng.randrange(1, 99999):>6} "
                        f"{rng.uniform(0, 30):4.1f} {rng.uniform(0, 9):4.1f} {rng.randrange(10**4, 10**6):>6} "
                        f"{rng.randrange(10**3, 10**5):>5} ?        S    {t.tm_hour:02d}:{t.tm_min:02d}   "
                        f"0:{rng.randrange(60):02d} {rng.choice(['python3 app.py', 'nginx: worker', 'sshd', 'bash'])}")
        return "ps aux", "\n".join(rows) + "\n"
    if kind == "date":
        return "date", time.strftime("%a %b %d %H:%M:%S UTC %Y\n", t)
    if kind == "uptime":
        return "uptime", (f" {time.strftime('%H:%M:%S', t)} up {rng.randint(1, 90)} days, {rng.randint(1, 9)} users, "
                          f" load average: {rng.uniform(0, 4):.2f}, {rng.uniform(0, 4):.2f}, {rng.uniform(0, 4):.2f}\n")
    if kind == "df":
        used = rng.randint(10, 90)
        return "df -h", ("Filesystem      Size  Used Avail Use% Mounted on\n"
                         f"/dev/sda1        98G   {used}G   {98 - used}G  {used}% /\ntmpfs           7.8G  "
                         f"{rng.randint(0, 900)}M  7.0G   {rng.randint(0, 9)}% /dev/shm\n")
    if kind == "ls":
        rows = [f"total {rng.randint(100, 9000)}"]
        for name in ("syslog", "auth.log", "kern.log", "dpkg.log", "nginx/access.log", "nginx/error.log"):
            rows.append(f"-rw-r----- 1 syslog adm {rng.randrange(1000, 10**7):>8} "
                        f"{time.strftime('%b %d %H:%M', t)} {name}")
        return "ls -l /var/log", "\n".join(rows) + "\n"
    if kind == "gitlog":
        return "git log --oneline -5", "".join(f"{rng.getrandbits(28):07x} {rng.choice(WORDS)} {rng.choice(WORDS)}\n"
                                                for _ in range(5))
    if kind == "gitstatus":
        return "git status", ("On branch main\nYour branch is up to date with 'origin/main'.\n\n"
                              "nothing to commit, working tree clean\n")
    return "python3 --version", "Python 3.11.2\n"


def build(home: Path, seed: int, n_facts: int, noise_per_fact: float) -> dict[str, str]:
    """The seed's day of use in `home`'s store; returns the fact files (evaluated later)."""
    from echo_agent.config import Settings
    from echo_agent.memory.store import TrajectoryStore
    from echo_agent.records import EpisodeStatus, StepKind

    rng = random.Random(seed)
    files = fact_files(rng, n_facts)
    items = [("cat " + name, text) for name, text in files.items()]
    clock = [0.0]
    items += [noise(rng, clock) for _ in range(int(n_facts * noise_per_fact))]
    rng.shuffle(items)
    with TrajectoryStore(home / "store.db", settings=Settings.load(home)) as store:
        session = store.start_session()
        for command, output in items:
            record(store, session, command, output, StepKind, EpisodeStatus)
    return files


def record(store, session: str, command: str, output: str, StepKind, EpisodeStatus) -> str:  # noqa: N803
    episode = store.start_episode(session, f"run {command}", [])
    sid = store.record_step(episode, reply=f"```bash\n{command}\n```", command=command, output=output,
                            status="[exit 0]", cwd_before="/srv/app", kind=StepKind.RETRIEVAL)
    store.finish_episode(episode, EpisodeStatus.DONE, "ok")
    return sid


def heldout_windows(root: Path, files: dict[str, str], tokenizer, max_seq_len: int) -> list:
    """Each fact file read again, in a store of its own (never trained on), as windows."""
    from echo_agent.memory.store import TrajectoryStore
    from echo_agent.records import EpisodeStatus, StepKind
    from echo_agent.updater.dataset import step_windows

    path = root / "heldout.db"
    path.unlink(missing_ok=True)
    with TrajectoryStore(path) as store:
        session = store.start_session()
        ids = [record(store, session, f"cat {name}", text, StepKind, EpisodeStatus) for name, text in files.items()]
        return step_windows(store, tokenizer, ids, max_seq_len)


def measure(adapter: Path, windows: list, threshold: float) -> tuple[float, float]:
    """(held-out env CE, share of held-out look-ups recallable at `threshold`) under `adapter`."""
    from echo_agent.updater.cycle import load_for_training
    from echo_agent.updater.train import TrainConfig, evaluate

    model, tokenizer, _ = load_for_training("embedded", adapter, TrainConfig(), "cpu")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    per_step: dict[str, list[float]] = {}
    ce, _ = evaluate(model, windows, pad, per_step=per_step)
    recallable = sum(1 for _, n, worst in per_step.values() if n and worst <= -threshold)
    return ce, recallable / max(1, len(per_step))


def one_seed(root: Path, seed: int, args: argparse.Namespace) -> dict[str, dict]:
    from transformers import AutoTokenizer

    from echo_agent.config import Settings
    from echo_agent.memory.store import TrajectoryStore
    from echo_agent.models.local import resolve_model
    from echo_agent.updater import registry
    from echo_agent.updater.cycle import run_cycle
    from echo_agent.updater.train import TrainConfig

    base = root / f"seed{seed}" / "base"
    shutil.rmtree(base.parent, ignore_errors=True)
    base.mkdir(parents=True)
    (base / "config.toml").write_text("policy_check_tasks = 0\ngate_margin = 10.0\n")
    os.environ["ECHO_AGENT_HOME"] = str(base)
    files = build(base, seed, args.facts, args.noise)
    settings = Settings.load(base)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(settings.model)[0])
    windows = heldout_windows(base.parent, files, tokenizer, settings.max_seq_len)
    out = {"starter": dict(zip(("ce", "recall"), measure(registry.STARTER_DIR, windows, -settings.recall_threshold),
                               strict=True))}
    for arm in ARMS:
        home = base.parent / arm
        shutil.copytree(base, home)
        os.environ["ECHO_AGENT_HOME"] = str(home)
        s = Settings.load(home, cycle_budget_minutes=args.budget_minutes, cycle_selection=arm)
        t0 = time.monotonic()
        with TrajectoryStore(home / "store.db", settings=s) as store:
            report = run_cycle(store, s, home=home, cfg=TrainConfig.from_settings(s, seed=seed), device="cpu")
            path = Path(store.rows("SELECT path FROM adapter WHERE id=?", [report.adapter_id])[0]["path"])
        wall = time.monotonic() - t0
        sel, tr = report.metrics.get("selection", {}), report.metrics.get("train", {})
        ce, recall = measure(path, windows, -s.recall_threshold)
        facts = store_facts_trained(home, report.adapter_id)
        out[arm] = {"ce": ce, "recall": recall, "chosen": sel.get("chosen_steps"), "left": sel.get("left_steps"),
                    "pass_s": sel.get("surprise_pass_s", 0.0), "train_s": tr.get("seconds", 0.0),
                    "tokens": tr.get("tokens", 0), "facts": facts, "wall_s": wall}
        print(f"seed {seed} {arm}: {report.status}; chose {sel.get('chosen_steps')} steps ({facts} fact files), "
              f"surprise pass {out[arm]['pass_s']} s, training {out[arm]['train_s']:.0f} s; held-out CE {ce:.3f}, "
              f"recallable {recall:.2f}", flush=True)
    return out


def store_facts_trained(home: Path, adapter_id: str) -> int:
    import sqlite3

    with sqlite3.connect(home / "store.db") as c:
        return c.execute("SELECT count(*) FROM adapter_step a JOIN step s ON s.id = a.step_id WHERE a.adapter_id=? "
                         "AND s.command LIKE 'cat %'", [adapter_id]).fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--budget-minutes", type=float, default=1.5)
    parser.add_argument("--facts", type=int, default=40)
    parser.add_argument("--noise", type=float, default=1.5, help="noise look-ups per fact look-up")
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    seeds = [int(x) for x in args.seeds.split(",")]
    root = args.keep or Path(tempfile.mkdtemp(prefix="echo-selection-"))
    results = {seed: one_seed(root, seed, args) for seed in seeds}
    print(f"\n{'seed':>4} {'arm':>9} {'held-out CE':>12} {'recallable':>11} {'steps':>6} {'facts':>6} {'pass s':>7} "
          f"{'train s':>8} {'tokens':>7}")
    for seed, out in results.items():
        for arm in ("starter", *ARMS):
            r = out[arm]
            print(f"{seed:>4} {arm:>9} {r['ce']:>12.3f} {r['recall']:>11.2f} {r.get('chosen') or '':>6} "
                  f"{r.get('facts', ''):>6} {r.get('pass_s', ''):>7} {r.get('train_s', 0):>8.0f} "
                  f"{r.get('tokens', ''):>7}")
        print(f"RESULT seed={seed} " + " ".join(f"{a}_ce={out[a]['ce']:.3f}" for a in ARMS) + " "
              + " ".join(f"{a}_recall={out[a]['recall']:.3f}" for a in ARMS))
    mean = {a: {k: statistics.mean(results[s][a][k] for s in seeds) for k in ("ce", "recall")} for a in ARMS}
    print("RESULT " + " ".join(f"{a}_ce={mean[a]['ce']:.3f}" for a in ARMS) + " "
          + " ".join(f"{a}_recall={mean[a]['recall']:.3f}" for a in ARMS)
          + f" budget_minutes={args.budget_minutes:g} seeds={','.join(map(str, seeds))}")


if __name__ == "__main__":
    main()
