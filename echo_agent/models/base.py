"""The model-backend protocol: the one seam between the agent/updater and any model engine.

Messages are plain dicts `{"role": ..., "content": ...}` with roles system, user, assistant and tool
(an observation, see `echo_agent.observation`). Backends that hold a tokenizer map `tool` to `user` only when
the chat template cannot render a `tool` message (see `echo_agent.models.local.template_role`).

Semantics every backend keeps:
- `generate` is greedy. `prefill` is put at the start of the new message; it is *not* part of the returned text.
- `stop`: generation ends at the first stop string in the generated text, and the returned text ends *with* that
  stop string (it is included, because the status line that ends an observation is environment text the caller
  needs, e.g. `stop=("]\n",)`-style stops). Anything the last token produced after the stop string is cut off.
- The end-of-message token ends generation with finish_reason "stop"; it is not part of `tokens`/`text`.
- `min_logprob`: the first generated token whose log-prob is below it ends generation with finish_reason
  "threshold"; that token *is* included, so `min(logprobs) < min_logprob` exactly when the reason is "threshold".
- `tokens[i]` is the text token i added, so `"".join(tokens) == text` (a token that ends inside a multi-byte
  character adds "" and the next one adds the whole character); `logprobs[i]` is its log-prob under the model.
- `on_token(piece)` is called with each non-empty piece as it is produced; the pieces concatenate to `text`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from echo_agent.config import BackendName

__all__ = ["BackendName", "ChatMessage", "FinishReason", "Generation", "GenerationBuilder", "ModelBackend",
           "Serving", "find_stop", "greedy"]

ChatMessage = dict[str, str]
FinishReason = Literal["stop", "length", "threshold"]


@dataclass
class Generation:
    """One generated message (without its prefill)."""

    text: str
    """The generated text; ends with the matched stop string when finish_reason is "stop" by a stop string."""
    tokens: list[str] = field(default_factory=list)
    """The text each generated token added; they concatenate to `text`."""
    logprobs: list[float] = field(default_factory=list)
    """Natural-log probability of each generated token, one per entry of `tokens`."""
    finish_reason: FinishReason = "stop"
    """"stop" (end of message or a stop string), "length" (max_new_tokens) or "threshold" (min_logprob)."""

    @property
    def confidence_min(self) -> float | None:
        """The weakest token's log-prob (the recall confidence); None for an empty generation."""
        return min(self.logprobs) if self.logprobs else None

    @property
    def confidence_mean(self) -> float | None:
        return sum(self.logprobs) / len(self.logprobs) if self.logprobs else None


@runtime_checkable
class ModelBackend(Protocol):
    """What the agent (policy and predictor) and the updater's evaluation need from a model."""

    name: str
    """A short description of the model, stored with sessions (e.g. "embedded:smollm2-135m-instruct")."""

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
        """Greedy continuation: a new `role` message after `messages` (see the module docstring)."""
        ...

    def score(self, messages: Sequence[ChatMessage], role: str, text: str) -> list[float]:
        """Teacher-forced log-prob of each token of `text` as the start of a new `role` message."""
        ...

    def use_adapter(self, path: str | Path | None) -> None:
        """Switch to the LoRA adapter at `path`, or to the base model with None."""
        ...

    @property
    def adapter(self) -> Path | None:
        """The adapter in use, or None for the base model."""
        ...


def find_stop(text: str, stop: Sequence[str], start: int = 0) -> int | None:
    """End index of the earliest-ending stop string in `text` that ends after `start`, else None.

    `start` is where the newest text begins, so a stop string straddling earlier and newer text is found and
    a stop string wholly inside older text (already checked) is not re-found.
    """
    best: int | None = None
    for s in stop:
        if not s:
            continue
        i = text.find(s, max(0, start - len(s) + 1))
        if i >= 0 and (best is None or i + len(s) < best):
            best = i + len(s)
    return best


