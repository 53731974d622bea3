"""The root of the command line: its help, and where each command group lives.

    ask, chat, exec         echo_agent/cli/assistant.py
    logs …                  echo_agent/cli/logs.py
    stats                   echo_agent/cli/stats.py
    update, adapters …, updater …    echo_agent/cli/updater.py
    bench …                 echo_agent/cli/bench.py

Each command imports the heavy libraries it needs inside itself, so `echo-agent --help` stays fast.
"""

from __future__ import annotations

import typer

from echo_agent.cli import assistant, bench, human, logs, stats, updater
from echo_agent.cli.common import EchoAgentGroup

app = typer.Typer(
    name="echo-agent",
    help="A terminal assistant that learns the machine it works on.",
    cls=EchoAgentGroup,
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


app.command("ask")(assistant.ask_command)
app.command("chat")(assistant.chat_command)
app.command("exec")(assistant.exec_command)
app.command("shell")(human.shell_command)
app.add_typer(logs.logs_app, name="logs")
app.command("stats")(stats.stats_command)
app.command("update")(updater.update_command)
app.add_typer(updater.adapters_app, name="adapters")
app.add_typer(updater.updater_app, name="updater")
app.add_typer(bench.bench_app, name="bench")


def main() -> None:  # pragma: no cover - console entry for `python -m echo_agent`
    app()
