"""Rendering chat messages with a tokenizer's chat template, and decoding generated tokens back to text.

Shared by every backend that holds a tokenizer (transformers and vLLM) and by the updater's dataset, so that
the prompt a model generates from, the text `score` conditions on and the text training renders are one and
the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from echo_agent.models.base import ChatMessage

_SENTINEL = "<<echo-agent-sentinel-7f3a>>"
_CHAT_ROLES = ("system", "user", "assistant")


def template_role(tokenizer: Any, role: str) -> str:
    """The role to give the chat template for `role`: "tool" becomes "user" when the template cannot render it.

    Round-trip check: render a tool message holding a sentinel; the template can render "tool" when that works,
    the sentinel comes out, and the role name appears in the header before it. SmolLM2's ChatML template renders
    any role as `<|im_start|>{role}\\n…<|im_end|>`, so "tool" is kept there: observations stay distinguishable
    from the user's words, and training renders them exactly as the agent shows them.
    """
    if role in _CHAT_ROLES:
        return role
    try:
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": "u"}, {"role": role, "content": _SENTINEL}], tokenize=False
        )
    except Exception:  # jinja's raise_exception("unknown role") and friends: the template refuses the role
        return "user"
    end = rendered.find(_SENTINEL)
    start = rendered.rfind("u", 0, end) if end >= 0 else -1
    return role if end >= 0 and role in rendered[start:end] else "user"


class PromptRenderer:
    """A tokenizer's chat template, with the tool→user decision made once per role."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._roles: dict[str, str] = {}

    def chat_role(self, role: str) -> str:
        if role not in self._roles:
            self._roles[role] = template_role(self.tokenizer, role)
        return self._roles[role]

    def template_messages(self, messages: Sequence[ChatMessage]) -> list[ChatMessage]:
        """`messages` with each role as the template takes it."""
        return [{"role": self.chat_role(m["role"]), "content": m["content"]} for m in messages]

    def render(self, messages: Sequence[ChatMessage], role: str = "assistant", prefill: str = "") -> str:
        """`messages`, then the chat template's header for a new `role` message, then `prefill`.

        The header is cut from a rendering with one more message holding a sentinel, so it is exactly what the
        template writes for that role (for SmolLM2: `<|im_start|>{role}\\n`), for any role the template accepts.
        """
        probe = self.tokenizer.apply_chat_template(
            [*self.template_messages(messages), {"role": self.chat_role(role), "content": _SENTINEL}],
            tokenize=False)
        return probe[: probe.rindex(_SENTINEL)] + prefill

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; special-token strings in it (the template's headers) become special tokens."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]


class IncrementalDecoder:
    """Turns token ids into the text each one adds, for byte-level tokenizers.

    A token that ends inside a multi-byte character adds "" until the character is complete (its bytes decode
    to U+FFFD meanwhile); `flush` returns whatever such bytes are left at the end.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.text = ""

    def _decode(self) -> str:
        return self.tokenizer.decode(self.ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        decoded = self._decode()
        if decoded.endswith("\ufffd") or not decoded.startswith(self.text):
            return ""
        piece, self.text = decoded[len(self.text) :], decoded
        return piece

    def flush(self) -> str:
        decoded = self._decode()
        piece, self.text = decoded[len(self.text) :], decoded
        return piece
