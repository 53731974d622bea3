"""Where echo-agent keeps things, and the settings a user may change.

Settings come from keyword arguments, then `<home>/config.toml`, then the defaults below. The home holds the
user's data (store, adapters, config, logs); the cache holds what can be rebuilt (converted models).
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import tomllib


def home_dir() -> Path:
    """The user's data directory: ECHO_AGENT_HOME, else $XDG_DATA_HOME/echo-agent."""
    if env := os.environ.get("ECHO_AGENT_HOME"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "echo-agent"


def cache_dir() -> Path:
    """Rebuildable files (converted models): ECHO_AGENT_CACHE, else $XDG_CACHE_HOME/echo-agent."""
    if env := os.environ.get("ECHO_AGENT_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "echo-agent"


class ConfigError(Exception):
    """The config file cannot be used; the message says which file and why. `setting` names the setting whose
    value was refused, when one was."""

    def __init__(self, message: str, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


_LIMITS: dict[str, tuple[float | None, float | None]] = {
    "max_seq_len": (16, None), "output_cap_bytes": (1024, None), "context_head_chars": (0, None),
    "context_tail_chars": (0, None), "lora_r": (1, None), "lora_alpha": (1, None), "duplicate_cap": (1, None),
    "heldout_fraction": (0, 0.5), "replay_fraction": (0, None), "replay_min": (0, None),
    "retention_episodes": (0, None), "recall_threshold": (None, 0), "recall_verify_fraction": (0, 1),
    "recall_min_runs": (0, None),
}
"""Inclusive bounds of numeric settings (None: open). A recall threshold is a log-prob, so at most 0. The gate's
margin and tolerances have none: a negative one is how a test forces a rejection."""
_POSITIVE = {"command_timeout", "input_wait"}


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


@dataclass
class Settings:
    # --- model ---
    model: str = "embedded"
    """Model to run: "embedded" (SmolLM2-135M-Instruct), a transformers directory, or a GGUF file."""
    backend: str = "local"
    """Model backend: local (transformers + peft), vllm, or scripted."""
    max_seq_len: int = 2048
    """Longest token sequence the model sees at run time and in training."""
    # --- shell and observations ---
    command_timeout: float = 30.0
    """Seconds a command may run before it is interrupted."""
    input_wait: float = 1.0
    """Seconds a command may sit blocked reading the terminal before it is interrupted as waiting for input."""
    output_cap_bytes: int = 256 * 1024
    """Stored output cap (head + tail around the elision marker)."""
    context_head_chars: int = 2000
    """Characters of an output's head the model sees in context."""
    context_tail_chars: int = 2000
    """Characters of an output's tail the model sees in context."""
    read_only_commands: list[str] = field(default_factory=list)
    """Extra command names the user declares read-only (retrievals, run without asking)."""
    # --- store and privacy ---
    redact_patterns: list[str] = field(default_factory=list)
    """Extra regular expressions whose matches are redacted before anything is stored."""
    excluded_dirs: list[str] = field(default_factory=list)
    """Directories whose steps are stored with trainable=0."""
    # --- updater (defaults from DESIGN.md) ---
    lora_r: int = 16
    lora_alpha: int = 32
    duplicate_cap: int = 3
    """Identical (command, output, cwd_before) steps labelled per training set."""
    heldout_fraction: float = 0.10
    gate_margin: float = 0.02
    """Relative env-CE gain a candidate needs over the current adapter."""
    forgetting_tolerance: float = 0.05
    """Largest relative rise of the forgetting-probe CE over the base model."""
    replay_fraction: float = 0.5
    """Older episodes replayed per cycle, as a fraction of the new training episodes (at least `replay_min`)."""
    replay_min: int = 32
    """Fewest older episodes replayed in a cycle (when there are that many), so a cycle with little new data does
    not take many passes over a few look-ups alone and overwrite similar older facts. Measured on the retrieval
    bench (seed 0): with 8, the third cycle lost 26% of the older steps the adapter in use could recall and was
    rejected; with 32 (every older episode there) it lost none, and round 4 recalled all 13 look-ups exactly."""
    retention_episodes: int = 32
    """Older episodes (a seeded sample) on which the gate checks that the candidate keeps what the adapter in use
    can recall."""
    retention_tolerance: float = 0.05
    """Largest fraction of the older steps the adapter in use can recall (every env token's CE within the recall
    threshold) that a candidate may lose."""
    # --- recall ---
    recall_threshold: float = -0.1
    """Minimum token log-prob a prediction needs to be used instead of running the command. Chosen from measured
    calibration (`echo-agent bench retrieval --verify all`, seeds 0 and 2, 80 predicted-and-executed look-ups of
    the learning arm): precision/coverage 1.00/0.55 at -0.05, 1.00/0.56 at -0.1, 0.98/0.61 at -0.25, 0.96/0.64 at
    -0.5, 0.88/0.72 at -1.0. -0.1 is the loosest threshold with no wrong prediction; the wrong recalls seen in
    default bench runs at -0.25 scored -0.15, -0.18 and -0.23, and one wrong answer in a 12-task round is
    already below the bench's 95% accuracy."""
    recall_verify_fraction: float = 0.10
    """Fraction of confident recalls that are executed anyway to verify."""
    recall_min_runs: int = 2
    """A command is recalled only after its newest this-many runs in the same directory printed one and the same
    output: a command whose output changes (`ls` of a busy directory, `git status`) is always run, and a fact seen
    once is not trusted yet. Measured on the retrieval bench (seed 2): the one wrong recall was a command run
    once, predicted with the version number of a similar file at a weakest-token log-prob of -0.15."""

    def __post_init__(self) -> None:
        """Every value of the type its default has and within its range, and every redaction pattern a valid
        regular expression: a bad config.toml is one clear error at start, not a crash in the middle of a task."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
            if problem := _type_problem(value, default):
                raise ConfigError(f"{f.name} {problem}", f.name)
            lo, hi = _LIMITS.get(f.name, (None, None))
            if f.name in _POSITIVE and value <= 0:
                raise ConfigError(f"{f.name} must be more than 0 (got {value!r})", f.name)
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                what = f"from {lo} to {hi}" if lo is not None and hi is not None else \
                    f"at least {lo}" if lo is not None else f"at most {hi}"
                raise ConfigError(f"{f.name} must be {what} (got {value!r})", f.name)
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
