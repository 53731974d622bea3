"""What a person sees in `ask` and `chat`: the streamed reply, each command with its risk, its output, and the
confirmation prompt. Output from the terminal is shown as text, never interpreted as markup."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.text import Text

from echo_agent import observation as obs
from echo_agent.shell.risk import Risk

_SHOW_LINES = 40  # output lines shown per step (the store keeps all of it)


class RichUI:
    def __init__(self, console: Console | None = None, interactive: bool | None = None) -> None:
        self.console = console or Console(highlight=False)
        self.interactive = sys.stdin.isatty() if interactive is None else interactive
        self._streaming = False

    def reply_token(self, piece: str) -> None:
        if not self._streaming:
            self.console.print(Text("model ", style="dim"), end="")
            self._streaming = True
        self.console.print(Text(piece, style="cyan"), end="")

    def _end_stream(self) -> None:
        if self._streaming:
            self.console.print()
            self._streaming = False

    def command(self, command: str, risk: Risk) -> None:
        self._end_stream()
        style = "green" if risk.level == "read_only" else ("red" if risk.denied else "yellow")
        label = "denied" if risk.denied else risk.level.replace("_", "-")
        self.console.print(Text.assemble(("$ ", "bold"), (command, "bold"), ("  [" + label + "]", style)))

    def observation(self, step: dict[str, Any]) -> None:
        self._end_stream()
        if step.get("command") is None:
            self.console.print(Text("(the reply had no command and no answer)", style="dim"))
            return
        if step.get("source") == "recalled":
            self.console.print(Text(f"{obs.RECALL_MARKER} (confidence {step.get('confidence_min', 0):.2f})",
                                    style="bold magenta"))
        lines = (step.get("output") or "").splitlines()
        shown = lines if len(lines) <= _SHOW_LINES else lines[: _SHOW_LINES // 2] + [
            f"… {len(lines) - _SHOW_LINES} more lines (in the store) …"] + lines[-_SHOW_LINES // 2 :]
        for line in shown:
            self.console.print(Text(line), soft_wrap=True)
        for line in (step.get("note") or "").splitlines():
            self.console.print(Text(line, style="magenta"))
        if step.get("status"):
            self.console.print(Text(step["status"], style="dim"))

    def confirm(self, command: str, risk: Risk) -> str:
        self._end_stream()
        reasons = "; ".join(risk.reasons)
        self.console.print(Text(f"This command {risk.level.replace('_', '-')}: {reasons}", style="yellow"))
        if not self.interactive:
            self.console.print(Text("Not run: standard input is not a terminal (use --yes to approve).",
                                    style="yellow"))
            return "n"
        while True:
            try:
                choice = input("Run it? [y]es / [n]o / [e]dit / [a]lways this session / [p]redict: ").strip().lower()
            except EOFError:
                return "n"
            if choice in ("y", "yes"):
                return "y"
            if choice in ("n", "no", ""):
                return "n"
            if choice in ("a", "always"):
                return "a"
            if choice in ("p", "predict"):
                return "p"
            if choice in ("e", "edit"):
                try:
                    edited = input("command: ").strip()
                except EOFError:
                    return "n"
                return f"e:{edited}" if edited else "n"

    def prediction(self, prediction: Any) -> None:
        self._end_stream()
        self.console.print(Text("prediction (not run; what the model expects this command to print):",
                                style="bold magenta"))
        for line in (prediction.output or "").splitlines()[:_SHOW_LINES]:
            self.console.print(Text("  " + line, style="magenta"), soft_wrap=True)
        conf = prediction.confidence_min
        self.console.print(Text(f"  {prediction.status or '(no status line predicted)'}"
                                + (f"  weakest token log-prob {conf:.2f}" if conf is not None else ""),
                                style="magenta"))

    def answer(self, text: str) -> None:
        self._end_stream()
        self.console.print(Text("answer ", style="bold green"), Text(text))

    def stopped(self, status: str) -> None:
        self._end_stream()
        self.console.print(Text(f"stopped: {status}", style="red"))
