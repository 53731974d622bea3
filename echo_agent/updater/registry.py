"""Versioned adapters: monotonic ids, whole-or-nothing directories, metadata, promotion and rollback.

An adapter is a plain peft LoRA directory under `<home>/adapters/<id>/` plus `echo_adapter.json` (its base model
name and file hash, training config, data range, metrics and library versions). It is written to
`.tmp-<id>-<pid>` and renamed into place, so a crash never leaves a directory that looks valid; temp directories
of dead processes are removed by the next cycle.

Statuses: candidate (being evaluated), promoted (passed the gate), rejected (failed it), retired (rolled back),
stale (trained on a step the user forgot). The adapter in use is the newest promoted one whose directory is
intact; a rollback retires it, so the one before takes over. With none promoted, the starter adapter the package
ships (`echo_agent/data/starter/`, built by `scripts/make_starter.py`) is in use where it was made for the loaded
base model and the `starter_adapter` setting is on; the first cycle continues from it. It is no row in the store:
`starter_row` describes it as one.

Two roles: every promoted adapter recalls outputs (and answers from memory), but only one whose cycle passed the
gate's policy check, or that the user promoted by hand, also chooses the agent's commands (its row's `chooses`).
The adapter that chooses is the newest promoted one that does, else the starter, else the base model
(`adapter_in_use(…, choosing=True)`).

llama.cpp serves an adapter from `adapter.gguf` in its directory (`echo_agent.models.gguf_lora`), written when a
cycle promotes it on a GGUF model (`export_llamacpp`), else at its first use by the llamacpp backend. The export is
not part of `adapter_complete`: an adapter without it is whole, and the transformers backend never needs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from echo_agent.errors import AdapterError, EchoAgentError
from echo_agent.memory.adapters import get_adapter, list_adapters, set_status
from echo_agent.memory.store import pid_alive
from echo_agent.records import AdapterStatus

if TYPE_CHECKING:
    from echo_agent.config import Settings
    from echo_agent.memory.store import TrajectoryStore

__all__ = ["STARTER_ID", "AdapterError", "adapter_complete", "adapter_in_use", "check_adapter", "configured_starter",
           "current_adapter", "current_adapter_row", "export_llamacpp", "llamacpp_export_state", "promote",
           "rollback", "save_adapter", "starter_row"]

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
META_FILE = "echo_adapter.json"
META_VERSION = 1
STARTER_ID = "starter"
STARTER_DIR = Path(__file__).resolve().parent.parent / "data" / "starter"
_META_DEFAULTS: dict[str, Any] = {"meta_version": 1, "parent_id": None, "metrics": {}, "config": {}, "data": {},
                                  "versions": {}}


def adapters_dir(home: Path) -> Path:
    return home / "adapters"


def adapter_complete(path: Path) -> bool:
    """A usable adapter directory holds its config, weights and metadata."""
    return path.is_dir() and all((path / f).is_file() for f in (*ADAPTER_FILES, META_FILE))


def read_meta(path: Path) -> dict[str, Any]:
    """The adapter's metadata; older files get the keys they lack from the defaults."""
    try:
        meta = json.loads((path / META_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise AdapterError(f"adapter {path.name}: unreadable {META_FILE} ({e}); it cannot be used") from e
    return {**_META_DEFAULTS, **meta}


def check_adapter(path: Path, base_hash: str) -> dict[str, Any]:
    """Refuse an adapter that is incomplete or was trained on another base model; returns its metadata."""
    if not adapter_complete(path):
        missing = [f for f in (*ADAPTER_FILES, META_FILE) if not (path / f).is_file()]
        raise AdapterError(f"adapter {path.name} at {path} is incomplete (missing {', '.join(missing)}); "
                           "it was not used — run `echo-agent update` to train a new one")
    meta = read_meta(path)
    if meta.get("base_hash") != base_hash:
        raise AdapterError(f"adapter {path.name} was trained on {meta.get('base_model')} "
                           f"({str(meta.get('base_hash'))[:12]}), not on the loaded model ({base_hash[:12]}); "
                           "load its base model with --model, or train a new adapter for this one")
    return meta


def model_identity(model: str | Path) -> tuple[str, str]:
    """(name, sha256 of the weights file as shipped) for "embedded", a GGUF file or a transformers directory."""
    from echo_agent.models.embedded import EMBEDDED_NAME, base_hash, file_sha256

    if str(model) == "embedded":
        return EMBEDDED_NAME, base_hash()
    path = Path(model)
    if path.is_file():
        return path.name, file_sha256(path)
    weights = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin")) or [path / "config.json"]
    h = hashlib.sha256()
    for w in weights:
        h.update(file_sha256(w).encode())
    return path.name, h.hexdigest()


def library_versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    from echo_agent import __version__

    return {"echo_agent": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__}


def save_adapter(peft_model: Any, root: Path, adapter_id: str, meta: dict[str, Any]) -> Path:
    """Write the adapter and its metadata to a temp directory, then rename it into place."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / adapter_id
    tmp = root / f".tmp-{adapter_id}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        peft_model.save_pretrained(tmp, save_embedding_layers=False)  # LoRA only; "auto" asks the Hub about the base
        cfg = json.loads((tmp / "adapter_config.json").read_text())
        if cfg.get("modules_to_save") or cfg.get("use_dora"):
            raise AdapterError(f"adapter {adapter_id} has modules_to_save or DoRA, which vLLM cannot load; "
                               "retrain with the default config")
        (tmp / META_FILE).write_text(json.dumps({"meta_version": META_VERSION, "id": adapter_id, **meta}, indent=2))
        for f in tmp.iterdir():  # make the contents durable before the rename publishes them
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        os.rename(tmp, final)
    except OSError as e:  # a full disk, say: the partial copy goes, and nothing is published
        shutil.rmtree(tmp, ignore_errors=True)
        raise AdapterError(f"cannot write adapter {adapter_id} to {root} ({e.strerror or e}); nothing was "
                           "promoted") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def export_llamacpp(path: Path, model: str | Path) -> str | None:
    """Write the adapter's llama.cpp export when `model` is a GGUF file (the embedded model included); returns why
    it could not be written, or None (written, or not a GGUF model). The llamacpp backend tries again at first
    use, so a failure here loses nothing."""
    from echo_agent.models.gguf_lora import export_adapter
    from echo_agent.models.llamacpp import resolve_gguf

    try:
        gguf, _ = resolve_gguf(model)
    except EchoAgentError:
        return None  # a transformers model: llama.cpp cannot run it, so nothing to export
    try:
        export_adapter(path, gguf)
    except (EchoAgentError, OSError, ValueError) as e:
        return f"adapter {path.name} was not exported to llama.cpp ({e})"
    return None


def llamacpp_export_state(path: Path) -> str:
    """What `adapters show` says of the adapter's llama.cpp export."""
    from echo_agent.models.gguf_lora import exported_path

    try:
        out = exported_path(path)
    except OSError:
        return "none (the adapter's weights are missing)"
    return str(out) if out.is_file() else "not yet (written when the llamacpp backend first uses it)"


def cleanup_temp(root: Path) -> list[Path]:
    """Remove temp directories left by processes that died mid-write; returns what was removed."""
    removed = []
    if not root.is_dir():
        return removed
    for d in root.glob(".tmp-*"):
        pid = d.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and pid_alive(int(pid)):
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def current_adapter(store: TrajectoryStore) -> tuple[str | None, Path | None]:
    """(id, path) of the adapter the agent should use, or (None, None) for the base model."""
    row = current_adapter_row(store)
    return (row["id"], Path(row["path"])) if row else (None, None)


def current_adapter_row(store: TrajectoryStore, choosing: bool = False) -> dict | None:
    """The newest promoted adapter whose directory is intact (with `choosing`, the newest that also chooses
    commands), or None."""
    for row in reversed(list_adapters(store, AdapterStatus.PROMOTED)):
        if (row["chooses"] or not choosing) and adapter_complete(Path(row["path"])):
            return row
    return None


def starter_row(base_hash: str, enabled: bool = True) -> dict | None:
    """The shipped starter adapter, as an adapter row, when it is enabled, whole and made for this base model."""
    if not enabled or not adapter_complete(STARTER_DIR):
        return None
    meta = read_meta(STARTER_DIR)
    if meta.get("base_hash") != base_hash:
        return None
    return {"id": STARTER_ID, "parent_id": None, "base_model": meta.get("base_model"), "base_hash": base_hash,
            "path": str(STARTER_DIR), "status": "shipped", "trained_through_seq": 0, "n_env_tokens": 0,
            "metrics": meta.get("metrics", {}), "chooses": 1}


def configured_starter(settings: Settings) -> dict | None:
    """`starter_row` for the configured model; None also where that model cannot be found (its loading says so)."""
    if not settings.starter_adapter or not adapter_complete(STARTER_DIR):
        return None
    try:
        base_hash = model_identity(settings.model)[1]
    except (OSError, EchoAgentError):
        return None
    return starter_row(base_hash)


def adapter_in_use(store: TrajectoryStore, base_hash: str, choosing: bool = False
                   ) -> tuple[str | None, Path | None]:
    """(id, path) of what the agent recalls with on this base model (with `choosing`: what chooses its commands):
    the newest promoted adapter (that chooses), else the starter (see `starter_row`), else (None, None) for the
    base model alone. A promoted adapter for another base model is returned as it is: `check_adapter` says why
    it cannot be used."""
    row = current_adapter_row(store, choosing) or starter_row(base_hash, store.settings.starter_adapter)
    return (row["id"], Path(row["path"])) if row else (None, None)


def promote(store: TrajectoryStore, adapter_id: str) -> None:
    """Make `adapter_id` the adapter in use, in both roles (by hand: the gate is the user's call here). Promoting
    an older adapter retires the newer promoted ones, so it becomes the newest in use; all is one transaction."""
    row = get_adapter(store, adapter_id)
    if row is None:
        raise AdapterError(f"no adapter {adapter_id}; `echo-agent adapters list` shows them")
    if row["status"] == AdapterStatus.STALE:
        raise AdapterError(f"adapter {adapter_id} is stale (it saw forgotten steps) and cannot be promoted")
    if not adapter_complete(Path(row["path"])):
        raise AdapterError(f"adapter {adapter_id} at {row['path']} is incomplete; it cannot be promoted")
    newer = [r["id"] for r in list_adapters(store, AdapterStatus.PROMOTED) if r["id"] > adapter_id]
    set_status(store, {**dict.fromkeys(newer, AdapterStatus.RETIRED), adapter_id: AdapterStatus.PROMOTED},
               chooses=[adapter_id])


def rollback(store: TrajectoryStore) -> tuple[str, str | None]:
    """Retire the adapter in use; returns (retired id, id now in use or None for the base model)."""
    current = current_adapter_row(store)
    if current is None:
        what = ("the starter adapter (starter_adapter = false in config.toml runs the base model alone)"
                if configured_starter(store.settings) else "the base model")
        raise AdapterError(f"no promoted adapter to roll back; {what} is in use")
    set_status(store, {current["id"]: AdapterStatus.RETIRED})
    now_id, _ = current_adapter(store)
    return current["id"], now_id
