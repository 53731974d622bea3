"""Model backends behind one small protocol (`ModelBackend` in `base.py`).

Importing this package is cheap: torch, transformers, peft and vllm are imported inside the backends that use
them, when they are built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from echo_agent.models.base import Generation, GenerationBuilder, Message, ModelBackend
from echo_agent.models.embedded import EmbeddedModelError, base_hash, embedded_model_dir, gguf_path
from echo_agent.models.local import LocalBackend, template_role
from echo_agent.models.scripted import ScriptedBackend, ScriptExhausted
from echo_agent.models.vllm import AdapterError, VLLMBackend, validate_adapter_dir

__all__ = [
    "AdapterError",
    "EmbeddedModelError",
    "Generation",
    "GenerationBuilder",
    "LocalBackend",
    "Message",
    "ModelBackend",
    "ScriptExhausted",
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
    backend: str = "local", model: str | Path = "embedded", adapter: str | Path | None = None, **kwargs: Any
) -> ModelBackend:
    """Build the backend a user chose by name ("local", "vllm" or "scripted"; see `Settings.backend`)."""
    if backend == "local":
        return LocalBackend(model, adapter=adapter, **kwargs)
    if backend == "vllm":
        return VLLMBackend(model, adapter=adapter, **kwargs)
    if backend == "scripted":
        return ScriptedBackend(**kwargs)
    raise ValueError(f"Unknown backend {backend!r}; choose local, vllm or scripted.")
