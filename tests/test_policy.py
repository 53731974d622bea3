"""The gate's policy check: which episodes it replays, and when a model keeps a task's command that worked."""

from __future__ import annotations

import shutil

import pytest

from echo_agent.agent import Agent, AgentConfig
from echo_agent.memory.store import TrajectoryStore
from echo_agent.models.base import Generation
from echo_agent.models.scripted import ScriptedBackend
from echo_agent.replies import CLOSE
from echo_agent.shell import ShellSession
from echo_agent.updater import policy


@pytest.fixture
def store(isolated_home):
    with TrajectoryStore(isolated_home / "store.db") as s:
        yield s


def run(store, shell, task, *replies, parent=None):
    config = AgentConfig(examples=0, memory=False, max_steps=2, reuse=False)  # each run chooses its command
    agent = Agent(ScriptedBackend(list(replies)), shell, store, config=config)
    return agent.run(task, parent_episode_id=parent).episode_id


def test_cases_are_answered_tasks_whose_first_command_worked(store, tmp_path):
    (tmp_path / "app.conf").write_text("port = 8123\n")
    with ShellSession(cwd=tmp_path) as shell:
        ok = run(store, shell, "what port is set in app.conf", "```bash\ncat app.conf\n```", "```answer\n8123\n```")
        again = run(store, shell, "what port is set in app.conf", "```bash\ngrep port app.conf\n```",
                    "```answer\n8123\n```")
        failed = run(store, shell, "what is in missing.conf", "```bash\ncat missing.conf\n```",
                     "```answer\nnothing\n```")
        unsupported = run(store, shell, "what port does app.conf name", "```bash\ncat app.conf\n```",
                          "```answer\n9999\n```")  # not in the output: the grounding replaced it
        quoted = run(store, shell, "what does `cat app.conf` print", "```bash\ncat app.conf\n```",
                     "```answer\nport = 8123\n```")
        follow_up = run(store, shell, "and its name?", "```bash\nls\n```", "```answer\napp.conf\n```", parent=ok)
        silent = run(store, shell, "who owns app.conf", "```bash\nfind . -name owner\n```",
                     "```answer\nnobody\n```")  # exits 0, prints nothing: a failed look-up to the agent
        unanswered = run(store, shell, "list the files", "```bash\nls\n```", "```bash\nls -a\n```")  # step limit
        (tmp_path / "OWNERS").write_text("payments: ilse.brandt\n")
        agent = Agent(ScriptedBackend(["```bash\nnproc\n```", "```answer\nilse.brandt\n```"]), shell, store,
                      config=AgentConfig(examples=0, memory=False, max_steps=3))
        searched = agent.run("who looks after payments")  # nproc printed nothing about payments: cat OWNERS ran
        assert [s["command"] for s in searched.steps] == ["nproc", "cat OWNERS"]
        assert searched.answer.startswith("ilse.brandt")
    ids = [again, ok, failed, unsupported, quoted, follow_up, silent, unanswered, searched.episode_id]
    found = policy.cases(store, ids, limit=10)
    # One case per task and directory, the first in the order given: the newer run of the port question.
    assert [(c.episode_id, c.command, c.cwd) for c in found] == [(again, "grep port app.conf", str(tmp_path))]
    assert found[0].messages[-1] == {"role": "user", "content": "what port is set in app.conf"}
    assert found[0].messages[0]["role"] == "system"
    assert policy.cases(store, ids, limit=0) == []
    # a directory that is gone cannot be replayed: its tasks are left out
    shutil.rmtree(tmp_path)
    assert policy.cases(store, ids, limit=10) == []


class Chooser:
    """A model whose greedy first reply is `reply` and whose mean log-prob of a command is `scores[command]`."""

    def __init__(self, reply: str, scores: dict[str, float]) -> None:
        self.reply, self.scores = reply, scores

    def generate(self, messages, role="assistant", prefill="", stop=(), max_new_tokens=256, min_logprob=None,
                 on_token=None):
        for line in self.reply.splitlines(keepends=True):
            if on_token:
                on_token(line)
        return Generation(self.reply)

    def score(self, messages, role, text):
        if text == policy.PREFILL:
            return [0.0, 0.0]
        command = text[len(policy.PREFILL):-len(CLOSE)]
        return [0.0, 0.0] + [self.scores[command]] * 3


TASK = "what port is set in app.conf"


@pytest.fixture
def case(tmp_path):
    (tmp_path / "app.conf").write_text("port = 8123\n")
    return policy.Case("e1", TASK, [{"role": "user", "content": TASK}], "cat app.conf", str(tmp_path))


@pytest.mark.parametrize("reply, scores, kept", [
    ("cat app.conf", {}, True),                                                  # its own reply
    ("ls -la", {"ls -la": -0.9, "cat app.conf": -0.4}, False),                   # another: nothing else to choose
    ("port " * 9, {}, True),                                                      # degenerate: the fall-backs
    ("", {}, False),                                                             # nothing to run
])
def test_a_model_keeps_a_case_when_the_agent_would_choose_its_command_again(case, reply, scores, kept):
    assert policy.keeps(Chooser(reply, scores), case) is kept


def test_the_prompt_s_examples_compete_as_they_do_in_the_agent(case):
    example = [{"role": "user", "content": "what port is set in web.conf"},
               {"role": "assistant", "content": "```bash\ngrep port web.conf\n```"}]
    with_example = policy.Case("e1", TASK, example + case.messages, "cat app.conf", case.cwd)
    own = "cat app.conf"
    assert policy.options(with_example, own) == ["cat app.conf", "grep port app.conf"]  # the example, adapted
    assert policy.keeps(Chooser(own, {own: -0.3, "grep port app.conf": -0.6}), with_example)
    assert not policy.keeps(Chooser(own, {own: -0.3, "grep port app.conf": -0.1}), with_example)
    # what worked was the example adapted; the model's own reply now outscores it
    adapted = policy.Case("e1", TASK, with_example.messages, "grep port app.conf", case.cwd)
    assert not policy.keeps(Chooser(own, {own: -0.5, "grep port app.conf": -0.6}), adapted)
    assert policy.keeps(Chooser(own, {own: -0.7, "grep port app.conf": -0.6}), adapted)
    # a reply that leaves out the file the task names is filtered out, as in the agent
    assert policy.options(adapted, "ls") == ["grep port app.conf"]


def test_kept_runs_a_loaded_model_in_eval_mode_and_restores_training(case, tiny_model_dir, smollm2_tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model.train()
    result = policy.kept(model, smollm2_tokenizer, [case])
    assert result in ([], ["e1"]) and model.training
    assert policy.kept(model, smollm2_tokenizer, []) == []
