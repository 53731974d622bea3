"""`echo-agent update`, `echo-agent adapters …` and `echo-agent updater …`: the updater and its registry."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Annotated

import typer

from echo_agent.cli.common import DbOpt, JsonOpt, open_store, print_json
from echo_agent.updater.train import Objective

adapters_app = typer.Typer(help="List, inspect, promote and roll back LoRA adapters.", no_args_is_help=True)
updater_app = typer.Typer(help="The background updater: trains when enough new output has accumulated.",
                          no_args_is_help=True)


def update_command(
    max_minutes: Annotated[float | None, typer.Option("--max-minutes", min=0.0, help="Stop training after this "
                                                       "long (the candidate is still evaluated).")] = None,
    budget_minutes: Annotated[float | None, typer.Option("--budget-minutes", min=0.0, help="Budget for choosing "
                              "and training: new data that would take longer is chosen by value, and the rest "
                              "waits (default: cycle_budget_minutes in config.toml; 0: no budget).")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Passes over this cycle's data at most: training stops "
                                                       "after the first pass that finds every window known.")] = None,
    objective: Annotated[Objective, typer.Option("--objective", help="What training predicts.")] = Objective.ENV,
    action_weight: Annotated[float, typer.Option("--action-weight", min=0.0, help="λ for action tokens.")] = 0.0,
    kl_weight: Annotated[float, typer.Option("--kl-weight", min=0.0, help="Weight of KL to the base model.")] = 0.0,
    model: Annotated[str | None, typer.Option("--model", help="Base model (default: the configured one).")] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Fail instead of waiting for a running update.")] = False,
    db: DbOpt = None,
) -> None:
    """Train, evaluate and (if it passes the gate) promote a new adapter now.

    One cycle: a LoRA adapter is trained to predict the terminal output recorded since the adapter in use, then
    evaluated on held-out episodes and the forgetting probe; it is promoted only if it passes the gate."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from echo_agent.config import Settings, home_dir
    from echo_agent.ui import literal
    from echo_agent.updater import policy
    from echo_agent.updater.cycle import run_cycle, training_note
    from echo_agent.updater.select import selected_note
    from echo_agent.updater.train import TrainConfig

    settings = Settings.load(cycle_budget_minutes=budget_minutes)
    cfg = TrainConfig.from_settings(settings, max_minutes=max_minutes, objective=objective,
                                    action_weight=action_weight, kl_weight=kl_weight, epochs=epochs)
    console = Console(stderr=True, highlight=False)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console)
    task = None

    def on_progress(event: str, info: dict) -> None:
        nonlocal task
        if event == "step":
            if task is None:
                task = progress.add_task("training", total=info["total"], info="")
                progress.start()
            progress.update(task, completed=info["step"],
                            info=f"loss {info['loss']:.3f}  {info['tokens_per_s']:.0f} tok/s")
        elif event == "baseline":
            console.print(f"held-out env CE: base {info['heldout_base']:.3f}, current {info['heldout_current']:.3f}; "
                          f"training on {info['train_env_tokens']} env tokens")
        elif event == "selected":
            console.print(selected_note(info))
        elif event == "policy" and info["tasks"]:
            console.print(policy.replaying(info))
        elif note := training_note(event, info):
            console.print(note)
        elif event == "loading":
            console.print(literal(f"loading {info['model']} (adapter {info['adapter'] or 'none'})"))
        elif event == "cleaned":
            console.print(literal(f"removed an unfinished adapter left by a killed update: {info['path']}"))
        elif event == "recovered":
            console.print(literal("recorded as failed, left unfinished by a killed update: cycle "
                                  + ", ".join(f"#{i}" for i in info["cycles"])))
        elif event == "export":
            console.print(literal(info["message"]))

    try:
        with open_store(db, settings=settings) as store:
            report = run_cycle(store, settings, home=home_dir(), model=model, cfg=cfg, wait=not no_wait,
                               on_progress=on_progress)
    finally:
        progress.stop()
    typer.echo(report.message or report.status)


