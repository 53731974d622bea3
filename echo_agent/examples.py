"""The in-context example library and its retrieval: which task → command pairs the prompt shows for a task.

Candidates are the user's own successful episodes (an answer, and the command it came from, which exited 0) and the
bundled library (`echo_agent/data/examples.jsonl`, written by scripts/make_examples.py). They are ranked by BM25+
(rank_bm25; plain Okapi BM25 gives a word found in most candidates a negative weight, which in a small candidate
set sinks the examples that share it) over each example's task words and command words against the task's
words. The user's own examples count `OWN_BOOST` times their score, so at comparable relevance they come first
(a close bundled match still beats a loose one of the user's).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from echo_agent.grounding import COULD_NOT_TELL
from echo_agent.records import EpisodeStatus, StepKind, StepSource, task_identity

if TYPE_CHECKING:
    from echo_agent.memory.store import TrajectoryStore

OWN_BOOST = 1.5
"""How much more an example from the user's own episodes counts than a bundled one of the same BM25 score."""


@dataclass(frozen=True)
class Example:
    task: str
    command: str
    source: str  # "store" or "bundled"
    episode_id: str | None = None
    """The episode a store example comes from."""
    cwd: str | None = None
    """Where a store example's command ran."""


@functools.cache
def bundled_examples() -> tuple[Example, ...]:
    text = resources.files("echo_agent").joinpath("data/examples.jsonl").read_text()
    return tuple(Example(r["task"], r["command"], "bundled") for r in map(json.loads, text.splitlines()) if r)


def store_examples(store: TrajectoryStore, limit: int = 300) -> list[Example]:
    """Finished, answered episodes of the user's (not those that could not tell), newest first, with the command
    their answer came from when it ran and exited 0: the last look-up of an episode of look-ups only (the first
    may have failed or printed nothing about the task, and the agent searched after it), else the first
    command."""
    out = []
    for ep in store.recent_episodes(limit):
        if (ep["status"] != EpisodeStatus.DONE or not ep.get("n_steps") or not ep.get("answer")
                or ep["answer"].startswith(COULD_NOT_TELL)):  # what it ran did not answer it
            continue
        ran = [s for s in store.episode_steps(ep["id"]) if s["command"]]
        if not ran:
            continue
        step = ran[-1] if all(s["kind"] == StepKind.RETRIEVAL for s in ran) else ran[0]
        if step["exit_code"] == 0 and step["source"] == StepSource.EXECUTED:
            out.append(Example(ep["task"], step["command"], "store", ep["id"], step["cwd_before"]))
    return out


STOPWORDS = frozenset(
    "a an the of in on to for is are was what which who how do does i my me this that it here there show "
    "tell give please with and or be by from at".split()
)


def stem(word: str) -> str:
    """The word in lower case with a plural "s" dropped ("mentions" -> "mention"; not "class", not "a.js")."""
    w = word.lower()
    return w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") and "." not in w else w


def words(text: str) -> set[str]:
    """Content words, stemmed ("mentions" matches "mention", "lines" matches "line")."""
    return {stem(w) for w in re.findall(r"[a-z0-9_.\-]+", text.lower()) if w not in STOPWORDS}


def tokens(text: str) -> list[str]:
    return sorted(words(text))


def choose_examples(task: str, candidates: list[Example], k: int = 4) -> list[Example]:
    """The k best distinct examples for `task`, the best last (nearest the task)."""
    from rank_bm25 import BM25Plus

    seen = {task_identity(task)}
    distinct = []
    for ex in candidates:
        if task_identity(ex.task) not in seen:
            seen.add(task_identity(ex.task))
            distinct.append(ex)
    if not distinct or k <= 0:
        return []
    index = BM25Plus([tokens(ex.task) + tokens(ex.command) for ex in distinct])
    scores = index.get_scores(tokens(task))
    ranked = sorted(range(len(distinct)), key=lambda i: (
        -scores[i] * (OWN_BOOST if distinct[i].source == "store" else 1.0), i))
    return [distinct[i] for i in ranked[:k]][::-1]
