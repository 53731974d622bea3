"""The model's replies: the format they must have, and what the agent reads out of them.

A reply is one fenced block: ```bash with one command, or ```answer with the final answer. `parse_reply` reads
it (the first block decides); `RepeatGuard` ends a generation that has started repeating a line; `same_action`
tells whether two commands would do the same thing, so the agent never proposes a declined command again in
another spelling (`rm two.txt`, `rm -r two.txt`).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

from echo_agent import observation as obs

_BLOCK_RE = re.compile(r"```[ \t]*([A-Za-z]*)[ \t]*\n(.*?)(?:\n?```|\Z)", re.DOTALL)
_COMMAND_LANGS = {"bash", "sh", "shell", "console", "zsh", ""}
CLOSE = "\n```"
"""Where a reply's block ends: generation stops there."""


class FormatError(Exception):
    """The reply has neither a command nor an answer."""


def parse_reply(reply: str) -> tuple[str, str]:
    """("command", text) or ("answer", text); raises FormatError. The first fenced block decides."""
    for lang, body in _BLOCK_RE.findall(reply):
        lang = lang.lower()
        if lang == "answer":
            return "answer", body.strip()
        if lang in _COMMAND_LANGS:
            lines = [re.sub(r"^\$ ", "", line) for line in body.strip("\n").splitlines()]
            command = "\n".join(lines).strip()
            if command:
                return "command", command
    raise FormatError(obs.FORMAT_WARNING)


class RepeatedLine(Exception):
    """Raised from the token callback to end a generation that has started repeating itself."""


class RepeatGuard:
    """A streaming callback that forwards each piece and raises `RepeatedLine` once a completed line (not blank,
    not a fence) repeats an earlier line of the same reply. `text` is everything streamed so far."""

    def __init__(self, forward: Callable[[str], None]) -> None:
        self.forward = forward
        self.text = ""
        self._seen: set[str] = set()
        self._done = 0  # characters of `text` in completed lines

    def __call__(self, piece: str) -> None:
        self.text += piece
        self.forward(piece)
        while (end := self.text.find("\n", self._done)) >= 0:
            line = self.text[self._done:end].strip()
            self._done = end + 1
            if line and not line.startswith("```"):
                if line in self._seen:
                    raise RepeatedLine(line)
                self._seen.add(line)


def action_key(command: str) -> tuple[str, ...]:
    """What a command does, roughly: its words without options, in order (`rm -r two.txt` -> ("rm", "two.txt")).
    Two commands with the same key are taken to be one action."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    return tuple(w for w in words if not w.startswith("-"))


def same_action(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split()) or action_key(a) == action_key(b)
