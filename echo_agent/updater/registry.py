"""Which adapter the agent uses: the newest promoted adapter that is not stale, whose directory is intact."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from echo_agent.memory.store import TrajectoryStore

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def adapter_complete(path: Path) -> bool:
    """A usable adapter directory holds its config and weights (adapters are renamed into place whole)."""
    return path.is_dir() and all((path / f).is_file() for f in ADAPTER_FILES)


def current_adapter(store: TrajectoryStore) -> tuple[str | None, Path | None]:
    """(id, path) of the adapter the agent should use, or (None, None) for the base model."""
    for row in reversed(store.list_adapters(status="promoted")):
        path = Path(row["path"])
        if adapter_complete(path):
            return row["id"], path
    return None, None
