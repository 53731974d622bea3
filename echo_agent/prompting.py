"""The system prompt and its in-context examples.

A small model needs to be shown what to do: the prompt carries a listing of the working directory (names, not
contents), one worked episode, and a few task → command examples chosen for the task (`examples.py`: BM25 over
the user's own successful episodes and a bundled library). The exact prompt an episode saw is stored with it, so
training renders the same text.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from echo_agent.examples import Example, bundled_examples, choose_examples, store_examples
from echo_agent.records import task_identity

if TYPE_CHECKING:
    from echo_agent.memory.store import TrajectoryStore

SYSTEM_PROMPT = (
    "You are a terminal assistant on the user's machine. Reply with exactly one bash command in a ```bash block "
    "to look something up or act. When you know the answer, reply with it in an ```answer block."
)
LISTING_CHARS = 400
"""About how much of the system prompt the directory listing may take."""
# One complete worked example (look-up, observation, answer), so the model sees how an episode ends.
WORKED_EXAMPLE = [
    {"role": "user", "content": "what version is set in setup.cfg"},
    {"role": "assistant", "content": "```bash\ngrep -n version setup.cfg\n```"},
    {"role": "tool", "content": "3:version = 2.4.1\n[exit 0]"},
    {"role": "assistant", "content": "```answer\nThe version in setup.cfg is 2.4.1.\n```"},
]


def directory_listing(cwd: str | Path, entries: int, chars: int = LISTING_CHARS) -> str:
    """The working directory in one line for the system prompt: its path and the names in it (folders end with
    /, hidden ones left out, sorted), at most `entries` names and about `chars` characters; names, never
    contents."""
    cwd = Path(cwd)
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in cwd.iterdir() if not p.name.startswith("."))
    except OSError:
        return f"The current directory is {cwd}."
    shown: list[str] = []
    for name in names[:entries]:
        if sum(len(n) + 1 for n in shown) + len(name) > chars:
            break
        shown.append(name)
    more = f" and {len(names) - len(shown)} more" if len(names) > len(shown) else ""
    if not names:
        return f"The current directory is {cwd}; it is empty."
    return f"The current directory is {cwd}; it holds: {' '.join(shown)}{more}."


def answered_before(task: str, own: list[Example], cwd: str | Path | None) -> Example | None:
    """The newest successful episode of this task in this directory among the user's examples `own`
    (`examples.store_examples`' rule: done, answered, the command its answer came from ran and exited 0)."""
    return next((ex for ex in own if task_identity(ex.task) == task_identity(task) and cwd is not None
                 and ex.cwd == str(cwd)), None)


def build_prompt(task: str, store: TrajectoryStore | None = None, k: int = 4, cwd: str | Path | None = None,
                 listing: int = 0, own: list[Example] | None = None) -> list[dict[str, str]]:
    """The prompt messages stored with the episode: the system prompt (with a listing of `cwd` of at most
    `listing` names), the worked example, then the chosen task → command examples as earlier turns (a small
    model imitates turns far better than prose).

    A task asked here before gets the examples its newest successful episode had (`answered_before`), not a new
    choice: as the store grows the choice would change, and with it the context the model chooses its command
    and predicts the output in. A fact learned in one context was recalled as an empty output once the examples
    before it had changed (docs/measurements.md). `own`: the store's examples, when the caller has read them
    already (`examples.store_examples`)."""
    if own is None:
        own = store_examples(store) if store is not None else []
    system = SYSTEM_PROMPT if cwd is None or listing <= 0 else f"{SYSTEM_PROMPT}\n{directory_listing(cwd, listing)}"
    messages = [{"role": "system", "content": system}, *WORKED_EXAMPLE]
    if (again := answered_before(task, own, cwd)) is not None and store is not None:
        earlier = (store.get_episode(again.episode_id) or {}).get("prompt") or {}
        turns = earlier.get("messages", []) if isinstance(earlier, dict) else earlier
        if turns[1:len(messages)] == messages[1:]:  # the same worked example: a prompt of this version
            return [*messages, *turns[len(messages):]]
    for ex in choose_examples(task, own + list(bundled_examples()), k):
        messages.append({"role": "user", "content": ex.task})
        messages.append({"role": "assistant", "content": f"```bash\n{ex.command}\n```"})
    return messages
