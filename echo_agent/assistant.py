"""Building a ready agent from the user's choices: model backend, shell, store and adapter source."""

from __future__ import annotations

import json
from collections.abc import Iterator
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
) -> Iterator[Agent]:
    """An Agent with its shell (closed on exit) and, unless `record` is False, the store.

    The adapter in use is `adapter` when given (fixed for the session); otherwise the registry's current one,
    looked up again at the start of every episode, so a newly promoted adapter is used from the next episode on.
    """
    from echo_agent.memory.store import TrajectoryStore
    from echo_agent.models import make_backend
    from echo_agent.shell import ShellSession
    from echo_agent.updater.registry import current_adapter

    backend = backend or settings.backend
    if backend == "scripted":
        if script is None:
            raise ValueError("the scripted backend needs --script FILE (a JSON list of replies)")
        policy = make_backend("scripted", replies=json.loads(Path(script).read_text()))
    else:
        policy = make_backend(backend, model or settings.model, adapter=adapter)
    store = TrajectoryStore(db, settings=settings) if record else None
    source = None
    if adapter is None and store is not None:
        source = lambda: current_adapter(store)  # noqa: E731
    with ShellSession(output_cap_bytes=settings.output_cap_bytes, input_wait=settings.input_wait) as shell:
        try:
            yield Agent(policy, shell, store, config=config, settings=settings, ui=ui, adapter=source)
        finally:
            if store is not None:
                store.close()
