"""`echo-agent stats`: is the assistant needing fewer look-ups on the user's own repeated tasks?

From the user's store: per repeated task (a task's identity is its text, lower-cased, whitespace collapsed), the
retrievals each episode executed and recalled, in time order; recall precision (verified recalls that were
exactly right / verified recalls); and the adapter history (held-out env CE of every candidate from its stored
metrics, and whether the gate promoted it). The questions are `echo_agent.memory.queries`; no model is loaded.
The command is `echo_agent/cli/stats.py`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from echo_agent.memory import queries
from echo_agent.memory.adapters import list_adapters
from echo_agent.records import task_identity

if TYPE_CHECKING:
    from echo_agent.memory.store import TrajectoryStore


def lookup_history(store: TrajectoryStore, min_episodes: int = 2) -> list[dict[str, Any]]:
    """Per task seen in at least `min_episodes` episodes, most frequent first: each episode's executed and
    recalled retrievals, oldest first."""
    tasks: dict[str, dict[str, Any]] = {}
    for row in queries.episode_lookups(store):
        t = tasks.setdefault(task_identity(row["task"]), {"task": task_identity(row["task"]), "episodes": []})
        t["episodes"].append({k: row[k] for k in ("episode_id", "started_at", "adapter_id")}
                             | {"executed": int(row["executed"]), "recalled": int(row["recalled"])})
    out = [t for t in tasks.values() if len(t["episodes"]) >= min_episodes]
    for t in out:
        eps = t["episodes"]
        t["first_executed"], t["last_executed"] = eps[0]["executed"], eps[-1]["executed"]
        t["recalled_total"] = sum(e["recalled"] for e in eps)
    return sorted(out, key=lambda t: (-len(t["episodes"]), t["task"]))


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
    return {"store": str(store.path), "tasks": lookup_history(store, min_episodes),
            "recall": recall_precision(store), "calibration": calibration(store),
            "adapters": adapter_history(store)}


def plot_stats(stats: dict[str, Any], path: str | Path, top: int = 8) -> Path:
    """Two panels: executed look-ups per episode for the most repeated tasks, and held-out env CE per adapter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    for t in stats["tasks"][:top]:
        ys = [e["executed"] for e in t["episodes"]]
        ax1.plot(range(1, len(ys) + 1), ys, "o-", label=t["task"][:32])
    ax1.set_title("executed look-ups per episode (repeated tasks)")
    ax1.set_xlabel("episode of the task")
    ax1.set_ylim(bottom=0)
    if stats["tasks"]:
        ax1.legend(fontsize=7)
    ads = stats["adapters"]
    xs = list(range(len(ads)))
    ax2.plot(xs, [a["heldout_ce"] if a["heldout_ce"] is not None else math.nan for a in ads], "o-",
             label="candidate")
    ax2.plot(xs, [a["heldout_ce_before"] if a["heldout_ce_before"] is not None else math.nan for a in ads], "x--",
             label="model before it")
    ax2.set_xticks(xs, [f"{a['id']}\n{a['status']}" for a in ads], fontsize=7)
    ax2.set_title("held-out env CE per adapter (nats/token)")
    ax2.legend(fontsize=7)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
