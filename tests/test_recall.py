"""World-model recall in the agent loop, with a scripted predictor through the real shell and store."""

from __future__ import annotations

import pytest
from test_agent import RecordingUI

from echo_agent import observation as obs
from echo_agent import recall
from echo_agent.agent import Agent, AgentConfig
from echo_agent.memory.store import TrajectoryStore
from echo_agent.models.base import Generation
from echo_agent.models.scripted import ScriptedBackend
from echo_agent.shell import ShellSession
from echo_agent.transcript import render_episode

CONF = "name = zeta\nport = 8123\n"


class CountingShell(ShellSession):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.ran: list[str] = []

    def run(self, command, timeout=30.0):
        self.ran.append(command)
        return super().run(command, timeout)


@pytest.fixture
def ws(tmp_path):
    d = tmp_path / "ws"
    d.mkdir()
    (d / "app.conf").write_text(CONF)
    return d


@pytest.fixture
def store(isolated_home):
    with TrajectoryStore(isolated_home / "store.db") as s:
        yield s


def run_episode(ws, store, predictions, replies=None, ui=None, history=2, **config):
    """One episode; before it, `history` runs of its first command without recall (a command is recalled only
    once its newest runs agree: Settings.recall_min_runs, 2 by default)."""
    replies = replies or ["```bash\ncat app.conf\n```", "```answer\n8123\n```"]
    with CountingShell(cwd=ws) as shell:
        for _ in range(history):
            Agent(ScriptedBackend(replies[:1] + ["```answer\nseen\n```"]), shell, store,
                  config=AgentConfig(examples=0, recall=False), ui=RecordingUI()).run("earlier")
        shell.ran.clear()
        backend = ScriptedBackend(replies, predictions)
        agent = Agent(backend, shell, store, config=AgentConfig(examples=0, **config), ui=ui or RecordingUI())
        result = agent.run("what port")
    return result, shell, store.episode_steps(result.episode_id)


def test_confident_prediction_is_recalled_and_the_shell_is_not_touched(ws, store):
    result, shell, steps = run_episode(ws, store, {"cat app.conf": (CONF + "[exit 0]", -0.01)},
                                       recall_threshold=-0.5, verify="none")
    assert shell.ran == []
    step = steps[0]
    assert step["source"] == "recalled" and step["trainable"] == 0 and step["kind"] == "retrieval"
    assert step["output"] == CONF and step["status"] == "[exit 0]" and step["exit_code"] == 0
    assert step["confidence_min"] == pytest.approx(-0.01) and step["confidence"] == step["confidence_min"]
    messages = render_episode(store.get_episode(result.episode_id), steps)
    assert messages[-1].content.startswith(obs.RECALL_MARKER + "\n") and messages[-1].env_spans == []


def test_a_recalled_look_up_asked_for_again_asks_for_the_answer_instead(ws, store):
    again = ["```bash\ncat app.conf\n```", "```bash\ncat app.conf\n```", "```answer\n8123\n```"]
    result, shell, steps = run_episode(ws, store, {"cat app.conf": (CONF + "[exit 0]", -0.01)}, replies=again,
                                       recall_threshold=-0.5, verify="none")
    assert shell.ran == [] and [s["source"] for s in steps] == ["recalled"] and result.answer.startswith("8123")


@pytest.mark.parametrize("history", [0, 1])
def test_a_command_seen_fewer_times_than_recall_min_runs_is_run_not_predicted(ws, store, history):
    _, shell, steps = run_episode(ws, store, {"cat app.conf": (CONF + "[exit 0]", -0.01)}, history=history,
                                  recall_threshold=-0.5, verify="none")
    assert shell.ran == ["cat app.conf"]
    assert steps[0]["source"] == "executed" and steps[0]["predicted_output"] is None


def test_a_command_whose_output_changed_is_not_recalled_until_it_is_stable_again(ws, store):
    run_episode(ws, store, {}, history=1, recall=False)
    (ws / "app.conf").write_text(CONF + "debug = on\n")
    _, shell, steps = run_episode(ws, store, {"cat app.conf": (CONF + "debug = on\n[exit 0]", -0.01)}, history=1,
                                  recall_threshold=-0.5, verify="none")
    assert shell.ran == ["cat app.conf"] and steps[0]["source"] == "executed"  # its two newest runs disagree
    _, shell, steps = run_episode(ws, store, {"cat app.conf": (CONF + "debug = on\n[exit 0]", -0.01)}, history=0,
                                  recall_threshold=-0.5, verify="none")
    assert shell.ran == [] and steps[0]["source"] == "recalled"  # now they agree


