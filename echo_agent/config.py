"""Where echo-agent keeps things, and the settings a user may change.

Settings come from keyword arguments, then `<home>/config.toml`, then the defaults below. The home holds the
user's data (store, adapters, config, logs); the cache holds what can be rebuilt (converted models).
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from echo_agent.errors import ConfigError

__all__ = ["BackendName", "ConfigError", "Settings", "cache_dir", "home_dir"]


def home_dir() -> Path:
    """The user's data directory: ECHO_AGENT_HOME, else $XDG_DATA_HOME/echo-agent."""
    if env := os.environ.get("ECHO_AGENT_HOME"):
        return Path(env).expanduser()
    return default_home_dir()


def default_home_dir() -> Path:
    """$XDG_DATA_HOME/echo-agent: the home when ECHO_AGENT_HOME is not set."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "echo-agent"


def cache_dir() -> Path:
    """Rebuildable files (converted models): ECHO_AGENT_CACHE, else $XDG_CACHE_HOME/echo-agent."""
    if env := os.environ.get("ECHO_AGENT_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "echo-agent"


class BackendName(StrEnum):
    """The model backends a user can choose (`--backend`, the `backend` setting)."""

    AUTO = "auto"
    """llamacpp for a GGUF model (the embedded one included) where the pinned llama-cpp-python imports and the
    model's adapters can be exported; local otherwise (the default)."""
    LLAMACPP = "llamacpp"
    """llama.cpp on CPU (llama-cpp-python), serving the adapters exported to GGUF."""
    LOCAL = "local"
    """transformers + peft, CPU or CUDA."""
    VLLM = "vllm"
    """vLLM on a GPU machine (the `vllm` extra)."""
    SCRIPTED = "scripted"
    """Replays a JSON list of replies (`--script`): tests and demos."""


class Selection(StrEnum):
    """How a cycle whose new data exceeds its budget chooses what to train (`cycle_selection`)."""

    SURPRISE = "surprise"
    """The steps the adapter in use predicts worst first, near-duplicates collapsed, volatile output down-weighted."""
    NEWEST = "newest"
    RANDOM = "random"


def setting(default: Any, *, lo: float | None = None, hi: float | None = None, above: float | None = None,
            choices: type[StrEnum] | None = None) -> Any:
    """A setting's default with its bounds: `lo`/`hi` inclusive, `above` exclusive, `choices` an enum of the
    allowed texts. A list default is copied for each Settings."""
    metadata = {"lo": lo, "hi": hi, "above": above, "choices": choices}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def _type_problem(value: object, default: object) -> str | None:
    """Why `value` cannot stand where `default` does, or None."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
        want = "true or false"
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
        want = "a whole number"
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        want = "a number"
    elif isinstance(default, str):
        ok = isinstance(value, str)
        want = "text"
    elif isinstance(default, list):
        ok = isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
        want = "a list of strings"
    else:
        return None
    return None if ok else f"must be {want} (got {value!r})"


def _bound_problem(value: Any, bounds: Any) -> str | None:
    """Why `value` is outside a setting's bounds (see `setting`), or None."""
    lo, hi, above, choices = (bounds.get(k) for k in ("lo", "hi", "above", "choices"))
    if choices is not None and value not in {c.value for c in choices}:
        return f"must be one of {', '.join(c.value for c in choices)} (got {value!r})"
    if above is not None and value <= above:
        return f"must be more than {above} (got {value!r})"
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        what = (f"from {lo} to {hi}" if lo is not None and hi is not None else
                f"at least {lo}" if lo is not None else f"at most {hi}")
        return f"must be {what} (got {value!r})"
    return None


