"""ShellSession against a real bash: the shell is what every later part learns from, so each promise is tested."""

from __future__ import annotations

import re
import resource
import shlex
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from echo_agent import observation as obs
from echo_agent.shell import ShellSession
from echo_agent.shell.clean import clean_text


@pytest.fixture(scope="module")
def shell(tmp_path_factory):
    with ShellSession(cwd=tmp_path_factory.mktemp("shell")) as s:
        yield s


@pytest.fixture
def fresh(tmp_path):
    with ShellSession(cwd=tmp_path) as s:
        yield s


# --- the end of a command ---


def test_exit_codes_and_cwd_come_from_the_sentinel(shell, tmp_path):
    r = shell.run("echo hi")
    assert (r.output, r.exit_code, r.status) == ("hi\n", 0, "[exit 0]")
    r = shell.run("ls /definitely/not/here")
    assert r.exit_code == 2 and r.status == "[exit 2]" and "No such file" in r.output
    r = shell.run(f"cd {shlex.quote(str(tmp_path))}")
    assert r.cwd_after == str(tmp_path) and r.cwd_before != r.cwd_after
    assert shell.run("pwd").output == f"{tmp_path}\n"
    assert shell.run("(exit 42)").exit_code == 42


def test_sentinel_never_appears_in_output(shell):
    outputs = [shell.run(c).output for c in ("echo a", "printf b", "true", "echo $PROMPT_COMMAND", "set | wc -l")]
    for out in outputs:
        assert "__echo_tok" not in out
        assert not re.search(r"[0-9a-f]{16}-?\d+:/", out)
    assert outputs[:3] == ["a\n", "b", ""]


# --- output intact ---


@pytest.mark.parametrize(
    "command, expected",
    [
        ("printf 'no trailing newline'", "no trailing newline"),
        ("echo one\necho two\necho three", "one\ntwo\nthree\n"),
        ("cat <<'EOF'\n$HOME is literal\n  indented\nEOF", "$HOME is literal\n  indented\n"),
        ("for i in 1 2 3; do\n  echo $i\ndone", "1\n2\n3\n"),
        ("printf 'downloading 10%%\\rdownloading 50%%\\rdone     \\n'", "done     \n"),
        ("echo 'ünïcödé ✓ 日本語 🚀'", "ünïcödé ✓ 日本語 🚀\n"),
        ("printf 'a\\0b\\n'", "a\x00b\n"),
        ("printf 'ok \\377\\376 bytes\\n'", "ok \ufffd\ufffd bytes\n"),
        ("echo out; echo err >&2; echo out2", "out\nerr\nout2\n"),
        ("printf '\\033[1;31mred\\033[0m \\033]0;title\\007plain\\n'", "red plain\n"),
    ],
)
def test_output_comes_back_intact(shell, command, expected):
    r = shell.run(command)
    assert r.output == expected
    assert r.exit_code == 0 and not r.truncated


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("\n\t"), max_size=300))
def test_random_printable_text_round_trips_exactly(shell, text):
    r = shell.run(f"printf '%s' {shlex.quote(text)}")
    assert r.output == text
    assert r.output_bytes == len(text.encode())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=2000))
def test_random_bytes_follow_the_observation_contract(shell, tmp_path_factory, data):
    path = tmp_path_factory.mktemp("bytes") / "blob"
    path.write_bytes(data)
    r = shell.run(f"cat {path}")
    assert r.output == clean_text(data.decode("utf-8", errors="replace"))
    assert r.output_bytes == len(data)


# --- state persists ---


def test_state_persists_between_commands(fresh, tmp_path):
    (tmp_path / "sub").mkdir()
    fresh.run("cd sub && export GREETING='hello there'")
    fresh.run("shout() { echo \"$1!\"; }")
    fresh.run("alias ll='echo listing'")
    assert fresh.run("pwd").output == f"{tmp_path / 'sub'}\n"
    assert fresh.run("echo $GREETING").output == "hello there\n"
    assert fresh.run("shout hey").output == "hey!\n"
    assert fresh.run("ll").output == "listing\n"


def test_virtualenv_activation_persists(fresh, tmp_path):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    assert fresh.run("source venv/bin/activate").exit_code == 0
    assert fresh.run("echo $VIRTUAL_ENV").output == f"{tmp_path / 'venv'}\n"
    assert fresh.run("command -v python").output == f"{tmp_path / 'venv' / 'bin' / 'python'}\n"


def test_plain_deterministic_environment(shell):
    out = shell.run("echo $TERM $PAGER $GIT_PAGER $NO_COLOR; locale charmap").output
    assert out == "dumb cat cat 1\nUTF-8\n"


