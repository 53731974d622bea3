"""`echo-agent update`, `echo-agent adapters …` and `echo-agent updater …` (thin: the work is in the library)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

adapters_app = typer.Typer(help="List, inspect, promote and roll back LoRA adapters.", no_args_is_help=True)
updater_app = typer.Typer(help="The background updater: trains when enough new output has accumulated.",
                          no_args_is_help=True)

DbOpt = Annotated[str | None, typer.Option("--db", help="Store file (default: <home>/store.db).")]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _open_store(db: str | None):
    from echo_agent.config import ConfigError, Settings
    from echo_agent.memory.store import StoreError, TrajectoryStore

    try:
        settings = Settings.load()
        return TrajectoryStore(db, settings=settings, must_exist=db is not None), settings
    except (StoreError, ConfigError) as e:
        raise _fail(str(e)) from None


def update_command(
    max_minutes: Annotated[float | None, typer.Option("--max-minutes", help="Stop training after this long "
                                                       "(the candidate is still evaluated).")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Passes over this cycle's data.")] = None,
    objective: Annotated[str, typer.Option("--objective", help="env (default) or env+action.")] = "env",
    action_weight: Annotated[float, typer.Option("--action-weight", help="λ for action tokens.")] = 0.0,
    kl_weight: Annotated[float, typer.Option("--kl-weight", help="Weight of KL to the base model.")] = 0.0,
    model: Annotated[str | None, typer.Option("--model", help="Base model (default: the configured one).")] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Fail instead of waiting for a running update.")] = False,
    db: DbOpt = None,
) -> None:
    """Train, evaluate and (if it passes the gate) promote a new adapter now.

    One cycle: a LoRA adapter is trained to predict the terminal output recorded since the adapter in use, then
    evaluated on held-out episodes and the forgetting probe; it is promoted only if it passes the gate."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from echo_agent.config import home_dir
    from echo_agent.updater.cycle import UpdateBusy, run_cycle
    from echo_agent.updater.registry import AdapterError
    from echo_agent.updater.train import TrainConfig

    if objective not in ("env", "env+action"):
        raise _fail(f"unknown objective {objective!r}; choose env or env+action")
    store, settings = _open_store(db)
    cfg = TrainConfig(lora_r=settings.lora_r, lora_alpha=settings.lora_alpha, max_minutes=max_minutes,
                      objective=objective, action_weight=action_weight, kl_weight=kl_weight)
    if epochs is not None:
        cfg.epochs = epochs
    console = Console(stderr=True)
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
        elif event == "loading":
            console.print(f"loading {info['model']} (adapter {info['adapter'] or 'none'})")
        elif event == "cleaned":
            console.print(f"removed an unfinished adapter left by a killed update: {info['path']}")

    try:
        with store:
            report = run_cycle(store, settings, home=home_dir(), model=model, cfg=cfg, wait=not no_wait,
                               on_progress=on_progress)
    except (UpdateBusy, AdapterError) as e:
        raise _fail(str(e)) from None
    finally:
        progress.stop()
    typer.echo(report.message or report.status)
    raise typer.Exit(0 if report.status in ("promoted", "rejected", "nothing-new", "no-heldout") else 1)


