"""`echo-agent ask`, `chat` and `exec`: the assistant, and one command through its shell."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import sys
import typing
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Annotated

import typer

from echo_agent.cli.common import DbOpt
from echo_agent.config import BackendName

EXIT_CODES = {"done": 0, "failed": 1, "limit": 2, "declined": 3, "aborted": 130}

ModelOpt = Annotated[str | None, typer.Option("--model", help="'embedded', a transformers directory or a GGUF file.")]
BackendOpt = Annotated[BackendName | None, typer.Option("--backend", help="Model backend (default: the setting).")]
AdapterOpt = Annotated[str | None, typer.Option("--adapter", help="Use this LoRA adapter directory (default: the "
                                                "newest promoted adapter).")]
MaxStepsOpt = Annotated[int, typer.Option("--max-steps", min=1, help="Replies the model may give per task.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Approve every command except the deny list.")]
NoRecordOpt = Annotated[bool, typer.Option("--no-record", help="Do not record this session in the store.")]
ScriptOpt = Annotated[Path | None, typer.Option("--script", help="JSON list of replies for --backend scripted.")]
NoRecallOpt = Annotated[bool, typer.Option("--no-recall", help="Run every look-up; never answer one from the "
                                           "model's memory.")]


@dataclasses.dataclass(frozen=True)
class AssistantOptions:
    """The options `ask` and `chat` share, declared once: `assistant_options` gives them to both commands."""

    model: ModelOpt = None
    backend: BackendOpt = None
    adapter: AdapterOpt = None
    max_steps: MaxStepsOpt = 8
    yes: YesOpt = False
    no_record: NoRecordOpt = False
    no_recall: NoRecallOpt = False
    script: ScriptOpt = None
    db: DbOpt = None


def assistant_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give `command` (which takes `options: AssistantOptions`) every AssistantOptions field as a typer option."""
    hints = typing.get_type_hints(AssistantOptions, include_extras=True)
    shared = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
              for f in dataclasses.fields(AssistantOptions)]
    own = [p for p in inspect.signature(command).parameters.values() if p.name != "options"]

    @functools.wraps(command)
    def wrapper(*args: object, **kwargs: object) -> None:
        options = AssistantOptions(**{p.name: kwargs.pop(p.name) for p in shared})
        command(*args, options=options, **kwargs)

    del wrapper.__wrapped__  # typer reads the signature below, not the wrapped one
    wrapper.__signature__ = inspect.Signature([*own, *shared])  # type: ignore[attr-defined]
    return wrapper


def run_assistant(tasks: Iterable[str], options: AssistantOptions, *, chat: bool) -> int:
    """Run each task as an episode (a chat's turns see the earlier ones); the exit code of the last."""
    from echo_agent.agent import AgentConfig, UserQuit
    from echo_agent.assistant import open_agent
    from echo_agent.config import Settings
    from echo_agent.ui import RichUI

    ui = RichUI()
    settings = Settings.load()
    config = AgentConfig(max_steps=options.max_steps, yes=options.yes, recall=not options.no_recall)
    with open_agent(settings=settings, config=config, ui=ui, backend=options.backend, model=options.model,
                    adapter=options.adapter, script=options.script, db=options.db, record=not options.no_record,
                    warn=lambda m: typer.echo(m, err=True)) as agent:
        status, parent = "done", None
        for task in tasks:
            try:
                result = agent.run(task, parent_episode_id=parent if chat else None)
            except (KeyboardInterrupt, UserQuit):
                ui.stopped("aborted")
                return EXIT_CODES["aborted"]
            status, parent = result.status, result.episode_id
            if result.answer is not None:
                ui.answer(result.answer, remembered=result.remembered)
            elif result.status == "declined":
                ui.stopped("declined: nothing was run without your yes")
            else:
                ui.stopped(f"{result.status} (no answer after {len(result.steps)} steps)")
        return EXIT_CODES.get(status, 1)


@assistant_options
def ask_command(task: Annotated[str, typer.Argument(help="What you want done or answered, in words.")],
                options: AssistantOptions) -> None:
    """Ask the assistant one thing and get an answer.

    It proposes commands, runs read-only ones, asks before anything else, and answers. Exit status 0 on an
    answer, 2 at the step limit, 3 when you declined a command and gave nothing else to do, 130 when
    interrupted.

    Example: echo-agent ask "how big is my Downloads folder"
    """
    from echo_agent.records import check_task

    check_task(task)  # a task that cannot be taken is refused before the model loads
    raise typer.Exit(run_assistant([task], options, chat=False))


@assistant_options
def chat_command(options: AssistantOptions) -> None:
    """A conversation with the assistant, one task per line.

    The shell (directory, variables) carries over between turns and each turn sees the earlier ones. An empty
    line, "exit" or Ctrl-D ends it."""
    raise typer.Exit(run_assistant(_turns(), options, chat=True))


def _turns() -> Iterator[str]:
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            return
        if line in ("", "exit", "quit"):
            return
        yield line


def exec_command(
    command: Annotated[list[str], typer.Argument(help="The command line to run (put it after --).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print every field of the result as JSON.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0.001, help="Seconds before the command is "
                                           "interrupted.")] = 30.0,
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
