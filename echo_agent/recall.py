"""World-model recall: predict a read-only command's output instead of running it, when the model is sure.

Confidence is the weakest token's log-prob, not the mean: a model that has learned the format of a file but
not its facts predicts format tokens near-perfectly, so the mean looks confident while the one fact that
matters (a port number) is wrong. Generation stops early as soon as a token falls below the threshold (the
prediction is then not used), and stops at the status line that ends every observation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from echo_agent import observation as obs

if TYPE_CHECKING:
    from echo_agent.models.base import ChatMessage, Generation, ModelBackend

# Every status line ends with one of these (observation contract); generation stops right after it.
STATUS_STOPS = (*(f"[exit {i}]" for i in range(256)), " s]", obs.SHELL_EXITED_SUFFIX, obs.SHELL_RESTARTED)
MAX_PREDICTION_TOKENS = 512
_TOKEN_RE = re.compile(r"\S+")


@dataclass
class Prediction:
    output: str
    status: str | None
    """The predicted status line; None when the prediction did not end with one (unusable)."""
    confidence_min: float | None
    confidence_mean: float | None
    finish_reason: str
    text: str

    @property
    def usable(self) -> bool:
        return self.status is not None and self.finish_reason != "threshold"

    def confident(self, threshold: float) -> bool:
        return self.usable and self.confidence_min is not None and self.confidence_min >= threshold


def predict(predictor: ModelBackend, messages: list[ChatMessage], reply: str, *, min_logprob: float | None = None,
            max_new_tokens: int = MAX_PREDICTION_TOKENS) -> Prediction:
    """What the model expects the command in `reply` to print, as the next `tool` message after `messages`."""
    gen = predictor.generate([*messages, {"role": "assistant", "content": reply}], role="tool",
                             stop=STATUS_STOPS, max_new_tokens=max_new_tokens, min_logprob=min_logprob)
    return parse_prediction(gen)


def parse_prediction(gen: Generation) -> Prediction:
    """Split a generated observation into output and status line (dropping a recall marker the model copied)."""
    text = gen.text
    if text.startswith(obs.RECALL_MARKER + "\n"):
        text = text[len(obs.RECALL_MARKER) + 1 :]
    head, _, last = text.rpartition("\n")
    status = last if obs.is_status_line(last) else None
    output = head + "\n" if status is not None and head else ("" if status is not None else text)
    return Prediction(output, status, gen.confidence_min, gen.confidence_mean, gen.finish_reason, gen.text)


def token_f1(predicted: str, actual: str) -> float:
    """Whitespace-token F1 between a prediction and the real output (1.0 for two empty outputs)."""
    p, a = _TOKEN_RE.findall(predicted), _TOKEN_RE.findall(actual)
    if not p and not a:
        return 1.0
    common: dict[str, int] = {}
    for t in a:
        common[t] = common.get(t, 0) + 1
    overlap = 0
    for t in p:
        if common.get(t, 0) > 0:
            overlap += 1
            common[t] -= 1
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(p), overlap / len(a)
    return 2 * precision * recall / (precision + recall)


def exactly_right(prediction: Prediction, output: str, status: str) -> bool:
    """A recall is right when output and status line are exactly what the command printed."""
    return prediction.status == status and prediction.output == output
