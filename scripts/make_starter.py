"""Build the starter adapter: the example library's look-ups, really run, learned as whole episodes.

    ECHO_AGENT_CACHE=.cache/test-models .venv/bin/python scripts/make_starter.py [--seeds 100] [--epochs 1]
        [--limit N] [--out DIR]

For each workspace seed (disjoint from the benchmarks': the assistant benchmark uses 0 and 1, the retrieval bench
0-4), `World.library_home` writes every file the library names, with contents from the seed, and a git history;
the harness starts the processes it names and sets its variables. Then every library example runs as an episode of
the real agent (the prompt it ships with: listing, worked example, BM25 examples) whose replies are scripted: the
example's command, then an answer made from the real output. Episodes whose command failed are left out. A LoRA
adapter is trained on the rest, on environment and action tokens (the replies: what to run, and how to answer),
and written in float16 with the adapter metadata to `--out` (default .cache/starter; the package ships
`echo_agent/data/starter`, which `--out echo_agent/data/starter` replaces). `--limit` runs a seeded sample of
the library instead of all of it.
The last 10% of episodes are held out: their env and action CE before and after are printed, then

    RESULT episodes=… heldout_env_ce=…→… heldout_action_ce=…→… minutes=…
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import make_examples  # noqa: E402

from echo_agent.bench.world import World  # noqa: E402

VOCAB = {"text": make_examples.TEXT, "logs": make_examples.LOGS, "configs": make_examples.CONFIGS,
         "jsons": make_examples.JSONS, "envs": make_examples.ENVS, "tables": make_examples.TABLES,
         "blobs": make_examples.BLOBS, "dirs": make_examples.DIRS, "search": make_examples.SEARCH,
         "keys": make_examples.KEYS, "env_keys": make_examples.ENV_KEYS, "levels": make_examples.LEVELS,
         "exts": sorted({ext for _, ext in make_examples.EXTS}), "variables": make_examples.VARS,
         "processes": make_examples.PROCS}
ANSWER_LINES = 4


def answer_for(observation: str) -> str:
    """The answer a look-up's output gives: its first lines, as printed."""
    lines = [line for line in observation.splitlines()[:-1] if line.strip()]  # the last line is the status
    if not lines:
        return "It printed nothing."
    shown = "\n".join(lines[:ANSWER_LINES])
    return shown if len(lines) <= ANSWER_LINES else shown + "\n…"


def record_episodes(store, seed: int, base: Path, examples: list, settings) -> int:
    """Run every example as an episode in the seed's library workspace; returns how many exited 0."""
    from echo_agent.agent import Agent, AgentConfig, SilentUI
    from echo_agent.models.scripted import ScriptedBackend
    from echo_agent.shell import ShellSession

    world = World(seed)
    facts = world.library_home(VOCAB)
    root = world.build(base / f"seed{seed}")
    bin_dir = base / f"bin{seed}"
    bin_dir.mkdir()
    procs = []
    for name in facts["processes"]:
        (bin_dir / name).symlink_to(shutil.which("sleep"))
        procs.append(subprocess.Popen([str(bin_dir / name), "3600"], stdout=subprocess.DEVNULL))
    kept = 0
    try:
        with ShellSession(cwd=root, env=facts["variables"]) as shell:
            for ex in examples:
                def reply(messages, command=ex.command):
                    if messages[-1]["role"] == "tool":
                        return f"```answer\n{answer_for(messages[-1]['content'])}\n```"
                    return f"```bash\n{command}\n```"

                agent = Agent(ScriptedBackend(reply), shell, store, config=AgentConfig(listing=40, recall=False),
                              settings=settings, ui=SilentUI())
                result = agent.run(ex.task)
                ok = result.status == "done" and result.steps and result.steps[0]["exit_code"] == 0
                kept += bool(ok)
                if not ok:  # a failed look-up teaches nothing worth keeping: mark it out of training
                    store.finish_episode(result.episode_id, "failed", None)
                shell.run(f"cd {root}")
    finally:
        for p in procs:
            p.kill()
            p.wait()
    return kept


ALWAYS_KEPT = ("peft_type", "task_type", "r", "lora_alpha", "lora_dropout", "target_modules", "bias",
               "fan_in_fan_out", "inference_mode", "base_model_name_or_path")