@dataclass
class Settings:
    """Every setting, its default and its bounds. Measurements behind the defaults: docs/measurements.md."""

    # --- model ---
    model: str = setting("embedded")
    """Model to run: "embedded" (SmolLM2-135M-Instruct), a transformers directory, or a GGUF file."""
    backend: str = setting(BackendName.AUTO.value, choices=BackendName)
    """Model backend: auto (llamacpp for GGUF models where it runs, else local), llamacpp, local (transformers +
    peft), vllm, or scripted."""
    threads: int = setting(0, lo=0)
    """Threads llama.cpp runs on (0: one per core this process may use)."""
    max_seq_len: int = setting(2048, lo=16)
    """Longest token sequence the model sees at run time and in training."""
    # --- shell and observations ---
    command_timeout: float = setting(30.0, above=0)
    """Seconds a command may run before it is interrupted."""
    input_wait: float = setting(1.0, above=0)
    """Seconds a command may sit blocked reading the terminal before it is interrupted as waiting for input."""
    output_cap_bytes: int = setting(256 * 1024, lo=1024)
    """Stored output cap (head + tail around the elision marker)."""
    context_head_chars: int = setting(2000, lo=0)
    """Characters of an output's head the model sees in context."""
    context_tail_chars: int = setting(2000, lo=0)
    """Characters of an output's tail the model sees in context."""
    read_only_commands: list[str] = setting([])
    """Extra command names the user declares read-only (retrievals, run without asking)."""
    # --- store and privacy ---
    redact_patterns: list[str] = setting([])
    """Extra regular expressions whose matches are redacted before anything is stored."""
    excluded_dirs: list[str] = setting([])
    """Directories whose steps are stored with trainable=0."""
    # --- updater ---
    starter_adapter: bool = setting(True)
    """Use the starter adapter shipped for the embedded model until a cycle promotes one of your own (the first
    cycle continues from it); false runs the base model alone."""
    lora_r: int = setting(16, lo=1)
    """LoRA rank of an adapter trained from the base model; a cycle that continues an adapter (the starter
    included) keeps its rank."""
    lora_alpha: int = setting(32, lo=1)
    duplicate_cap: int = setting(3, lo=1)
    """Identical (command, output, cwd_before) steps labelled per training set."""
    heldout_fraction: float = setting(0.10, lo=0, hi=0.5)
    """The newest fraction of a cycle's new episodes (at least one) held out for the gate, not trained on."""
    heldout_max_episodes: int = setting(32, lo=1)
    """At most this many held-out episodes per cycle: the gate's evaluation costs the same on a week's data."""
    cycle_budget_minutes: float = setting(60.0, lo=0)
    """Time a cycle spends choosing (the surprise pass) and training. When the new data would take longer, the
    cycle trains what is worth most first (`cycle_selection`); the rest waits for a later cycle. 0: no budget."""
    cycle_selection: str = setting(Selection.SURPRISE.value, choices=Selection)
    """How a cycle over budget chooses: surprise (the steps the adapter in use predicts worst, near-duplicates
    collapsed and output that changes on every run down-weighted), newest first, or random."""
    # The gate's margin and tolerances have no bounds: a negative one is how a test forces a rejection.
    gate_margin: float = setting(0.02)
    """Relative env-CE gain a candidate needs over the current adapter."""
    forgetting_tolerance: float = setting(0.05)
    """Largest relative rise of the forgetting-probe CE over the base model."""
    replay_fraction: float = setting(0.5, lo=0)
    """Older episodes replayed per cycle, as a fraction of the new training episodes (at least `replay_min`)."""
    replay_min: int = setting(32, lo=0)
    """Fewest older episodes replayed in a cycle (when there are that many), so a cycle with little new data does
    not take many passes over a few look-ups alone and overwrite similar older facts."""
    retention_episodes: int = setting(32, lo=0)
    """Older episodes (a seeded sample) on which the gate checks that the candidate keeps what the adapter in use
    can recall."""
    retention_tolerance: float = setting(0.05)
    """Largest fraction of the older steps the adapter in use can recall (every env token's CE within the recall
    threshold) that a candidate may lose."""
    policy_check_tasks: int = setting(12, lo=0)
    """How many answered tasks the gate replays the first command of, under the adapter choosing commands now and
    the candidate (the policy check; with 0, every promoted adapter chooses too)."""
    policy_tolerance: float = setting(0.0)
    """Largest net share of those tasks for which a candidate may stop choosing the command that worked and still
    choose commands (beyond it, it is promoted to recall only)."""
    # --- recall ---
    recall_threshold: float = setting(-0.1, hi=0)
    """Minimum token log-prob a prediction needs to be used instead of running the command (a log-prob, so at
    most 0): the loosest threshold with no wrong prediction in the measured calibration."""
    recall_verify_fraction: float = setting(0.10, lo=0, hi=1)
    """Fraction of confident recalls that are executed anyway to verify."""
    recall_min_runs: int = setting(2, lo=0)
    """A command is recalled only after its newest this-many runs in the same directory printed one and the same
    output: a command whose output changes (`ls` of a busy directory, `git status`) is always run, and a fact seen
    once is not trusted yet."""
    recall_check_lookups: int = setting(64, lo=0)
    """Look-ups a new adapter is checked on before it serves: the newest of those the agent may recall. One that
    the adapter would recall confidently wrong (teacher-forced on its stored output) is always run under that
    adapter (0: no check)."""

    def __post_init__(self) -> None:
        """Every value of the type its default has and within its bounds, and every redaction pattern a valid
        regular expression: a bad config.toml is one clear error at start, not a crash in the middle of a task."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
            if problem := _type_problem(value, default) or _bound_problem(value, f.metadata):
                raise ConfigError(f"{f.name} {problem}", f.name)
        for i, rx in enumerate(self.redact_patterns):
            try:
                re.compile(rx)
            except re.error as e:
                raise ConfigError(f"redact_patterns[{i}] {rx!r} is not a regular expression ({e})",
                                  "redact_patterns") from None

    @classmethod
    def load(cls, home: Path | None = None, **overrides) -> Settings:
        """Defaults, patched by `<home>/config.toml`, patched by keyword arguments."""
        home = home or home_dir()
        values: dict = {}
        path = home / "config.toml"
        if path.exists():
            try:
                values = tomllib.loads(path.read_text())
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
                raise ConfigError(f"{path}: not valid TOML ({e}); fix or remove the file") from e
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        from_file = set(values)
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}" if e.setting in from_file else str(e), e.setting) from None
