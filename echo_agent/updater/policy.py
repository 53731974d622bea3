"""The gate's policy check: for tasks it answered before, does the model still choose the command that worked?

A promoted adapter recalls outputs; it chooses the agent's commands only when this check passes, since training on
outputs moves the replies too (docs/measurements.md, "With the model in charge"). A case is an episode that was a new task
(no chat parent) answered in the model's own supported words (not an output or "could not tell" put in their
place, `grounding.replaced`), whose first reply's command ran, exited 0 and printed something about the task (the
agent counts one that printed nothing, or nothing about the task, as failed, and falls back to others:
`searching.about_task`), and whose task quotes no command
(those run what they quote, whatever the model says). Its checker is that command: the store knows no answer's
truth, only that this command ran, and an answer the grounding let through came of it. The model *keeps* a case
when, given the context of that first reply (the stored prompt and the task), it would choose the command that
worked again, the way the agent chooses (`agent.Agent._step`): its greedy first reply and the prompt's examples
adapted to the task, rebuilt by `choosing.candidates` in the directory the command ran in (the filter on
programs the shell lacks aside: no shell runs here), ranked by `choosing.rank`. A case whose directory is gone
cannot be replayed and is left out. A reply that does not parse, or a choice that no longer holds the command
that worked, loses the case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from echo_agent.models.base import ChatMessage
from echo_agent.replies import CLOSE, FormatError, RepeatedLine, RepeatGuard, parse_reply

if TYPE_CHECKING:
    from echo_agent.memory.store import TrajectoryStore

PREFILL = "```bash\n"
"""How the agent opens a new task's first reply."""
MAX_NEW_TOKENS = 64
"""A command's length, and then some: a reply still open by then is cut there (the check's cost is
generation)."""


@dataclass(frozen=True)
class Case:
    episode_id: str
    task: str
    messages: list[ChatMessage]
    """The context of the episode's first reply: its stored prompt and the task."""
    command: str
    """The first reply's command, which ran and exited 0: the checker."""
    cwd: str
    """The directory it ran in (still there)."""


def cases(store: TrajectoryStore, episode_ids: Sequence[str], limit: int) -> list[Case]:
    """Up to `limit` cases from `episode_ids`, in that order, one per (task, directory)."""
    from echo_agent.choosing import quoted_commands
    from echo_agent.grounding import replaced
    from echo_agent.records import Author, EpisodeStatus
    from echo_agent.searching import about_task, task_terms
    from echo_agent.transcript import build_context, worked

    out: list[Case] = []
    seen: set[tuple[str, str]] = set()
    for episode_id in dict.fromkeys(episode_ids):
        if len(out) >= limit:
            break
        ep = store.get_episode(episode_id)
        if ep is None or ep.get("parent_episode_id") or ep.get("status") != EpisodeStatus.DONE:
            continue
        steps = store.episode_steps(episode_id)
        if not steps or not ep.get("answer") or replaced(ep["answer"]) or quoted_commands(ep["task"]):
            continue
        first = steps[0]
        if first.get("author") != Author.AGENT or not worked(first) or not (first.get("output") or "").strip():
            continue  # a look-up that printed nothing is one the agent counts as failed (`obs.did_not_work`)
        try:
            kind, command = parse_reply(first.get("reply") or "")
        except FormatError:
            continue
        cwd = first.get("cwd_before")
        if kind != "command" or (ep["task"], cwd) in seen or not cwd or not Path(cwd).is_dir():
            continue
        if not about_task(first.get("output") or "", task_terms(ep["task"], cwd)):
            continue  # the agent searched the files after it: the look-up that worked came later
        seen.add((ep["task"], cwd))
        messages = [m.to_dict() for m in build_context(ep.get("prompt") or {}, ep["task"]).messages]
        out.append(Case(episode_id, ep["task"], messages, command, cwd))
    return out


def first_command(backend: Any, messages: Sequence[ChatMessage], max_new_tokens: int) -> str | None:
    """The command of the model's greedy first reply, as the agent generates it; None when the reply answers or
    does not parse."""
    guard = RepeatGuard(lambda _: None)
    try:
        reply = PREFILL + backend.generate(messages, prefill=PREFILL, stop=(CLOSE,), max_new_tokens=max_new_tokens,
                                           on_token=guard).text
    except RepeatedLine:
        reply = PREFILL + guard.text
    try:
        kind, text = parse_reply(reply)
    except FormatError:
        return None
    return text if kind == "command" else None


def options(case: Case, own: str) -> list[str]:
    """What the agent would choose among in the case's directory, given the model's own first command `own`."""
    from echo_agent.choosing import candidates

    return candidates(case.task, case.messages, own, case.cwd)


def keeps(backend: Any, case: Case, max_new_tokens: int = MAX_NEW_TOKENS) -> bool:
    """Whether the model would choose the case's command again (see the module's docstring)."""
    from echo_agent.choosing import rank

    own = first_command(backend, case.messages, max_new_tokens)
    if own is None:
        return False
    return rank(backend, case.messages, PREFILL, options(case, own))[0] == case.command


def replaying(info: dict[str, Any]) -> str:
    """The progress line for the cycle's "policy" event ({"tasks": n, "model": which}), as `update` and the bench
    print it."""
    return f"replaying the first command of {info['tasks']} answered tasks under {info['model']}"


def kept(model: Any, tokenizer: Any, chosen: Sequence[Case]) -> list[str]:
    """The episode ids of the cases `model` (a transformers or peft model, as loaded) keeps; in eval mode."""
    from echo_agent.models.local import LocalBackend
    from echo_agent.updater.train import check_yield, evaluating

    if not chosen:
        return []
    backend = LocalBackend.around(model, tokenizer)
    out = []
    with evaluating(model):
        for c in chosen:
            check_yield()  # a replay generates: between tasks, the cycle gives way to an agent episode
            if keeps(backend, c):
                out.append(c.episode_id)
    return out
