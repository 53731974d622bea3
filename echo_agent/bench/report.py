"""The benchmark report: a rich table per arm, the RESULT line, and a PNG plot (matplotlib, Agg)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.table import Table


def _num(x: Any, fmt: str = "{:.2f}") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return fmt.format(x)


def rounds_table(report: dict[str, Any]) -> Table:
    """One row per (arm, round): look-ups, recalls, precision, accuracy, env CE and the cycle that followed."""
    cfg = report["config"]
    table = Table(title=f"retrieval bench: {report['suite']}, {len(report['tasks'])} tasks, policy "
                        f"{cfg['policy']}, verify {cfg['verify']}, threshold {report['threshold']:g}, "
                        f"{cfg['epochs']} epochs/cycle")
    # executed = executed retrievals per task (verification runs count): all tasks, repeated, paraphrased.
    # exact = recalls whose prediction equals the real output; precision = the agent's verification sample;
    # answers from = memory (no look-up) / recall only / executed look-ups, with how many of each were right.
    # in own words = right answers whose model-written part holds the fact (the rest: right by the output shown).
    for col in ("arm", "round", "tasks", "executed", "repeated", "paraphrased", "recalls", "exact", "precision",
                "accuracy", "in own words", "answers from m/r/e (right)", "env CE", "adapter", "cycle after"):
        table.add_column(col, justify="left" if col in ("arm", "adapter", "cycle after") else "right")
    for arm, data in report["arms"].items():
        for r in data["rounds"]:
            cycle = r.get("cycle")
            after = ""
            if cycle:
                only = " to recall only" if cycle["status"] == "promoted" and not cycle.get("chooses", True) else ""
                after = f"{cycle['status']}{only} {cycle['adapter_id'] or ''} ({cycle['seconds']:.0f} s)"
            table.add_row(
                arm, str(r["round"]) + ("" if r.get("complete") else "*"), str(r["tasks_run"]),
                _num(r["executed_per_task"]), _num(r["executed_per_task_repeated"]),
                _num(r["executed_per_task_paraphrased"]), str(r["recalls"]),
                f"{r['recalls_exact']}/{r['recalls']}" if r["recalls"] else "–",
                f"{r['verified_right']}/{r['verified']}" if r["verified"] else "–",
                _num(r["accuracy"], "{:.0%}"), str(r["stated"]) if "stated" in r else "–", _sources(r.get("answers")),
                _num(r["env_ce"], "{:.3f}"),
                _adapters(r), after)
    return table


def _adapters(row: dict[str, Any]) -> str:
    """The round's adapter, and the one choosing the commands where that is another ("a0002 ◆starter")."""
    recalling = row["adapter"] or "base"
    choosing = row.get("choosing", row["adapter"]) or "base"
    return recalling if choosing == recalling else f"{recalling} ◆{choosing}"


def _sources(answers: dict[str, dict[str, int]] | None) -> str:
    if not answers:
        return "–"
    counts = "/".join(str(a["tasks"]) for a in answers.values())
    return f"{counts} ({'/'.join(str(a['right']) for a in answers.values())})"


def calibration_table(report: dict[str, Any]) -> Table | None:
    """Precision and coverage of recall at each threshold (only when retrievals were predicted and executed)."""
    arms = {name: arm.get("calibration") or [] for name, arm in report["arms"].items()}
    if not any(row["checked"] for rows in arms.values() for row in rows[:1]):
        return None
    table = Table(title="recall calibration (predicted and executed retrievals): precision / coverage")
    table.add_column("threshold (min log-prob)", justify="right")
    for name in arms:
        table.add_column(name, justify="right")
    thresholds = [row["threshold"] for row in next(iter(arms.values()))]
    for i, t in enumerate(thresholds):
        cells = []
        for rows in arms.values():
            r = rows[i]
            cells.append(f"{_num(r['precision'])} / {_num(r['coverage'])} ({r['covered']}/{r['checked']})"
                         if r["checked"] else "–")
        table.add_row(f"{t:g}", *cells)
    return table


