"""One update cycle: new steps → windows → LoRA training → evaluation → gate → registry.

`run_cycle` reads as its parts: clean up after dead cycles, choose the data (`dataset.select_cycle_data`),
measure the baseline, train, measure the candidate, ask the gate (`gate.py`, pure), persist the verdict.

Only one cycle runs per home at a time (`<home>/updater.lock`, an flock that dies with its process). A cycle
killed at any point promotes nothing: the candidate row is written before training as `candidate` and its
directory only appears, whole, after training; the verdict (status, metrics and the steps it trained on) is one
transaction; the next cycle removes temp directories and marks candidates of dead cycles `rejected`. Every cycle
has a row in the `cycle` table (`memory/cycles.py`), whatever its outcome.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from echo_agent.config import Settings, home_dir
from echo_agent.errors import AdapterError, UpdateBusy
from echo_agent.memory import adapters as adapter_rows
from echo_agent.memory import cycles
from echo_agent.records import AdapterStatus
from echo_agent.updater import policy, registry
from echo_agent.updater.dataset import CycleData, Window, build_windows, choose_episodes, episode_windows
from echo_agent.updater.gate import Baseline, Candidate, Decision, gate, retention
from echo_agent.updater.measure import measure_baseline, measure_candidate, recall_check, recallable_change
from echo_agent.updater.select import within_budget
from echo_agent.updater.train import (
    Objective,
    TrainConfig,
    TrainStats,
    Yielded,
    check_yield,
    evaluate,
    lora_config,
    train,
    yielding_to,
)

if TYPE_CHECKING:
    from echo_agent.memory.store import TrajectoryStore

__all__ = ["CycleReport", "CycleStatus", "UpdateBusy", "run_cycle", "update_lock"]

Progress = Callable[[str, dict], None]


class CycleStatus(StrEnum):
    PROMOTED = "promoted"
    REJECTED = "rejected"
    NOTHING_NEW = "nothing-new"
    """No trainable step since the adapter in use."""
    NO_HELDOUT = "no-heldout"
    """New steps, but too few episodes to hold one out for evaluation."""
    YIELDED = "yielded"
    """Training stopped for an agent episode: nothing promoted; a later cycle trains on the same data."""
    FAILED = "failed"
    """An error, or the process was killed (found by the next cycle): nothing promoted."""


@dataclass
class CycleReport:
    status: CycleStatus
    adapter_id: str | None = None
    message: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    decision: Decision | None = None


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
    from echo_agent.transcript import render

    out: list[Window] = []
    text = resources.files("echo_agent").joinpath("data/probe.jsonl").read_text()
    for i, line in enumerate(text.splitlines()):
        ep = json.loads(line)
        steps = [{**s, "id": f"probe-{i}-{j}", "source": "executed", "trainable": 1}
                 for j, s in enumerate(ep["steps"])]
        out += episode_windows(tokenizer, render({"task": ep["task"], "prompt": ep["prompt"]}, steps), max_seq_len,
                               f"probe-{i}")[0]
    return out


def load_for_training(model: str | Path, adapter: Path | None, cfg: TrainConfig, device: str = "auto"):
    """(peft model with a trainable LoRA, tokenizer, device): continues `adapter` when given, else a new one."""
    import torch
    from peft import PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from echo_agent.models.local import quiet_peft, resolve_model

    source, _ = resolve_model(model)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(source)
    base = AutoModelForCausalLM.from_pretrained(source, dtype=dtype).to(device)
    with quiet_peft():
        if adapter is not None:
            peft_model = PeftModel.from_pretrained(base, str(adapter), is_trainable=True)
        else:
            torch.manual_seed(cfg.seed)
            peft_model = get_peft_model(base, lora_config(cfg))
    return peft_model, tokenizer, device


def run_cycle(
    store: TrajectoryStore,
    settings: Settings | None = None,
    *,
    home: Path | None = None,
    model: str | Path | None = None,
    cfg: TrainConfig | None = None,
    device: str = "auto",
    wait: bool = True,
    on_progress: Progress | None = None,
    interrupt: Callable[[], str | None] | None = None,
    trigger: str = "by hand",
) -> CycleReport:
    """Run one cycle now (the caller holds nothing; the lock is taken here). Its outcome is a `cycle` row, written
    `running` first: a cycle that raises is recorded `failed` with the error, and one whose process is killed is
    found `running` by the next, which records it `failed`. `interrupt` (`train.yielding_to`) makes the cycle
    give way, before the next optimizer step or evaluation batch: nothing is promoted, and the data stays for a
    later cycle."""
    settings = settings or Settings.load()
    home = home or home_dir()
    say = on_progress or (lambda event, info: None)
    with update_lock(home, wait=wait):
        recovered = cycles.mark_killed(store)
        cycle_id = cycles.begin(store, os.getpid(), trigger)
        cpu, wall = time.process_time(), time.monotonic()

        def ended(status: str, message: str, adapter_id: str | None = None, metrics: dict | None = None) -> None:
            cycles.end(store, cycle_id, status=status, message=message, adapter_id=adapter_id,
                       metrics={**(metrics or {}), "recovered_cycles": recovered},
                       cpu_s=time.process_time() - cpu, wall_s=time.monotonic() - wall)

        if recovered:
            say("recovered", {"cycles": recovered})
        try:
            with yielding_to(interrupt):
                report = _locked_cycle(store, settings, home, model or settings.model,
                                       cfg or TrainConfig.from_settings(settings), device, say)
        except Yielded as y:
            report = _gave_way(store, str(y))
        except BaseException as e:  # an error, Ctrl-C or SIGTERM: recorded, then passed on
            why = ("stopped before it ended (the updater was stopped, or Ctrl-C); nothing was promoted"
                   if isinstance(e, SystemExit | KeyboardInterrupt)
                   else f"{type(e).__name__}: {e}".strip().rstrip(":").splitlines()[0])
            try:
                ended(CycleStatus.FAILED, why)
            except Exception:  # noqa: BLE001 - the store may be what failed; the next cycle records it then
                pass
            raise
        ended(report.status, report.message, report.adapter_id, report.metrics)
        return report


def _gave_way(store: TrajectoryStore, why: str) -> CycleReport:
    """A cycle that yielded outside training (`train.Yielded`): its candidate, if it had one, is rejected."""
    unfinished = adapter_rows.list_adapters(store, AdapterStatus.CANDIDATE)
    for row in unfinished:
        adapter_rows.record_verdict(store, row["id"], status=AdapterStatus.REJECTED, metrics={"yielded": why},
                                    step_ids=[], chooses=False)
    which = f" ({unfinished[0]['id']} unfinished)" if unfinished else ""
    return CycleReport(CycleStatus.YIELDED, None, f"yielded while evaluating ({why}); nothing was promoted{which}, "
                       "and a later cycle trains on the same data", {"yielded": why})


def _locked_cycle(store: TrajectoryStore, settings: Settings, home: Path, model: str | Path, cfg: TrainConfig,
                  device: str, say: Progress) -> CycleReport:
    root = registry.adapters_dir(home)
    _clean_up(store, root, say)
    base_name, base_hash = registry.model_identity(model)
    current = registry.current_adapter_row(store)
    if current is not None:
        try:
            registry.check_adapter(Path(current["path"]), base_hash)
        except AdapterError as e:
            return CycleReport(CycleStatus.REJECTED, message=str(e))
    else:  # the first cycle on the embedded model continues from the shipped starter
        current = registry.starter_row(base_hash, settings.starter_adapter)
    # The adapter that chooses commands now: the policy check's baseline (it may be older than `current`).
    chooser = registry.current_adapter_row(store, choosing=True) or registry.starter_row(
        base_hash, settings.starter_adapter)
    if chooser is not None:
        try:
            registry.check_adapter(Path(chooser["path"]), base_hash)
        except AdapterError:
            chooser = None  # made for another model: the agent chooses with the base model (it says why)
    since = current["trained_through_seq"] if current else 0

    say("loading", {"model": str(model), "adapter": current["id"] if current else None})
    peft_model, tokenizer, device = load_for_training(model, Path(current["path"]) if current else None, cfg,
                                                      device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    check_yield()  # loading takes seconds; what follows gives way at each batch
    chosen = choose_episodes(store, since, settings, cfg.seed, current["id"] if current else None)
    choice = within_budget(store, peft_model, tokenizer, chosen, settings, cfg, pad_id)
    data = build_windows(store, tokenizer, chosen, since_seq=since, max_seq_len=settings.max_seq_len,
                         duplicate_cap=settings.duplicate_cap, only=choice.only, replay_tokens=choice.replay_tokens,
                         left=choice.left)
    if choice.only is not None:
        say("selected", choice.metrics)
    if settings.cycle_budget_minutes:  # what the surprise pass spent comes off training
        left = max(0.05, settings.cycle_budget_minutes - choice.seconds / 60)
        cfg = replace(cfg, max_minutes=min(left, cfg.max_minutes) if cfg.max_minutes is not None else left)
    if not data.new_step_ids:
        return CycleReport(CycleStatus.NOTHING_NEW, message="no new trainable steps since the adapter in use")
    if not data.train or not data.heldout:
        return CycleReport(CycleStatus.NO_HELDOUT, message=(
            f"{len(data.new_step_ids)} new steps are not enough for a cycle: it needs at least two episodes "
            "with environment output (one is held out for evaluation)"))

    check_yield()
    probe = probe_windows(tokenizer, settings.max_seq_len)
    baseline = measure_baseline(store, peft_model, data, probe, pad_id)
    t_policy = time.monotonic()
    checked = policy.cases(store, policy_episodes(data, cfg), settings.policy_check_tasks)
    say("policy", {"tasks": len(checked), "model": f"the adapter choosing now ({_name(chooser)})"})
    with serving(peft_model, None if chooser is None else Path(chooser["path"]),
                 same=_name(chooser) == _name(current)):
        baseline.policy_kept, baseline.policy_cases = policy.kept(peft_model, tokenizer, checked), len(checked)
    t_policy = time.monotonic() - t_policy
    say("baseline", {"heldout_base": baseline.heldout_base, "heldout_current": baseline.heldout_current,
                     "probe_base": baseline.probe_base, "train_env_tokens": data.n_train_env_tokens})
    check_yield()
    adapter_id = adapter_rows.next_adapter_id(store)
    adapter_rows.insert_adapter(
        store, id=adapter_id, parent_id=current["id"] if current else None, base_model=base_name,
        base_hash=base_hash, path=str(root / adapter_id), status=AdapterStatus.CANDIDATE,
        trained_through_seq=data.trained_through_seq, n_env_tokens=data.n_train_env_tokens, metrics={})
    limit = baseline.probe_base * (1 + settings.forgetting_tolerance)
    stats = train(peft_model, data.train, cfg, pad_id,
                  on_step=lambda s, total: say("step", {"step": s.steps, "total": total, "loss": s.final_loss,
                                                         "tokens_per_s": s.tokens_per_s}),
                  within=lambda: evaluate(peft_model, probe, pad_id)[0] <= limit)
    if stats.yielded:
        metrics = {"yielded": stats.yielded, "train": train_metrics(stats)}
        adapter_rows.record_verdict(store, adapter_id, status=AdapterStatus.REJECTED, metrics=metrics, step_ids=[],
                                    chooses=False)
        return CycleReport(CycleStatus.YIELDED, None, (
            f"training yielded after {stats.steps} of {stats.planned_steps} optimizer steps ({stats.yielded}); "
            f"nothing was promoted ({adapter_id} unfinished), and a later cycle trains on the same data"), metrics)
    if stats.stopped_known:
        say("known", {"epochs": stats.epochs, "of": cfg.epochs})
    if stats.kept_epoch is not None:
        say("kept", {"epoch": stats.kept_epoch, "of": stats.epochs})
    candidate = measure_candidate(peft_model, data, probe, pad_id)
    t_candidate = time.monotonic()
    say("policy", {"tasks": len(checked), "model": "the candidate"})
    candidate.policy_kept = policy.kept(peft_model, tokenizer, checked)
    t_policy += time.monotonic() - t_candidate
    decision = gate(baseline, candidate, settings)
    metrics = cycle_metrics(baseline, candidate, decision, stats, data, settings)
    metrics["selection"] = choice.metrics
    metrics["policy"].update(seconds=round(t_policy, 1), choosing=_name(chooser))
    metrics["recallable"] = recallable_change(store, baseline, candidate, metrics["retention"]["lost_steps"],
                                              settings.recall_threshold)
    if decision.promoted:
        metrics["recall_check"] = recall_check(store, peft_model, tokenizer, settings, pad_id)
    meta = {"parent_id": current["id"] if current else None, "base_model": base_name, "base_hash": base_hash,
            "config": trained_config(cfg, peft_model), "metrics": metrics, "versions": registry.library_versions(),
            "data": {"since_seq": since, "trained_through_seq": data.trained_through_seq,
                     "train_steps": len(data.train_step_ids), "heldout_episodes": data.heldout_episode_ids},
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    persist(store, peft_model, root / adapter_id, meta, decision, data.train_step_ids)
    if decision.promoted and (why := registry.export_llamacpp(root / adapter_id, model)):
        say("export", {"message": why})
    verdict = CycleStatus.PROMOTED if decision.promoted else CycleStatus.REJECTED
    return CycleReport(verdict, adapter_id, verdict_message(adapter_id, decision, _name(chooser)), metrics,
                       decision)


def training_note(event: str, info: dict[str, Any]) -> str | None:
    """What a progress display says for how training ended (`known`, `kept` events); None for other events."""
    if event == "known":
        return f"every training window known after epoch {info['epochs']} of {info['of']}: training stops there"
    if event == "kept":
        return (f"the forgetting probe rose past its limit after epoch {info['of']}: the candidate is the adapter "
                f"after epoch {info['epoch']}")
    return None


def _name(row: dict | None) -> str:
    return row["id"] if row else "the base model"


@contextmanager
def serving(peft_model: Any, path: Path | None, same: bool) -> Iterator[None]:
    """The peft model computing with the adapter at `path` (None: the base model) instead of the one it trains,
    which is active again after; with `same`, as it is."""
    if same:
        yield
        return
    if path is None:
        with peft_model.disable_adapter():
            yield
        return
    trained = peft_model.active_adapter
    peft_model.load_adapter(str(path), adapter_name="choosing", is_trainable=False)
    try:
        peft_model.set_adapter("choosing")
        yield
    finally:
        peft_model.set_adapter(trained)  # trainable again
        peft_model.delete_adapter("choosing")


def policy_episodes(data: CycleData, cfg: TrainConfig) -> list[str]:
    """The episodes the policy check may replay, in order: the held-out ones, the new ones newest first, then the
    older sample the retention check uses. Under `env+action` the episodes whose replies this cycle trains on
    are left out (they would be measured on their own training data); env-only training never trains a reply."""
    trains_replies = cfg.objective == Objective.ENV_ACTION and cfg.action_weight > 0
    trained = set(data.train_episode_ids) | set(data.replay_episode_ids) if trains_replies else set()
    ordered = data.heldout_episode_ids + data.train_episode_ids[::-1] + data.retention_episode_ids
    return [e for e in dict.fromkeys(ordered) if e not in trained]



def trained_config(cfg: TrainConfig, peft_model: Any) -> dict[str, Any]:
    """The training config as it was: a continued adapter keeps its parent's rank, whatever `lora_r` says."""
    lora = peft_model.peft_config[peft_model.active_adapter]
    return {**cfg.to_dict(), "lora_r": lora.r, "lora_alpha": lora.lora_alpha}


