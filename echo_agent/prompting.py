"""The system prompt and its in-context examples.

A small model needs to be shown what to do: the prompt carries a few task → command examples chosen by word
overlap with the task, from the user's own successful episodes first and from a small bundled set
(`echo_agent/data/examples.jsonl`). The exact prompt an episode saw is stored with it, so training renders
the same text.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from echo_agent.records import task_identity

if TYPE_CHECKING:
    from echo_agent.memory.store import TrajectoryStore

SYSTEM_PROMPT = (
    "You are a terminal assistant on the user's machine. Reply with exactly one bash command in a ```bash block "
    "to look something up or act. When you know the answer, reply with it in an ```answer block."
)
_STOPWORDS = frozenset(
    "a an the of in on to for is are was what which who how do does i my me this that it here there show "
    "tell give please with and or be by from at".split()
)


@dataclass(frozen=True)
class Example:
    task: str
    command: str
    source: str  # "store" or "bundled"


def words(text: str) -> set[str]:
    """Content words, with a plural "s" dropped ("mentions" matches "mention", "lines" matches "line")."""
    out = set()
    for w in re.findall(r"[a-z0-9_.\-]+", text.lower()):
        if w in _STOPWORDS:
            continue
        out.add(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") and "." not in w else w)
    return out


def similarity(a: set[str], b: set[str], weight: Callable[[str], float] = lambda w: 1.0) -> float:
    """Weighted cosine overlap of two word sets (each word counts `weight(word)`)."""
    if not a or not b:
        return 0.0
    shared = sum(weight(w) for w in a & b)
    return shared / math.sqrt(sum(weight(w) for w in a) * sum(weight(w) for w in b))


def bundled_examples() -> list[Example]:
    text = resources.files("echo_agent").joinpath("data/examples.jsonl").read_text()
    return [Example(r["task"], r["command"], "bundled") for r in map(json.loads, text.splitlines()) if r]


def store_examples(store: TrajectoryStore, limit: int = 300) -> list[Example]:
    """Finished episodes of the user's whose first command ran and exited 0, newest first."""
    out = []
    for ep in store.recent_episodes(limit):
        if ep["status"] != "done" or not ep.get("n_steps"):
            continue
        steps = store.episode_steps(ep["id"])
        first = steps[0]
        if first["command"] and first["exit_code"] == 0 and first["source"] == "executed":
            out.append(Example(ep["task"], first["command"], "store"))
    return out


def choose_examples(task: str, candidates: list[Example], k: int = 4) -> list[Example]:
    """The k most similar distinct examples (the user's own win ties), most similar last (nearest the task)."""
    target = words(task)
    # Rare words say more about a task than common ones ("tail" vs "file"): weigh words by inverse document
    # frequency over the candidates, so "last line of X" finds the tail example, not every example about a file.
    bags = [words(ex.task) for ex in candidates]
    df = Counter(w for bag in bags for w in bag)
    n = len(candidates) + 1

    def idf(w: str) -> float:
        return math.log(n / (1 + df[w])) + 1.0

    seen: set[str] = set()
    scored = []
    for i, (ex, bag) in enumerate(zip(candidates, bags, strict=True)):
        key = task_identity(ex.task)
        if key in seen or key == task_identity(task):
            continue
        seen.add(key)
        scored.append((similarity(target, bag, idf), ex.source == "store", -i, ex))
    scored.sort(key=lambda t: t[:3], reverse=True)
    return [t[3] for t in scored[:k]][::-1]


# One complete worked example (look-up, observation, answer), so the model sees how an episode ends.
WORKED_EXAMPLE = [
    {"role": "user", "content": "what version is set in setup.cfg"},
    {"role": "assistant", "content": "```bash\ngrep -n version setup.cfg\n```"},
    {"role": "tool", "content": "3:version = 2.4.1\n[exit 0]"},
    {"role": "assistant", "content": "```answer\nThe version in setup.cfg is 2.4.1.\n```"},
]


def build_prompt(task: str, store: TrajectoryStore | None = None, k: int = 4) -> list[dict[str, str]]:
    """The prompt messages stored with the episode: the system prompt, the worked example, then the chosen
    task → command examples as earlier turns (a small model imitates turns far better than prose)."""
    candidates = (store_examples(store) if store is not None else []) + bundled_examples()
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, *WORKED_EXAMPLE]
    for ex in choose_examples(task, candidates, k):
        messages.append({"role": "user", "content": ex.task})
        messages.append({"role": "assistant", "content": f"```bash\n{ex.command}\n```"})
    return messages
