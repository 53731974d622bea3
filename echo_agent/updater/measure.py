"""What a cycle measures: the model before training (`Baseline`) and after (`Candidate`) on the same windows,
the look-ups that became recallable or were lost, and the recall check of a promoted candidate."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from echo_agent.config import Settings
from echo_agent.memory import queries
from echo_agent.updater.dataset import CycleData, Window, step_windows
from echo_agent.updater.gate import Baseline, Candidate
from echo_agent.updater.train import confidently_wrong, evaluate

if TYPE_CHECKING:
    from echo_agent.memory.store import TrajectoryStore


def recall_check(store: TrajectoryStore, peft_model: Any, tokenizer: Any, settings: Settings,
                 pad_id: int) -> dict[str, Any]:
    """The look-ups the agent may recall now, teacher-forced under the candidate on their stored outputs: those it
    would recall confidently wrong (`train.confidently_wrong`) are listed, and the agent runs them instead under
    this adapter (`adapters.recall_exclusions`). Noise in CPU training can leave one fact confidently swapped for
    another; a recalled wrong fact is worse than a look-up."""
    lookups = queries.recallable_lookups(store, settings.recall_min_runs, settings.recall_check_lookups)
    windows = step_windows(store, tokenizer, [x["id"] for x in lookups], settings.max_seq_len) if lookups else []
    wrong = confidently_wrong(peft_model, windows, pad_id, settings.recall_threshold) if windows else {}
    return {"threshold": settings.recall_threshold, "checked": len(lookups),
            "wrong": [{"command": x["command"], "cwd": x["cwd_before"], "step_id": x["id"],
                       "logprob": round(wrong[x["id"]], 4)} for x in lookups if x["id"] in wrong]}

def measure_baseline(store: TrajectoryStore, peft_model: Any, data: CycleData, probe: list[Window],
                     pad_id: int) -> Baseline:
    """The model before training. Also stores each new step's surprise (its env-token CE under the adapter in
    use), which is measured on the way."""
    per_step: dict[str, list[float]] = {}
    evaluate(peft_model, new_train_windows(data), pad_id, per_step=per_step)
    trained_new = dict(per_step)
    heldout_current, n_held = evaluate(peft_model, data.heldout, pad_id, per_step=per_step)
    action_current, n_action = evaluate(peft_model, data.heldout, pad_id, tokens="action")
    new_ids = set(data.new_step_ids)
    store.set_surprise({sid: total / n for sid, (total, n, _) in per_step.items() if n and sid in new_ids})
    kept: dict[str, list[float]] = {}
    evaluate(peft_model, data.retention, pad_id, per_step=kept)
    with peft_model.disable_adapter():
        heldout_base, _ = evaluate(peft_model, data.heldout, pad_id)
        probe_base, n_probe = evaluate(peft_model, probe, pad_id)
    return Baseline(heldout_current, heldout_base, probe_base, kept, n_held, n_probe, action_current, n_action,
                    new_steps=trained_new)


def new_train_windows(data: CycleData) -> list[Window]:
    """The training windows of this cycle's new episodes (not the replayed older ones)."""
    replayed = set(data.replay_episode_ids)
    return [w for w in data.train if w.episode_id not in replayed]


def measure_candidate(peft_model: Any, data: CycleData, probe: list[Window], pad_id: int) -> Candidate:
    heldout, _ = evaluate(peft_model, data.heldout, pad_id)
    action, _ = evaluate(peft_model, data.heldout, pad_id, tokens="action")
    probe_ce, _ = evaluate(peft_model, probe, pad_id)
    kept: dict[str, list[float]] = {}
    evaluate(peft_model, data.retention, pad_id, per_step=kept)
    trained_new: dict[str, list[float]] = {}
    evaluate(peft_model, new_train_windows(data), pad_id, per_step=trained_new)
    return Candidate(heldout, probe_ce, kept, action, new_steps=trained_new)


RECALLABLE_LISTED = 50
"""At most this many look-ups gained (or lost) are listed in a cycle's metrics; the counts are whole."""


def recallable_change(store: TrajectoryStore, baseline: Baseline, candidate: Candidate, lost_ids: list[str],
                      threshold: float) -> dict[str, Any]:
    """The new look-ups the candidate would recall and the adapter in use would not (teacher-forced: the weakest
    token's log-prob is the confidence), and the older ones it loses (the retention check's)."""
    limit = -threshold
    before = baseline.new_steps
    gained = sorted(((sid, worst) for sid, (_, n, worst) in candidate.new_steps.items()
                     if n and worst <= limit and not (sid in before and before[sid][2] <= limit)),
                    key=lambda x: x[1])

    def described(sid: str, confidence: float | None) -> dict[str, Any]:
        step = store.get_step(sid) or {}
        return {"command": step.get("command"), "cwd": step.get("cwd_before"), "step_id": sid,
                "confidence": None if confidence is None else round(confidence, 4)}

    return {"threshold": threshold, "gained_count": len(gained), "lost_count": len(lost_ids),
            "gained": [described(sid, -worst) for sid, worst in gained[:RECALLABLE_LISTED]],
            "lost": [described(sid, None) for sid in lost_ids[:RECALLABLE_LISTED]]}
