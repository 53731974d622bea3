"""`echo-agent logs`: look at, search, export, import and forget what the store recorded.

Everything read back from the store is untrusted text: it reaches the terminal through `ui.literal`.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from echo_agent.cli.common import DbOpt, JsonOpt, open_store, print_json
from echo_agent.ui import highlighted, literal, plain_snippet

logs_app = typer.Typer(
    help="Recorded episodes: list, show, search, export/import (JSONL), forget, stats.",
    no_args_is_help=False,
)


def parse_when(value: str | None) -> str | None:
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
    return t.astimezone(UTC).isoformat(timespec="microseconds")


def _short(text: str | None, n: int = 60) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


@logs_app.callback(invoke_without_command=True)
def recent(
    ctx: typer.Context,
    n: Annotated[int, typer.Option("-n", min=1, help="How many episodes to list.")] = 20,
    as_json: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """List the most recent episodes (newest first)."""
    if ctx.invoked_subcommand is not None:
        return
    with open_store(db) as store:
        episodes = store.recent_episodes(n)
    if as_json:
        print_json(episodes)
        return
    table = Table("id", "started", "by", "status", "steps", "task")
    for e in episodes:
        human = e.get("session_kind") == "human"  # a command typed in `echo-agent shell`: shown as the command
        table.add_row(e["id"][:8], e["started_at"][:16].replace("T", " "), "human" if human else "agent",
                      literal(e["status"]), str(e["n_steps"]),
                      literal(_short(f"$ {e['first_command']}" if human else e["task"])))
    Console().print(table)


@logs_app.command("show")
def show(
    episode_id: Annotated[str, typer.Argument(help="Episode id (or a unique prefix of 8+ characters).")],
    as_json: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """Show one episode: task, status, answer, and every step with its output."""
    from echo_agent.errors import StoreError

    with open_store(db) as store:
        episode = store.get_episode(episode_id)
        if episode is None:
            raise StoreError(f"no episode {episode_id}; `echo-agent logs` lists them")
        steps = store.episode_steps(episode["id"])
    if as_json:
        print_json({**episode, "steps": steps})
        return
    console = Console(highlight=False)
    console.print(literal(episode["task"], "bold"))
    console.print(literal(f"id {episode['id']}  status {episode['status']}  started {episode['started_at']}"
                          f"  adapter {episode['adapter_id'] or 'base'}"))
    for s in steps:
        extra = [f"{s['source']}", f"{s['kind']}"]
        if s["surprise"] is not None:
            extra.append(f"surprise {s['surprise']:.3f}")
        if s["redactions"]:
            extra.append(f"{s['redactions']} redacted")
        console.rule(literal(f"step {s['idx']} ({', '.join(extra)})"))
        console.print(literal(f"$ {s['command']}" if s["command"] is not None else "(no command)"))
        if s["output"]:
            console.print(literal(s["output"].rstrip("\n")))
        console.print(literal(s["status"] or ""))
    if episode["answer"]:
        console.rule(literal("answer"))
        console.print(literal(episode["answer"]))


@logs_app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="Words to find in commands and outputs (all must match).")],
    limit: Annotated[int, typer.Option("-n", "--limit", min=1, help="Most hits to show.")] = 20,
    as_json: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """Full-text search over recorded commands and outputs, best match first (matches in bold)."""
    with open_store(db) as store:
        hits = store.search(query, limit)
    if as_json:
        print_json([{**h, "snippet": plain_snippet(h["snippet"])} for h in hits])
        return
    table = Table("episode", "step", "by", "command", "snippet")
    for h in hits:
        table.add_row(h["episode_id"][:8], str(h["idx"]), h.get("author") or "agent",
                      literal(_short(h["command"], 40)), highlighted(_short(h["snippet"], 80)))
    Console().print(table)


@logs_app.command("export")
def export(
    since: Annotated[str | None, typer.Option("--since", callback=parse_when,
                                              help="Only episodes started at/after this ISO date or time.")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to FILE (default: stdout).")] = None,
    db: DbOpt = None,
) -> None:
    """Export episodes as JSONL, one episode per line, with chat messages and steps (HF datasets can read it).

    FILE appears only when the export is complete (it is written next to it first, then renamed)."""
    from echo_agent.errors import StoreError
    from echo_agent.memory.exchange import export_episodes, jsonl_line

    with open_store(db) as store:
        if output is None:
            for record in export_episodes(store, since):
                sys.stdout.write(jsonl_line(record))
            return
        part = output.with_name(output.name + ".part")
        try:
            with part.open("w", encoding="utf-8") as out:
                n = 0
                for record in export_episodes(store, since):
                    out.write(jsonl_line(record))
                    n += 1
            os.replace(part, output)
        except OSError as e:
            raise StoreError(f"cannot write {output} ({e.strerror or e})") from None
        finally:
            part.unlink(missing_ok=True)
    typer.echo(f"exported {n} episodes to {output}", err=True)


@logs_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A JSONL file written by `logs export`.")],
    db: DbOpt = None,
) -> None:
    """Import exported episodes; ones already present are skipped (importing twice is harmless)."""
    from echo_agent.errors import StoreError
    from echo_agent.memory.exchange import import_episodes, read_jsonl

    if not file.is_file():
        raise StoreError(f"{file} {'is not a file' if file.exists() else 'does not exist'}")
    with open_store(db, create=True) as store, file.open("rb") as f:
        counts = import_episodes(store, read_jsonl(file, f))
    typer.echo(", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()))


@logs_app.command("forget")
def forget(
    ids: Annotated[list[str] | None, typer.Option("--id", help="Episode id to forget (repeatable).")] = None,
    query: Annotated[str | None, typer.Option("--query", help="Forget steps matching these words.")] = None,
    since: Annotated[str | None, typer.Option("--since", callback=parse_when,
                                              help="Steps started at/after this ISO date or time.")] = None,
    until: Annotated[str | None, typer.Option("--until", callback=parse_when,
                                              help="Steps started before this ISO date or time.")] = None,
    directory: Annotated[str | None, typer.Option("--dir", help="Steps run in this directory or below.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    db: DbOpt = None,
) -> None:
    """Delete recorded steps (all given criteria must match) and the episodes they empty.

    Adapters trained on a forgotten step are marked stale, so the agent stops using them.
    """
    from echo_agent.cli.common import fail
    from echo_agent.memory.forget import ForgetCriteria, forget_plan, forget_steps

    criteria = ForgetCriteria(tuple(ids or ()), query, since, until, directory)
    with open_store(db) as store:
        plan = forget_plan(store, criteria)
        typer.echo(f"will delete {len(plan.step_seqs)} steps and {len(plan.episodes)} episodes; "
                   f"{len(plan.adapters)} adapters become stale {plan.adapters or ''}".rstrip())
        if not plan.step_seqs and not plan.episodes:
            return
        if not yes:
            if not sys.stdin.isatty():
                raise fail("not a terminal, so not asking; pass --yes to forget")
            if not typer.confirm("Forget them?", default=False):
                raise typer.Exit(1)
        counts = forget_steps(store, criteria)
    typer.echo(f"forgot {counts['steps']} steps, {counts['episodes']} episodes; "
               f"{counts['adapters_stale']} adapters marked stale")


@logs_app.command("stats")
def stats(as_json: JsonOpt = False, db: DbOpt = None) -> None:
    """Counts: sessions, episodes, steps, bytes on disk, and episodes per task."""
    from echo_agent.memory.queries import store_counts

    with open_store(db) as store:
        s = store_counts(store)
    if as_json:
        print_json(s)
        return
    table = Table("what", "count")
    for key in ("sessions", "episodes", "steps", "trainable_steps", "redacted_steps", "bytes"):
        table.add_row(key.replace("_", " "), f"{s[key]:,}")
    console = Console()
    console.print(table)
    tasks = Table("episodes", "first", "last", "task")
    for t in s["tasks"][:20]:
        tasks.add_row(str(t["episodes"]), t["first"][:10], t["last"][:10], literal(_short(t["task"])))
    console.print(tasks)


@logs_app.command("path")
def path(db: DbOpt = None) -> None:
    """Print where the store lives."""
    from echo_agent.memory.store import default_db_path

    typer.echo(str(db or default_db_path()))