def test_recent_runs_match_the_exact_command_in_the_same_directory(store, tmp_path):
    from echo_agent.shell.result import ShellResult

    sid = store.start_session()
    ep = store.start_episode(sid, "t", [])

    def ran(command, output, cwd="/srv", source="executed"):
        r = ShellResult(command, output, "[exit 0]", "", 0, cwd, cwd, "2026-01-01T00:00:00+00:00", 1, False, False,
                        len(output))
        store.record_step(ep, reply="", command=command, result=r, source=source)

    ran("cat a.conf", "one\n")
    ran("cat a.conf", "two\n")
    ran("cat a.conf | head", "x\n")
    ran("cat a.conf", "elsewhere\n", cwd="/tmp")
    ran("cat a.conf", "guess\n", source="recalled")
    ran("curl -H 'Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123' x", "secret\n")
    assert store.recent_runs("cat a.conf", "/srv", 5) == [("two\n", "[exit 0]"), ("one\n", "[exit 0]")]
    assert store.recent_runs("cat a.conf", "/srv", 5, window=5) == [("two\n", "[exit 0]")]  # the newest 5 steps
    assert store.recent_runs("cat a.conf", "/srv", 1) == [("two\n", "[exit 0]")]
    assert store.recent_runs("cat a.conf", "/tmp", 5) == [("elsewhere\n", "[exit 0]")]
    assert store.recent_runs("cat", "/srv", 5) == [] and store.recent_runs("|", "/srv", 5) == []
    assert store.recent_runs("curl -H 'Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123' x", "/srv", 5) == []


def test_the_weakest_token_decides_not_the_mean(ws, store):
    # Every token near-certain but one: the mean looks confident, the minimum does not.
    text = CONF + "[exit 0]"
    n = len(text.split())
    lps = [-0.001] * n
    lps[5] = -4.0  # the port number
    result, shell, steps = run_episode(ws, store, {"cat app.conf": (text, lps)}, recall_threshold=-1.0)
    assert shell.ran == ["cat app.conf"]
    step = steps[0]
    assert step["source"] == "executed" and step["confidence_min"] == pytest.approx(-4.0)
    assert step["confidence_mean"] > -1.0  # the misleading average
    assert step["predicted_output"] is not None  # stopped early at the weak token: not usable


def test_verification_runs_the_command_and_records_the_comparison(ws, store):
    _, shell, steps = run_episode(ws, store, {"cat app.conf": ("name = zeta\nport = 9999\n[exit 0]", -0.01)},
                                  recall_threshold=-0.5, verify="sample", verify_fraction=1.0)
    assert shell.ran == ["cat app.conf"]
    step = steps[0]
    assert step["source"] == "executed" and step["trainable"] == 1 and step["output"] == CONF
    assert step["verified"] == 0 and 0 < step["verify_f1"] < 1
    _, _, steps = run_episode(ws, store, {"cat app.conf": (CONF + "[exit 0]", -0.01)},
                              recall_threshold=-0.5, verify="sample", verify_fraction=1.0)
    assert steps[0]["verified"] == 1 and steps[0]["verify_f1"] == 1.0


def test_verify_all_predicts_and_executes_every_retrieval(ws, store):
    _, shell, steps = run_episode(ws, store, {"cat app.conf": (CONF + "[exit 0]", -3.0)},
                                  recall_threshold=-0.5, verify="all")
    assert shell.ran == ["cat app.conf"]
    assert steps[0]["verified"] == 1 and steps[0]["confidence_min"] == pytest.approx(-3.0)


def test_recall_never_applies_to_a_command_that_is_not_read_only(ws, store):
    replies = ["```bash\ntouch made.txt\n```", "```answer\ndone\n```"]
    ui = RecordingUI(answers=["y"])
    _, shell, steps = run_episode(ws, store, {"touch made.txt": ("[exit 0]", 0.0)}, replies=replies, ui=ui,
                                  recall_threshold=-10.0, verify="none")
    assert shell.ran == ["touch made.txt"] and (ws / "made.txt").exists()
    assert steps[0]["source"] == "executed" and steps[0]["kind"] == "action"


def test_no_recall_runs_everything(ws, store):
    _, shell, steps = run_episode(ws, store, {"cat app.conf": (CONF + "[exit 0]", 0.0)}, recall=False)
    assert shell.ran == ["cat app.conf"] and steps[0]["predicted_output"] is None


def test_predict_before_approve_shows_a_prediction_then_asks_again(ws, store):
    replies = ["```bash\nrm app.conf\n```", "```answer\nkept\n```"]
    ui = RecordingUI(answers=["p", "n"])
    _, shell, steps = run_episode(ws, store, {"rm app.conf": ("[exit 0]", -0.2)}, replies=replies, ui=ui)
    assert ui.asked == ["rm app.conf", "rm app.conf"] and shell.ran == []
    assert ui.predictions[0].status == "[exit 0]" and (ws / "app.conf").exists()
    assert steps[0]["note"] == obs.DECLINED_MARKER


