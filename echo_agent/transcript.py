"""The one place where stored records become chat messages (no tokenizer here).

The agent builds its context with these functions and the updater renders training examples with them, so what
is trained is exactly what the model saw. Each message carries `env_spans`: character spans of its content that
are environment text (output lines and the status line, see echo_agent/observation.py), the only text trained
on. Harness lines (elision, recall, input and timeout markers, format warnings, any note) are never inside a
span; a step that is not labelled (trainable=0, recalled, or whatever the caller's `labelled` says) is rendered
the same way with no spans, so later steps keep their true context.

A step is an assistant reply and its observation (two messages), or, for what the user typed after declining a
command (author human, no command), one user message. `render` says which step each message belongs to, so
windows and the context budget cut between steps, never inside one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from echo_agent.config import Settings
from echo_agent.observation import (
    FORMAT_WARNING,
    RECALL_MARKER,
    cap_text,
    is_harness_line,
    render_observation,
)
from echo_agent.records import Author

Step = Mapping[str, Any]
"""A step as stored (a row of the `step` table) or built live by `live_step`."""


@dataclass
class TranscriptMessage:
    role: str
    """system, user, assistant or tool."""
    content: str
    env_spans: list[tuple[int, int]] = field(default_factory=list)
    """[start, end) character spans of `content` that are environment text."""
    action: bool = False
    """An assistant reply the `env+action` objective trains on (`render`'s `actions` rule)."""

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}

    def env_text(self) -> str:
        return "".join(self.content[a:b] for a, b in self.env_spans)


def is_trainable(step: Step) -> bool:
    """The default labelling rule: executed steps stored with trainable=1."""
    return bool(step.get("trainable", 1)) and step.get("source", "executed") != "recalled"


def worked(step: Step) -> bool:
    """A reply worth imitating: its command ran (not declined, denied or recalled) and exited 0."""
    return is_trainable(step) and step.get("command") is not None and step.get("exit_code") == 0


def observation_message(step: Step, *, labelled: bool = True, settings: Settings | None = None) -> TranscriptMessage:
    """The `tool` message for one step: output (context-capped), harness lines, status line; with spans."""
    if step.get("command") is None:
        return TranscriptMessage("tool", FORMAT_WARNING)
    s = settings or Settings()
    output = cap_text(step.get("output") or "", s.context_head_chars, s.context_tail_chars)
    recalled = step.get("source") == "recalled"
    harness = (step.get("note") or "").splitlines()
    status = step.get("status")
    content = render_observation(output, status, harness)
    prefix = RECALL_MARKER + "\n" if recalled else ""
    content = prefix + content
    if not labelled or recalled:
        return TranscriptMessage("tool", content)
    spans: list[tuple[int, int]] = []
    pos = len(prefix)
    body = output if not output or output.endswith("\n") else output + "\n"
    for line in body.split("\n")[:-1]:  # "\n" only: str.splitlines would also split on \x1c, \u2028 …
        if not is_harness_line(line):
            _add_span(spans, pos, pos + len(line) + 1)
        pos += len(line) + 1
    if status is not None:
        end = len(content)
        _add_span(spans, end - len(status), end)
    return TranscriptMessage("tool", content, spans)


def _add_span(spans: list[tuple[int, int]], a: int, b: int) -> None:
    if a == b:
        return
    if spans and spans[-1][1] == a:
        spans[-1] = (spans[-1][0], b)
    else:
        spans.append((a, b))


TYPED = "I typed this in my terminal:\n$ "
"""How a command a person typed (`echo-agent shell`) reads in the transcript: their words, not the agent's reply."""


def step_messages(step: Step, *, labelled: bool = True, settings: Settings | None = None) -> list[TranscriptMessage]:
    """The assistant reply (exactly as generated) and the observation for one step; for a step of the user's
    words (author human, no command: what they typed after declining a command), one user message, never
    labelled; for a command the person typed themselves, a user message (`TYPED`) and its observation."""
    if step.get("author") == Author.HUMAN:
        if step.get("command") is None:
            return [TranscriptMessage("user", step.get("reply") or "")]
        return [TranscriptMessage("user", TYPED + step["command"]),  # a person's command: never an agent reply
                observation_message(step, labelled=labelled, settings=settings)]
    return [TranscriptMessage("assistant", step.get("reply") or ""),
            observation_message(step, labelled=labelled, settings=settings)]


def prompt_messages(prompt: Sequence[Mapping[str, str]] | Mapping[str, Any] | None) -> list[TranscriptMessage]:
    """The stored prompt (list of {role, content}; a dict with a "messages" list is accepted too)."""
    if isinstance(prompt, Mapping):
        prompt = prompt.get("messages", [])
    return [TranscriptMessage(m["role"], m["content"]) for m in prompt or []]


