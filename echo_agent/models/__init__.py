"""Model backends behind one small protocol (`ModelBackend` in `base.py`).

Importing this package is cheap: torch, transformers, peft and vllm are imported inside the backends that use
them, when they are built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from echo_agent.errors import ModelError
from echo_agent.models.base import BackendName, ChatMessage, Generation, GenerationBuilder, ModelBackend
from echo_agent.models.embedded import base_hash, embedded_model_dir, gguf_path
from echo_agent.models.local import LocalBackend
from echo_agent.models.prompt import PromptRenderer, template_role
from echo_agent.models.scripted import ScriptedBackend
from echo_agent.models.vllm import VLLMBackend, validate_adapter_dir

__all__ = [
    "BackendName",
    "ChatMessage",
    "Generation",
    "GenerationBuilder",
    "LocalBackend",
    "ModelBackend",
    "PromptRenderer",
    "ScriptedBackend",
    "VLLMBackend",
    "base_hash",
    "embedded_model_dir",
    "gguf_path",
    "make_backend",
    "template_role",
    "validate_adapter_dir",
]


def make_backend(
    backend: str = BackendName.LOCAL, model: str | Path = "embedded", adapter: str | Path | None = None,
    **kwargs: Any,
) -> ModelBackend:
    """Build the backend a user chose by name (see `BackendName`)."""
    if backend == BackendName.LOCAL:
        return LocalBackend(model, adapter=adapter, **kwargs)
    if backend == BackendName.VLLM:
        return VLLMBackend(model, adapter=adapter, **kwargs)
    if backend == BackendName.SCRIPTED:
        return ScriptedBackend(**kwargs)
    raise ModelError(f"unknown backend {backend!r}; choose {', '.join(BackendName)}")