@adapters_app.command("list")
def adapters_list(as_json: JsonOpt = False, db: DbOpt = None) -> None:
    """Every adapter with its status and held-out / probe cross-entropy (nats per env token)."""
    from rich.console import Console
    from rich.table import Table

    from echo_agent.memory.adapters import list_adapters
    from echo_agent.updater.registry import configured_starter, current_adapter, current_adapter_row

    with open_store(db) as store:
        rows = list_adapters(store)
        in_use, _ = current_adapter(store)
        chooser = (current_adapter_row(store, choosing=True) or {}).get("id")
        starter = configured_starter(store.settings)
    if starter is not None:
        rows.insert(0, starter)
        in_use, chooser = in_use or starter["id"], chooser or starter["id"]
    if as_json:
        print_json(rows)
        return
    caption = "lost: older recallable steps the candidate lost / had"
    if starter is not None:
        caption += "; starter: shipped with echo-agent (CE on its own held-out episodes)"
    table = Table(title="adapters (▶ recalls, ◆ chooses the commands; CE in nats per env token)", caption=caption)
    for col in ("", "id", "status", "parent", "data to", "held-out CE", "probe CE", "lost"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        m = r.get("metrics") or {}
        h, p, k = m.get("heldout_ce", {}), m.get("probe_ce", {}), m.get("retention", {})
        if "heldout_env_ce" in m:  # the starter's own metrics
            h = {"current": m["heldout_env_ce"]["before"], "candidate": m["heldout_env_ce"]["after"]}
        mark = ("▶" if r["id"] == in_use else "") + ("◆" if r["id"] == chooser else "")
        table.add_row(mark, r["id"], r["status"], r["parent_id"] or "",
                      str(r["trained_through_seq"]), f"{h['current']:.2f}→{h['candidate']:.2f}" if h else "",
                      f"{p['base']:.2f}→{p['candidate']:.2f}" if p else "",
                      f"{k['lost']}/{k['known']}" if k.get("known") else "")
    Console().print(table)


@adapters_app.command("show")
def adapters_show(adapter_id: Annotated[str, typer.Argument(help="Adapter id, e.g. a0003, or starter.")],
                  db: DbOpt = None) -> None:
    """One adapter's record and metadata (base model, config, data range, metrics, library versions)."""
    from echo_agent.errors import AdapterError
    from echo_agent.memory.adapters import get_adapter
    from echo_agent.updater import registry
    from echo_agent.updater.registry import STARTER_DIR, STARTER_ID, configured_starter, read_meta

    with open_store(db) as store:
        row = get_adapter(store, adapter_id)
        if row is None and adapter_id == STARTER_ID:
            row = configured_starter(store.settings) or {"id": STARTER_ID, "path": str(STARTER_DIR), "status": (
                "not in use: switched off by the starter_adapter setting, missing, or made for another model")}
    if row is None:
        raise AdapterError(f"no adapter {adapter_id}; `echo-agent adapters list` shows them")
    out = {"record": row, "llamacpp_export": registry.llamacpp_export_state(Path(row["path"]))}
    try:
        out["metadata"] = read_meta(Path(row["path"]))
    except AdapterError as e:
        out["metadata_error"] = str(e)
    print_json(out)


@adapters_app.command("promote")
def adapters_promote(adapter_id: Annotated[str, typer.Argument(help="Adapter id to put in use.")],
                     db: DbOpt = None) -> None:
    """Put an adapter in use by hand, to recall and to choose commands (the next episode uses it), whatever the gate
    said."""
    from echo_agent.updater.registry import promote

    with open_store(db) as store:
        promote(store, adapter_id)
    typer.echo(f"{adapter_id} is now in use")


@adapters_app.command("rollback")
def adapters_rollback(db: DbOpt = None) -> None:
    """Retire the adapter in use; the previously promoted one (or the starter, or the base model) takes over."""
    from echo_agent.updater.registry import configured_starter, rollback

    with open_store(db) as store:
        retired, now = rollback(store)
        if now is None and configured_starter(store.settings):
            now = "the starter adapter"
    typer.echo(f"retired {retired}; now in use: {now or 'the base model'}")


WindowOpt = Annotated[str | None, typer.Option(
    "--window", help="Train only inside this daily window of local time, HH:MM-HH:MM (e.g. 01:00-07:00; it may run "
    "over midnight). Default: any time no agent episode runs.")]


def _window(text: str | None):
    from echo_agent.updater.schedule import Window

    return Window.parse(text) if text else None


@updater_app.command("start")
def updater_start(
    window: WindowOpt = None,
    interval: Annotated[float, typer.Option("--interval", min=0.1, help="Seconds between checks.")] = 60.0,
    min_new_tokens: Annotated[int, typer.Option("--min-new-tokens", min=1, help="New env tokens that start a "
                                                "cycle.")] = 2000,
    max_minutes: Annotated[float | None, typer.Option("--max-minutes", min=0.0, help="Training time per "
                                                      "cycle, at most (a hard stop).")] = None,
    budget_minutes: Annotated[float | None, typer.Option("--budget-minutes", min=0.0, help="A cycle's budget for "
                              "choosing and training: new data that would take longer is chosen by value, and the "
                              "rest waits (default: cycle_budget_minutes in config.toml; 0: no budget).")] = None,
) -> None:
    """Start the background updater for this home (idle priority; never trains while an episode runs, and yields
    to one that starts)."""
    from echo_agent.config import Settings, home_dir
    from echo_agent.updater import daemon

    w = _window(window)
    Settings.load()  # a bad config.toml is said here, not only in the daemon's log
    pid = daemon.start(home_dir(), interval, min_new_tokens, max_minutes, w, budget_minutes)
    typer.echo(f"updater started (pid {pid}, {'window ' + str(w) if w else 'any time'}); "
               f"log: {home_dir() / 'updater.log'}")


@updater_app.command("stop")
def updater_stop() -> None:
    """Stop the background updater (a cycle in progress is abandoned and promotes nothing). An installed service
    starts it again at its next start; `updater uninstall` removes the service."""
    from echo_agent.config import home_dir
    from echo_agent.updater import daemon

    typer.echo("updater stopped" if daemon.stop(home_dir()) else "the updater was not running")


@updater_app.command("install")
def updater_install(
    window: WindowOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be written, and where; write "
                                                             "nothing.")] = False,
    using: Annotated[str, typer.Option("--using", help="auto (systemd where its user instance answers, else "
                                                       "cron), systemd or cron.")] = "auto",
    interval: Annotated[float, typer.Option("--interval", min=0.1, help="Seconds between checks.")] = 60.0,
    min_new_tokens: Annotated[int, typer.Option("--min-new-tokens", min=1, help="New env tokens that start a "
                                                "cycle.")] = 2000,
) -> None:
    """Set the updater up once: a systemd user service (or a crontab entry where systemd's user instance is not
    available) that starts it at login or boot and keeps it running. `updater uninstall` removes exactly it.

    Example: echo-agent updater install --window 01:00-07:00"""
    from echo_agent.config import Settings, home_dir
    from echo_agent.errors import UpdaterError
    from echo_agent.updater import service

    w = _window(window)
    Settings.load()
    home = home_dir()
    if using not in ("auto", "systemd", "cron"):
        raise UpdaterError(f"bad --using {using!r}: auto, systemd or cron")
    try:
        plan = service.plan(home, w, interval, min_new_tokens, None if using == "auto" else using)
    except UpdaterError as e:
        if not dry_run:
            raise
        plan = service.plan(home, w, interval, min_new_tokens, "systemd")
        typer.echo(f"({e}; this is the unit a systemd user instance would get)")
    if dry_run:
        where = f"to {plan.path}" if plan.path else "as a line of your crontab"
        typer.echo(f"would write a {plan.kind} {'unit' if plan.path else 'entry'} {where}:\n")
        typer.echo(plan.text)
        return
    for line in service.install(home, plan):
        typer.echo(line)


