"""Building a ready agent from the user's choices: model backend, shell, store and adapter source."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from echo_agent.agent import UI, Agent, AgentConfig
from echo_agent.config import Settings


@contextmanager
def open_agent(
    *,
    settings: Settings,
    config: AgentConfig,
    ui: UI,
    backend: str | None = None,
    model: str | None = None,
    adapter: str | None = None,
    script: Path | None = None,
    db: Path | None = None,
    record: bool = True,
    warn: Callable[[str], None] = print,
) -> Iterator[Agent]:
    """An Agent with its shell (closed on exit) and, unless `record` is False, the store.

    The adapter in use is `adapter` when given (fixed for the session); otherwise the registry's current one,
    looked up again at the start of every episode, so a newly promoted adapter is used from the next episode on.
    """
    from echo_agent.memory.store import TrajectoryStore
    from echo_agent.models import make_backend
    from echo_agent.shell import ShellSession

    backend = backend or settings.backend
    if backend == "scripted":
        if script is None:
            raise ValueError("the scripted backend needs --script FILE (a JSON list of replies)")
        policy = make_backend("scripted", replies=json.loads(Path(script).read_text()))
    else:
        policy = make_backend(backend, model or settings.model, adapter=adapter)
    store = TrajectoryStore(db, settings=settings) if record else None
    source = None
    if adapter is None and store is not None and backend != "scripted":
        source = registry_adapter_source(store, model or settings.model, warn)
    with ShellSession(output_cap_bytes=settings.output_cap_bytes, input_wait=settings.input_wait) as shell:
        try:
            yield Agent(policy, shell, store, config=config, settings=settings, ui=ui, adapter=source)
        finally:
            if store is not None:
                store.close()


def registry_adapter_source(store, model: str | Path, warn: Callable[[str], None]):
    """The agent's adapter source: the registry's adapter in use, if it was trained on this base model.

    An adapter for another base is refused with a message (once per adapter) and the base model is used.
    """
    from echo_agent.updater.registry import AdapterError, check_adapter, current_adapter, model_identity

    base_hash: list[str] = []
    refused: set[str] = set()

    def source() -> tuple[str | None, Path | None]:
        adapter_id, path = current_adapter(store)
        if path is None:
            return None, None
        if not base_hash:
            base_hash.append(model_identity(model)[1])
        try:
            check_adapter(path, base_hash[0])
        except AdapterError as e:
            if adapter_id not in refused:
                warn(f"warning: {e}. Using the base model.")
                refused.add(adapter_id)
            return None, None
        return adapter_id, path

    return source
