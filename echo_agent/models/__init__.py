"""Model backends behind one small protocol (`ModelBackend` in `base.py`).

Importing this package is cheap: torch, transformers, peft and vllm are imported inside the backends that use
them, when they are built.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
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
    "resolve_backend",
    "template_role",
    "validate_adapter_dir",
]


def resolve_backend(backend: str, model: str | Path = "embedded") -> tuple[str, str]:
    """(the backend that `backend` means for `model`, why "auto" did not pick llamacpp for a GGUF model or "").

    "auto" is llamacpp for a GGUF model (the embedded one included) when the pinned llama-cpp-python imports and
    adapters trained on that model can be exported to llama.cpp; local otherwise.
    """
    if backend != BackendName.AUTO:
        return backend, ""
    path = Path(model).expanduser()
    if str(model) != "embedded" and not (path.suffix == ".gguf" and path.is_file()):
        return BackendName.LOCAL, ""
    from echo_agent.models.llamacpp import available, resolve_gguf, runs_here

    ok, why = available()
    if ok:
        from echo_agent.models.gguf_lora import EXPORTABLE_ARCHS, base_info

        gguf = resolve_gguf(model)[0]
        arch = base_info(gguf).arch
        if arch not in EXPORTABLE_ARCHS:
            why = f"adapters for {arch} models cannot be exported to llama.cpp yet"
        else:
            ok, why = runs_here(gguf)
            if ok:
                return BackendName.LLAMACPP, ""
    return BackendName.LOCAL, f"{why}; running the model with transformers (--backend local)" if why else ""


def make_backend(
    backend: str = BackendName.AUTO, model: str | Path = "embedded", adapter: str | Path | None = None,
    warn: Callable[[str], None] | None = None, threads: int = 0, **kwargs: Any,
) -> ModelBackend:
    """Build the backend a user chose by name (see `BackendName`); "auto" is resolved by `resolve_backend`, and
    why it fell back to transformers for a GGUF model is said once through `warn` (default: stderr)."""
    backend, why = resolve_backend(backend, model)
    if why:
        (warn or (lambda m: print(m, file=sys.stderr)))(f"echo-agent: {why}")
    if backend == BackendName.LLAMACPP:
        from echo_agent.models.llamacpp import LlamaCppBackend

        return LlamaCppBackend(model, adapter=adapter, threads=threads, **kwargs)
    if backend == BackendName.LOCAL:
        return LocalBackend(model, adapter=adapter, **kwargs)
    if backend == BackendName.VLLM:
        return VLLMBackend(model, adapter=adapter, **kwargs)
    if backend == BackendName.SCRIPTED:
        return ScriptedBackend(**kwargs)
    raise ModelError(f"unknown backend {backend!r}; choose {', '.join(BackendName)}")
