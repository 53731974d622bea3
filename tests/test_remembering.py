"""Answers from memory: a task looked up here before, answered with nothing run, only when sure and grounded."""

from __future__ import annotations

import pytest
from test_recall import CountingShell

from echo_agent.agent import Agent, AgentConfig
from echo_agent.memory.store import TrajectoryStore
from echo_agent.models.base import Generation
from echo_agent.models.scripted import ScriptedBackend, split_tokens
from echo_agent.records import answer_source
from echo_agent.remembering import OPEN, answer, evidence

TASK = "what port is set in app.conf"
LOOK_UP = ["```bash\ncat app.conf\n```", "```answer\nThe port is 8123.\n```"]


class Unsure(ScriptedBackend):
    """Asked for an answer straight away, it is unsure of one token (as a model that never learned the fact)."""

    def generate(self, messages, role="assistant", prefill="", stop=(), max_new_tokens=256, min_logprob=None,
                 on_token=None):
        if prefill == OPEN:
            tokens = split_tokens("The port is 8080.")
            return Generation("The port is", tokens[:3], [0.0, 0.0, -2.3], "threshold")
        return super().generate(messages, role, prefill, stop, max_new_tokens, min_logprob, on_token)


@pytest.fixture
def ws(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "app.conf").write_text("name = app\nport = 8123\n")
    (ws / "notes.md").write_text("oncall: vozen\n")
    return ws


@pytest.fixture
def store(isolated_home):
    with TrajectoryStore(isolated_home / "store.db") as s:
        yield s


def looked_up(shell, store, task=TASK, times=2):
    for _ in range(times):
        Agent(ScriptedBackend(LOOK_UP), shell, store, config=AgentConfig(examples=0, recall=False)).run(task)


def test_a_task_looked_up_twice_is_answered_from_memory_with_nothing_run(ws, store):
    with CountingShell(cwd=ws) as shell:
        looked_up(shell, store)
        shell.ran.clear()
        result = Agent(ScriptedBackend(["```answer\nThe port is 8123.\n```"]), shell, store,
                       config=AgentConfig(examples=0, verify="none")).run(TASK)
        assert shell.ran == [] and result.remembered and result.answer == "The port is 8123."
        assert result.steps == [] and store.episode_steps(result.episode_id) == []
        assert store.get_episode(result.episode_id)["status"] == "done" and answer_source(0, 0) == "memory"
        # A share of such answers is looked up anyway (verify_fraction 1: every one); nothing says it
        # was remembered.
        backend = ScriptedBackend(["```answer\nThe port is 8123.\n```", *LOOK_UP])
        verified = Agent(backend, shell, store, config=AgentConfig(examples=0, verify_fraction=1.0)).run(TASK)
        assert shell.ran == ["cat app.conf"] and not verified.remembered and len(verified.steps) == 1


@pytest.mark.parametrize("memory_reply", ["```answer\nThe port is 9000.\n```", "```answer\nnot set\n```"])
def test_an_answer_from_memory_that_what_was_seen_does_not_hold_is_looked_up(ws, store, memory_reply):
    with CountingShell(cwd=ws) as shell:
        looked_up(shell, store)
        shell.ran.clear()
        result = Agent(ScriptedBackend([memory_reply, *LOOK_UP]), shell, store,
                       config=AgentConfig(examples=0, verify="none")).run(TASK)
    assert shell.ran == ["cat app.conf"] and not result.remembered and result.answer.startswith("The port is 8123.")


def test_an_unsure_model_looks_it_up(ws, store):
    with CountingShell(cwd=ws) as shell:
        looked_up(shell, store)
        shell.ran.clear()
        result = Agent(Unsure(LOOK_UP), shell, store, config=AgentConfig(examples=0, verify="none")).run(TASK)
    assert shell.ran == ["cat app.conf"] and not result.remembered


def test_memory_is_asked_only_after_the_same_outputs_here_twice(ws, store, tmp_path):
    with CountingShell(cwd=ws) as shell:
        looked_up(shell, store, times=1)
        assert evidence(store, TASK, str(ws), 2) is None  # once is not enough
        (ws / "app.conf").write_text("name = app\nport = 8124\n")
        looked_up(shell, store, times=1)
        assert evidence(store, TASK, str(ws), 2) is None  # the world changed between the two
        looked_up(shell, store, times=1)
        seen = evidence(store, TASK, str(ws), 2)
        assert [s["command"] for s in seen] == ["cat app.conf"] and "8124" in seen[0]["output"]
        assert evidence(store, TASK, str(tmp_path), 2) is None  # elsewhere, nothing was seen
        assert evidence(store, "what port is set in other.conf", str(ws), 2) is None
        # Without recall (--no-recall) nothing is answered from memory: the reply list has no answer for it.
        shell.ran.clear()
        result = Agent(ScriptedBackend(LOOK_UP), shell, store, config=AgentConfig(examples=0, recall=False)).run(TASK)
        assert shell.ran == ["cat app.conf"] and not result.remembered


def test_an_answer_with_nothing_checkable_must_be_a_line_that_was_seen(ws, store):
    steps = [{"command": "cat notes.md", "output": "oncall: vozen\n", "exit_code": 0, "status": "[exit 0]"}]

    def said(text):
        return answer(ScriptedBackend([f"```answer\n{text}\n```"]), [], steps, "who is on call, according to notes.md", -0.1)

    assert said("oncall: vozen") == "oncall: vozen" and said("Vozen") == "Vozen"
    assert said("no") is None and said("nobody is") is None  # "no" is inside "notes", not a line of it
    assert said("ops-team-7") is None  # a claim the output does not hold
    assert said("notes.md") is None  # a claim the task holds, not an output: nothing learned
    assert said("```bash\ncat notes.md") is None  # a command, not an answer
    runaway = ScriptedBackend(["```answer\n" + "vozen " * 100 + "\n```"])
    assert answer(runaway, [], steps, "who is on call", -0.1) is None  # no end in sight: not taken
