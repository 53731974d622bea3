"""`echo-agent stats`: is the assistant needing fewer look-ups on the user's own repeated tasks?

From the user's store: per repeated task (a task's identity is its text, lower-cased, whitespace collapsed), the
retrievals each episode executed and recalled, in time order, and where each answer came from (memory: no
look-up, recall only, or executed look-ups), with how often answers from memory or recall agree with the task's
known answer; recall precision (verified recalls that were exactly right / verified recalls); and the adapter
history (held-out env CE of every candidate from its stored
metrics, and whether the gate promoted it). The questions are `echo_agent.memory.queries`; no model is loaded.
The command is `echo_agent/cli/stats.py`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from echo_agent.memory import queries
from echo_agent.memory.adapters import list_adapters
from echo_agent.records import ANSWER_SOURCES, EpisodeStatus, answer_source, same_answer, task_identity

if TYPE_CHECKING:
    from echo_agent.memory.store import TrajectoryStore


def lookup_history(store: TrajectoryStore, min_episodes: int = 2) -> list[dict[str, Any]]:
    """Per task seen in at least `min_episodes` episodes, most frequent first: each episode's executed and
    recalled retrievals, oldest first, and where its answer came from (`records.answer_source`).

    An answer from memory or recall is checked against the task's known answer: the newest earlier answer of the
    same task that came from executed look-ups (`agrees`: True or False; None when there is none yet)."""
    tasks: dict[str, dict[str, Any]] = {}
    known: dict[str, str] = {}  # task -> its newest answer from executed look-ups
    for row in queries.episode_lookups(store):
        t = tasks.setdefault(task_identity(row["task"]), {"task": task_identity(row["task"]), "episodes": []})
        executed, recalled = int(row["executed"]), int(row["recalled"])
        source = answer_source(executed, recalled)
        answered = row["status"] == EpisodeStatus.DONE and row["answer"] is not None
        agrees = None
        if answered and source != "executed" and t["task"] in known:
            agrees = same_answer(row["answer"], known[t["task"]])
        elif answered and source == "executed":
            known[t["task"]] = row["answer"]
        t["episodes"].append({k: row[k] for k in ("episode_id", "started_at", "adapter_id")}
                             | {"executed": executed, "recalled": recalled, "source": source if answered else None,
                                "agrees": agrees})
    out = [t for t in tasks.values() if len(t["episodes"]) >= min_episodes]
    for t in out:
        eps = t["episodes"]
        t["first_executed"], t["last_executed"] = eps[0]["executed"], eps[-1]["executed"]
        t["recalled_total"] = sum(e["recalled"] for e in eps)
        t["answers"] = {s: sum(e["source"] == s for e in eps) for s in ANSWER_SOURCES}
        t["checked"] = sum(e["agrees"] is not None for e in eps)
        t["agreed"] = sum(bool(e["agrees"]) for e in eps)
    return sorted(out, key=lambda t: (-len(t["episodes"]), t["task"]))


def answer_split(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """Answers of the repeated tasks by source, and how many answers from memory or recall agree with the known
    answer (of those that have one)."""
    checked = sum(t["checked"] for t in tasks)
    agreed = sum(t["agreed"] for t in tasks)
    return {**{s: sum(t["answers"][s] for t in tasks) for s in ANSWER_SOURCES}, "checked": checked,
            "agreed": agreed, "accuracy": agreed / checked if checked else None}


def recall_precision(store: TrajectoryStore) -> dict[str, Any]:
    """Recalls and verified recalls: right / checked (a verified recall is an executed step whose confident
    prediction was compared with the real output)."""
    threshold = store.settings.recall_threshold
    counts = queries.recall_counts(store, threshold)
    checked = counts["verified"]
    return {**counts, "precision": counts["verified_right"] / checked if checked else None, "threshold": threshold}


CALIBRATION_THRESHOLDS = (-0.05, -0.1, -0.25, -0.5, -1.0, -1.5, -2.0, -3.0, -5.0)


def calibration(store: TrajectoryStore, thresholds: tuple[float, ...] = CALIBRATION_THRESHOLDS) -> list[dict]:
    """Recall precision and coverage at each threshold, from retrievals that were predicted in full and executed
    (`--verify all`): coverage = share of those retrievals whose weakest token clears the threshold (they would
    be recalled), precision = share of those whose prediction was exactly right."""
    rows = queries.verified_predictions(store)
    out = []
    for t in thresholds:
        kept = [v for c, v in rows if c >= t]
        out.append({"threshold": t, "checked": len(rows), "covered": len(kept),
                    "coverage": len(kept) / len(rows) if rows else None,
                    "precision": sum(kept) / len(kept) if kept else None})
    return out


def adapter_history(store: TrajectoryStore) -> list[dict[str, Any]]:
    """Every adapter, oldest first, with the held-out env CE before (current) and after (candidate) it."""
    out = []
    for a in list_adapters(store):
        m = a["metrics"] or {}
        ce, kept = m.get("heldout_ce") or {}, m.get("retention") or {}
        out.append({"id": a["id"], "status": a["status"], "created_at": a["created_at"],
                    "n_env_tokens": a["n_env_tokens"], "heldout_ce_before": ce.get("current"),
                    "heldout_ce": ce.get("candidate"), "heldout_ce_base": ce.get("base"),
                    "probe_rise": m.get("probe_rise"), "recalls_lost": kept.get("lost"),
                    "recalls_known": kept.get("known")})
    return out


def collect(store: TrajectoryStore, min_episodes: int = 2) -> dict[str, Any]:
    tasks = lookup_history(store, min_episodes)
    return {"store": str(store.path), "tasks": tasks, "answers": answer_split(tasks),
            "recall": recall_precision(store), "calibration": calibration(store),
            "adapters": adapter_history(store)}


def plot_stats(stats: dict[str, Any], path: str | Path, top: int = 8) -> Path:
    """Three panels: executed look-ups per episode for the most repeated tasks, where the answers came from by
    the task's n-th episode (memory / recall / executed, over every repeated task), and held-out env CE per
    adapter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax1, ax3, ax2) = plt.subplots(1, 3, figsize=(15, 3.8))
    for t in stats["tasks"][:top]:
        ys = [e["executed"] for e in t["episodes"]]
        ax1.plot(range(1, len(ys) + 1), ys, "o-", label=t["task"][:32])
    ax1.set_title("executed look-ups per episode (repeated tasks)")
    ax1.set_xlabel("episode of the task")
    ax1.set_ylim(bottom=0)
    if stats["tasks"]:
        ax1.legend(fontsize=7)
    n = max((len(t["episodes"]) for t in stats["tasks"]), default=0)
    xs = list(range(1, n + 1))
    bottom = [0] * n
    for source, color in zip(ANSWER_SOURCES, ("tab:green", "tab:blue", "tab:gray"), strict=True):
        counts = [sum(len(t["episodes"]) > i and t["episodes"][i]["source"] == source for t in stats["tasks"])
                  for i in range(n)]
        ax3.bar(xs, counts, bottom=bottom, color=color, label=source)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    ax3.set_title("answers by source (repeated tasks)")
    ax3.set_xlabel("episode of the task")
    if n:
        ax3.legend(fontsize=7)
    ads = stats["adapters"]
    xs = list(range(len(ads)))
    ax2.plot(xs, [a["heldout_ce"] if a["heldout_ce"] is not None else math.nan for a in ads], "o-",
             label="candidate")
    ax2.plot(xs, [a["heldout_ce_before"] if a["heldout_ce_before"] is not None else math.nan for a in ads], "x--",
             label="model before it")
    ax2.set_xticks(xs, [f"{a['id']}\n{a['status']}" for a in ads], fontsize=7)
    ax2.set_title("held-out env CE per adapter (nats/token)")
    ax2.legend(fontsize=7)
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