def test_prediction_stops_after_every_kind_of_status_line():
    from echo_agent.models.base import find_stop

    for status in ("[exit 0]", "[exit 3, shell restarted]", "[no exit code: shell restarted]",
                   "[exit 1, interrupted after 2 s]"):
        text = f"out\n{status}\nmore"
        assert find_stop(text, recall.STATUS_STOPS) == len(f"out\n{status}"), status


def test_parse_prediction_and_f1():
    p = recall.parse_prediction(Generation(f"{obs.RECALL_MARKER}\nport = 1\n[exit 0]", ["x"], [-0.1]))
    assert (p.output, p.status, p.usable) == ("port = 1\n", "[exit 0]", True)
    p = recall.parse_prediction(Generation("[exit 2]", ["x"], [-0.1]))
    assert (p.output, p.status) == ("", "[exit 2]")
    p = recall.parse_prediction(Generation("bye\n[exit 3, shell restarted]", ["x"], [-0.1]))
    assert (p.output, p.status) == ("bye\n", "[exit 3, shell restarted]")
    p = recall.parse_prediction(Generation("port = 1\nport", ["x"], [-0.1], "length"))
    assert p.status is None and not p.usable and not p.confident(-10)
    p = recall.parse_prediction(Generation("a\n[exit 0]", ["x"], [-9.0], "threshold"))
    assert not p.usable
    assert recall.token_f1("a b c", "a b c") == 1.0 and recall.token_f1("a", "b") == 0.0
    assert recall.token_f1("", "") == 1.0 and recall.token_f1("a b", "a c") == pytest.approx(0.5)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_verification_is_a_steady_share_of_confident_recalls(ws, store, fraction):
    """A systematic sample: of n confident recalls in a session, floor or ceil of n x fraction are run."""
    n = 40
    replies = ["```bash\ncat app.conf\n```", "```answer\n8123\n```"] * n
    with CountingShell(cwd=ws) as shell:
        for _ in range(2):  # a command is recalled once its newest two runs agree
            Agent(ScriptedBackend(replies[:2]), shell, store, config=AgentConfig(examples=0, recall=False),
                  ui=RecordingUI()).run("earlier")
        shell.ran.clear()
        agent = Agent(ScriptedBackend(replies, {"cat app.conf": (CONF + "[exit 0]", -0.01)}), shell, store,
                      config=AgentConfig(examples=0, recall_threshold=-0.5, verify="sample", verify_fraction=fraction,
                                         memory=False),
                      ui=RecordingUI())
        steps = [s for _ in range(n) for s in agent.run("what port").steps]
    verified = sum(s["verified"] is not None for s in steps)
    assert len(steps) == n and verified in (int(n * fraction), int(n * fraction) + 1)
    assert len(shell.ran) == verified


def test_each_session_draws_its_own_start_unless_seeded():
    from echo_agent.agent import Agent, AgentConfig

    def start(seed):
        return Agent(ScriptedBackend([]), None, None, config=AgentConfig(seed=seed))._verify_credit

    assert start(3) == start(3)
    assert len({start(None) for _ in range(5)}) == 5  # one-task sessions do not all skip the same recalls


def test_a_look_up_the_adapters_recall_check_found_wrong_is_run_under_that_adapter(ws, store):
    from echo_agent.memory import adapters, queries

    run_episode(ws, store, {}, history=2, recall=False)
    (lookup,) = queries.recallable_lookups(store, min_runs=2, limit=10)  # the newest of its agreeing runs
    assert lookup["command"] == "cat app.conf" and lookup["cwd_before"] == str(ws)
    assert queries.recallable_lookups(store, min_runs=5, limit=10) == []
    check = {"threshold": -0.5, "checked": 1, "wrong": [{"command": "cat app.conf", "cwd": str(ws),
                                                         "step_id": lookup["id"], "logprob": -0.01}]}
    adapters.insert_adapter(store, id="a0001", base_model="m", base_hash="h", path="/nowhere", status="promoted",
                            metrics={"recall_check": check})
    known = {"cat app.conf": (CONF + "[exit 0]", -0.01)}
    for adapter_id, ran in (("a0001", ["cat app.conf"]), ("starter", [])):
        with CountingShell(cwd=ws) as shell:
            agent = Agent(ScriptedBackend(["```bash\ncat app.conf\n```", "```answer\n8123\n```"], known), shell,
                          store, config=AgentConfig(examples=0, recall_threshold=-0.5, verify="none", memory=False),
                          adapter=lambda a=adapter_id: (a, None))
            steps = store.episode_steps(agent.run("what port").episode_id)
        assert shell.ran == ran and steps[0]["source"] == ("executed" if ran else "recalled")