class GenerationBuilder:
    """Applies the generation rules (stop strings, min_logprob, streaming) to tokens as they arrive.

    Every backend feeds its tokens through one of these, so the rules in the module docstring hold for all.
    """

    def __init__(
        self,
        stop: Sequence[str] = (),
        min_logprob: float | None = None,
        on_token: Callable[[str], None] | None = None,
    ) -> None:
        self.stop, self.min_logprob, self.on_token = tuple(stop), min_logprob, on_token
        self.text = ""
        self.tokens: list[str] = []
        self.logprobs: list[float] = []
        self.finish_reason: FinishReason | None = None  # set once generation must end

    def add(self, piece: str, logprob: float) -> bool:
        """Take one generated token (the text it adds, its log-prob); True when generation must end."""
        end = find_stop(self.text + piece, self.stop, len(self.text)) if self.stop else None
        if end is not None:
            piece = piece[: end - len(self.text)]
        self._emit(piece)
        self.tokens.append(piece)
        self.logprobs.append(logprob)
        if self.min_logprob is not None and logprob < self.min_logprob:
            self.finish_reason = "threshold"
        elif end is not None:
            self.finish_reason = "stop"
        return self.finish_reason is not None

    def flush(self, rest: str) -> None:
        """Text the last token left pending (an incomplete character); ignored once the text was cut."""
        if rest and self.tokens and self.finish_reason is None:
            self._emit(rest)
            self.tokens[-1] += rest

    def result(self, finish_reason: FinishReason) -> Generation:
        """The generation; `finish_reason` applies unless a rule ended it ("stop" for end-of-message)."""
        return Generation(self.text, self.tokens, self.logprobs, self.finish_reason or finish_reason)

    def _emit(self, piece: str) -> None:
        self.text += piece
        if piece and self.on_token is not None:
            self.on_token(piece)


def greedy(first: Any, advance: Callable[[int], Any], decoder: Any, end_ids: set[int], max_new_tokens: int,
           built: GenerationBuilder) -> Generation:
    """The greedy loop of the backends that see every token's log-probs (numpy or torch rows alike).

    `first` is the log-prob row after the prompt; `advance(token)` feeds the chosen token and returns the next
    row, or None when no more can be fed (a full context: the generation ends as "length"). `decoder` turns ids
    into text (`IncrementalDecoder`); an id in `end_ids` ends the message.
    """
    finish: FinishReason = "length"
    lp = first
    for step in range(max_new_tokens):
        tok = int(lp.argmax())
        if tok in end_ids:
            finish = "stop"
            break
        if built.add(decoder.push(tok), float(lp[tok])) or step + 1 == max_new_tokens:
            break
        lp = advance(tok)
        if lp is None:
            break
    built.flush(decoder.flush())
    return built.result(finish)


class Serving:
    """A backend that serves one adapter: every `generate` and `score` first makes that adapter active. Two
    roles (the agent's policy and its predictor) can share one loaded model and still run different adapters;
    until `serve` is called it leaves the backend's adapter as it is. Anything else is the backend's."""

    def __init__(self, backend: ModelBackend) -> None:
        self.backend = backend
        self._want: list[Path | None] = []  # empty: keep what the backend has

    def serve(self, path: str | Path | None) -> None:
        self._want = [Path(path) if path else None]

    def active(self) -> ModelBackend:
        """The backend, with this view's adapter active: for using its model directly."""
        if self._want:
            want, have = self._want[0], self.backend.adapter
            if (want.resolve() if want else None) != (Path(have).resolve() if have else None):
                self.backend.use_adapter(want)
        return self.backend

    def generate(self, messages: Sequence[ChatMessage], *args: object, **kwargs: object) -> Generation:
        return self.active().generate(messages, *args, **kwargs)

    def score(self, messages: Sequence[ChatMessage], role: str, text: str) -> list[float]:
        return self.active().score(messages, role, text)

    def __getattr__(self, name: str) -> object:
        return getattr(self.backend, name)
