"""What a cycle trains when its new data would take longer than its budget (`cycle_budget_minutes`).

The budget covers the surprise pass and training; the gate's evaluation comes after it. A cycle first renders its
pending episodes (the held-out ones aside) and estimates what training them all would cost: their tokens, times
the epochs, plus the replayed share, over the training speed of the last cycle that trained. When that fits, every
pending step is trained as before. When it does not, windows are chosen by `cycle_selection` until the budget's
tokens are spent:

- `surprise` (the default, docs/measurements.md "Choosing within a budget"): a no-grad pass under the adapter in
  use measures each step's env CE (the `surprise` column) where it is not known yet, newest first, for at most
  half of the budget; what it costs comes off the training time. A window's value is the CE its steps would
  remove, weighted, per token it costs. Weights: a near-duplicate (same command and directory, output equal once
  digits and hex runs are blanked) counts once, the newest copy; output that differed between runs of the same
  command in the same directory, or that is mostly digits, or a long listing, counts for less. Windows whose steps
  are not measured yet come last, newest first.
- `newest`: the newest windows first. `random`: a seeded shuffle. Neither measures anything.

Steps left out stay pending (`queries.pending_steps`) and hold the adapter's watermark, so a later cycle weighs
them again, with the surprise already measured. A step more than `PENDING_MAX_STEPS` older than the newest step
stops holding it (it stays in the store and in `logs`; it is counted as `expired`).
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from echo_agent.config import Selection, Settings
from echo_agent.memory import queries
from echo_agent.transcript import is_trainable
from echo_agent.updater.dataset import CycleEpisodes, Window, render_windows
from echo_agent.updater.train import TrainConfig, evaluate

if TYPE_CHECKING:
    from echo_agent.memory.store import TrajectoryStore

DEFAULT_TRAIN_TOKENS_PER_S = 100.0
"""Training speed assumed before any cycle has trained on this home (measured on 2 CPU cores)."""
SURPRISE_SHARE = 0.5
"""The surprise pass stops after this share of the budget."""
PENDING_MAX_STEPS = 20_000
"""A step left out stops holding the watermark once the store has this many newer steps."""
VOLATILE_WEIGHT = 0.25
"""Weight of a step whose command printed something else on another run in the same directory."""
LISTING_LINES = 40
"""A longer output counts for LISTING_LINES / its lines."""

_BLANKED = re.compile(r"[0-9a-fA-F]{7,}|\d+")


@dataclass
class Choice:
    """What a cycle over its budget trains: `only` (None: everything, it fits), what waits, and what it cost."""

    only: set[str] | None = None
    left: set[str] = field(default_factory=set)
    replay_tokens: int | None = None
    seconds: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)


def near_duplicate_key(step: dict) -> tuple:
    return (step.get("command"), step.get("cwd_before"), _BLANKED.sub("#", step.get("output") or ""))


def weights(store: TrajectoryStore, steps: list[dict]) -> dict[str, float]:
    """Step id -> the share of its surprise worth learning (0: a near-duplicate of a newer step)."""
    out: dict[str, float] = {}
    newest: set[tuple] = set()
    varies: dict[tuple, bool] = {}
    for s in sorted(steps, key=lambda s: -s["seq"]):
        key = near_duplicate_key(s)
        if key in newest:
            out[s["id"]] = 0.0
            continue
        newest.add(key)
        w = 1.0
        output = s.get("output") or ""
        if s.get("command"):
            where = (s["command"], s.get("cwd_before"))
            if where not in varies:
                varies[where] = len({o for o, _ in store.recent_runs(*where, 5)}) > 1
            if varies[where]:
                w *= VOLATILE_WEIGHT
        if output and sum(c.isdigit() for c in output) > 0.3 * len(output):
            w *= 0.5
        lines = output.count("\n") + 1
        if lines > LISTING_LINES:
            w *= LISTING_LINES / lines
        out[s["id"]] = w
    return out


def within_budget(store: TrajectoryStore, peft_model: Any, tokenizer: Any, chosen: CycleEpisodes,
                  settings: Settings, cfg: TrainConfig, pad_id: int) -> Choice:
    """Which pending steps this cycle trains (see the module's doc). `chosen` is `dataset.choose_episodes`'s."""
    start = time.monotonic()
    budget_s = settings.cycle_budget_minutes * 60
    metrics: dict[str, Any] = {"budget_minutes": settings.cycle_budget_minutes, "selection": settings.cycle_selection}
    if not budget_s or not chosen.train:
        return Choice(metrics=metrics)
    speed = queries.train_speed(store) or DEFAULT_TRAIN_TOKENS_PER_S
    # Replayed episodes are about as long as new ones: their share of the tokens is their share of the episodes.
    replay_share = 1 + len(chosen.replay) / len(chosen.train)
    windows, _ = render_windows(store, tokenizer, chosen.train, is_trainable, settings.max_seq_len)
    total = sum(len(w.input_ids) for w in windows)
    need_s = total * cfg.epochs * replay_share / speed
    metrics.update(tokens_per_s=round(speed, 1), pending_tokens=total, pending_minutes=round(need_s / 60, 1))
    if need_s <= budget_s:
        return Choice(metrics=metrics, seconds=time.monotonic() - start)

    in_train = {e["id"] for e in chosen.train}
    steps = [s for s in chosen.new_steps if s["episode_id"] in in_train]
    by_id = {s["id"]: s for s in steps}
    w = {s["id"]: 1.0 for s in steps}
    surprise: dict[str, float | None] = {s["id"]: s.get("surprise") for s in steps}
    ranked = sorted(windows, key=lambda x: -_newest(x, by_id))
    if settings.cycle_selection == Selection.SURPRISE:
        w = weights(store, steps)
        measured = _measure(store, peft_model, ranked, surprise, pad_id, start + budget_s * SURPRISE_SHARE)
        metrics.update(surprise_pass_s=round(time.monotonic() - start, 1), surprise_measured=measured,
                       collapsed=sum(1 for v in w.values() if v == 0),
                       down_weighted=sum(1 for v in w.values() if 0 < v < 1))
        def rank(x: Window) -> tuple[float, int]:  # measured windows by value, then the rest; newest first
            value = _value(x, w, surprise)
            return (-value if value is not None else 1, -_newest(x, by_id))

        ranked.sort(key=rank)
    elif settings.cycle_selection == Selection.RANDOM:
        random.Random(cfg.seed).shuffle(ranked)
    left_s = max(0.0, budget_s - (time.monotonic() - start))
    tokens = int(left_s * speed / cfg.epochs)
    room, used = tokens / replay_share, 0
    taken: list[Window] = []
    for x in ranked:
        if used + len(x.input_ids) <= room and any(w.get(sid, 0) > 0 for sid in _labelled(x)):
            taken.append(x)
            used += len(x.input_ids)
    if not taken and (worth := [x for x in ranked if any(w.get(sid, 0) > 0 for sid in _labelled(x))]):
        taken, used = worth[:1], len(worth[0].input_ids)  # a budget smaller than one window still trains one
    only = {sid for x in taken for sid in _labelled(x) if w.get(sid, 0) > 0}
    newest_seq = max(s["seq"] for s in steps)
    waiting = {sid for x in windows for sid in _labelled(x) if sid not in only and w.get(sid, 0) > 0}
    expired = {sid for sid in waiting if by_id[sid]["seq"] < newest_seq - PENDING_MAX_STEPS}
    metrics.update(chosen_steps=len(only), chosen_tokens=used, left_steps=len(waiting - expired),
                   expired=len(expired), chosen_minutes=round(used * cfg.epochs * replay_share / speed / 60, 1))
    return Choice(only, waiting - expired, tokens - used, time.monotonic() - start, metrics)


def selected_note(m: dict[str, Any]) -> str:
    """One line for a cycle that chose within its budget."""
    measured = (f"; surprise measured on {m['surprise_measured']} steps in {m['surprise_pass_s']:.0f} s"
                if "surprise_pass_s" in m else "")
    return (f"the new data would take ~{m['pending_minutes']} min, over the {m['budget_minutes']:g}-minute budget: "
            f"training {m['chosen_steps']} steps by {m['selection']} (~{m['chosen_minutes']} min){measured}; "
            f"{m['left_steps']} wait for a later cycle")


def _labelled(x: Window) -> set[str]:
    return {sid for sid, env in zip(x.step_ids, x.env_mask, strict=True) if env and sid is not None}


def _newest(x: Window, by_id: dict[str, dict]) -> int:
    return max((by_id[sid]["seq"] for sid in _labelled(x) if sid in by_id), default=0)


def _value(x: Window, w: dict[str, float], surprise: dict[str, float | None]) -> float | None:
    """CE the window's labelled steps would remove, weighted, per token it costs (None: a step not measured)."""
    counts: dict[str, int] = {}
    for sid, env in zip(x.step_ids, x.env_mask, strict=True):
        if env and sid in surprise:  # a pending step (another in the episode may be trained already)
            counts[sid] = counts.get(sid, 0) + 1
    if any(surprise.get(sid) is None for sid in counts):
        return None
    return sum(w.get(sid, 0) * (surprise[sid] or 0) * n for sid, n in counts.items()) / len(x.input_ids)


def _measure(store: TrajectoryStore, peft_model: Any, ranked: list[Window], surprise: dict[str, float | None],
             pad_id: int, until: float) -> int:
    """Measure the surprise of the steps in `ranked` (newest first) not measured yet, until `until`; store it.
    Returns how many steps were measured."""
    todo = [x for x in ranked if any(surprise.get(sid) is None for sid in _labelled(x))]
    measured = 0
    for i in range(0, len(todo), 8):
        if time.monotonic() >= until:
            break
        per_step: dict[str, list[float]] = {}
        evaluate(peft_model, todo[i:i + 8], pad_id, per_step=per_step)
        found = {sid: total / n for sid, (total, n, _) in per_step.items() if n and sid in surprise}
        surprise.update(found)
        store.set_surprise(found)
        measured += len(found)
    return measured