def portable_config(path: Path, base_name: str) -> None:
    """Leave in adapter_config.json only what differs from peft's defaults (and the keys every version has): the
    file ships, and a peft as old as the dependency floor refuses keys it does not know. The base model is named,
    not given as this machine's path to it."""
    from peft import LoraConfig

    file = path / "adapter_config.json"
    config = json.loads(file.read_text())
    defaults = json.loads(json.dumps(LoraConfig().to_dict(), default=lambda v: sorted(v) if isinstance(v, set)
                                     else str(v)))
    kept = {k: v for k, v in config.items() if k in ALWAYS_KEPT or k not in defaults or v != defaults[k]}
    kept["base_model_name_or_path"] = base_name
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps(kept, indent=2, sort_keys=True))
    os.replace(tmp, file)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="100", help="comma-separated workspace seeds")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lora-r", type=int, default=8)
    ap.add_argument("--limit", type=int, default=0, help="use only this many library examples (0: all)")
    ap.add_argument("--out", type=Path, default=REPO / ".cache" / "starter", help="the adapter directory to write")
    args = ap.parse_args()
    t0 = time.monotonic()

    tmp = Path(tempfile.mkdtemp(prefix="echo-starter-"))
    os.environ["ECHO_AGENT_HOME"] = str(tmp / "home")
    from echo_agent.config import Settings
    from echo_agent.examples import bundled_examples
    from echo_agent.memory.store import TrajectoryStore
    from echo_agent.transcript import render
    from echo_agent.updater import registry
    from echo_agent.updater.cycle import load_for_training
    from echo_agent.updater.dataset import episode_windows
    from echo_agent.updater.train import Objective, TrainConfig, evaluate, train

    settings = Settings.load()
    examples = list(bundled_examples())
    if args.limit:
        examples = random.Random(1).sample(examples, args.limit)
    store = TrajectoryStore(tmp / "starter.db", settings=settings, durable=False)
    for seed in (int(s) for s in args.seeds.split(",")):
        kept = record_episodes(store, seed, tmp, examples, settings)
        print(f"seed {seed}: {kept} of {len(examples)} look-ups exited 0", file=sys.stderr)

    cfg = TrainConfig(epochs=args.epochs, lr=args.lr, lora_r=args.lora_r, lora_alpha=2 * args.lora_r,
                      objective=Objective.ENV_ACTION, action_weight=1.0)
    model, tokenizer, _ = load_for_training("embedded", None, cfg, "cpu")
    episodes = [e for e in reversed(store.recent_episodes(100_000)) if e["status"] == "done"]
    random.Random(0).shuffle(episodes)
    n_held = max(1, len(episodes) // 10)
    windows = {"train": [], "heldout": []}
    for i, ep in enumerate(episodes):
        steps = store.episode_steps(ep["id"])
        ws, _ = episode_windows(tokenizer, render(store.get_episode(ep["id"]), steps), settings.max_seq_len, ep["id"])
        windows["heldout" if i < n_held else "train"] += ws
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def action_ce(wins):
        flipped = [type(w)(w.input_ids, w.action_mask, w.env_mask, w.step_ids, w.episode_id) for w in wins]
        return evaluate(model, flipped, pad)[0]

    before = (evaluate(model, windows["heldout"], pad)[0], action_ce(windows["heldout"]))
    print(f"training on {len(windows['train'])} episodes ({sum(len(w.input_ids) for w in windows['train'])} tokens "
          f"per epoch), {cfg.epochs} epochs", file=sys.stderr)
    stats = train(model, windows["train"], cfg, pad,
                  on_step=lambda s, total: print(f"step {s.steps}/{total} loss {s.final_loss:.3f} "
                                                 f"{s.tokens_per_s:.0f} tok/s", file=sys.stderr)
                  if s.steps % 20 == 0 or s.steps == total else None)
    after = (evaluate(model, windows["heldout"], pad)[0], action_ce(windows["heldout"]))
    base_name, base_hash = registry.model_identity("embedded")
    meta = {"id": registry.STARTER_ID, "parent_id": None, "base_model": base_name, "base_hash": base_hash,
            "config": cfg.to_dict(),
            "versions": registry.library_versions(), "starter": True,
            "data": {"seeds": args.seeds, "episodes": len(episodes), "heldout_episodes": n_held},
            "metrics": {"heldout_env_ce": {"before": before[0], "after": after[0]},
                        "heldout_action_ce": {"before": before[1], "after": after[1]},
                        "train": {"steps": stats.steps, "tokens": stats.tokens, "seconds": round(stats.seconds, 1)}},
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for name, param in model.named_parameters():  # shipped in float16: half the size; loading upcasts it
        if "lora_" in name:
            param.data = param.data.half()
    if args.out.exists():
        shutil.rmtree(args.out)
    registry.save_adapter(model, args.out.parent, args.out.name, meta)
    (args.out / "README.md").unlink(missing_ok=True)  # peft's model card template: nothing the package needs
    portable_config(args.out, base_name)
    print(json.dumps(meta["metrics"], indent=1), file=sys.stderr)
    print(f"RESULT episodes={len(episodes)} heldout_env_ce={before[0]:.3f}->{after[0]:.3f} "
          f"heldout_action_ce={before[1]:.3f}->{after[1]:.3f} minutes={(time.monotonic() - t0) / 60:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
