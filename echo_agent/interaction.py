"""What the agent asks and shows the user: the `UI` protocol, `SilentUI` for non-interactive use, and `UserQuit`.

The command line draws with rich (`ui.RichUI`); tests record. Every method is called by the agent loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from echo_agent.recall import Prediction
    from echo_agent.shell.risk import Risk


class UserQuit(Exception):
    """The user ended the episode at a prompt (end of input); it ends as Ctrl-C ends it: `aborted`."""


class UI(Protocol):
    """What the agent shows the user and asks them. The CLI draws with rich; tests record."""

    def reply_token(self, piece: str) -> None: ...
    def command(self, command: str, risk: Risk) -> None: ...
    def observation(self, step: dict[str, Any]) -> None: ...
    def confirm(self, command: str, risk: Risk) -> str:
        """"y", "n", "a" (always, this session), "p" (show a prediction, then ask again), or "e:NEW COMMAND";
        raises UserQuit when the user ends the input instead of answering."""
        ...
    def prediction(self, prediction: Prediction) -> None:
        """Show what the model expects a command to print (marked as a prediction, never as output)."""
        ...
    def instead(self, command: str) -> str | None:
        """After a "no": what the user wants instead (it becomes their next message), or None to stop."""
        ...


class SilentUI:
    """Shows nothing and says no to anything that needs a yes (non-interactive use)."""

    def reply_token(self, piece: str) -> None:
        pass

    def command(self, command: str, risk: Risk) -> None:
        pass

    def observation(self, step: dict[str, Any]) -> None:
        pass

    def confirm(self, command: str, risk: Risk) -> str:
        return "n"

    def prediction(self, prediction: Prediction) -> None:
        pass

    def instead(self, command: str) -> str | None:
        return None
