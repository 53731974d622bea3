"""One update cycle: new steps → windows → LoRA training → evaluation → gate → registry.

Only one cycle runs per home at a time (`<home>/updater.lock`, an flock that dies with its process). A cycle
killed at any point promotes nothing: the candidate row is written before training as `candidate` and its
directory only appears, whole, after training; the next cycle removes temp directories and marks candidates of
dead cycles `rejected`.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from echo_agent.config import Settings, home_dir
from echo_agent.updater import registry
from echo_agent.updater.dataset import Window, select_cycle_data, tokenize_episode, windows
from echo_agent.updater.train import TrainConfig, evaluate, lora_config, train


class UpdateBusy(Exception):
    """Another update cycle holds this home's lock."""


@dataclass
class CycleReport:
    status: str  # promoted | rejected | nothing-new | no-heldout
    adapter_id: str | None = None
    message: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)


@contextmanager
def update_lock(home: Path, wait: bool = True) -> Iterator[None]:
    """Hold the home's update lock; with wait=False, raise UpdateBusy when another cycle has it."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "updater.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise UpdateBusy(f"another update is running (pid {holder}); wait for it or try again later") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def probe_windows(tokenizer: Any, max_seq_len: int) -> list[Window]:
    """The bundled forgetting probe (generic terminal transcripts, see scripts/make_probe.py) as windows."""
    from echo_agent.transcript import render_episode

    out: list[Window] = []
    text = resources.files("echo_agent").joinpath("data/probe.jsonl").read_text()
    for i, line in enumerate(text.splitlines()):
        ep = json.loads(line)
        steps = [{**s, "id": f"probe-{i}-{j}", "source": "executed", "trainable": 1}
                 for j, s in enumerate(ep["steps"])]
        msgs = render_episode({"task": ep["task"], "prompt": ep["prompt"]}, steps)
        tok = tokenize_episode(tokenizer, msgs)
        out += windows(tok, max_seq_len, len(msgs) - 2 * len(steps), f"probe-{i}")
    return out


def retention(before: dict[str, list[float]], after: dict[str, list[float]], threshold: float) -> dict[str, Any]:
    """Older steps the adapter in use would recall, and how many of them the candidate loses.

    `before`/`after` are `evaluate(per_step=…)` results ([sum, n, max token CE]) of the adapter in use and the
    candidate on the same older episodes. A step is recallable when its weakest env token, teacher-forced, is
    within the recall threshold (its CE is at most -threshold). The mean CE over older episodes hides what
    matters here: a cycle that overwrites one file's version number with another's raises that step's weakest
    token from ~0 to several nats, while the mean over all older steps barely moves (measured on the retrieval
    bench: mean 0.087 → 0.085 while two recalled facts were scrambled).
    """
    limit = -threshold
    known = [sid for sid, (_, n, worst) in before.items() if n and worst <= limit]
    lost = [sid for sid in known if sid not in after or after[sid][2] > limit]
    return {"known": len(known), "lost": len(lost), "lost_fraction": len(lost) / len(known) if known else 0.0,
            "lost_steps": lost}


def load_for_training(model: str | Path, adapter: Path | None, cfg: TrainConfig, device: str = "auto"):
    """(peft model with a trainable LoRA, tokenizer, device): continues `adapter` when given, else a new one."""
    import torch
    from peft import PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from echo_agent.models.local import resolve_model

    source, _ = resolve_model(model)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(source)
    base = AutoModelForCausalLM.from_pretrained(source, dtype=dtype).to(device)
    if adapter is not None:
        peft_model = PeftModel.from_pretrained(base, str(adapter), is_trainable=True)
    else:
        torch.manual_seed(cfg.seed)
        peft_model = get_peft_model(base, lora_config(cfg))
    return peft_model, tokenizer, device


def run_cycle(
    store: Any,
    settings: Settings | None = None,
    *,
    home: Path | None = None,
    model: str | Path | None = None,
    cfg: TrainConfig | None = None,
    device: str = "auto",
    wait: bool = True,
    on_progress: Callable[[str, dict], None] | None = None,
) -> CycleReport:
    """Run one cycle now (the caller holds nothing; the lock is taken here)."""
    settings = settings or Settings.load()
    home = home or home_dir()
    model = model or settings.model
    cfg = cfg or TrainConfig(lora_r=settings.lora_r, lora_alpha=settings.lora_alpha)
    say = on_progress or (lambda event, info: None)
    root = registry.adapters_dir(home)
    with update_lock(home, wait=wait):
        for d in registry.cleanup_temp(root):
            say("cleaned", {"path": str(d)})
        for row in store.list_adapters(status="candidate"):  # left by a cycle that died
            store.set_adapter_status(row["id"], "rejected")

        base_name, base_hash = registry.model_identity(model)
        current = registry.current_adapter_row(store)
        if current is not None:
            try:
                registry.check_adapter(Path(current["path"]), base_hash)
            except registry.AdapterError as e:
                return CycleReport("rejected", message=str(e))
        since = current["trained_through_seq"] if current else 0
        current_path = Path(current["path"]) if current else None

        say("loading", {"model": str(model), "adapter": current["id"] if current else None})
        peft_model, tokenizer, device = load_for_training(model, current_path, cfg, device)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        data = select_cycle_data(store, tokenizer, since_seq=since, max_seq_len=settings.max_seq_len,
                                 heldout_fraction=settings.heldout_fraction,
                                 duplicate_cap=settings.duplicate_cap, replay_fraction=settings.replay_fraction,
                                 replay_min=settings.replay_min, retention_episodes=settings.retention_episodes,
                                 seed=cfg.seed)
        if not data.new_step_ids:
            return CycleReport("nothing-new", message="no new trainable steps since the adapter in use")
        if not data.train or not data.heldout:
            return CycleReport("no-heldout", message=(
                f"{len(data.new_step_ids)} new steps are not enough for a cycle: it needs at least two episodes "
                "with environment output (one is held out for evaluation)"))

        # Before training: the current model's surprise on each new step, and the baselines.
        per_step: dict[str, list[float]] = {}
        replayed = set(data.replay_episode_ids)
        new_windows = [w for w in data.train if w.episode_id not in replayed]
        evaluate(peft_model, new_windows, pad_id, per_step=per_step)
        heldout_current, n_held = evaluate(peft_model, data.heldout, pad_id, per_step=per_step)
        new_ids = set(data.new_step_ids)
        store.set_surprise({sid: total / n for sid, (total, n, _) in per_step.items() if n and sid in new_ids})
        kept_before: dict[str, list[float]] = {}
        evaluate(peft_model, data.retention, pad_id, per_step=kept_before)
        probe = probe_windows(tokenizer, settings.max_seq_len)
        with peft_model.disable_adapter():
            heldout_base, _ = evaluate(peft_model, data.heldout, pad_id)
            probe_base, n_probe = evaluate(peft_model, probe, pad_id)
        say("baseline", {"heldout_base": heldout_base, "heldout_current": heldout_current,
                         "probe_base": probe_base, "train_env_tokens": data.n_train_env_tokens})

        adapter_id = store.next_adapter_id()
        store.insert_adapter(id=adapter_id, parent_id=current["id"] if current else None, base_model=base_name,
                             base_hash=base_hash, path=str(root / adapter_id), status="candidate",
                             trained_through_seq=data.trained_through_seq, n_env_tokens=data.n_train_env_tokens,
                             metrics=json.dumps({}))
        stats = train(peft_model, data.train, cfg, pad_id,
                      on_step=lambda s, total: say("step", {"step": s.steps, "total": total, "loss": s.final_loss,
                                                             "tokens_per_s": s.tokens_per_s}))
        heldout_cand, _ = evaluate(peft_model, data.heldout, pad_id)
        probe_cand, _ = evaluate(peft_model, probe, pad_id)
        kept_after: dict[str, list[float]] = {}
        evaluate(peft_model, data.retention, pad_id, per_step=kept_after)
        gain = (heldout_current - heldout_cand) / heldout_current if heldout_current else 0.0
        probe_rise = (probe_cand - probe_base) / probe_base if probe_base else 0.0
        kept = retention(kept_before, kept_after, settings.recall_threshold)
        passed = (gain >= settings.gate_margin and probe_rise <= settings.forgetting_tolerance
                  and kept["lost_fraction"] <= settings.retention_tolerance)
        metrics = {
            "heldout_ce": {"base": heldout_base, "current": heldout_current, "candidate": heldout_cand},
            "probe_ce": {"base": probe_base, "candidate": probe_cand},
            "gain": gain, "probe_rise": probe_rise, "heldout_env_tokens": n_held, "probe_env_tokens": n_probe,
            "train": {"steps": stats.steps, "env_tokens": stats.env_tokens, "tokens": stats.tokens,
                      "seconds": round(stats.seconds, 2), "tokens_per_s": round(stats.tokens_per_s, 1),
                      "final_loss": stats.final_loss, "stopped_early": stats.stopped_early},
            "retention": kept, "boundary_tokens": data.boundary_tokens,
            "gate": {"margin": settings.gate_margin, "tolerance": settings.forgetting_tolerance,
                     "retention_tolerance": settings.retention_tolerance},
        }
        meta = {"parent_id": current["id"] if current else None, "base_model": base_name, "base_hash": base_hash,
                "config": cfg.to_dict(), "metrics": metrics, "versions": registry.library_versions(),
                "data": {"since_seq": since, "trained_through_seq": data.trained_through_seq,
                         "train_steps": len(data.train_step_ids), "heldout_episodes": data.heldout_episode_ids},
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        registry.save_adapter(peft_model, root, adapter_id, meta)
        store.record_adapter_steps(adapter_id, data.train_step_ids)
        store.update_adapter(adapter_id, metrics=json.dumps(metrics),
                             status="promoted" if passed else "rejected")
        verdict = "promoted" if passed else "rejected"
        message = (f"{adapter_id} {verdict}: held-out env CE {heldout_current:.3f} → {heldout_cand:.3f} "
                   f"({gain:+.1%} vs the {settings.gate_margin:.0%} margin), probe {probe_base:.3f} → "
                   f"{probe_cand:.3f} ({probe_rise:+.1%}, tolerance {settings.forgetting_tolerance:.0%})")
        if kept["known"]:
            message += (f", loses {kept['lost']} of {kept['known']} older steps the adapter in use recalls "
                        f"({kept['lost_fraction']:.0%}, tolerance {settings.retention_tolerance:.0%})")
        return CycleReport(verdict, adapter_id, message, metrics)
