"""Answers from memory: a task asked here before, answered from what the model has learned, with nothing run.

An adapter trained on a task's look-ups holds their outputs: asked for the answer straight away (the reply opened
as an answer block), it writes the fact that `cat notes.md` printed. Before a task's first look-up the agent asks
for that answer when the task is one it has looked up here before, and takes it when
- the task's newest `recall_min_runs` episodes here that ran look-ups observed the same outputs (recall's rule
  for a command, for a task: a world that changed between them is looked at again);
- every token of the answer clears `recall_threshold` (generation stops at the first that does not, as recall
  does) and the answer ends as an answer does (its block closes), not at the token limit;
- it is grounded in what those episodes observed (`grounding.py`, their outputs as the evidence), and it states
  something checkable there: a claim (a number, a name, a path) that an output holds, not just the task, or
  only lines that are in those outputs.
A systematic share of such answers is not taken (the agent's verification sample, shared with recall): the task
runs as usual, so that a change in the world is seen. An answer from memory is an episode with no step; nothing
of it is trained on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from echo_agent.grounding import claims, evidence_of, ground, supported
from echo_agent.records import EpisodeStatus, StepKind, StepSource, task_identity
from echo_agent.replies import CLOSE

if TYPE_CHECKING:
    from echo_agent.memory.store import TrajectoryStore
    from echo_agent.models.base import ChatMessage, ModelBackend

OPEN = "```answer\n"
"""How an answer from memory is asked for: the reply opened as an answer block."""
MAX_ANSWER_TOKENS = 80
"""Longest answer from memory; one that runs on past this is not taken."""
EPISODE_WINDOW = 300
"""Newest episodes searched for the task's earlier runs (the same window the prompt's own examples use)."""
_STATUS_STOP = "\n[exit"
"""A small model sometimes goes on from the answer into an observation's status line: the answer ends there."""


def observed(steps: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The executed retrievals among an episode's steps: what it looked up and saw."""
    return [s for s in steps if s.get("kind") == StepKind.RETRIEVAL and s.get("source") == StepSource.EXECUTED]


def evidence(store: TrajectoryStore, task: str, cwd: str, runs: int) -> list[dict[str, Any]] | None:
    """The look-ups the task's newest earlier episode here observed, when its newest `runs` episodes here that
    observed anything (done, not chat follow-ups) observed the same outputs; else None (not asked often enough,
    or the world changed between them)."""
    if runs <= 0:
        return None
    wanted, seen = task_identity(task), []
    for ep in store.recent_episodes(EPISODE_WINDOW):
        if (ep["status"] != EpisodeStatus.DONE or ep["parent_episode_id"] or not ep.get("n_steps")
                or task_identity(ep["task"]) != wanted):
            continue
        steps = observed(store.episode_steps(ep["id"]))
        if steps and steps[0]["cwd_before"] == cwd:
            seen.append(steps)
            if len(seen) == runs:
                break
    outputs = {tuple((s["command"], s["output"], s["status"]) for s in steps) for steps in seen}
    return seen[0] if len(seen) == runs and len(outputs) == 1 else None


def answer(policy: ModelBackend, messages: Sequence[ChatMessage], steps: Sequence[dict[str, Any]], task: str,
           threshold: float) -> str | None:
    """The model's answer to the last task in `messages` with nothing run, when it is sure of every token and the
    answer is grounded in `steps` (what the task's earlier runs observed); else None."""
    gen = policy.generate(messages, prefill=OPEN, stop=(CLOSE, _STATUS_STOP), max_new_tokens=MAX_ANSWER_TOKENS,
                          min_logprob=threshold)
    if gen.finish_reason != "stop":  # a token under the threshold, or no end in sight
        return None
    text = gen.text
    for end in (CLOSE, _STATUS_STOP):
        text = text.removesuffix(end)
    text = text.strip()
    if not text or "```" in text or not ground(text, steps, task).supported:  # a code block is no answer
        return None
    shown = evidence_of(steps, "")  # the outputs alone: an answer that only repeats the task states nothing
    lines = [" ".join(line.lower().split()) for line in text.splitlines() if line.strip()]
    if any(supported(c.strip("."), shown) for c in claims(text)) or all(
            re.search(rf"(?<!\w){re.escape(line)}(?!\w)", shown) for line in lines):
        return text
    return None
