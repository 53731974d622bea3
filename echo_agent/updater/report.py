"""The morning report: what the update cycles since a date did (`echo-agent updater report`, and the summary the
daemon writes after a window's cycles).

Built from the `cycle` rows (`memory/cycles.py`) alone: each cycle's outcome and the gate's reasons, the tokens it
trained and the time and CPU it took, what it chose when over its budget, held-out env CE before and after, and
the look-ups that became recallable or were lost. Only a promoted cycle changes what the agent recalls, so only promoted cycles count toward the
totals of look-ups gained and lost. Commands and messages are stored text: printed as plain text, control
characters escaped.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from echo_agent.memory import cycles

if TYPE_CHECKING:
    from echo_agent.memory.store import TrajectoryStore

IDLE = ("nothing-new", "no-heldout")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(text: object) -> str:
    """Stored text for a terminal: control characters (escape sequences included) shown as \\xNN."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def cycle_entry(row: dict[str, Any]) -> dict[str, Any]:
    m = row["metrics"]
    train = m.get("train") or {}
    ce = m.get("heldout_ce") or {}
    reasons = [{"check": r["check"], "passed": r["passed"], "text": r["text"]}
               for r in (m.get("decision") or {}).get("reasons", [])]
    return {
        "id": row["id"], "started_at": row["started_at"], "ended_at": row["ended_at"], "status": row["status"],
        "trigger": row["trigger"], "adapter_id": row["adapter_id"], "message": row["message"], "reasons": reasons,
        "yielded": m.get("yielded"),
        "trained": {"tokens": train.get("tokens", 0), "env_tokens": train.get("env_tokens", 0),
                    "optimizer_steps": train.get("steps", 0), "seconds": train.get("seconds", 0.0)},
        "cpu_s": row["cpu_s"], "wall_s": row["wall_s"],
        "heldout_ce": {"before": ce.get("current"), "after": ce.get("candidate"), "base": ce.get("base")} if ce
        else None,
        "recallable": m.get("recallable"),
        "selection": m.get("selection") if (m.get("selection") or {}).get("chosen_steps") is not None else None,
        "recovered_cycles": m.get("recovered_cycles") or [],
    }


def build(store: TrajectoryStore | None, since: str | None = None) -> dict[str, Any]:
    """The report as data (what `--json` prints). `store` None: a home with no store yet."""
    rows = cycles.list_cycles(store, since) if store is not None else []
    entries = [cycle_entry(r) for r in rows]
    outcomes = Counter(e["status"] for e in entries)
    promoted = [e for e in entries if e["status"] == "promoted"]
    ran = [e for e in entries if e["status"] not in IDLE]
    measured = [e for e in ran if e["heldout_ce"]]
    gained = [g for e in promoted for g in (e["recallable"] or {}).get("gained", [])]
    lost = [x for e in promoted for x in (e["recallable"] or {}).get("lost", [])]
    return {
        "since": since,
        "cycles": entries,
        "totals": {
            "cycles": len(entries), "outcomes": dict(outcomes),
            "tokens_trained": sum(e["trained"]["tokens"] for e in entries),
            "env_tokens_trained": sum(e["trained"]["env_tokens"] for e in entries),
            "train_seconds": round(sum(e["trained"]["seconds"] for e in entries), 1),
            "cpu_s": round(sum(e["cpu_s"] or 0 for e in entries), 1),
            "wall_s": round(sum(e["wall_s"] or 0 for e in entries), 1),
            "recallable_gained": sum((e["recallable"] or {}).get("gained_count", 0) for e in promoted),
            "recallable_lost": sum((e["recallable"] or {}).get("lost_count", 0) for e in promoted),
        },
        "heldout_ce": {"first_before": measured[0]["heldout_ce"]["before"] if measured else None,
                       "last_promoted_after": promoted[-1]["heldout_ce"]["after"] if promoted else None},
        "recallable": {"gained": gained, "lost": lost},
        "empty": not entries,
    }