@adapters_app.command("list")
def adapters_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
                  db: DbOpt = None) -> None:
    """Every adapter with its status and held-out / probe cross-entropy (nats per env token)."""
    from rich.console import Console
    from rich.table import Table

    from echo_agent.updater.registry import current_adapter

    store, _ = _open_store(db)
    with store:
        rows = store.list_adapters()
        in_use, _ = current_adapter(store)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="adapters (▶ in use; CE in nats per env token)",
                  caption="lost: older recallable steps the candidate lost / had")
    for col in ("", "id", "status", "parent", "data to", "held-out CE", "probe CE", "lost"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        m = r.get("metrics") or {}
        h, p, k = m.get("heldout_ce", {}), m.get("probe_ce", {}), m.get("retention", {})
        table.add_row("▶" if r["id"] == in_use else "", r["id"], r["status"], r["parent_id"] or "",
                      str(r["trained_through_seq"]), f"{h['current']:.2f}→{h['candidate']:.2f}" if h else "",
                      f"{p['base']:.2f}→{p['candidate']:.2f}" if p else "",
                      f"{k['lost']}/{k['known']}" if k.get("known") else "")
    Console().print(table)


@adapters_app.command("show")
def adapters_show(adapter_id: Annotated[str, typer.Argument(help="Adapter id, e.g. a0003.")], db: DbOpt = None) -> None:
    """One adapter's record and metadata (base model, config, data range, metrics, library versions)."""
    from echo_agent.updater.registry import AdapterError, read_meta

    store, _ = _open_store(db)
    with store:
        row = store.get_adapter(adapter_id)
    if row is None:
        raise _fail(f"no adapter {adapter_id}; `echo-agent adapters list` shows them")
    out = {"record": row}
    try:
        out["metadata"] = read_meta(Path(row["path"]))
    except AdapterError as e:
        out["metadata_error"] = str(e)
    typer.echo(json.dumps(out, indent=2, default=str))


@adapters_app.command("promote")
def adapters_promote(adapter_id: Annotated[str, typer.Argument(help="Adapter id to put in use.")],
                     db: DbOpt = None) -> None:
    """Put an adapter in use by hand (the next episode uses it), whatever the gate said."""
    from echo_agent.updater.registry import AdapterError, promote

    store, _ = _open_store(db)
    with store:
        try:
            promote(store, adapter_id)
        except AdapterError as e:
            raise _fail(str(e)) from None
    typer.echo(f"{adapter_id} is now in use")


@adapters_app.command("rollback")
def adapters_rollback(db: DbOpt = None) -> None:
    """Retire the adapter in use; the previously promoted one (or the base model) takes over."""
    from echo_agent.updater.registry import AdapterError, rollback

    store, _ = _open_store(db)
    with store:
        try:
            retired, now = rollback(store)
        except AdapterError as e:
            raise _fail(str(e)) from None
    typer.echo(f"retired {retired}; now in use: {now or 'the base model'}")


@updater_app.command("start")
def updater_start(
    interval: Annotated[float, typer.Option("--interval", help="Seconds between checks.")] = 60.0,
    min_new_tokens: Annotated[int, typer.Option("--min-new-tokens", help="New env tokens that start a cycle.")] = 2000,
    max_minutes: Annotated[float | None, typer.Option("--max-minutes", help="Training time per cycle.")] = None,
) -> None:
    """Start the background updater for this home (low priority; never trains while an episode runs)."""
    from echo_agent.config import ConfigError, Settings, home_dir
    from echo_agent.updater import daemon

    try:
        Settings.load()  # a bad config.toml is said here, not only in the daemon's log
        pid = daemon.start(home_dir(), interval, min_new_tokens, max_minutes)
    except (RuntimeError, ConfigError) as e:
        raise _fail(str(e)) from None
    typer.echo(f"updater started (pid {pid}); log: {home_dir() / 'updater.log'}")


@updater_app.command("stop")
def updater_stop() -> None:
    """Stop the background updater (a cycle in progress is abandoned and promotes nothing)."""
    from echo_agent.config import home_dir
    from echo_agent.updater import daemon

    typer.echo("updater stopped" if daemon.stop(home_dir()) else "the updater was not running")


@updater_app.command("status")
def updater_status(db: DbOpt = None) -> None:
    """Whether the updater runs, how much new output waits, and its last log lines."""
    from echo_agent.config import home_dir
    from echo_agent.updater import daemon

    st = daemon.status(home_dir())
    typer.echo(f"updater: {'running (pid ' + str(st.pid) + ')' if st.running else 'not running'}")
    store, _ = _open_store(db)
    with store:
        typer.echo(f"new env tokens since the adapter in use: ~{daemon.pending_env_tokens(store)}")
    if st.log.exists():
        lines = st.log.read_text(errors="replace").splitlines()[-5:]
        typer.echo("last log lines:\n" + "\n".join("  " + line for line in lines))
