"""Does one update cycle teach the embedded model a workspace's facts, without forgetting, at bare-loop speed?

    ECHO_AGENT_CACHE=/work/main/.cache/test-models .venv/bin/python benchmarks/echo_learning.py \
        [--seed 0] [--episodes 40] [--epochs N] [--minutes 20] [--json]

A workspace of small config files holding random facts no model can know (service names, ports, versions,
owners, from the seed) is looked up through the real agent loop: `Agent` with a `ScriptedBackend` policy whose
replies are the look-up commands (`cat svc3.conf`, `grep port svc3.conf`, …) then an answer, a real
`ShellSession`, and a `TrajectoryStore` in a temporary home (never the user's; the adapter lands there too).
Episodes carry only the system prompt (no worked example, no in-context examples): tokens are what cost CPU time.
Then ONE update cycle runs (`run_cycle`, the real `train()` with the `TrainConfig` defaults, `--epochs` aside).

Env-token CE (nats/token) of the base model and the cycle's adapter on:
- seen:  later runs of the trained commands, recorded after the training episodes in a separate store (never
         trained on);
- novel: commands never trained on over the same files (`grep owner`, `head -n 2`, `sed -n 3p`), also separate;
- probe: the bundled forgetting probe (`probe_windows`, as the cycle's gate measures it; never trained on).

Training throughput: `train()`'s tokens/s (non-pad tokens over its wall time, everything included: collation,
LR schedule, clipping, bookkeeping) against a bare loop measured in the same run on the same model (base + a
fresh LoRA of the same config and seed) and the same batches (the first epoch of `train()`'s own seeded batch
plan, collated beforehand): per batch `loss_fn` (forward, with logits at the loss positions only, as `train()`
computes them; the token-mean env CE), backward, optimizer step, nothing else. Timings share the CPU with
whatever else runs on the machine.

The last line is machine-readable (drops and rise are fractions of the base model's CE; efficiency is train()'s
tokens/s over the bare loop's):
    RESULT seen_ce_drop=… novel_ce_drop=… probe_rise=… train_efficiency=… minutes=…
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from echo_agent.bench.world import World

SEEN = ["cat {f}", "grep port {f}", "grep version {f}"]  # trained (and re-run later for "seen")
NOVEL = ["grep owner {f}", "head -n 2 {f}", "sed -n 3p {f}"]  # never trained: the same facts, other views


def make_workspace(root: Path, world: World, n_files: int) -> dict[str, dict[str, str]]:
    """Config files of random facts (the world's service configs): {file name: {key: value}}."""
    services = world.service_configs(n_files, first_major=0)
    world.build(root)
    return {svc["file"]: {k: svc[k] for k in ("name", "port", "version", "owner")} for svc in services}


def answer_for(command: str, facts: dict[str, str]) -> str:
    key = next((k for k in facts if k in command), "name")
    return facts[key]


def record(store, shell, jobs: list[tuple[str, str]], facts: dict[str, dict[str, str]]) -> None:
    """One episode per (command template, file): the look-up, then an answer."""
    from echo_agent.agent import Agent, AgentConfig
    from echo_agent.models.scripted import ScriptedBackend
    from echo_agent.prompting import SYSTEM_PROMPT

    # No worked example: fewer tokens per episode.
    config = AgentConfig(examples=0, yes=True, prompt=[{"role": "system", "content": SYSTEM_PROMPT}])
    for template, f in jobs:
        command = template.format(f=f)
        key = next((k for k in facts[f] if k in command), "settings")
        replies = [f"```bash\n{command}\n```", f"```answer\n{answer_for(command, facts[f])}\n```"]
        Agent(ScriptedBackend(replies), shell, store, config=config).run(f"{key} of {f.removesuffix('.conf')}")


def store_windows(store, tokenizer, max_seq_len: int) -> list:
    from echo_agent.transcript import render
    from echo_agent.updater.dataset import episode_windows

    out = []
    for ep in reversed(store.recent_episodes(10_000)):
        rendered = render(store.get_episode(ep["id"]), store.episode_steps(ep["id"]))
        out += episode_windows(tokenizer, rendered, max_seq_len, ep["id"])[0]
    return [w for w in out if w.n_env_tokens]


def bare_loop(model, batches: list, cfg) -> tuple[int, float]:
    """(tokens, seconds) of forward, loss, backward, optimizer step over pre-collated batches."""
    import torch

    from echo_agent.updater.train import loss_fn

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    model.train()
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    start = time.monotonic()
    for b in batches:
        loss, _, _ = loss_fn(model, b, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return tokens, time.monotonic() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--episodes", type=int, default=40, help="training episodes recorded before the cycle")
    ap.add_argument("--epochs", type=int, default=None, help="override TrainConfig.epochs")
    ap.add_argument("--minutes", type=float, default=20.0, help="training time limit (TrainConfig.max_minutes)")
    ap.add_argument("--files", type=int, default=6, help="config files in the workspace")
    ap.add_argument("--json", action="store_true", help="also print the results as one JSON object")
    args = ap.parse_args()
    t0 = time.monotonic()
    console = Console(stderr=True)

    tmp = Path(tempfile.mkdtemp(prefix="echo-learning-"))
    os.environ["ECHO_AGENT_HOME"] = str(tmp / "home")  # a home of our own: never the user's store or adapters
    from echo_agent.config import Settings
    from echo_agent.memory.store import TrajectoryStore
    from echo_agent.shell import ShellSession
    from echo_agent.updater.cycle import load_for_training, run_cycle
    from echo_agent.updater.train import TrainConfig, batches, collate, evaluate

    world = World(args.seed)
    rng = world.rng  # the jobs' order continues the world's draws
    ws = tmp / "ws"
    ws.mkdir(parents=True)
    facts = make_workspace(ws, world, args.files)
    files = sorted(facts)
    seen_jobs = [(t, f) for f in files for t in SEEN]
    train_jobs = [seen_jobs[i % len(seen_jobs)] for i in range(args.episodes)]
    rng.shuffle(train_jobs)
    settings = Settings.load()
    home = Path(os.environ["ECHO_AGENT_HOME"])
    store = TrajectoryStore(home / "store.db")
    seen_store, novel_store = TrajectoryStore(tmp / "seen.db"), TrajectoryStore(tmp / "novel.db")
    with ShellSession(cwd=ws) as shell:
        record(store, shell, train_jobs, facts)
        record(seen_store, shell, seen_jobs, facts)  # after the training data; never trained on
        record(novel_store, shell, [(t, f) for f in files for t in NOVEL], facts)
    t_record = time.monotonic() - t0

    cfg = TrainConfig.from_settings(settings, max_minutes=args.minutes, epochs=args.epochs)
    console.print(f"[dim]recorded {args.episodes} training episodes in {t_record:.0f} s; training {cfg}[/dim]")

    def progress(event: str, info: dict) -> None:
        if event == "step":
            console.print(f"[dim]step {info['step']}/{info['total']} loss {info['loss']:.3f} "
                          f"{info['tokens_per_s']:.0f} tok/s[/dim]")
        else:
            console.print(f"[dim]{event} {info}[/dim]")

    t = time.monotonic()
    report = run_cycle(store, settings, home=home, model="embedded", cfg=cfg, device="cpu", on_progress=progress)
    t_cycle = time.monotonic() - t
    if report.adapter_id is None:
        console.print(f"[red]the cycle trained nothing: {report.status}: {report.message}[/red]")
        return 1
    m = report.metrics
    console.print(f"[dim]{report.message}[/dim]")

    model, tokenizer, _ = load_for_training("embedded", home / "adapters" / report.adapter_id, cfg, "cpu")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ce: dict[str, dict[str, float]] = {}
    for name, st in (("seen", seen_store), ("novel", novel_store)):
        wins = store_windows(st, tokenizer, settings.max_seq_len)
        adapter, n = evaluate(model, wins, pad_id)
        with model.disable_adapter():
            base, _ = evaluate(model, wins, pad_id)
        ce[name] = {"base": base, "adapter": adapter, "env_tokens": n}
    ce["probe"] = {"base": m["probe_ce"]["base"], "adapter": m["probe_ce"]["candidate"],
                   "env_tokens": m["probe_env_tokens"]}
    del model

    # The bare loop: same model config and init, the first epoch of train()'s own batch plan.
    from echo_agent.updater.dataset import select_cycle_data

    data = select_cycle_data(store, tokenizer, since_seq=0, settings=settings, seed=cfg.seed)
    fresh, _, _ = load_for_training("embedded", None, cfg, "cpu")
    plan = [collate(b, pad_id, "cpu") for b in batches(data.train, cfg.batch_tokens, random.Random(cfg.seed))]
    bare_tokens, bare_s = bare_loop(fresh, plan, cfg)
    del fresh
    echo_tps = m["train"]["tokens_per_s"]
    bare_tps = bare_tokens / bare_s
    minutes = (time.monotonic() - t0) / 60

    def drop(k: str) -> float:
        return (ce[k]["base"] - ce[k]["adapter"]) / ce[k]["base"]

    result = {"seen_ce_drop": drop("seen"), "novel_ce_drop": drop("novel"), "probe_rise": -drop("probe"),
              "train_efficiency": echo_tps / bare_tps, "minutes": minutes}
    targets = {"seen_ce_drop": (">=", 0.5), "novel_ce_drop": (">=", 0.2), "probe_rise": ("<=", 0.05),
               "train_efficiency": (">=", 0.7), "minutes": ("<=", 20.0)}

    out = Console()
    table = Table(title=f"ECHO learning: {report.adapter_id} {report.status} (seed {args.seed}, "
                        f"{args.episodes} episodes, {cfg.epochs} epochs, lr {cfg.lr:g}, r {cfg.lora_r}, "
                        f"kl {cfg.kl_weight:g})")
    for col in ("set", "env tokens", "base CE", "adapter CE", "change"):
        table.add_column(col, justify="left" if col == "set" else "right")
    for k in ("seen", "novel", "probe"):
        table.add_row(k, str(ce[k]["env_tokens"]), f"{ce[k]['base']:.3f}", f"{ce[k]['adapter']:.3f}",
                      f"{-drop(k):+.1%}")
    out.print(table)
    speed = Table(title="training throughput (2 shared CPU cores: noisy)")
    for col in ("loop", "steps", "tokens", "seconds", "tokens/s"):
        speed.add_column(col, justify="left" if col == "loop" else "right")
    tr = m["train"]
    speed.add_row("train() (ECHO)", str(tr["steps"]), str(tr["tokens"]), f"{tr['seconds']:.1f}", f"{echo_tps:.1f}")
    speed.add_row("bare, epoch 1", str(len(plan)), str(bare_tokens), f"{bare_s:.1f}", f"{bare_tps:.1f}")
    out.print(speed)
    verdicts = Table(title="targets")
    for col in ("metric", "value", "target", "met"):
        verdicts.add_column(col)
    for k, (op, v) in targets.items():
        ok = result[k] >= v if op == ">=" else result[k] <= v
        verdicts.add_row(k, f"{result[k]:.3f}", f"{op} {v:g}", "yes" if ok else "[red]no[/red]")
    out.print(verdicts)
    out.print(f"record {t_record:.0f} s, cycle {t_cycle:.0f} s (train {tr['seconds']:.0f} s), "
              f"total {minutes:.1f} min; gate: {report.message}")
    if args.json:
        print(json.dumps({**result, "ce": ce, "train": tr, "bare": {"tokens": bare_tokens, "seconds": bare_s},
                          "config": cfg.to_dict(), "gate": report.status, "seed": args.seed,
                          "episodes": args.episodes}))
    print("RESULT " + " ".join(f"{k}={v:.3f}" if k != "minutes" else f"{k}={v:.1f}" for k, v in result.items()))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