def render_text(report: dict[str, Any]) -> str:
    """The report for a person: one block per cycle, then the totals and the look-ups gained and lost."""
    since = f" since {report['since']}" if report["since"] else ""
    if report["empty"]:
        return f"no update cycle has run{since} yet: nothing to report\n"
    out = [f"update cycles{since}: {len(report['cycles'])}"]
    for e in report["cycles"]:
        took = f", {e['wall_s']:.0f} s, {e['cpu_s']:.0f} s CPU" if e["wall_s"] is not None else ""
        out.append(f"\n#{e['id']} {e['started_at'][:19]} {e['status']}{took} ({e['trigger'] or '?'})")
        out.append(f"  {plain(e['message'])}" if e["message"] else "  (no message)")
        if e["trained"]["tokens"]:
            t = e["trained"]
            out.append(f"  trained {t['tokens']} tokens ({t['env_tokens']} env) in {t['optimizer_steps']} "
                       f"optimizer steps, {t['seconds']:.0f} s")
        if sel := e.get("selection"):
            out.append(f"  over its {sel['budget_minutes']:g}-minute budget: trained {sel['chosen_steps']} steps "
                       f"chosen by {sel['selection']}; {sel['left_steps']} wait for a later cycle")
        if e["heldout_ce"] and e["heldout_ce"]["after"] is not None:
            out.append(f"  held-out env CE {e['heldout_ce']['before']:.3f} -> {e['heldout_ce']['after']:.3f}")
        failed = [r for r in e["reasons"] if not r["passed"]]
        for r in failed:
            out.append(f"  failed {r['check']}: {plain(r['text'])}")
        if e["recovered_cycles"]:
            out.append("  recovered after cycle " + ", ".join(f"#{i}" for i in e["recovered_cycles"])
                       + " (left unfinished; nothing of it was promoted)")
        r = e["recallable"] or {}
        if r.get("gained_count") or r.get("lost_count"):
            verb = "now recallable" if e["status"] == "promoted" else "would have been recallable (not promoted)"
            out.append(f"  {r['gained_count']} new look-ups {verb}; {r['lost_count']} older ones lost")
    t = report["totals"]
    outcomes = ", ".join(f"{n} {k}" for k, n in sorted(t["outcomes"].items()))
    out.append(f"\ntotal: {outcomes}; {t['tokens_trained']} tokens trained ({t['env_tokens_trained']} env) in "
               f"{t['train_seconds']:.0f} s; {t['wall_s']:.0f} s in cycles, {t['cpu_s']:.0f} s CPU")
    ce = report["heldout_ce"]
    if ce["first_before"] is not None and ce["last_promoted_after"] is not None:
        out.append(f"held-out env CE: {ce['first_before']:.3f} before the first cycle, "
                   f"{ce['last_promoted_after']:.3f} after the last promoted one (each on its own held-out episodes)")
    for title, items in (("became recallable", report["recallable"]["gained"]),
                         ("no longer recallable", report["recallable"]["lost"])):
        if items:
            out.append(f"look-ups that {title}:")
            for x in items:
                conf = f"  (log-prob {x['confidence']:.3f})" if x.get("confidence") is not None else ""
                out.append(f"  {plain(x['command'])}  in {plain(x['cwd'])}{conf}")
    return "\n".join(out) + "\n"


def plot(report: dict[str, Any], path: str | Path) -> Path:
    """Two panels: held-out env CE before and after each cycle that trained, and tokens trained per cycle
    coloured by outcome."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    measured = [e for e in report["cycles"] if e["heldout_ce"] and e["heldout_ce"]["after"] is not None]
    for e in measured:
        ce = e["heldout_ce"]
        color = "tab:green" if e["status"] == "promoted" else "tab:red"
        ax1.plot([e["id"] - 0.15, e["id"] + 0.15], [ce["before"], ce["after"]], "o-", color=color)
    ax1.set_title("held-out env CE: before -> after (green: promoted)")
    ax1.set_xlabel("cycle")
    ax1.set_ylabel("nats per env token")
    colors = {"promoted": "tab:green", "rejected": "tab:red", "yielded": "tab:orange", "failed": "black"}
    entries = report["cycles"]
    ax2.bar([e["id"] for e in entries], [e["trained"]["tokens"] for e in entries],
            color=[colors.get(e["status"], "tab:gray") for e in entries])
    ax2.set_title("tokens trained per cycle (red: rejected, orange: yielded)")
    ax2.set_xlabel("cycle")
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # cycles are whole numbers
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