@updater_app.command("uninstall")
def updater_uninstall() -> None:
    """Stop the updater and remove the service or crontab entry `updater install` wrote (nothing else)."""
    from echo_agent.config import home_dir
    from echo_agent.updater import service

    for line in service.uninstall(home_dir()):
        typer.echo(line)


@updater_app.command("status")
def updater_status(db: DbOpt = None) -> None:
    """Whether the updater runs, its window and next run, the last cycle's outcome and the output waiting."""
    from echo_agent.config import home_dir
    from echo_agent.memory import cycles
    from echo_agent.updater import daemon, service

    home = home_dir()
    st = daemon.status(home)
    typer.echo(f"updater: {'running (pid ' + str(st.pid) + ')' if st.running else 'not running'}")
    if (done := service.installed(home)) is not None:
        typer.echo(f"installed: {service.described(done)}")
    if st.state:
        typer.echo(f"window: {st.state['window'] or 'any time'}")
        if (budget := st.state.get("budget_minutes")) is not None:
            typer.echo(f"budget per cycle: {f'{budget:g} min' if budget else 'none'}")
        typer.echo(f"next check: {st.state['next_check']} (waiting for {st.state['waiting_for']})")
    with open_store(db) as store:
        typer.echo(f"new env tokens the adapter in use has not trained on: ~{daemon.pending_env_tokens(store)}")
        last = cycles.last_cycle(store)
    if last is not None:
        from echo_agent.updater.report import plain

        typer.echo(f"last cycle: #{last['id']} {last['status']} at {last['started_at'][:19]}: "
                   f"{plain(last['message'])}")
    else:
        typer.echo("last cycle: none yet")
    if (home / daemon.REPORT_FILE).exists():
        typer.echo(f"the latest window's report: {home / daemon.REPORT_FILE} (`echo-agent updater report` for more)")
    if st.log.exists():
        lines = st.log.read_text(errors="replace").splitlines()[-5:]
        typer.echo("last log lines:\n" + "\n".join("  " + line for line in lines))


