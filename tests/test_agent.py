"""Whole episodes with the scripted backend through the real shell and the real store."""

from __future__ import annotations

import re

import pytest

from echo_agent import observation as obs
from echo_agent.agent import Agent, AgentConfig, FormatError, parse_reply
from echo_agent.memory.store import TrajectoryStore
from echo_agent.models.scripted import ScriptedBackend
from echo_agent.shell import ShellSession
from echo_agent.transcript import build_context, fit_context, render_episode


class RecordingUI:
    def __init__(self, answers=(), instead=()):
        self.answers, self.insteads = list(answers), list(instead)
        self.asked, self.commands, self.observations, self.tokens, self.predictions = [], [], [], [], []

    def reply_token(self, piece):
        self.tokens.append(piece)

    def command(self, command, risk):
        self.commands.append((command, risk.level))

    def observation(self, step):
        self.observations.append(step)

    def confirm(self, command, risk):
        self.asked.append(command)
        return self.answers.pop(0) if self.answers else "n"

    def prediction(self, prediction):
        self.predictions.append(prediction)

    def instead(self, command):
        return self.insteads.pop(0) if self.insteads else None


def policy_calls(backend):
    """The backend's `generate` calls for assistant replies (recall predictions are `tool` calls)."""
    return [c for c in backend.calls if c[0] == "assistant"]


@pytest.fixture
def workspace(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "app.conf").write_text("name = zeta\nport = 8123\n")
    return ws


@pytest.fixture
def store(isolated_home):
    with TrajectoryStore(isolated_home / "store.db") as s:
        yield s


def prefills(backend):
    """The prefill of every reply the backend is asked for, in order (filled in as the agent runs)."""
    seen, generate = [], backend.generate

    def spy(messages, role="assistant", prefill="", **kwargs):
        if role == "assistant":
            seen.append(prefill)
        return generate(messages, role=role, prefill=prefill, **kwargs)

    backend.generate = spy
    return seen


def make_agent(replies, workspace, store, ui=None, **config):
    config = {"show_output": False, **config}
    shell = ShellSession(cwd=workspace)
    backend = ScriptedBackend(replies)
    agent = Agent(backend, shell, store, config=AgentConfig(**config), ui=ui or RecordingUI())
    return agent, backend, shell


def test_the_same_look_up_again_asks_for_the_answer_instead(workspace, store):
    agent, backend, shell = make_agent(["```bash\ncat app.conf\n```", "```bash\ncat app.conf\n```",
                                        "```answer\nThe port is 8123.\n```"], workspace, store)
    with shell:
        result = agent.run("what port")
    assert result.status == "done" and result.answer == "The port is 8123." and len(result.steps) == 1
    assert policy_calls(backend)[-1][1][-1]["role"] == "tool"  # asked once more, after the one observation


def test_an_answer_the_output_does_not_support_is_replaced_by_the_output(workspace, store):
    agent, _, shell = make_agent(["```bash\ncat app.conf\n```", "```answer\nThe port in server.ini is 9090.\n```"],
                                 workspace, store)
    with shell:
        result = agent.run("what port")
    assert result.answer == "`cat app.conf` printed:\nname = zeta\nport = 8123"
    assert store.get_episode(result.episode_id)["answer"] == result.answer


def test_a_program_the_shell_lacks_is_not_put_to_the_user_and_the_model_replies_again(workspace, store):
    ui = RecordingUI()
    agent, backend, shell = make_agent(["```bash\nlist reports\n```", "```bash\ncat app.conf\n```",
                                        "```answer\nThe port is 8123.\n```"], workspace, store, ui=ui)
    opened = prefills(backend)
    with shell:
        result = agent.run("what port")
    assert ui.asked == [] and result.answer == "The port is 8123."
    first = store.episode_steps(result.episode_id)[0]
    assert first["note"] == obs.no_command_marker("list") and first["status"] is None and first["trainable"] == 0
    # the search of the files for "port" read app.conf after it; the model's own `cat app.conf` would read it
    # again, so it is asked for its answer instead
    assert [s["command"] for s in result.steps] == ["list reports", "cat app.conf"]
    assert opened == ["```bash\n", "```", "```answer\n"]


def test_a_writer_or_a_known_program_is_still_asked_about(workspace, store):
    ui = RecordingUI()
    agent, _, shell = make_agent(["```bash\nfrobnicate > out.txt\n```"], workspace, store, ui=ui)
    with shell:
        shell.run("frob() { :; }")  # a shell function is a command too
        agent2, _, _ = make_agent(["```bash\nfrob reports\n```"], workspace, store, ui=RecordingUI())
        agent2.shell = shell
        assert agent.run("write out").status == "declined" and ui.asked == ["frobnicate > out.txt"]
        assert agent2.run("frob").status == "declined" and agent2.ui.asked == ["frob reports"]


