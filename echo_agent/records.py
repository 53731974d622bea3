"""The states a stored record can be in, as types, and the rules for a task: which are taken, and its identity.

Every state is a `StrEnum`: its members are the strings the store has always held (`"done"`, `"recalled"`), so
existing stores read back unchanged, a member compares equal to its string, and JSON writes it as one.
"""

from __future__ import annotations

from enum import StrEnum

from echo_agent.errors import TaskError


class SessionKind(StrEnum):
    AGENT = "agent"
    HUMAN = "human"
    BENCH = "bench"


class EpisodeStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    """The model answered."""
    FAILED = "failed"
    """The program failed during the episode (a bug or a backend error)."""
    ABORTED = "aborted"
    """The user stopped it (Ctrl-C, end of input at a prompt), or its process died."""
    LIMIT = "limit"
    """The step or time limit ended it."""
    DECLINED = "declined"
    """The user declined a command and gave nothing else to do."""


class Author(StrEnum):
    AGENT = "agent"
    HUMAN = "human"


class StepKind(StrEnum):
    RETRIEVAL = "retrieval"
    """A read-only command: a look-up that recall may answer."""
    ACTION = "action"
    """Anything else, or a reply with no command."""


class StepSource(StrEnum):
    EXECUTED = "executed"
    RECALLED = "recalled"
    """The observation is the model's prediction; the shell was not touched."""


class AdapterStatus(StrEnum):
    CANDIDATE = "candidate"
    """Being trained or evaluated (left by a cycle that died until the next cycle rejects it)."""
    PROMOTED = "promoted"
    REJECTED = "rejected"
    RETIRED = "retired"
    """Rolled back, or set aside when an older adapter was promoted by hand."""
    STALE = "stale"
    """Trained on a step the user forgot: never used again."""


def task_identity(task: str) -> str:
    """A task's identity for per-task statistics and comparisons: lower-cased, whitespace collapsed."""
    return " ".join(task.lower().split())


ANSWER_SOURCES = ("memory", "recall", "executed")
"""Where an episode's answer came from: no retrieval at all (the model's memory), recalled retrievals only, or at
least one executed retrieval (a verification run counts: the command ran)."""


def answer_source(executed: int, recalled: int) -> str:
    """The ANSWER_SOURCES entry of an episode that executed and recalled this many retrievals."""
    return "executed" if executed else "recall" if recalled else "memory"


def same_answer(a: str | None, b: str | None) -> bool:
    """Two answers agree: equal once case, whitespace and closing punctuation are set aside."""
    def norm(text: str) -> str:
        return " ".join(text.lower().split()).rstrip(".!")
    return a is not None and b is not None and norm(a) == norm(b)


MAX_TASK_CHARS = 2000
"""Longest task taken: a question, not a document (name a file that holds a long text instead)."""


def check_task(task: str) -> str:
    """The task, or a TaskError saying why it is refused (empty, or longer than MAX_TASK_CHARS)."""
    if not task.strip():
        raise TaskError("the task is empty: say what you want done or answered, e.g. "
                        "echo-agent ask \"how big is this folder\"")
    if len(task) > MAX_TASK_CHARS:
        raise TaskError(f"the task is {len(task):,} characters long; keep it under {MAX_TASK_CHARS:,} (put a long "
                        "text in a file and name the file in the task)")
    return task