# --- interruptions ---


def test_timeout_keeps_earlier_output_and_session_survives(fresh):
    t0 = time.monotonic()
    r = fresh.run("echo before; sleep 30; echo never", timeout=1)
    assert time.monotonic() - t0 < 5
    assert r.timed_out and r.output.startswith("before\n") and "never" not in r.output
    assert r.exit_code == 130 and re.fullmatch(r"\[exit 130, interrupted after 1(\.\d)? s\]", r.status)
    assert r.note == obs.TIMEOUT_MARKER
    assert fresh.run("echo alive").output == "alive\n"


def test_timeout_kills_a_job_that_ignores_sigint(fresh):
    r = fresh.run("bash -c \"trap '' INT; echo stubborn; sleep 30\"", timeout=1)
    assert r.timed_out and r.exit_code == 137 and "stubborn" in r.output
    assert fresh.run("echo alive").exit_code == 0


def test_builtin_loop_that_ignores_sigint_restarts_the_shell(fresh):
    fresh.run("export KEEP=1")
    r = fresh.run("trap '' INT; while :; do :; done", timeout=1)
    assert r.exit_code is None and r.status == obs.SHELL_RESTARTED and r.timed_out
    assert fresh.run("echo $KEEP").output == "1\n"


@pytest.mark.parametrize("command", ["read x", "cat", "python3", "head -n 1"])
def test_commands_waiting_for_input_are_interrupted(fresh, command):
    t0 = time.monotonic()
    r = fresh.run(command, timeout=20)
    assert time.monotonic() - t0 < 6
    assert r.note == obs.INPUT_MARKER and not r.timed_out
    assert re.fullmatch(r"\[exit \d+, interrupted after \d+(\.\d)? s\]", r.status)
    assert fresh.run("echo alive").output == "alive\n"


@pytest.mark.parametrize("command, exit_code", [("exit", 0), ("exit 3", 3), ("exec false", 1),
                                                ("trap 'echo bye' EXIT; exit 3", 3), ("kill -9 $$", None)])
def test_shell_death_returns_a_result_and_respawns_with_state(fresh, tmp_path, command, exit_code):
    (tmp_path / "deep").mkdir()
    fresh.run("cd deep; export SURVIVOR='yes it is'")
    r = fresh.run(f"echo last words; {command}")
    assert r.exit_code == exit_code
    assert r.status == (obs.SHELL_RESTARTED if exit_code is None else f"[exit {exit_code}, shell restarted]")
    assert obs.is_status_line(r.status) and obs.exit_code_from_status(r.status) == exit_code
    assert r.output == ("last words\nbye\n" if "bye" in command else "last words\n")
    r = fresh.run("pwd; echo $SURVIVOR")
    assert r.output == f"{tmp_path / 'deep'}\nyes it is\n" and r.exit_code == 0


def test_background_jobs_do_not_block(fresh):
    t0 = time.monotonic()
    r = fresh.run("sleep 100 &")
    assert r.exit_code == 0 and time.monotonic() - t0 < 2
    assert fresh.run("echo next").output == "next\n"
    fresh.run("kill %1")


# --- huge output ---


def test_huge_output_is_capped_with_bounded_memory(fresh):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    r = fresh.run("yes | head -c 50000000", timeout=60)
    grew_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grew_mib < 40, f"reading 50 MB grew the process by {grew_mib:.0f} MiB"
    assert r.exit_code == 0 and r.truncated and r.output_bytes == 50_000_000
    lines = r.output.split("\n")
    markers = [line for line in lines if obs.is_harness_line(line)]
    assert len(markers) == 1
    omitted = int(re.search(r"\d+", markers[0]).group())
    kept = len(r.output.encode()) - len(markers[0].encode()) - 1
    assert kept + omitted == 50_000_000
    assert set(lines) - {markers[0]} <= {"y", ""}
    assert len(r.output) <= fresh.output_cap_bytes + 100


def test_random_binary_output_is_capped(fresh):
    r = fresh.run("head -c 10000000 /dev/urandom", timeout=60)
    assert r.exit_code == 0 and r.truncated and r.output_bytes == 10_000_000
    assert sum(obs.is_harness_line(line) for line in r.output.split("\n")) == 1
    assert len(r.output.encode()) < 2 * fresh.output_cap_bytes


def test_result_fields(shell):
    r = shell.run("sleep 0.2; echo done")
    assert r.command == "sleep 0.2; echo done"
    assert 150 <= r.duration_ms < 3000
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", r.started_at)
    assert r.output_bytes == 5 and not r.truncated and r.note == "" and r.note_lines == []
