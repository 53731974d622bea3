"""`echo-agent stats`: look-ups per repeated task, recall precision and adapter history from a store."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from echo_agent.cli import app
from echo_agent.memory.adapters import insert_adapter
from echo_agent.memory.store import TrajectoryStore
from echo_agent.stats import adapter_history, collect, lookup_history, plot_stats, recall_precision


def _episode(store, session, task, steps, answer="1"):
    eid = store.start_episode(session, task, [])
    for s in steps:
        store.record_step(eid, reply=f"```bash\n{s.get('command', 'cat a')}\n```", command=s.get("command", "cat a"),
                          output="port = 1\n", status="[exit 0]", kind=s.get("kind", "retrieval"),
                          source=s.get("source", "executed"), verified=s.get("verified"),
                          confidence_min=s.get("confidence_min"))
    store.finish_episode(eid, "done", answer)
    return eid


@pytest.fixture
def store(isolated_home):
    with TrajectoryStore(isolated_home / "store.db") as s:
        sid = s.start_session()
        # "What port?" three times: 2 look-ups, then 1 look-up + 1 recall, then 2 recalls.
        _episode(s, sid, "What port?", [{}, {}])
        _episode(s, sid, "what   PORT?", [{"confidence_min": -0.05, "verified": 1},  # a verified recall: right
                                         {"source": "recalled", "confidence_min": -0.1}])
        _episode(s, sid, "what port?", [{"source": "recalled", "confidence_min": -0.1},
                                        {"source": "recalled", "confidence_min": -0.3}])
        _episode(s, sid, "once only", [{}, {"kind": "action", "command": "touch x"}])
        _episode(s, sid, "who owns it", [{"confidence_min": -0.05, "verified": 0}])  # a verified recall: wrong
        _episode(s, sid, "who owns it", [{"confidence_min": -3.0, "verified": 0}])  # not confident: not a recall
        insert_adapter(s, id="a0001", status="promoted", n_env_tokens=50,
                         metrics={"heldout_ce": {"base": 2.0, "current": 2.0, "candidate": 1.2}, "probe_rise": 0.01})
        insert_adapter(s, id="a0002", status="rejected", n_env_tokens=20,
                         metrics={"heldout_ce": {"base": 2.0, "current": 1.2, "candidate": 1.19},
                                  "retention": {"known": 10, "lost": 4, "lost_fraction": 0.4}})
        yield s


def test_look_ups_per_repeated_task_over_time(store):
    tasks = lookup_history(store)
    assert [t["task"] for t in tasks] == ["what port?", "who owns it"]  # "once only" is not repeated
    port = tasks[0]
    assert [e["executed"] for e in port["episodes"]] == [2, 1, 0]
    assert [e["recalled"] for e in port["episodes"]] == [0, 1, 2]
    assert port["first_executed"] == 2 and port["last_executed"] == 0 and port["recalled_total"] == 3
    assert [t["task"] for t in lookup_history(store, min_episodes=1)][-1] == "once only"


def test_answers_by_source_are_checked_against_the_answer_last_looked_up(isolated_home, tmp_path):
    with TrajectoryStore(tmp_path / "split.db") as s:
        sid = s.start_session()
        _episode(s, sid, "who owns it", [], answer="nobody")  # from memory, with no known answer yet
        _episode(s, sid, "what port?", [{}], answer="The port is 1.")  # looked up: the known answer
        _episode(s, sid, "what port?", [{"source": "recalled"}], answer="the port is 1")  # agrees
        _episode(s, sid, "what port?", [], answer="The port is 9.")  # from memory, wrong
        _episode(s, sid, "who owns it", [{}], answer="ana")
        tasks = {t["task"]: t for t in lookup_history(s)}
        port = tasks["what port?"]
        assert [(e["source"], e["agrees"]) for e in port["episodes"]] == [
            ("executed", None), ("recall", True), ("memory", False)]
        assert port["answers"] == {"memory": 1, "recall": 1, "executed": 1} and (port["agreed"], port["checked"]) == (1, 2)
        assert [e["agrees"] for e in tasks["who owns it"]["episodes"]] == [None, None]
        stats = collect(s)
        assert stats["answers"] == {"memory": 2, "recall": 1, "executed": 2, "checked": 2, "agreed": 1,
                                    "accuracy": 0.5}
        assert plot_stats(stats, tmp_path / "split.png").stat().st_size > 1000
    table = CliRunner().invoke(app, ["stats", "--db", str(tmp_path / "split.db")])
    assert table.exit_code == 0, table.output
    out = " ".join(table.output.split())
    assert "2 from memory, 1 from recall, 2 from executed look-ups" in out and "1/2 = 50% agree" in out


def test_recall_precision_counts_only_confident_verified_predictions(store):
    r = recall_precision(store)
    assert r["recalled"] == 3 and r["verified"] == 2 and r["verified_right"] == 1 and r["precision"] == 0.5


def test_adapter_history_reads_the_stored_metrics(store):
    ads = adapter_history(store)
    assert [(a["id"], a["status"], a["heldout_ce"], a["heldout_ce_before"]) for a in ads] == [
        ("a0001", "promoted", 1.2, 2.0), ("a0002", "rejected", 1.19, 1.2)]
    assert [(a["recalls_lost"], a["recalls_known"]) for a in ads] == [(None, None), (4, 10)]


def test_plot_and_empty_store(store, isolated_home, tmp_path):
    assert plot_stats(collect(store), tmp_path / "s.png").stat().st_size > 1000
    with TrajectoryStore(tmp_path / "empty.db") as empty:
        stats = collect(empty)
        assert stats["tasks"] == [] and stats["adapters"] == [] and stats["recall"]["precision"] is None
        assert plot_stats(stats, tmp_path / "e.png").exists()


def test_stats_cli_json_table_and_plot(store, isolated_home, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["stats", "--json", "--plot", str(tmp_path / "p.png")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["recall"]["precision"] == 0.5 and len(data["tasks"]) == 2 and (tmp_path / "p.png").exists()
    table = runner.invoke(app, ["stats"])
    assert table.exit_code == 0
    assert "what port?" in table.output and "2 1 0" in table.output and "1/2 = 50%" in table.output
    assert "a0002" in table.output
    bad = tmp_path / "bad.db"
    bad.write_text("not a database")
    broken = runner.invoke(app, ["stats", "--db", str(bad)])
    assert broken.exit_code == 1 and "not a usable echo-agent store" in broken.output


def test_calibration_gives_precision_and_coverage_per_threshold(isolated_home):
    from echo_agent.memory.store import TrajectoryStore
    from echo_agent.stats import calibration

    with TrajectoryStore(isolated_home / "calib.db") as store:
        eid = store.start_episode(store.start_session(), "t", [])
        for conf, right in [(-0.01, 1), (-0.2, 1), (-0.3, 0), (-2.5, 0), (-4.0, 1)]:
            store.record_step(eid, reply="r", command="cat x", output="x\n", status="[exit 0]", kind="retrieval",
                              predicted_output="x\n[exit 0]", confidence_min=conf, verified=right)
        curve = {row["threshold"]: row for row in calibration(store, (-0.1, -0.5, -5.0))}
    assert curve[-0.1]["covered"] == 1 and curve[-0.1]["precision"] == 1.0
    assert curve[-0.5]["covered"] == 3 and curve[-0.5]["precision"] == 2 / 3
    assert curve[-5.0]["coverage"] == 1.0 and curve[-5.0]["precision"] == 3 / 5
