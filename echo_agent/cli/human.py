"""`echo-agent shell`: the person's own bash, recorded."""

from __future__ import annotations

from typing import Annotated

import typer


def shell_command(
    no_record: Annotated[bool, typer.Option("--no-record", help="Run the shell without recording anything (inside "
                                                                "it, `echo-agent-resume` starts recording).")] = False,
) -> None:
    """Your interactive bash, with every command you type and its output recorded as a human step.

    Your rc file, prompt, history, job control, completion and full-screen programs work as usual; `(rec)` before
    the prompt shows that recording is on. Inside the shell, `echo-agent-pause` stops recording and
    `echo-agent-resume` starts it again. A command typed with a leading space is not recorded (nor anything bash's
    history leaves out), and input typed with echo off (passwords) never is. Full-screen programs (vim, less, top)
    are recorded as the command alone."""
    from echo_agent.config import Settings, home_dir
    from echo_agent.human.terminal import run

    raise typer.Exit(run(home_dir(), Settings.load(), record=not no_record))