def test_parse_reply():
    assert parse_reply("```bash\ncat a.txt\n```") == ("command", "cat a.txt")
    assert parse_reply("Let me look.\n```sh\n$ ls -la\n```\nthen more") == ("command", "ls -la")
    assert parse_reply("```answer\nThe port is 8123.\n```") == ("answer", "The port is 8123.")
    assert parse_reply("```bash\ncat a.txt") == ("command", "cat a.txt")  # unclosed at the token limit
    for bad in ("I think it is 8123", "```bash\n\n```", "```python\nprint(1)\n```", ""):
        with pytest.raises(FormatError):
            parse_reply(bad)


def test_lookup_then_answer_is_recorded_as_the_updater_sees_it(workspace, store):
    ui = RecordingUI()
    agent, backend, shell = make_agent(
        ["```bash\ncat app.conf\n```", "```answer\nport 8123\n```"], workspace, store, ui=ui
    )
    with shell:
        result = agent.run("what port does the app use")
    assert result.status == "done" and result.answer == "port 8123"
    assert ui.asked == []  # read-only: never asks
    steps = store.episode_steps(result.episode_id)
    assert len(steps) == 1
    step = steps[0]
    assert step["command"] == "cat app.conf" and step["output"] == "name = zeta\nport = 8123\n"
    assert step["status"] == "[exit 0]" and step["kind"] == "retrieval" and step["trainable"] == 1
    assert step["reply"] == "```bash\ncat app.conf\n```"
    episode = store.get_episode(result.episode_id)
    assert episode["status"] == "done" and episode["answer"] == "port 8123"
    # The model's second call saw exactly the messages the transcript renders from the store.
    _, seen = policy_calls(backend)[1]
    rendered = [m.to_dict() for m in render_episode(episode, steps)]
    assert seen == rendered
    assert seen[-1] == {"role": "tool", "content": "name = zeta\nport = 8123\n[exit 0]"}
    assert "".join(ui.tokens).startswith("```bash\n")


def test_writing_command_refused_at_the_prompt(workspace, store):
    ui = RecordingUI(answers=["n"])
    agent, backend, shell = make_agent(
        ["```bash\nrm app.conf\n```", "```answer\nI did not delete it.\n```"], workspace, store, ui=ui
    )
    with shell:
        result = agent.run("delete the config")
    assert ui.asked == ["rm app.conf"] and (workspace / "app.conf").exists()
    step = store.episode_steps(result.episode_id)[0]
    assert step["note"] == obs.DECLINED_MARKER and step["status"] is None and step["trainable"] == 0
    assert step["kind"] == "action"
    # Nothing else to do was given: the episode ends there, and the model is not asked again.
    assert result.status == "declined" and result.answer is None and len(policy_calls(backend)) == 1
    assert store.get_episode(result.episode_id)["status"] == "declined"


def test_after_a_no_the_users_words_lead_and_the_same_action_is_never_proposed_again(workspace, store):
    ui = RecordingUI(answers=["n"], instead=["just show me how big it is"])
    agent, backend, shell = make_agent(["```bash\nrm app.conf\n```", "```bash\nrm -f app.conf\n```"], workspace,
                                       store, ui=ui)
    with shell:
        result = agent.run("delete the config")
    assert ui.asked == ["rm app.conf"] and (workspace / "app.conf").exists()  # `rm -f app.conf`: not asked again
    assert result.status == "declined"
    declined, words = store.episode_steps(result.episode_id)
    assert words["author"] == "human" and words["reply"] == "just show me how big it is" and words["trainable"] == 0
    seen = policy_calls(backend)[1][1]
    assert seen[-3:] == [{"role": "assistant", "content": "```bash\nrm app.conf\n```"},
                         {"role": "tool", "content": obs.DECLINED_MARKER},
                         {"role": "user", "content": "just show me how big it is"}]
    msgs = render_episode(store.get_episode(result.episode_id), [declined, words])
    assert msgs[-1].role == "user" and msgs[-1].env_spans == []  # the user's words are never labelled


def test_what_the_user_asks_instead_is_done(workspace, store):
    ui = RecordingUI(answers=["n"], instead=["count its lines instead"])
    agent, _, shell = make_agent(["```bash\nrm app.conf\n```", "```bash\nwc -l app.conf\n```",
                                  "```answer\nIt has 2 lines.\n```"], workspace, store, ui=ui)
    with shell:
        result = agent.run("delete the config")
    assert result.status == "done" and result.answer == "It has 2 lines." and (workspace / "app.conf").exists()
    assert [s["command"] for s in result.steps] == ["rm app.conf", None, "wc -l app.conf"]


