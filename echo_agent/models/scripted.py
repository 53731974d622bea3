"""A deterministic backend that replays given replies: real agent loops in tests and demos, no model.

Assistant messages come from `replies`, in order (or from a function of the messages). Tool messages
(observation predictions, `role="tool"`) come from `predictions`, keyed by the command of the last assistant
message (the content of its last fenced code block, else the whole message, stripped); an unknown command
gets an empty prediction whose one token has log-prob UNKNOWN_LOGPROB (finish_reason "threshold"), so recall
never trusts it. Text is split into
whitespace-delimited "tokens" so stop strings, `min_logprob` and streaming behave as with a real model.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from echo_agent.errors import ScriptExhausted
from echo_agent.models.base import ChatMessage, Generation, GenerationBuilder

UNKNOWN_LOGPROB = -99.0
"""Log-prob of the placeholder prediction for a command the script does not know."""

# A prediction: text (fully confident), (text, one log-prob for every token), (text, per-token log-probs),
# or a ready Generation.
ScriptedPrediction = str | tuple[str, float] | tuple[str, Sequence[float]] | Generation
Replies = Sequence[str] | Callable[[Sequence[ChatMessage]], str]
Predictions = dict[str, ScriptedPrediction] | Callable[[Sequence[ChatMessage]], ScriptedPrediction | None] | None

_FENCE_RE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)
_TOKEN_RE = re.compile(r"\S+\s*|\s+")


def split_tokens(text: str) -> list[str]:
    """Whitespace-delimited pieces that concatenate back to `text`."""
    return _TOKEN_RE.findall(text)


def last_command(messages: Sequence[ChatMessage]) -> str | None:
    """The command of the last assistant message: its last fenced block's content, else its text, stripped."""
    for m in reversed(messages):
        if m["role"] == "assistant":
            blocks = _FENCE_RE.findall(m["content"])
            return (blocks[-1] if blocks else m["content"]).strip()
    return None


class ScriptedBackend:
    """Replays `replies` as assistant messages and `predictions` as tool messages."""

    def __init__(
        self, replies: Replies = (), predictions: Predictions = None, name: str = "scripted"
    ) -> None:
        self.name = name
        self._replies = replies if callable(replies) else list(replies)
        self._predictions = predictions
        self._next = 0
        self._last_reply: str | None = None
        self._adapter: Path | None = None
        self.adapters_used: list[Path | None] = []
        """Every `use_adapter` argument, in order."""
        self.calls: list[tuple[str, list[ChatMessage]]] = []
        """(role, messages) of every `generate` call, for tests to inspect what the model was shown."""

    def generate(
        self,
        messages: Sequence[ChatMessage],
        role: str = "assistant",
        prefill: str = "",
        stop: Sequence[str] = (),
        max_new_tokens: int = 256,
        min_logprob: float | None = None,
        on_token: Callable[[str], None] | None = None,
    ) -> Generation:
        self.calls.append((role, [dict(m) for m in messages]))
        if role == "tool":
            found = self._prediction(messages)
            if found is None:
                return Generation("", [""], [UNKNOWN_LOGPROB], "threshold")
            text, logprobs = found
        else:
            text = self._reply(messages)
            self._last_reply = text
            logprobs = [0.0] * len(split_tokens(text))
        if prefill and text.startswith(prefill):
            text = text[len(prefill) :]
            logprobs = logprobs[len(split_tokens(prefill)) :]
        pieces = split_tokens(text)
        if len(logprobs) != len(pieces):  # prefill cut a token in two: keep the weakest confidence per token
            logprobs = [min(logprobs, default=0.0)] * len(pieces)
        built = GenerationBuilder(stop, min_logprob, on_token)
        for i, (piece, lp) in enumerate(zip(pieces, logprobs, strict=True)):
            if built.add(piece, lp) or i + 1 >= max_new_tokens:
                return built.result("length")
        return built.result("stop")

    def _reply(self, messages: Sequence[ChatMessage]) -> str:
        if callable(self._replies):
            return self._replies(messages)
        if self._next >= len(self._replies):
            raise ScriptExhausted(
                f"The scripted model has no reply left: all {len(self._replies)} were used; "
                "give the ScriptedBackend more replies."
            )
        self._next += 1
        return self._replies[self._next - 1]

    def _prediction(self, messages: Sequence[ChatMessage]) -> tuple[str, list[float]] | None:
        if callable(self._predictions):
            found = self._predictions(messages)
        elif self._predictions:
            found = self._predictions.get(last_command(messages) or "")
        else:
            found = None
        if found is None:
            return None
        if isinstance(found, Generation):
            return found.text, list(found.logprobs)
        if isinstance(found, str):
            return found, [0.0] * len(split_tokens(found))
        text, lps = found
        n = len(split_tokens(text))
        if isinstance(lps, (int, float)):
            return text, [float(lps)] * n
        if len(lps) != n:
            raise ValueError(f"Prediction {text!r} has {n} tokens but {len(lps)} log-probs were given.")
        return text, list(lps)

    def score(self, messages: Sequence[ChatMessage], role: str, text: str) -> list[float]:
        """Deterministic stand-in log-probs, one per whitespace token, in (-2, 0], stable across runs; a reply
        the script just gave scores 0 throughout (a model is surest of what it would say itself)."""
        if role == "assistant" and self._last_reply is not None and self._last_reply.startswith(text.rstrip()):
            return [0.0] * len(split_tokens(text))
        return [-(zlib.crc32(piece.encode()) % 1000) / 500 for piece in split_tokens(text)]

    def use_adapter(self, path: str | Path | None) -> None:
        self._adapter = Path(path) if path is not None else None
        self.adapters_used.append(self._adapter)

    @property
    def adapter(self) -> Path | None:
        return self._adapter