@updater_app.command("report")
def updater_report(
    since: Annotated[str | None, typer.Option("--since", help="Only cycles started on or after this date or time "
                                                              "(ISO, e.g. 2026-12-01 or 2026-12-01T22:00).")] = None,
    as_json: JsonOpt = False,
    plot_path: Annotated[Path | None, typer.Option("--plot", help="Also write a PNG plot here.")] = None,
    db: DbOpt = None,
) -> None:
    """What the update cycles did: outcomes and the gate's reasons, tokens trained, time and CPU, held-out env CE
    before and after, and the look-ups that became recallable or were lost.

    Example: echo-agent updater report --since 2026-12-01 --plot cycles.png"""
    from datetime import datetime

    from echo_agent.config import home_dir
    from echo_agent.errors import EchoAgentError
    from echo_agent.updater.report import build, plot, render_text

    start = None
    if since is not None:
        try:
            start = datetime.fromisoformat(since).astimezone().astimezone(UTC).isoformat()
        except ValueError:
            raise EchoAgentError(f"bad --since {since!r}: expected a date or time such as 2026-12-01 or "
                                 "2026-12-01T22:00") from None
    path = Path(db) if db else home_dir() / "store.db"
    if path.exists():
        with open_store(db) as store:
            report = build(store, start)
    else:
        report = build(None, start)  # a home with no store: nothing yet, and no store is created for it
    if plot_path is not None and not report["empty"]:
        report["plot"] = str(plot(report, plot_path))
    if as_json:
        print_json(report)
        return
    typer.echo(render_text(report), nl=False)
    if report.get("plot"):
        typer.echo(f"plot: {report['plot']}")
