"""`echo-agent logs`: look at, search, export, import and forget what the store recorded."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from echo_agent.config import ConfigError
from echo_agent.memory.store import StoreError, TrajectoryStore, default_db_path

logs_app = typer.Typer(
    help="Recorded episodes: list, show, search, export/import (JSONL), forget, stats.",
    no_args_is_help=False,
)

DbOption = Annotated[Path | None, typer.Option("--db", help="Store file (default: <home>/store.db).")]


def _when(value: str | None) -> str | None:
    """An ISO date or time from the command line, as the store writes times (UTC); without a zone it is local
    time, so `--since 2026-03-01` means the local midnight."""
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO date or time, e.g. 2026-03-01 or 2026-03-01T14:30") from None
    if t.tzinfo is None:
        t = t.astimezone()
    return t.astimezone(timezone.utc).isoformat(timespec="microseconds")


@contextlib.contextmanager
def _store(db: Path | None, create: bool = False) -> Iterator[TrajectoryStore]:
    """Open the store; known errors become a one-line message and exit code 1. A `--db` that does not exist is
    an error unless `create`."""
    try:
        store = TrajectoryStore(db, must_exist=db is not None and not create)
    except (StoreError, ConfigError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    try:
        yield store
    except (StoreError, ConfigError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    finally:
        store.close()


def _short(text: str | None, n: int = 60) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


@logs_app.callback(invoke_without_command=True)
def recent(
    ctx: typer.Context,
    n: Annotated[int, typer.Option("-n", min=1, help="How many episodes to list.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    db: DbOption = None,
) -> None:
    """List the most recent episodes (newest first)."""
    if ctx.invoked_subcommand is not None:
        return
    with _store(db) as store:
        episodes = store.recent_episodes(n)
    if as_json:
        typer.echo(json.dumps(episodes, ensure_ascii=False, indent=2))
        return
    table = Table("id", "started", "status", "steps", "task")
    for e in episodes:
        table.add_row(e["id"][:8], e["started_at"][:19], e["status"], str(e["n_steps"]), _short(e["task"]))
    Console().print(table)


@logs_app.command("show")
def show(
    episode_id: Annotated[str, typer.Argument(help="Episode id (or a unique prefix of 8+ characters).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    db: DbOption = None,
) -> None:
    """Show one episode: task, status, answer, and every step with its output."""
    with _store(db) as store:
        episode = store.get_episode(episode_id)
        if episode is None:
            typer.echo(f"error: no episode {episode_id}; `echo-agent logs` lists them", err=True)
            raise typer.Exit(1)
        steps = store.episode_steps(episode["id"])
    if as_json:
        typer.echo(json.dumps({**episode, "steps": steps}, ensure_ascii=False, indent=2))
        return
    console = Console()
    console.print(f"[bold]{episode['task']}[/bold]", markup=True, highlight=False)
    console.print(f"id {episode['id']}  status {episode['status']}  started {episode['started_at']}"
                  f"  adapter {episode['adapter_id'] or 'base'}", highlight=False)
    for s in steps:
        extra = [f"{s['source']}", f"{s['kind']}"]
        if s["surprise"] is not None:
            extra.append(f"surprise {s['surprise']:.3f}")
        if s["redactions"]:
            extra.append(f"{s['redactions']} redacted")
        console.rule(f"step {s['idx']} ({', '.join(extra)})")
        console.print(f"$ {s['command']}" if s["command"] is not None else "(no command)", markup=False,
                      highlight=False)
        if s["output"]:
            console.print(s["output"].rstrip("\n"), markup=False, highlight=False)
        console.print(s["status"] or "", markup=False, highlight=False)
    if episode["answer"]:
        console.rule("answer")
        console.print(episode["answer"], markup=False, highlight=False)


@logs_app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="Words to find in commands and outputs (all must match).")],
    limit: Annotated[int, typer.Option("-n", "--limit", min=1, help="Most hits to show.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    db: DbOption = None,
) -> None:
    """Full-text search over recorded commands and outputs, best match first."""
    with _store(db) as store:
        hits = store.search(query, limit)
    if as_json:
        typer.echo(json.dumps(hits, ensure_ascii=False, indent=2))
        return
    table = Table("episode", "step", "command", "snippet")
    for h in hits:
        table.add_row(h["episode_id"][:8], str(h["idx"]), _short(h["command"], 40), _short(h["snippet"], 80))
    Console().print(table)


@logs_app.command("export")
def export(
    since: Annotated[str | None, typer.Option("--since", callback=_when,
                                              help="Only episodes started at/after this ISO date or time.")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to FILE (default: stdout).")] = None,
    db: DbOption = None,
) -> None:
    """Export episodes as JSONL, one episode per line, with chat messages and steps (HF datasets can read it).

    FILE appears only when the export is complete (it is written next to it first, then renamed)."""
    with _store(db) as store:
        if output is None:
            for record in store.export_episodes(since):
                sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
            return
        part = output.with_name(output.name + ".part")
        try:
            with part.open("w", encoding="utf-8") as out:
                n = 0
                for record in store.export_episodes(since):
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                    n += 1
            os.replace(part, output)
        except OSError as e:
            typer.echo(f"error: cannot write {output} ({e.strerror or e})", err=True)
            raise typer.Exit(1) from None
        finally:
            part.unlink(missing_ok=True)
    typer.echo(f"exported {n} episodes to {output}", err=True)


@logs_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A JSONL file written by `logs export`.")],
    db: DbOption = None,
) -> None:
    """Import exported episodes; ones already present are skipped (importing twice is harmless)."""
    if not file.is_file():
        typer.echo(f"error: {file} {'is not a file' if file.exists() else 'does not exist'}", err=True)
        raise typer.Exit(1)
    with _store(db, create=True) as store, file.open("rb") as f:
        counts = store.import_episodes(_jsonl(file, f))
    typer.echo(", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()))


def _jsonl(path: Path, f: IO[bytes]) -> Iterator[Any]:
    """The JSON value on each non-blank line; a line that is not JSON (or not UTF-8) stops with its number."""
    for n, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            yield json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise StoreError(f"{path} line {n} is not JSONL from `logs export` ({e})") from None


@logs_app.command("forget")
def forget(
    ids: Annotated[list[str] | None, typer.Option("--id", help="Episode id to forget (repeatable).")] = None,
    query: Annotated[str | None, typer.Option("--query", help="Forget steps matching these words.")] = None,
    since: Annotated[str | None, typer.Option("--since", callback=_when,
                                              help="Steps started at/after this ISO date or time.")] = None,
    until: Annotated[str | None, typer.Option("--until", callback=_when,
                                              help="Steps started before this ISO date or time.")] = None,
    directory: Annotated[str | None, typer.Option("--dir", help="Steps run in this directory or below.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    db: DbOption = None,
) -> None:
    """Delete recorded steps (all given criteria must match) and the episodes they empty.

    Adapters trained on a forgotten step are marked stale, so the agent stops using them.
    """
    with _store(db) as store:
        plan = store.forget_plan(ids or (), query, since, until, directory)
        n_steps, n_eps = len(plan["step_seqs"]), len(plan["episodes"])
        typer.echo(f"will delete {n_steps} steps and {n_eps} episodes; "
                   f"{len(plan['adapters'])} adapters become stale {plan['adapters'] or ''}".rstrip())
        if not n_steps and not n_eps:
            return
        if not yes:
            if not sys.stdin.isatty():
                typer.echo("error: not a terminal, so not asking; pass --yes to forget", err=True)
                raise typer.Exit(1)
            if not typer.confirm("Forget them?", default=False):
                raise typer.Exit(1)
        counts = store.forget(ids or (), query, since, until, directory)
    typer.echo(f"forgot {counts['steps']} steps, {counts['episodes']} episodes; "
               f"{counts['adapters_stale']} adapters marked stale")


@logs_app.command("stats")
def stats(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    db: DbOption = None,
) -> None:
    """Counts: sessions, episodes, steps, bytes on disk, and episodes per task."""
    with _store(db) as store:
        s = store.stats()
    if as_json:
        typer.echo(json.dumps(s, ensure_ascii=False, indent=2))
        return
    table = Table("what", "count")
    for key in ("sessions", "episodes", "steps", "trainable_steps", "redacted_steps", "bytes"):
        table.add_row(key.replace("_", " "), f"{s[key]:,}")
    console = Console()
    console.print(table)
    tasks = Table("episodes", "first", "last", "task")
    for t in s["tasks"][:20]:
        tasks.add_row(str(t["episodes"]), t["first"][:10], t["last"][:10], _short(t["task"]))
    console.print(tasks)


@logs_app.command("path")
def path(db: DbOption = None) -> None:
    """Print where the store lives."""
    typer.echo(str(db or default_db_path()))