def test_yes_still_refuses_the_deny_list(workspace, store):
    ui = RecordingUI(answers=["y"])
    agent, _, shell = make_agent(
        ["```bash\nrm -rf /\n```", "```answer\nno\n```"], workspace, store, ui=ui, yes=True
    )
    with shell:
        result = agent.run("wipe everything")
    step = store.episode_steps(result.episode_id)[0]
    assert step["note"] == obs.DENIED_MARKER and step["output"] == "" and ui.asked == []


def test_approved_and_edited_commands_run(workspace, store):
    ui = RecordingUI(answers=["y", "e:touch edited.txt"])
    agent, _, shell = make_agent(
        ["```bash\ntouch made.txt\n```", "```bash\ntouch other.txt\n```", "```answer\ndone\n```"],
        workspace,
        store,
        ui=ui,
    )
    with shell:
        agent.run("make files")
    assert (workspace / "made.txt").exists() and (workspace / "edited.txt").exists()
    assert not (workspace / "other.txt").exists()


def test_format_error_becomes_a_harness_warning(workspace, store):
    agent, backend, shell = make_agent(
        ["I am not sure what to do.", "```answer\n8123\n```"], workspace, store, prefill=False
    )
    with shell:
        result = agent.run("what port")
    step = store.episode_steps(result.episode_id)[0]
    assert step["command"] is None and step["reply"] == "I am not sure what to do."
    _, seen = policy_calls(backend)[1]
    assert seen[-1] == {"role": "tool", "content": obs.FORMAT_WARNING}
    messages = render_episode(store.get_episode(result.episode_id), [step])
    assert messages[-1].env_spans == []  # never trained on


def test_step_limit(workspace, store):
    agent, _, shell = make_agent(["```bash\nls\n```", "```bash\nls -a\n```", "```bash\npwd\n```"], workspace,
                                 store, max_steps=3)
    with shell:
        result = agent.run("loop forever")
    assert result.status == "limit" and len(result.steps) == 3
    assert store.get_episode(result.episode_id)["status"] == "limit"


def test_command_timeout_is_an_observation(workspace, store):
    agent, backend, shell = make_agent(
        ["```bash\necho start; sleep 20\n```", "```answer\nit hung\n```"], workspace, store, command_timeout=1
    )
    with shell:
        result = agent.run("run the slow thing")
    step = store.episode_steps(result.episode_id)[0]
    # SIGINT ends `sleep` (130); on a loaded machine the sentinel may come after the grace and SIGKILL (137) ends it.
    assert step["timed_out"] == 1 and re.fullmatch(r"\[exit 1(30|37), interrupted after 1(\.\d)? s\]", step["status"])
    # A SIGKILL'd job also leaves bash's own "Killed" line in the output, as a terminal shows it.
    killed = "Killed\n" if step["status"].startswith("[exit 137") else ""
    assert policy_calls(backend)[1][1][-1]["content"] in (f"start\n\n{obs.TIMEOUT_MARKER}\n{step['status']}",
                                                          f"start\n{killed}{obs.TIMEOUT_MARKER}\n{step['status']}")


def test_adapter_switch_between_episodes(workspace, store, tmp_path):
    current = {"value": (None, None)}
    shell = ShellSession(cwd=workspace)
    backend = ScriptedBackend(["```answer\na\n```", "```answer\nb\n```", "```answer\nc\n```"])
    agent = Agent(backend, shell, store, adapter=lambda: current["value"], config=AgentConfig(prefill=False))
    with shell:
        first = agent.run("q1")
        current["value"] = ("a0001", tmp_path / "a0001")
        second = agent.run("q2")
        third = agent.run("q3")
    assert backend.adapters_used == [tmp_path / "a0001"]  # switched once, at the start of the second episode
    assert store.get_episode(first.episode_id)["adapter_id"] is None
    assert store.get_episode(second.episode_id)["adapter_id"] == "a0001"
    assert store.get_episode(third.episode_id)["adapter_id"] == "a0001"


def test_chat_turns_are_linked_and_rendered_in_order(workspace, store):
    agent, backend, shell = make_agent(
        ["```bash\ncat app.conf\n```", "```answer\n8123\n```", "```answer\nzeta\n```"], workspace, store
    )
    with shell:
        first = agent.run("what port")
        second = agent.run("and the name?", parent_episode_id=first.episode_id)
    assert store.get_episode(second.episode_id)["parent_episode_id"] == first.episode_id
    _, seen = policy_calls(backend)[2]
    contents = [m["content"] for m in seen]
    assert contents[-1] == "and the name?" and "8123" in contents and "what port" in contents
    assert contents.index("what port") < contents.index("8123") < contents.index("and the name?")


