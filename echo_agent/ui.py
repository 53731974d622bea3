"""What a person sees in `ask` and `chat`, and the one way untrusted text reaches the terminal.

Terminal output, commands, tasks, answers and anything read back from the store are untrusted: they may hold
`[bold]`-like text that rich would take as markup (and drop), or words that look like instructions. Every such
text goes to rich through `literal` (or `highlighted` for search snippets), which shows it exactly as it is.
"""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.text import Text

from echo_agent import observation as obs
from echo_agent.interaction import UserQuit
from echo_agent.memory.store import SNIPPET_CLOSE, SNIPPET_OPEN
from echo_agent.shell.risk import Risk

_SHOW_LINES = 40  # output lines shown per step (the store keeps all of it)


def literal(value: object, style: str = "") -> Text:
    """`value` as text that rich shows exactly: never parsed as markup, never highlighted."""
    return Text("" if value is None else str(value), style=style)


def highlighted(snippet: str, style: str = "bold") -> Text:
    """A search snippet shown literally, with the matches between SNIPPET_OPEN and SNIPPET_CLOSE in `style`."""
    out, rest = Text(), snippet
    while (i := rest.find(SNIPPET_OPEN)) >= 0 and (j := rest.find(SNIPPET_CLOSE, i)) >= 0:
        out.append(rest[:i])
        out.append(rest[i + 1 : j], style=style)
        rest = rest[j + 1 :]
    out.append(rest.replace(SNIPPET_OPEN, "").replace(SNIPPET_CLOSE, ""))  # a snippet cut short of its close
    return out


def plain_snippet(snippet: str) -> str:
    """A snippet for JSON: the matches marked with [ and ], as `logs search --json` has always printed them."""
    return snippet.replace(SNIPPET_OPEN, "[").replace(SNIPPET_CLOSE, "]")


class RichUI:
    def __init__(self, console: Console | None = None, interactive: bool | None = None) -> None:
        self.console = console or Console(highlight=False)
        self.interactive = sys.stdin.isatty() if interactive is None else interactive
        self._streaming = False

    def reply_token(self, piece: str) -> None:
        if not self._streaming:
            self.console.print(literal("model ", "dim"), end="")
            self._streaming = True
        self.console.print(literal(piece, "cyan"), end="")

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
            self.console.print(literal("(the reply had no command and no answer)", "dim"))
            return
        if step.get("source") == "recalled":
            self.console.print(literal(f"{obs.RECALL_MARKER} (confidence {step.get('confidence_min', 0):.2f})",
                                       "bold magenta"))
        lines = (step.get("output") or "").splitlines()
        shown = lines if len(lines) <= _SHOW_LINES else lines[: _SHOW_LINES // 2] + [
            f"… {len(lines) - _SHOW_LINES} more lines (in the store) …"] + lines[-_SHOW_LINES // 2 :]
        for line in shown:
            self.console.print(literal(line), soft_wrap=True)
        for line in (step.get("note") or "").splitlines():
            self.console.print(literal(line, "magenta"))
        if step.get("status"):
            self.console.print(literal(step["status"], "dim"))

    def confirm(self, command: str, risk: Risk) -> str:
        """The user's choice; end of input (Ctrl-D) raises UserQuit, which ends the episode as Ctrl-C does."""
        self._end_stream()
        self.console.print(literal(f"This command {risk.phrase}: {'; '.join(risk.reasons)}", "yellow"))
        if not self.interactive:
            self.console.print(literal("Not run: standard input is not a terminal (use --yes to approve).",
                                       "yellow"))
            return "n"
        choices = {"y": "y", "yes": "y", "n": "n", "no": "n", "": "n", "a": "a", "always": "a", "p": "p",
                   "predict": "p", "e": "e", "edit": "e"}
        while True:
            choice = choices.get(self._ask("Run it? [y]es / [n]o / [e]dit / [a]lways this session / [p]redict: ")
                                 .strip().lower())
            if choice == "e":
                edited = self._ask("command: ").strip()
                return f"e:{edited}" if edited else "n"
            if choice is not None:
                return choice

    def instead(self, command: str) -> str | None:
        """After a "no": what to do instead (Enter stops); the text becomes the user's next message."""
        if not self.interactive:
            return None
        return self._ask("What should I do instead? (Enter to stop): ").strip() or None

    def _ask(self, prompt: str) -> str:
        try:
            return input(prompt)
        except EOFError:
            self.console.print()
            raise UserQuit("end of input at the confirmation prompt") from None

    def prediction(self, prediction: Any) -> None:
        self._end_stream()
        self.console.print(literal("prediction (not run; what the model expects this command to print):",
                                   "bold magenta"))
        for line in (prediction.output or "").splitlines()[:_SHOW_LINES]:
            self.console.print(literal("  " + line, "magenta"), soft_wrap=True)
        conf = prediction.confidence_min
        self.console.print(literal(f"  {prediction.status or '(no status line predicted)'}"
                                   + (f"  weakest token log-prob {conf:.2f}" if conf is not None else ""),
                                   "magenta"))

    def answer(self, text: str, remembered: bool = False) -> None:
        """The answer; one from memory says that nothing was run for it."""
        self._end_stream()
        label = "answer from memory (nothing was run; --no-recall looks it up) " if remembered else "answer "
        self.console.print(literal(label, "bold green"), literal(text))

    def stopped(self, status: str) -> None:
        self._end_stream()
        self.console.print(literal(f"stopped: {status}", "red"))
