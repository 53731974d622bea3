"""`echo-agent update`, `adapters …` and the background updater, through the CLI."""

from __future__ import annotations

import json
import time

import pytest
from test_updater import FILES, record_lookups
from typer.testing import CliRunner

from echo_agent.cli import app
from echo_agent.errors import UpdaterError
from echo_agent.memory.adapters import list_adapters
from echo_agent.memory.store import TrajectoryStore
from echo_agent.updater import daemon

runner = CliRunner()


@pytest.fixture
def tiny_home(isolated_home, tiny_model_dir, tmp_path):
    """A home whose configured model is the tiny one, with a gate that accepts any candidate."""
    (isolated_home / "config.toml").write_text(
        f'model = "{tiny_model_dir}"\ngate_margin = -10.0\nretention_tolerance = 1.0\npolicy_tolerance = 1.0\n')
    return isolated_home


def test_update_on_an_empty_store_says_so(tiny_home):
    result = runner.invoke(app, ["update"])
    assert result.exit_code == 0 and "no new trainable steps" in result.output


def test_update_then_list_show_rollback(tiny_home, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    with TrajectoryStore() as store:
        record_lookups(store, ws, FILES, rounds=2)
    result = runner.invoke(app, ["update", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "a0001 promoted" in result.output and "held-out env CE" in result.output
    listed = runner.invoke(app, ["adapters", "list"])
    assert "a0001" in listed.output and "promoted" in listed.output and "▶" in listed.output
    as_json = json.loads(runner.invoke(app, ["adapters", "list", "--json"]).output)
    assert [a["id"] for a in as_json] == ["a0001"] and as_json[0]["metrics"]["heldout_ce"]["candidate"] > 0
    shown = runner.invoke(app, ["adapters", "show", "a0001"])
    assert '"base_hash"' in shown.output and '"versions"' in shown.output
    # A transformers model: no llama.cpp export is written at promotion; show says it is not there yet.
    assert json.loads(shown.output)["llamacpp_export"].startswith("not yet (written when the llamacpp backend")
    rolled = runner.invoke(app, ["adapters", "rollback"])
    assert rolled.exit_code == 0 and "now in use: the base model" in rolled.output
    again = runner.invoke(app, ["adapters", "rollback"])
    assert again.exit_code == 1 and "no promoted adapter" in again.output
    assert runner.invoke(app, ["adapters", "promote", "a0001"]).exit_code == 0
    missing = runner.invoke(app, ["adapters", "promote", "a0042"])
    assert missing.exit_code == 1 and "no adapter a0042" in missing.output


def test_the_starter_is_listed_shown_and_taken_back_to(tiny_home, tiny_starter, tmp_path):
    listed = runner.invoke(app, ["adapters", "list"])
    assert "starter" in listed.output and "shipped" in listed.output and "▶" in listed.output
    assert "5.00→4.00" in listed.output
    shown = json.loads(runner.invoke(app, ["adapters", "show", "starter"]).output)
    assert shown["metadata"]["starter"] is True and shown["record"]["path"] == str(tiny_starter)
    none = runner.invoke(app, ["adapters", "rollback"])
    assert none.exit_code == 1 and "the starter adapter" in none.output and "is in use" in none.output
    ws = tmp_path / "ws"
    ws.mkdir()
    with TrajectoryStore() as store:
        record_lookups(store, ws, FILES, rounds=2)
    assert "a0001 promoted" in runner.invoke(app, ["update", "--epochs", "1"]).output
    as_json = json.loads(runner.invoke(app, ["adapters", "list", "--json"]).output)
    assert [(a["id"], a["parent_id"]) for a in as_json] == [("starter", None), ("a0001", "starter")]
    rolled = runner.invoke(app, ["adapters", "rollback"])
    assert rolled.exit_code == 0 and "now in use: the starter adapter" in rolled.output


def test_a_starter_switched_off_is_not_listed(tiny_home, tiny_starter):
    with open(tiny_home / "config.toml", "a") as f:
        f.write("starter_adapter = false\n")
    assert "starter" not in runner.invoke(app, ["adapters", "list"]).output
    shown = json.loads(runner.invoke(app, ["adapters", "show", "starter"]).output)
    assert shown["record"]["status"].startswith("not in use")


def test_daemon_waits_for_running_episodes_then_trains(tiny_home, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    with TrajectoryStore() as store:
        record_lookups(store, ws, FILES, rounds=2)
        busy = store.start_episode(store.start_session(kind="human"), "still typing", [])  # our pid: alive
    pid = daemon.start(tiny_home, interval=0.2, min_new_tokens=1)
    try:
        assert daemon.status(tiny_home).running and daemon.status(tiny_home).pid == pid
        with pytest.raises(UpdaterError, match="already running"):
            daemon.start(tiny_home)
        time.sleep(2)
        with TrajectoryStore() as store:
            assert list_adapters(store) == []  # an episode is running: no training
            store.finish_episode(busy, "done")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with TrajectoryStore() as store:
                if any(a["status"] == "promoted" for a in list_adapters(store)):
                    break
            time.sleep(0.5)
        else:
            pytest.fail("the daemon did not train:\n" + (tiny_home / "updater.log").read_text())
        time.sleep(2)  # ten more polls: what is left after the cycle is too little, and is not retried each time
        log = (tiny_home / "updater.log").read_text()
        assert log.count("starting a cycle") <= 2 and "Loading weights" not in log, log
        status = runner.invoke(app, ["updater", "status"])
        assert "running (pid" in status.output and "cycle promoted" in status.output
    finally:
        assert daemon.stop(tiny_home)
    assert not daemon.status(tiny_home).running
    assert runner.invoke(app, ["updater", "stop"]).output.strip() == "the updater was not running"


def test_the_report_after_two_cycles_lists_them_with_totals_and_a_plot(tiny_home, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    with TrajectoryStore() as store:
        record_lookups(store, ws, FILES, rounds=2)
    assert runner.invoke(app, ["update", "--epochs", "1"]).exit_code == 0
    with TrajectoryStore() as store:
        record_lookups(store, ws, {"extra.conf": "mode = fast\n"}, rounds=2)
    assert runner.invoke(app, ["update", "--epochs", "1"]).exit_code == 0
    text = runner.invoke(app, ["updater", "report", "--plot", str(tmp_path / "r.png")])
    assert text.exit_code == 0 and "update cycles: 2" in text.output and "#1 " in text.output
    assert "held-out env CE" in text.output and "total: 2 promoted" in text.output
    assert (tmp_path / "r.png").stat().st_size > 1000
    report = json.loads(runner.invoke(app, ["updater", "report", "--json"]).output)
    assert [c["status"] for c in report["cycles"]] == ["promoted", "promoted"]
    assert report["totals"]["tokens_trained"] == sum(c["trained"]["tokens"] for c in report["cycles"]) > 0
    assert all(c["trigger"] == "by hand" and c["cpu_s"] > 0 for c in report["cycles"])
    assert report["totals"]["recallable_gained"] == len(report["recallable"]["gained"])
    future = json.loads(runner.invoke(app, ["updater", "report", "--json", "--since", "2999-01-01"]).output)
    assert future["empty"] and "nothing to report" in runner.invoke(
        app, ["updater", "report", "--since", "2999-01-01"]).output
    status = runner.invoke(app, ["updater", "status"]).output
    assert "last cycle: #2 promoted" in status
