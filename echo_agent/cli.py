"""The echo-agent command line: thin. Each command builds what it needs, calls one library function, and
turns known errors into a clear message and an exit code. Heavy libraries are imported only inside commands."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Annotated

import typer

app = typer.Typer(
    name="echo-agent",
    help="A terminal assistant that learns the machine it works on.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main_callback() -> None:
    """A terminal assistant that learns the machine it works on.

    Every command it runs and everything the terminal prints is recorded in a local store; a background
    updater fine-tunes a LoRA adapter to predict that output, so the assistant needs fewer look-ups over time.
    """


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error to stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@app.command("exec")
def exec_command(
    command: Annotated[list[str], typer.Argument(help="The command line to run (put it after --).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print every field of the result as JSON.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds before the command is interrupted.")] = 30.0,
) -> None:
    """Run one command through echo-agent's persistent shell and print what it recorded.

    Example: echo-agent exec --json -- ls -la
    """
    from echo_agent.observation import render_observation
    from echo_agent.shell import ShellSession

    with ShellSession() as shell:
        result = shell.run(" ".join(command), timeout=timeout)
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(result), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(render_observation(result.output, result.status, result.note_lines) + "\n")
    if result.exit_code != 0:
        raise typer.Exit(result.exit_code if result.exit_code is not None else 1)


# Sub-command groups live next to their library code and are registered here.


def main() -> None:  # pragma: no cover - console entry for `python -m echo_agent`
    app()
