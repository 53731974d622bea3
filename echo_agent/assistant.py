"""Building a ready agent from the user's choices: model backend, shell, store and adapter source."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from echo_agent.agent import UI, Agent, AgentConfig
from echo_agent.config import BackendName, Settings
from echo_agent.errors import AdapterError, ModelError

if TYPE_CHECKING:
    from echo_agent.memory.store import TrajectoryStore

AdapterSource = Callable[[], tuple[str | None, Path | None]]
"""(id, path) of the adapter to use now: (None, None) for the base model."""


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

    The adapter in use is `adapter` when given (fixed for the session, in both roles); otherwise the registry's
    current ones, looked up again at the start of every episode, so a newly promoted adapter is used from the
    next episode on.
    """
    from echo_agent.memory.store import TrajectoryStore
    from echo_agent.models import make_backend
    from echo_agent.shell import ShellSession

    backend = backend or settings.backend
    if backend == BackendName.SCRIPTED:
        policy = make_backend(backend, replies=scripted_replies(script))
    else:
        policy = make_backend(backend, model or settings.model, adapter=adapter, warn=warn, threads=settings.threads)
    with ExitStack() as stack:
        store = stack.enter_context(TrajectoryStore(db, settings=settings)) if record else None
        sources = (None, None)
        if adapter is None and store is not None and backend != BackendName.SCRIPTED:
            sources = registry_adapter_sources(store, model or settings.model, warn)
        shell = stack.enter_context(ShellSession(output_cap_bytes=settings.output_cap_bytes,
                                                 input_wait=settings.input_wait))
        yield Agent(policy, shell, store, config=config, settings=settings, ui=ui, adapter=sources[0],
                    policy_adapter=sources[1])


def scripted_replies(script: Path | None) -> list[str]:
    """The replies of a `--script` file: a JSON list of strings."""
    if script is None:
        raise ModelError("the scripted backend needs --script FILE (a JSON list of replies)")
    try:
        replies = json.loads(Path(script).read_text())
    except OSError as e:
        raise ModelError(f"cannot read the script {script} ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"the script {script} is not JSON ({e})") from None
    if not isinstance(replies, list) or not all(isinstance(r, str) for r in replies):
        raise ModelError(f"the script {script} must be a JSON list of strings (the replies, in order)")
    return replies


def registry_adapter_sources(store: TrajectoryStore, model: str | Path, warn: Callable[[str], None]
                             ) -> tuple[AdapterSource, AdapterSource]:
    """The agent's adapter sources, for recalling and for choosing: the registry's adapters in use on this base
    model (the newest promoted one, and the newest promoted one that chooses; else the shipped starter where it
    was made for this model).

    A promoted adapter for another base is refused with a message (once per adapter) and the base model is used.
    """
    from echo_agent.updater.registry import adapter_in_use, check_adapter, model_identity

    base_hash: list[str] = []
    refused: set[str] = set()

    def source(choosing: bool) -> tuple[str | None, Path | None]:
        if not base_hash:
            base_hash.append(model_identity(model)[1])
        adapter_id, path = adapter_in_use(store, base_hash[0], choosing)
        if path is None:
            return None, None
        try:
            check_adapter(path, base_hash[0])
        except AdapterError as e:
            if adapter_id not in refused:
                warn(f"warning: {e}. Using the base model.")
                refused.add(adapter_id)
            return None, None
        return adapter_id, path

    return (lambda: source(False)), (lambda: source(True))
