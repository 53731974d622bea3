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
    """Run one command in echo-agent's shell and print what would be recorded.

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


EXIT_CODES = {"done": 0, "failed": 1, "limit": 2, "aborted": 130}

ModelOpt = Annotated[str | None, typer.Option("--model", help="'embedded', a transformers directory or a GGUF file.")]
BackendOpt = Annotated[str | None, typer.Option("--backend", help="local (transformers), vllm, or scripted.")]
AdapterOpt = Annotated[str | None, typer.Option("--adapter", help="Use this LoRA adapter directory (default: the "
                                                "newest promoted adapter).")]
MaxStepsOpt = Annotated[int, typer.Option("--max-steps", help="Replies the model may give per task.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Approve every command except the deny list.")]
NoRecordOpt = Annotated[bool, typer.Option("--no-record", help="Do not record this session in the store.")]
ScriptOpt = Annotated[str | None, typer.Option("--script", help="JSON list of replies for --backend scripted.")]
DbOpt = Annotated[str | None, typer.Option("--db", help="Store file (default: <home>/store.db).")]
NoRecallOpt = Annotated[bool, typer.Option("--no-recall", help="Run every look-up; never answer one from the "
                                           "model's memory.")]


def _run_assistant(tasks, *, model, backend, adapter, max_steps, yes, no_record, no_recall, script, db,
                   chat: bool) -> int:
    from echo_agent.agent import AgentConfig
    from echo_agent.assistant import open_agent
    from echo_agent.config import ConfigError, Settings
    from echo_agent.memory.store import StoreError
    from echo_agent.ui import RichUI

    ui = RichUI()
    try:
        settings = Settings.load()
        config = AgentConfig(max_steps=max_steps, yes=yes, command_timeout=settings.command_timeout,
                             recall=not no_recall)
        with open_agent(settings=settings, config=config, ui=ui, backend=backend, model=model, adapter=adapter,
                        script=script, db=db, record=not no_record,
                        warn=lambda m: typer.echo(m, err=True)) as agent:
            status, parent = "done", None
            for task in tasks:
                try:
                    result = agent.run(task, parent_episode_id=parent if chat else None)
                except KeyboardInterrupt:
                    ui.stopped("aborted")
                    return EXIT_CODES["aborted"]
                status, parent = result.status, result.episode_id
                if result.answer is not None:
                    ui.answer(result.answer)
                else:
                    ui.stopped(f"{result.status} (no answer after {len(result.steps)} steps)")
            return EXIT_CODES.get(status, 1)
    except (ConfigError, StoreError, ValueError, FileNotFoundError) as e:
        raise fail(str(e)) from None


@app.command("ask")
def ask_command(
    task: Annotated[str, typer.Argument(help="What you want done or answered, in words.")],
    model: ModelOpt = None,
    backend: BackendOpt = None,
    adapter: AdapterOpt = None,
    max_steps: MaxStepsOpt = 8,
    yes: YesOpt = False,
    no_record: NoRecordOpt = False,
    no_recall: NoRecallOpt = False,
    script: ScriptOpt = None,
    db: DbOpt = None,
) -> None:
    """Ask the assistant one thing and get an answer.

    It proposes commands, runs read-only ones, asks before anything else, and answers. Exit status 0 on an
    answer, 2 at the step limit, 130 when interrupted.

    Example: echo-agent ask "how big is my Downloads folder"
    """
    code = _run_assistant([task], model=model, backend=backend, adapter=adapter, max_steps=max_steps, yes=yes,
                          no_record=no_record, no_recall=no_recall, script=script, db=db, chat=False)
    raise typer.Exit(code)


@app.command("chat")
def chat_command(
    model: ModelOpt = None,
    backend: BackendOpt = None,
    adapter: AdapterOpt = None,
    max_steps: MaxStepsOpt = 8,
    yes: YesOpt = False,
    no_record: NoRecordOpt = False,
    no_recall: NoRecallOpt = False,
    script: ScriptOpt = None,
    db: DbOpt = None,
) -> None:
    """A conversation with the assistant, one task per line.

    The shell (directory, variables) carries over between turns and each turn sees the earlier ones. An empty
    line, "exit" or Ctrl-D ends it."""

    def turns():
        while True:
            try:
                line = input("you> ").strip()
            except EOFError:
                return
            if line in ("", "exit", "quit"):
                return
            yield line

    code = _run_assistant(turns(), model=model, backend=backend, adapter=adapter, max_steps=max_steps, yes=yes,
                          no_record=no_record, no_recall=no_recall, script=script, db=db, chat=True)
    raise typer.Exit(code)


# Sub-command groups live next to their library code and are registered here.
from echo_agent.bench.cli import bench_app  # noqa: E402
from echo_agent.memory.cli import logs_app  # noqa: E402
from echo_agent.stats import stats_command  # noqa: E402
from echo_agent.updater.cli import adapters_app, update_command, updater_app  # noqa: E402

app.add_typer(logs_app, name="logs")
app.command("update")(update_command)
app.add_typer(adapters_app, name="adapters")
app.add_typer(updater_app, name="updater")
app.add_typer(bench_app, name="bench")
app.command("stats")(stats_command)


def main() -> None:  # pragma: no cover - console entry for `python -m echo_agent`
    app()
