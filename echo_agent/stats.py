"""`echo-agent stats`: is the assistant needing fewer look-ups on the user's own repeated tasks?

From the user's store: per repeated task (a task's identity is its text, lower-cased, whitespace collapsed), the
retrievals each episode executed and recalled, in time order; recall precision (verified recalls that were
exactly right / verified recalls); and the adapter history (held-out env CE of every candidate from its stored
metrics, and whether the gate promoted it). Plain SQL over the store; no model is loaded.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from echo_agent.memory.store import TrajectoryStore


def lookup_history(store: TrajectoryStore, min_episodes: int = 2) -> list[dict[str, Any]]:
    """Per task seen in at least `min_episodes` episodes, most frequent first: each episode's executed and
    recalled retrievals, oldest first."""
    from echo_agent.memory.store import task_identity

    rows = store.conn.execute(
        "SELECT e.id, e.task, e.started_at, e.adapter_id, "
        "  coalesce(sum(s.kind='retrieval' AND s.source='executed'), 0), "
        "  coalesce(sum(s.kind='retrieval' AND s.source='recalled'), 0) "
        "FROM episode e LEFT JOIN step s ON s.episode_id = e.id GROUP BY e.id ORDER BY e.started_at, e.rowid"
    ).fetchall()
    tasks: dict[str, dict[str, Any]] = {}
    for eid, task, started, adapter, executed, recalled in rows:
        t = tasks.setdefault(task_identity(task), {"task": task_identity(task), "episodes": []})
        t["episodes"].append({"episode_id": eid, "started_at": started, "adapter_id": adapter,
                              "executed": int(executed), "recalled": int(recalled)})
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
    recalled = store.conn.execute("SELECT count(*) FROM step WHERE source='recalled'").fetchone()[0]
    checked, right = store.conn.execute(
        "SELECT count(*), coalesce(sum(verified=1), 0) FROM step WHERE source='executed' AND verified IS NOT NULL "
        "AND confidence_min IS NOT NULL AND confidence_min >= ?", [threshold]).fetchone()
    return {"recalled": int(recalled), "verified": int(checked), "verified_right": int(right),
            "precision": right / checked if checked else None, "threshold": threshold}


CALIBRATION_THRESHOLDS = (-0.05, -0.1, -0.25, -0.5, -1.0, -1.5, -2.0, -3.0, -5.0)


def calibration(store: TrajectoryStore, thresholds: tuple[float, ...] = CALIBRATION_THRESHOLDS) -> list[dict]:
    """Recall precision and coverage at each threshold, from retrievals that were predicted in full and executed
    (`--verify all`): coverage = share of those retrievals whose weakest token clears the threshold (they would
    be recalled), precision = share of those whose prediction was exactly right."""
    rows = store.conn.execute(
        "SELECT confidence_min, verified FROM step WHERE kind='retrieval' AND source='executed' "
        "AND verified IS NOT NULL AND confidence_min IS NOT NULL").fetchall()
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
    for a in store.list_adapters():
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


def stats_command(
    db: Annotated[str | None, typer.Option("--db", help="Store file (default: <home>/store.db).")] = None,
    min_episodes: Annotated[int, typer.Option("--min-episodes", min=1, help="Show tasks seen at least this "
                                              "often.")] = 2,
    plot_path: Annotated[Path | None, typer.Option("--plot", help="Also write a PNG plot here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print everything as JSON.")] = False,
) -> None:
    """Look-ups per repeated task over time, recall precision and adapter history, from your store.

    Example: echo-agent stats --plot stats.png
    """
    from rich.console import Console
    from rich.table import Table

    from echo_agent.cli import fail
    from echo_agent.config import ConfigError
    from echo_agent.memory.store import StoreError, TrajectoryStore

    try:
        with TrajectoryStore(db, must_exist=db is not None) as store:
            stats = collect(store, min_episodes)
    except (StoreError, ConfigError) as e:
        raise fail(str(e)) from None
    if plot_path is not None:
        stats["plot"] = str(plot_stats(stats, plot_path))
    if as_json:
        typer.echo(json.dumps(stats, indent=2))
        return
    console = Console()
    tasks = Table(title=f"look-ups per repeated task ({stats['store']})")
    for col in ("task", "episodes", "executed per episode (oldest → newest)", "recalled"):
        tasks.add_column(col, justify="left" if col != "episodes" and col != "recalled" else "right")
    for t in stats["tasks"]:
        seq = " ".join(str(e["executed"]) for e in t["episodes"][-12:])
        tasks.add_row(t["task"][:50], str(len(t["episodes"])), seq, str(t["recalled_total"]))
    console.print(tasks if stats["tasks"] else f"no task seen {min_episodes}+ times yet")
    r = stats["recall"]
    prec = f"{r['verified_right']}/{r['verified']} = {r['precision']:.0%}" if r["verified"] else "none verified yet"
    console.print(f"recalls: {r['recalled']}; verified recall precision: {prec} (threshold {r['threshold']:g})")
    checked = [c for c in stats["calibration"] if c["checked"]]
    if checked:
        line = "  ".join(f"{c['threshold']:g}: {c['precision']:.2f}/{c['coverage']:.2f}" if c["covered"]
                         else f"{c['threshold']:g}: –/0.00" for c in checked)
        console.print(f"calibration over {checked[0]['checked']} predicted-and-executed look-ups "
                      f"(threshold: precision/coverage): {line}")
    if stats["adapters"]:
        ads = Table(title="adapters (held-out env CE, nats/token)")
        for col in ("id", "status", "created", "env tokens", "CE before", "CE after", "recalls lost"):
            ads.add_column(col)
        for a in stats["adapters"]:
            ads.add_row(a["id"], a["status"], (a["created_at"] or "")[:19], str(a["n_env_tokens"] or "–"),
                        f"{a['heldout_ce_before']:.3f}" if a["heldout_ce_before"] is not None else "–",
                        f"{a['heldout_ce']:.3f}" if a["heldout_ce"] is not None else "–",
                        f"{a['recalls_lost']}/{a['recalls_known']}" if a["recalls_known"] else "–")
        console.print(ads)
    else:
        console.print("no adapters yet: `echo-agent update` trains one")
    if plot_path is not None:
        console.print(f"plot: {stats['plot']}")