def test_no_record_leaves_the_store_empty(workspace, isolated_home):
    shell = ShellSession(cwd=workspace)
    agent = Agent(ScriptedBackend(["```bash\ncat app.conf\n```", "```answer\nx\n```"]), shell, None)
    with shell:
        result = agent.run("what port")
    assert (
        result.status == "done" and result.episode_id is None and result.steps[0]["output"].startswith("name")
    )
    assert not (isolated_home / "store.db").exists()


def test_fit_context_keeps_prompt_task_and_newest_steps():
    earlier = ({"task": "old task", "answer": "old answer", "prompt": [{"role": "system", "content": "S"}]}, [])
    steps = [{"id": c, "reply": c * 100, "command": "ls", "output": c * 100, "status": "[exit 0]"} for c in "abc"]
    steps.insert(2, {"id": "h", "author": "human", "reply": "h" * 50, "command": None})  # one message, not two
    context = build_context([{"role": "system", "content": "S"}], "task", steps, [earlier])
    assert context.step_starts == [4, 6, 8, 9] and context.prefix == 4
    out = fit_context(context, 1, budget_chars=400)
    assert out[0]["content"] == "S" and out[1]["content"] == "task"
    assert [m["content"][0] for m in out[2:]] == ["h", "c", "c"] and out[2]["role"] == "user"
    assert len(fit_context(context, 1, budget_chars=10)) == 4  # the newest step always stays
    assert len(fit_context(context, 1, budget_chars=10_000)) == 11


def test_a_reply_that_repeats_a_line_is_cut_short(workspace, store):
    looping = "```answer\nThe port is 8123.\nThe port is 8123.\nThe port is 8123.\nThe port is 8123.\n```"
    agent, backend, shell = make_agent(["```bash\ncat app.conf\n```", looping], workspace, store, prefill=False)
    with shell:
        result = agent.run("what port")
    assert result.status == "done" and result.answer == "The port is 8123.\nThe port is 8123."


def test_policy_and_a_separate_predictor_both_follow_the_adapter_in_use(workspace, store, tmp_path):
    current = {"value": ("a0001", tmp_path / "a0001")}
    policy = ScriptedBackend(["```answer\na\n```", "```answer\nb\n```"])
    predictor = ScriptedBackend([])
    shell = ShellSession(cwd=workspace)
    agent = Agent(policy, shell, store, predictor=predictor, adapter=lambda: current["value"],
                  config=AgentConfig(prefill=False, prompt=[{"role": "system", "content": "short"}]))
    with shell:
        first = agent.run("q1")
        agent.predictor.score([], "tool", "x")  # a backend switches when it is next used: a recall would
        current["value"] = (None, None)
        agent.run("q2")
        agent.predictor.score([], "tool", "x")
    assert policy.adapters_used == predictor.adapters_used == [tmp_path / "a0001", None]
    assert store.get_episode(first.episode_id)["prompt"] == {"messages": [{"role": "system", "content": "short"}]}


def test_the_policy_and_the_predictor_run_their_own_adapters_on_one_backend(workspace, store, tmp_path):
    """A promoted adapter that failed the gate's policy check recalls, while an older one chooses and answers."""
    backend = ScriptedBackend(["```answer\na\n```", "x"])
    shell = ShellSession(cwd=workspace)
    agent = Agent(backend, shell, store, adapter=lambda: ("a0002", tmp_path / "a0002"),
                  policy_adapter=lambda: ("a0001", tmp_path / "a0001"),
                  config=AgentConfig(prefill=False, prompt=[{"role": "system", "content": "short"}]))
    with shell:
        first = agent.run("q1")
        assert backend.adapters_used == [tmp_path / "a0001"]  # the answer came from the adapter that chooses
        agent.predictor.generate([{"role": "user", "content": "q"}], role="tool")
        agent.policy.score([], "assistant", "y")
    assert backend.adapters_used == [tmp_path / "a0001", tmp_path / "a0002", tmp_path / "a0001"]
    assert store.get_episode(first.episode_id)["adapter_id"] == "a0002"  # the episode names the adapter recalling


def test_a_task_with_an_undecodable_byte_reaches_model_and_store_as_a_replacement_character(workspace, store):
    """`echo-agent ask $'\\xff'` gives Python a lone surrogate, which a tokenizer and SQLite both refuse."""
    agent, backend, shell = make_agent(["```bash\ncat app.conf\n```", "```answer\nnothing\n```"], workspace, store)
    with shell:
        result = agent.run("what is in \udcff")
    assert result.status == "done"
    assert store.get_episode(result.episode_id)["task"] == "what is in \ufffd"
    sent = repr(policy_calls(backend))
    assert "what is in \ufffd" in sent and "\udcff" not in sent
