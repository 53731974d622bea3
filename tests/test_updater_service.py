"""`echo-agent updater install / uninstall / status / report`: the service is written, enabled and removed through
fake `systemctl`, `loginctl` and `crontab` programs on PATH that record how they were called."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from echo_agent.cli import app
from echo_agent.updater import daemon, service

runner = CliRunner()

FAKE = """#!/bin/sh
echo "$(basename "$0") $*" >> "$FAKE_LOG"
case "$(basename "$0") $*" in
  "systemctl --user show-environment") [ -n "$FAKE_SYSTEMD" ] || { echo "Failed to connect to bus" >&2; exit 1; } ;;
  *"enable --now"*) [ -z "$FAKE_ENABLE_FAILS" ] || { echo "Unit is masked" >&2; exit 1; } ;;
  "loginctl show-user"*) echo "${FAKE_LINGER:-no}" ;;
  "crontab -l") [ -f "$FAKE_CRONTAB" ] && cat "$FAKE_CRONTAB" || { echo "no crontab for user" >&2; exit 1; } ;;
  "crontab -") cat > "$FAKE_CRONTAB" ;;
esac
"""


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("systemctl", "loginctl", "crontab"):
        (bin_dir / name).write_text(FAKE)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "calls.log"
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("FAKE_CRONTAB", str(tmp_path / "crontab"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("FAKE_SYSTEMD", "1")
    return lambda: log.read_text().splitlines() if log.exists() else []


def test_install_writes_and_enables_a_user_unit_and_uninstall_removes_exactly_it(fakes, isolated_home, tmp_path):
    result = runner.invoke(app, ["updater", "install", "--window", "01:00-07:00"])
    assert result.exit_code == 0, result.output
    unit = service.unit_dir() / service.unit_name(isolated_home)
    assert unit.parent == tmp_path / "config" / "systemd" / "user" and unit.exists()
    text = unit.read_text()
    assert "--window\" \"01:00-07:00\"" in text and f'Environment="ECHO_AGENT_HOME={isolated_home}"' in text
    assert "CPUSchedulingPolicy=idle" in text and "IOSchedulingClass=idle" in text
    assert str(unit) in result.output and "loginctl enable-linger" in result.output  # the fake says Linger=no
    assert f"systemctl --user enable --now {unit.name}" in fakes()
    again = runner.invoke(app, ["updater", "install"])
    assert again.exit_code == 1 and "already installed" in again.output and len(again.output.splitlines()) == 1
    assert unit.read_text() == text
    status = runner.invoke(app, ["updater", "status"])
    assert f"installed: systemd user unit {unit.name}" in status.output and "last cycle: none yet" in status.output
    removed = runner.invoke(app, ["updater", "uninstall"])
    assert removed.exit_code == 0 and "removed systemd user unit" in removed.output
    assert not unit.exists() and not (isolated_home / service.MANIFEST).exists()
    assert f"systemctl --user disable --now {unit.name}" in fakes()
    assert "not installed" in runner.invoke(app, ["updater", "uninstall"]).output


def test_a_failing_enable_leaves_nothing_installed(fakes, isolated_home, monkeypatch):
    monkeypatch.setenv("FAKE_ENABLE_FAILS", "1")
    result = runner.invoke(app, ["updater", "install"])
    assert result.exit_code == 1 and "Unit is masked" in result.output and "nothing was installed" in result.output
    assert not (service.unit_dir() / service.unit_name(isolated_home)).exists()
    assert not (isolated_home / service.MANIFEST).exists()
    assert fakes()[-2:] == [f"systemctl --user disable --now {service.unit_name(isolated_home)}",
                            "systemctl --user daemon-reload"]


def test_a_unit_echo_agent_did_not_write_is_never_overwritten(fakes, isolated_home):
    unit = service.unit_dir() / service.unit_name(isolated_home)
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nExecStart=/bin/true\n")
    result = runner.invoke(app, ["updater", "install"])
    assert result.exit_code == 1 and "no record of writing it" in result.output
    assert unit.read_text() == "[Service]\nExecStart=/bin/true\n"


@pytest.mark.parametrize("args, said", [
    (["--window", "7-1"], "bad window"),
    (["--window", "01:00-01:00"], "same time"),
    (["--using", "launchd"], "bad --using"),
])
def test_bad_input_is_one_line_and_writes_nothing(fakes, isolated_home, args, said):
    result = runner.invoke(app, ["updater", "install", *args])
    assert result.exit_code == 1 and said in result.output and len(result.output.strip().splitlines()) == 1
    assert not service.unit_dir().exists() and fakes() == []


def test_a_home_that_cannot_be_written_is_one_line(fakes, tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("ECHO_AGENT_HOME", str(tmp_path / "a-file" / "home"))
    result = runner.invoke(app, ["updater", "install"])
    assert result.exit_code == 1 and "cannot create the home" in result.output
    assert not service.unit_dir().exists()


def test_without_systemd_a_crontab_line_is_added_and_removed_beside_the_users_own(fakes, isolated_home, tmp_path,
                                                                                   monkeypatch):
    monkeypatch.delenv("FAKE_SYSTEMD")
    (tmp_path / "crontab").write_text("0 3 * * * backup.sh\n")
    result = runner.invoke(app, ["updater", "install", "--window", "23:00-06:00"])
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "crontab").read_text().splitlines()
    assert lines[0] == "0 3 * * * backup.sh" and len(lines) == 2
    assert lines[1].startswith("*/10 * * * * ") and lines[1].endswith(service.marker(isolated_home))
    assert "--window 23:00-06:00" in lines[1] and "updater.log" in lines[1]
    assert runner.invoke(app, ["updater", "uninstall"]).exit_code == 0
    assert (tmp_path / "crontab").read_text() == "0 3 * * * backup.sh\n"


def test_the_dry_run_unit_is_one_systemd_accepts(isolated_home, tmp_path, monkeypatch):
    home = tmp_path / "odd home %i $HOME \"q'"
    monkeypatch.setenv("ECHO_AGENT_HOME", str(home))
    result = runner.invoke(app, ["updater", "install", "--dry-run", "--using", "systemd", "--window", "01:00-07:00"])
    assert result.exit_code == 0 and "would write a systemd unit" in result.output
    assert not home.exists() and not service.unit_dir().exists()  # a dry run writes nothing
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here")
    unit = tmp_path / "echo-agent-updater-check.service"
    unit.write_text(result.output[result.output.index("[Unit]"):])
    verified = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr


def test_report_on_an_empty_home_says_so_and_creates_nothing(isolated_home):
    result = runner.invoke(app, ["updater", "report"])
    assert result.exit_code == 0 and "nothing to report" in result.output
    as_json = json.loads(runner.invoke(app, ["updater", "report", "--json", "--since", "2026-12-01"]).output)
    assert as_json["empty"] is True and as_json["cycles"] == [] and as_json["since"].startswith("2026-1")
    assert not (isolated_home / "store.db").exists()
    bad = runner.invoke(app, ["updater", "report", "--since", "yesterday"])
    assert bad.exit_code == 1 and "bad --since" in bad.output


def test_the_daemon_outside_its_window_waits_and_says_until_when(isolated_home):
    later = datetime.now() + timedelta(hours=2)
    window = f"{later:%H:%M}-{later + timedelta(hours=1):%H:%M}"
    result = runner.invoke(app, ["updater", "start", "--window", window, "--interval", "0.2",
                                 "--min-new-tokens", "1", "--budget-minutes", "25"])
    try:
        assert result.exit_code == 0 and f"window {window}" in result.output
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (isolated_home / daemon.STATE_FILE).exists():
            time.sleep(0.1)
        status = runner.invoke(app, ["updater", "status"]).output
        assert f"window: {window}" in status and f"(waiting for the window {window})" in status
        assert f"next check: {later:%Y-%m-%dT%H:%M}" in status and "budget per cycle: 25 min" in status
        log = (isolated_home / "updater.log").read_text()
        assert "idle CPU scheduling" in log and f"window {window}" in log
    finally:
        daemon.stop(isolated_home)
    assert not (isolated_home / daemon.STATE_FILE).exists()


def test_background_training_leaves_a_core_for_the_user():
    assert daemon.training_threads() == max(1, (os.cpu_count() or 1) - 1)


def test_a_non_default_home_gets_its_own_unit(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert service.unit_name(tmp_path / "data" / "echo-agent") == "echo-agent-updater.service"
    other = service.unit_name(tmp_path / "elsewhere")
    assert other.startswith("echo-agent-updater-") and other != service.unit_name(Path("/x"))


def test_stored_text_reaches_the_terminal_with_its_control_characters_escaped():
    from echo_agent.updater.report import plain

    assert plain("cat \x1b[2J\x1b]0;owned\x07f\tx") == "cat \\x1b[2J\\x1b]0;owned\\x07f\tx"


def test_the_daemon_writes_the_windows_report_after_each_cycle_and_starts_afresh_next_window(isolated_home,
                                                                                             monkeypatch):
    from echo_agent.config import Settings
    from echo_agent.memory import cycles
    from echo_agent.memory.store import TrajectoryStore
    from echo_agent.updater.schedule import Window

    ran = []

    def fake_run(self, store, pending, t):  # a cycle as the table records it
        ran.append(1)
        cycles.end(store, cycles.begin(store, os.getpid(), "daemon"), status="rejected",
                   message=f"cycle number {len(ran)}")

    monkeypatch.setattr(daemon.Loop, "run", fake_run)
    now = datetime.now()
    open_now = Window.parse(f"{now - timedelta(minutes=5):%H:%M}-{now + timedelta(minutes=30):%H:%M}")
    closed_now = Window.parse(f"{now + timedelta(hours=2):%H:%M}-{now + timedelta(hours=3):%H:%M}")
    TrajectoryStore(isolated_home / "store.db").close()
    loop = daemon.Loop(isolated_home, Settings.load(), 1.0, 0, None, open_now)
    loop.once()
    loop.once()
    report = (isolated_home / daemon.REPORT_FILE).read_text()
    assert "update cycles since" in report and "cycle number 1" in report and "cycle number 2" in report
    loop.window = closed_now
    assert loop.once() >= 1.0 and ran == [1, 1]  # outside the window: no cycle, and the report stays
    assert (isolated_home / daemon.REPORT_FILE).read_text() == report
    time.sleep(0.01)
    loop.window = open_now
    loop.once()
    again = (isolated_home / daemon.REPORT_FILE).read_text()
    assert "cycle number 3" in again and "cycle number 1" not in again  # a new window, a new report