def persist(store: TrajectoryStore, peft_model: Any, path: Path, meta: dict[str, Any], decision: Decision,
            step_ids: list[str]) -> None:
    """The candidate's directory (whole, or not at all), then its verdict (status, metrics and the steps it
    trained on: one transaction). A crash between the two leaves a plain candidate, which the next cycle rejects."""
    registry.save_adapter(peft_model, path.parent, path.name, meta)
    status = AdapterStatus.PROMOTED if decision.promoted else AdapterStatus.REJECTED
    adapter_rows.record_verdict(store, path.name, status=status, metrics=meta["metrics"], step_ids=step_ids,
                                chooses=decision.chooses)


def _clean_up(store: TrajectoryStore, root: Path, say: Progress) -> None:
    """Remove what a killed cycle left: temp adapter directories, and candidate rows (now rejected)."""
    for d in registry.cleanup_temp(root):
        say("cleaned", {"path": str(d)})
    orphans = adapter_rows.list_adapters(store, AdapterStatus.CANDIDATE)
    if orphans:
        adapter_rows.set_status(store, {row["id"]: AdapterStatus.REJECTED for row in orphans})



def cycle_metrics(baseline: Baseline, candidate: Candidate, decision: Decision, stats: TrainStats,
                  data: CycleData, settings: Settings) -> dict[str, Any]:
    """What the adapter row and its metadata keep: every measurement, the training run and the decision."""
    reasons = {r.check: r for r in decision.reasons}
    return {
        "heldout_ce": {"base": baseline.heldout_base, "current": baseline.heldout_current,
                       "candidate": candidate.heldout},
        "probe_ce": {"base": baseline.probe_base, "candidate": candidate.probe},
        "heldout_action_ce": {"current": _number(baseline.heldout_action_current),
                              "candidate": _number(candidate.heldout_action),
                              "tokens": baseline.heldout_action_tokens},
        "gain": reasons["heldout_gain"].value, "probe_rise": reasons["forgetting"].value,
        "heldout_env_tokens": baseline.heldout_env_tokens, "probe_env_tokens": baseline.probe_env_tokens,
        "train": train_metrics(stats),
        "retention": retention(baseline.retention, candidate.retention, settings.recall_threshold),
        "policy": {"cases": baseline.policy_cases, "current": len(baseline.policy_kept),
                   "candidate": len(candidate.policy_kept),
                   "lost": sorted(set(baseline.policy_kept) - set(candidate.policy_kept)),
                   "gained": sorted(set(candidate.policy_kept) - set(baseline.policy_kept))},
        "boundary_tokens": data.boundary_tokens,
        "gate": {"margin": settings.gate_margin, "tolerance": settings.forgetting_tolerance,
                 "retention_tolerance": settings.retention_tolerance, "policy_tolerance": settings.policy_tolerance},
        "decision": decision.to_dict(),
    }


def train_metrics(stats: TrainStats) -> dict[str, Any]:
    return {"steps": stats.steps, "env_tokens": stats.env_tokens, "tokens": stats.tokens,
            "seconds": round(stats.seconds, 2), "tokens_per_s": round(stats.tokens_per_s, 1),
            "final_loss": _number(stats.final_loss), "stopped_early": stats.stopped_early, "epochs": stats.epochs,
            "stopped_known": stats.stopped_known, "kept_epoch": stats.kept_epoch, "planned_steps": stats.planned_steps}


def _number(x: float) -> float | None:
    """A measurement as JSON keeps it: nan (nothing to measure) becomes None."""
    return None if math.isnan(x) else x


def verdict_message(adapter_id: str, decision: Decision, chooser: str = "the adapter choosing now") -> str:
    """`a0003 rejected: held-out env CE …, probe …, loses …`: every check's words, in the gate's order."""
    verdict = "promoted" if decision.promoted else "rejected"
    if decision.promoted and not decision.chooses:
        verdict = f"promoted to recall only ({chooser} still chooses the commands)"
    return f"{adapter_id} {verdict}: " + ", ".join(r.text for r in decision.reasons)