def result_line(report: dict[str, Any]) -> str:
    """`RESULT learning_ratio=… frozen_ratio=… accuracy=… frozen_accuracy=… paraphrased_ratio=… rounds=…
    minutes=…` (na when unknown)."""
    parts = []
    for k, v in report["result"].items():
        if v is None or (isinstance(v, float) and math.isnan(v)):
            parts.append(f"{k}=na")
        else:
            parts.append(f"{k}={v:.1f}" if k == "minutes" else f"{k}={v}" if k == "rounds" else f"{k}={v:.3f}")
    return "RESULT " + " ".join(parts)


def plot(report: dict[str, Any], path: str | Path) -> Path:
    """Three panels over rounds, one line per arm: executed retrievals per task (repeated solid, paraphrased
    dashed where the suite has paraphrases), answer accuracy, and held-out env CE."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    colors = {"frozen": "tab:gray", "learning": "tab:blue"}  # the frozen arm's lines are drawn wider, beneath
    for arm, data in report["arms"].items():
        rounds = data["rounds"]
        xs = [r["round"] for r in rounds]
        c = colors.get(arm)
        lw = 4 if arm == "frozen" else 1.6
        axes[0].plot(xs, [r["executed_per_task_repeated"] for r in rounds], "o-", color=c, lw=lw,
                     label=f"{arm} repeated")
        paraphrased = [r["executed_per_task_paraphrased"] for r in rounds]
        if any(v is not None and not math.isnan(v) for v in paraphrased):  # none in the suite: no empty line
            axes[0].plot(xs, [math.nan if v is None else v for v in paraphrased], "s--", color=c, lw=lw,
                         label=f"{arm} paraphrased")
        axes[1].plot(xs, [r["accuracy"] for r in rounds], "o-", color=c, lw=lw, label=arm)
        axes[2].plot(xs, [r["env_ce"] if r["env_ce"] is not None else math.nan for r in rounds], "o-", color=c,
                     lw=lw, label=arm)
    for ax, title in zip(axes, ("executed retrievals per task", "answer accuracy", "held-out env CE (nats/token)"),
                         strict=True):
        ax.set_title(title)
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylim(bottom=0)
    axes[1].set_ylim(0, 1.05)
    fig.suptitle(f"echo-agent bench retrieval ({report['suite']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _last(rounds: list[dict]) -> dict | None:
    complete = [r for r in rounds if r.get("complete")]
    return complete[-1] if complete else None


def arm_ratio(report: dict[str, Any], arm: str, key: str) -> float | None:
    """`key` (executed retrievals per task) in the arm's last complete round over round 1; None if unknown."""
    rounds = report["arms"].get(arm, {}).get("rounds", [])
    last = _last(rounds)
    if not rounds or last is None or last is rounds[0] or not rounds[0].get("complete"):
        return None
    first, end = rounds[0][key], last[key]
    if first is None or end is None or math.isnan(first) or math.isnan(end) or first == 0:
        return None
    return end / first


def rounds_complete(report: dict[str, Any]) -> int:
    """Rounds that every task ran in, in every arm of the run."""
    arms = [data["rounds"] for data in report["arms"].values()]
    return min((sum(bool(r.get("complete")) for r in rounds) for rounds in arms), default=0)


def result_line_values(report: dict[str, Any]) -> dict[str, float | None]:
    last = _last(report["arms"].get("learning", {}).get("rounds", []))
    frozen = _last(report["arms"].get("frozen", {}).get("rounds", []))
    return {
        "learning_ratio": arm_ratio(report, "learning", "executed_per_task_repeated"),
        "frozen_ratio": arm_ratio(report, "frozen", "executed_per_task_repeated"),
        "accuracy": last["accuracy"] if last else None,
        "frozen_accuracy": frozen["accuracy"] if frozen else None,
        "paraphrased_ratio": arm_ratio(report, "learning", "executed_per_task_paraphrased"),
        "rounds": rounds_complete(report),
        "minutes": report["minutes"],
    }
