"""How one agent runs (`AgentConfig`), and which confident recalls it runs anyway (`Verify`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from echo_agent.config import Settings


class Verify(StrEnum):
    """Which confident recalls are executed anyway (AgentConfig.verify)."""

    SAMPLE = "sample"
    """A systematic sample of `verify_fraction` of them."""
    ALL = "all"
    """Every retrieval is predicted in full and executed: calibration data."""
    NONE = "none"


@dataclass
class AgentConfig:
    """How one agent runs. A field left None takes its value from the Settings the Agent is given, once, when
    the Agent is built (`resolved`)."""

    max_steps: int = 8
    """Replies the model may give in one episode."""
    max_seconds: float = 300.0
    """Wall time for one episode."""
    command_timeout: float | None = None
    """Seconds before a command is interrupted; None takes Settings.command_timeout."""
    max_new_tokens: int = 200
    """Longest reply."""
    yes: bool = False
    """Approve every command except the deny list."""
    examples: int = 4
    """In-context task → command examples in the prompt."""
    listing: int = 40
    """Names of the working directory's entries shown in the system prompt (0: none)."""
    repair: bool = True
    """Run a look-up that names a missing file with the one existing file the task names (repair.py)."""
    choose: bool = True
    """Choose a new task's first command by the model's score among its own reply and its examples adapted to the
    task (choosing.py)."""
    reuse: bool = True
    """Start a task answered here before with the look-up its answer came from (`prompting.answered_before`), when
    that is read-only, instead of choosing anew: it worked, and a stable command is one the adapter can learn."""
    show_output: bool = True
    """Follow an answer with the short output it came from (grounding.py)."""
    prompt: list[dict[str, str]] | None = None
    """A fixed prompt (system message and any examples) instead of the built one; benchmarks use a short one,
    since every prompt token costs training time."""
    prefill: bool = True
    """Open the model's replies: "```bash" for a new task's first reply, "```" after it (a small model needs
    this: left alone it often answers in prose)."""
    context_chars: int = 6000
    """Context budget in characters; the oldest steps are dropped first (the prompt and task always stay)."""
    recall: bool = True
    """Answer read-only commands from the model's prediction when it is confident (never other commands)."""
    memory: bool = True
    """Answer a task looked up here before from the model's memory, with nothing run, when it is sure and the answer
    agrees with what was seen (remembering.py); only with `recall` on and `verify` not "all"."""
    verify: Verify = Verify.SAMPLE
    """Which confident recalls are executed anyway. The sample is systematic from a random start (see `seed`):
    each confident recall is verified with probability verify_fraction, as in a random draw, but of n recalls in
    a session floor or ceil of n x verify_fraction are."""
    recall_threshold: float | None = None
    """Minimum token log-prob for a recall; None takes Settings.recall_threshold."""
    verify_fraction: float | None = None
    """None takes Settings.recall_verify_fraction."""
    seed: int | None = None
    """Seeds the choice of recalls to verify (the bench's runs repeat); None draws a fresh random start, so that
    one-task sessions (`echo-agent ask`) verify their share too: a fixed start would skip the same first recalls in
    every session."""

    def resolved(self, settings: Settings) -> AgentConfig:
        """This config with every None that means "the setting" replaced by the setting's value."""
        return replace(
            self,
            command_timeout=settings.command_timeout if self.command_timeout is None else self.command_timeout,
            recall_threshold=settings.recall_threshold if self.recall_threshold is None else self.recall_threshold,
            verify_fraction=(settings.recall_verify_fraction if self.verify_fraction is None
                             else self.verify_fraction))
