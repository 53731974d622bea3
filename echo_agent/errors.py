"""Every error a user can act on, under one base.

An `EchoAgentError`'s message says what happened and what to do; the command line prints it as one line
(`error: …`) and exits with status 1. Any other exception is a bug, and shows its traceback.
"""

from __future__ import annotations


class EchoAgentError(Exception):
    """A failure the user can act on (a bad file, a missing model, a busy lock); never a bug."""


class ConfigError(EchoAgentError):
    """The config file or a setting cannot be used; the message says which file and why. `setting` names the
    setting whose value was refused, when one was."""

    def __init__(self, message: str, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class StoreError(EchoAgentError):
    """The store cannot be used, or refuses an operation; the message says which file, why, and what to do."""


class StoreBusy(StoreError):
    """Another process holds the store's write lock past the busy timeout."""

    def __init__(self, path: object) -> None:
        super().__init__(f"the store {path} is busy: another process has held its write lock too long (a long "
                         "`logs import` or `logs forget`?); try again when it ends")


class AdapterError(EchoAgentError):
    """An adapter cannot be used, promoted or loaded; the message names it and says what to do."""


class ModelError(EchoAgentError):
    """A model or backend cannot be loaded as asked (no such file, an unknown backend, a wrong tokenizer)."""


class EmbeddedModelError(ModelError):
    """The embedded model is missing or does not look like SmolLM2."""


class ScriptExhausted(ModelError):
    """The scripted backend has no reply left; the message says how many it had."""


class TaskError(EchoAgentError):
    """A task the agent cannot take as given (empty, or too long to be one question)."""


class SuiteError(EchoAgentError):
    """A benchmark suite cannot be used; the message names the file, the place in it and what to fix."""


class UpdateBusy(EchoAgentError):
    """Another update cycle holds this home's lock."""


class UpdaterError(EchoAgentError):
    """The background updater cannot be started or reached."""
