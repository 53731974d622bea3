"""`echo-agent stats`: look-ups per repeated task, recall precision and adapter history (echo_agent/stats.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from echo_agent.cli.common import DbOpt, JsonOpt, open_store, print_json


def stats_command(
    db: DbOpt = None,
    min_episodes: Annotated[int, typer.Option("--min-episodes", min=1, help="Show tasks seen at least this "
                                              "often.")] = 2,
    plot_path: Annotated[Path | None, typer.Option("--plot", help="Also write a PNG plot here.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Look-ups per repeated task over time, where the answers came from, recall precision and adapter history.

    From your store. An answer comes from memory (no look-up), from recall (recalled look-ups only) or from
    executed look-ups; one from memory or recall is checked against the task's answer last looked up.

    Example: echo-agent stats --plot stats.png
    """
    from rich.console import Console
    from rich.table import Table

    from echo_agent.stats import collect, plot_stats
    from echo_agent.ui import literal

    with open_store(db) as store:
        stats = collect(store, min_episodes)
    if plot_path is not None:
        stats["plot"] = str(plot_stats(stats, plot_path))
    if as_json:
        print_json(stats)
        return
    console = Console(highlight=False)
    tasks = Table(title=literal(f"look-ups per repeated task ({stats['store']})"))
    for col in ("task", "episodes", "executed per episode (oldest → newest)", "recalled", "answers m/r/e",
                "agree"):
        tasks.add_column(col, justify="left" if col in ("task", "executed per episode (oldest → newest)") else "right")
    for t in stats["tasks"]:
        seq = " ".join(str(e["executed"]) for e in t["episodes"][-12:])
        tasks.add_row(literal(t["task"][:50]), str(len(t["episodes"])), seq, str(t["recalled_total"]),
                      "/".join(str(n) for n in t["answers"].values()),
                      f"{t['agreed']}/{t['checked']}" if t["checked"] else "–")
    console.print(tasks if stats["tasks"] else literal(f"no task seen {min_episodes}+ times yet"))
    a = stats["answers"]
    if stats["tasks"]:
        agree = (f"{a['agreed']}/{a['checked']} = {a['accuracy']:.0%} agree with the answer last looked up"
                 if a["checked"] else "none to check yet")
        console.print(literal(f"answers to repeated tasks: {a['memory']} from memory, {a['recall']} from recall, "
                              f"{a['executed']} from executed look-ups; from memory or recall: {agree}"))
    r = stats["recall"]
    prec = f"{r['verified_right']}/{r['verified']} = {r['precision']:.0%}" if r["verified"] else "none verified yet"
    console.print(literal(f"recalls: {r['recalled']}; verified recall precision: {prec} "
                          f"(threshold {r['threshold']:g})"))
    checked = [c for c in stats["calibration"] if c["checked"]]
    if checked:
        line = "  ".join(f"{c['threshold']:g}: {c['precision']:.2f}/{c['coverage']:.2f}" if c["covered"]
                         else f"{c['threshold']:g}: –/0.00" for c in checked)
        console.print(literal(f"calibration over {checked[0]['checked']} predicted-and-executed look-ups "
                              f"(threshold: precision/coverage): {line}"))
    if stats["adapters"]:
        ads = Table(title="adapters (held-out env CE, nats/token)")
        for col in ("id", "status", "created", "env tokens", "CE before", "CE after", "recalls lost"):
            ads.add_column(col)
        for a in stats["adapters"]:
            ads.add_row(a["id"], literal(a["status"]), (a["created_at"] or "")[:19], str(a["n_env_tokens"] or "–"),
                        f"{a['heldout_ce_before']:.3f}" if a["heldout_ce_before"] is not None else "–",
                        f"{a['heldout_ce']:.3f}" if a["heldout_ce"] is not None else "–",
                        f"{a['recalls_lost']}/{a['recalls_known']}" if a["recalls_known"] else "–")
        console.print(ads)
    else:
        console.print("no adapters yet: `echo-agent update` trains one")
    if plot_path is not None:
        console.print(literal(f"plot: {stats['plot']}"))
