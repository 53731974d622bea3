"""The evaluation gate: does a candidate adapter replace the one in use? Pure: no model, no store.

A cycle measures the model before training (`Baseline`) and after (`Candidate`) on the same data; `gate`
compares them and returns a `Decision`, one `Reason` per check with what was measured and the limit it was held
to. The candidate is promoted only when every check of `CHECKS` passes:
- `heldout_gain`: its env-token CE on held-out recent episodes beats the adapter in use by `gate_margin`
  (relative);
- `forgetting`: its CE on the bundled forgetting probe (generic terminal transcripts) rises at most
  `forgetting_tolerance` over the *base* model's, so drift cannot accumulate over cycles;
- `retention`: it loses at most `retention_tolerance` of the older steps the adapter in use can recall.

A promoted candidate recalls outputs. It also chooses the agent's commands (`Decision.chooses`) when the checks
of `CHOOSING_CHECKS` pass too:
- `policy`: for tasks answered before, it chooses the command that worked (`policy.py`) for no fewer of them than
  the adapter that chooses now, net, beyond `policy_tolerance` of the tasks checked.

A new check is one more function of (baseline, candidate, settings) in one of the two tuples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from echo_agent.config import Settings

PerStep = dict[str, list[float]]
"""Step id -> [env-token CE sum, env-token count, largest token CE] (`train.evaluate(per_step=…)`)."""


@dataclass
class Baseline:
    """The model before training: the adapter in use (or the base model), and the base model itself."""

    heldout_current: float
    """Env-token CE of the adapter in use on the held-out episodes (nats/token)."""
    heldout_base: float
    probe_base: float
    """The base model's CE on the forgetting probe: the fixed reference for forgetting."""
    retention: PerStep = field(default_factory=dict)
    """Per-step CE of the adapter in use on a sample of older episodes."""
    heldout_env_tokens: int = 0
    probe_env_tokens: int = 0
    heldout_action_current: float = float("nan")
    """CE of the adapter in use on the held-out episodes' replies that ran and exited 0 (the action tokens):
    how likely it finds the commands that worked; nan when there are none."""
    heldout_action_tokens: int = 0
    policy_kept: list[str] = field(default_factory=list)
    """The policy check's cases (episode ids) for which the adapter that chooses now chooses the command that
    worked."""
    policy_cases: int = 0
    new_steps: PerStep = field(default_factory=dict)
    """Per-step CE of the adapter in use on the new steps it is about to train on (what becomes recallable)."""


@dataclass
class Candidate:
    """The trained candidate, measured on the same windows as the baseline."""

    heldout: float
    probe: float
    retention: PerStep = field(default_factory=dict)
    heldout_action: float = float("nan")
    policy_kept: list[str] = field(default_factory=list)
    new_steps: PerStep = field(default_factory=dict)


@dataclass(frozen=True)
class Reason:
    """One check of the gate: what was measured, the limit, and whether it passed."""

    check: str
    passed: bool
    value: float
    limit: float
    text: str
    """The check in words, with its numbers."""


@dataclass(frozen=True)
class Decision:
    promoted: bool
    reasons: tuple[Reason, ...]
    chooses: bool = False
    """Promoted, and chooses commands too (every check passed)."""

    def failed(self) -> list[Reason]:
        return [r for r in self.reasons if not r.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"promoted": self.promoted, "chooses": self.chooses, "reasons": [asdict(r) for r in self.reasons]}


def retention(before: PerStep, after: PerStep, threshold: float) -> dict[str, Any]:
    """Older steps the adapter in use would recall, and how many of them the candidate loses.

    A step is recallable when its weakest env token, teacher-forced, is within the recall threshold (its CE is
    at most -threshold). The mean CE over older episodes hides what matters here: a cycle that overwrites one
    file's version number with another's raises that step's weakest token from ~0 to several nats, while the
    mean over all older steps barely moves (docs/measurements.md, "The retention check").
    """
    limit = -threshold
    known = [sid for sid, (_, n, worst) in before.items() if n and worst <= limit]
    lost = [sid for sid in known if sid not in after or after[sid][2] > limit]
    return {"known": len(known), "lost": len(lost), "lost_fraction": len(lost) / len(known) if known else 0.0,
            "lost_steps": lost}


def heldout_gain(baseline: Baseline, candidate: Candidate, settings: Settings) -> Reason:
    current = baseline.heldout_current
    gain = (current - candidate.heldout) / current if current else 0.0
    return Reason("heldout_gain", gain >= settings.gate_margin, gain, settings.gate_margin,
                  f"held-out env CE {current:.3f} → {candidate.heldout:.3f} ({gain:+.1%} vs the "
                  f"{settings.gate_margin:.0%} margin)")


def forgetting(baseline: Baseline, candidate: Candidate, settings: Settings) -> Reason:
    base = baseline.probe_base
    rise = (candidate.probe - base) / base if base else 0.0
    return Reason("forgetting", rise <= settings.forgetting_tolerance, rise, settings.forgetting_tolerance,
                  f"probe {base:.3f} → {candidate.probe:.3f} ({rise:+.1%}, tolerance "
                  f"{settings.forgetting_tolerance:.0%})")


def kept_recalls(baseline: Baseline, candidate: Candidate, settings: Settings) -> Reason:
    kept = retention(baseline.retention, candidate.retention, settings.recall_threshold)
    text = (f"loses {kept['lost']} of {kept['known']} older steps the adapter in use recalls "
            f"({kept['lost_fraction']:.0%}, tolerance {settings.retention_tolerance:.0%})" if kept["known"]
            else "no older step the adapter in use recalls")
    return Reason("retention", kept["lost_fraction"] <= settings.retention_tolerance, kept["lost_fraction"],
                  settings.retention_tolerance, text)


def kept_policy(baseline: Baseline, candidate: Candidate, settings: Settings) -> Reason:
    """Net share of the checked tasks for which the candidate stops choosing the command that worked: an adapter
    that would make the assistant answer worse never chooses its commands, however well it predicts outputs."""
    n = baseline.policy_cases
    before, after = set(baseline.policy_kept), set(candidate.policy_kept)
    net = (len(before) - len(after)) / n if n else 0.0
    text = (f"chooses the command that worked for {len(after)} of {n} tasks (the adapter choosing now: "
            f"{len(before)}; lost {len(before - after)}, gained {len(after - before)})" if n
            else "no answered task to check the policy on")
    return Reason("policy", net <= settings.policy_tolerance, net, settings.policy_tolerance, text)


Check = Callable[[Baseline, Candidate, "Settings"], Reason]
CHECKS: tuple[Check, ...] = (heldout_gain, forgetting, kept_recalls)
CHOOSING_CHECKS: tuple[Check, ...] = (kept_policy,)


def gate(baseline: Baseline, candidate: Candidate, settings: Settings) -> Decision:
    """Every check on this candidate: promoted when those of CHECKS pass, choosing when all pass."""
    reasons = tuple(check(baseline, candidate, settings) for check in CHECKS)
    choosing = tuple(check(baseline, candidate, settings) for check in CHOOSING_CHECKS)
    promoted = all(r.passed for r in reasons)
    return Decision(promoted, reasons + choosing, promoted and all(r.passed for r in choosing))
