"""The trajectory store (no heavy imports): `store` (opening, schema, sessions, episodes, steps), `migrations`,
`redact`, `exchange` (export/import), `forget`, `adapters` (adapter rows) and `queries` (counts and statistics).
Only this package runs SQL."""

from echo_agent.memory.redact import redact
from echo_agent.memory.store import StoreError, TrajectoryStore, default_db_path, task_identity

__all__ = ["StoreError", "TrajectoryStore", "default_db_path", "redact", "task_identity"]
