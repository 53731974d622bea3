"""The trajectory store: schema and migrations, redaction, FTS search, export/import (no heavy imports)."""

from echo_agent.memory.redact import redact
from echo_agent.memory.store import StoreError, TrajectoryStore, default_db_path, task_identity

__all__ = ["StoreError", "TrajectoryStore", "default_db_path", "redact", "task_identity"]