@dataclass
class Rendered:
    """An episode as chat messages, and which step each message renders."""

    messages: list[TranscriptMessage]
    owners: list[str | None]
    """The id of the step each message renders (None for the prompt, earlier turns and the task)."""
    prefix: int
    """Messages before the episode's first step: the prompt, earlier turns and the task."""
    step_starts: list[int]
    """The index of each step's first message."""

    def step_groups(self) -> list[list[TranscriptMessage]]:
        """The messages of each step, in order."""
        bounds = [*self.step_starts, len(self.messages)]
        return [self.messages[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def _turn(episode: Mapping[str, Any], steps: Iterable[Step], labelled: Callable[[Step], bool],
          settings: Settings | None, out: Rendered, own: bool,
          actions: Callable[[Step], bool] | None = None) -> None:
    out.messages.append(TranscriptMessage("user", episode["task"]))
    out.owners.append(None)
    for step in steps:
        lab = labelled(step)  # once: the updater's rule counts what it labels
        msgs = step_messages(step, labelled=lab, settings=settings)
        if own:
            out.step_starts.append(len(out.messages))
            if actions is not None and msgs[0].role == "assistant":
                msgs[0].action = lab and actions(step)
        out.messages += msgs
        out.owners += [step.get("id") if own else None] * len(msgs)


def render(
    episode: Mapping[str, Any], steps: Sequence[Step],
    earlier_turns: Sequence[tuple[Mapping[str, Any], Sequence[Step]]] = (), *,
    labelled: Callable[[Step], bool] = is_trainable, settings: Settings | None = None,
    actions: Callable[[Step], bool] | None = None,
) -> Rendered:
    """An episode as chat messages: prompt, (earlier chat turns,) task, then each step's messages.

    `earlier_turns` are (episode, steps) pairs, oldest first (TrajectoryStore.episode_chain). The prompt is
    the first turn's; each earlier turn ends with its stored answer as an assistant message, as the user saw
    it. Earlier turns carry spans too; a consumer that left-truncates them may drop those.
    `labelled(step)` decides which steps get env spans (default: `is_trainable`); the updater may pass its
    own rule (e.g. the duplicate cap). `actions(step)` marks which of this episode's labelled replies are
    `action` messages (the updater passes `worked`); None marks every assistant message, prompt examples and
    earlier answers included (the starter's recipe).
    """
    first = earlier_turns[0][0] if earlier_turns else episode
    prompt = prompt_messages(first.get("prompt"))
    out = Rendered(prompt, [None] * len(prompt), 0, [])
    for ep, ep_steps in earlier_turns:
        _turn(ep, ep_steps, labelled, settings, out, own=False)
        if ep.get("answer"):
            out.messages.append(TranscriptMessage("assistant", ep["answer"]))
            out.owners.append(None)
    _turn(episode, steps, labelled, settings, out, own=True, actions=actions)
    out.prefix = out.step_starts[0] if out.step_starts else len(out.messages)
    if actions is None:
        for m in out.messages:
            m.action = m.role == "assistant"
    return out


def render_episode(
    episode: Mapping[str, Any], steps: Sequence[Step],
    earlier_turns: Sequence[tuple[Mapping[str, Any], Sequence[Step]]] = (), *,
    labelled: Callable[[Step], bool] = is_trainable, settings: Settings | None = None,
) -> list[TranscriptMessage]:
    """The messages of `render`."""
    return render(episode, steps, earlier_turns, labelled=labelled, settings=settings).messages


def build_context(prompt: Sequence[Mapping[str, str]] | Mapping[str, Any], task: str,
                  steps: Sequence[Step] = (),
                  earlier_turns: Sequence[tuple[Mapping[str, Any], Sequence[Step]]] = (),
                  settings: Settings | None = None) -> Rendered:
    """The context the agent sends the model before its next reply (same rendering as training)."""
    return render({"task": task, "prompt": prompt}, steps, earlier_turns, settings=settings)


def fit_context(context: Rendered, keep: int, budget_chars: int) -> list[dict[str, str]]:
    """The context as plain messages, within the budget: first the earlier chat turns are dropped, then the
    oldest steps (whole). The first `keep` messages (the prompt), the task and the newest step always stay."""
    msgs = [m.to_dict() for m in context.messages]
    head, earlier, task = msgs[:keep], msgs[keep:context.prefix - 1], msgs[context.prefix - 1]
    groups = [[m.to_dict() for m in g] for g in context.step_groups()]
    size = sum(len(m["content"]) for m in msgs)
    while earlier and size > budget_chars:
        size -= len(earlier.pop(0)["content"])
    while len(groups) > 1 and size > budget_chars:
        size -= sum(len(m["content"]) for m in groups.pop(0))
    return [*head, *earlier, task, *(m for g in groups for m in g)]


def live_step(reply: str, command: str | None, result: Any = None, *, source: str = "executed",
              output: str = "", status: str | None = None, note: str = "", author: str = "agent") -> dict[str, Any]:
    """A step dict for a step that is not stored yet (the agent appends it with `step_messages`).

    `result` is a ShellResult; without one, `output`/`status`/`note` are used (a recall prediction).
    """
    if result is not None:
        output, status = result.output, result.status
        note = "\n".join(x for x in (result.note, note) if x)  # as record_step stores it
    return {"reply": reply, "command": command, "output": output, "status": status, "note": note,
            "source": source, "author": author, "trainable": int(source != "recalled" and author == "agent")}
