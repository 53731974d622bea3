"""What every command shares: the one-line error, the `--db` option, opening the store, JSON output.

Commands are thin: each opens what it needs, calls one library function and prints the result. An
`EchoAgentError` raised anywhere below a command becomes `error: <message>` on stderr and exit status 1 (see
`EchoAgentGroup`); any other exception is a bug and shows its traceback.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from echo_agent.errors import EchoAgentError

if TYPE_CHECKING:
    from echo_agent.config import Settings
    from echo_agent.memory.store import TrajectoryStore


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error to stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


class EchoAgentGroup(TyperGroup):
    """The root command group: every EchoAgentError from any command below it becomes one line and exit 1."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except EchoAgentError as e:
            raise fail(str(e)) from None


DbOpt = Annotated[Path | None, typer.Option("--db", help="Store file (default: <home>/store.db).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@contextmanager
def open_store(db: Path | str | None, *, create: bool = False,
               settings: Settings | None = None) -> Iterator[TrajectoryStore]:
    """The store at `db` (default: the home's), closed on exit. A `--db` that does not exist is an error (a
    mistyped path should not become a new, empty store) unless `create`."""
    from echo_agent.config import Settings
    from echo_agent.memory.store import TrajectoryStore

    settings = settings or Settings.load()
    with TrajectoryStore(db, settings=settings, must_exist=db is not None and not create) as store:
        yield store


def print_json(data: Any) -> None:
    """`data` as indented JSON on stdout: NaN becomes null, paths and other objects their text."""
    typer.echo(json.dumps(json_safe(data), ensure_ascii=False, indent=2, default=str))


def json_safe(x: Any) -> Any:
    """`x` as plain JSON data: NaN becomes None, paths their text."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    return x
