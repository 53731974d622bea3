"""`echo-agent shell` driven through a real pseudo-terminal (pexpect): what reaches the store, field by field."""

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest

from echo_agent.human.hooks import Mark, MarkParser
from echo_agent.human.screen import resolve
from echo_agent.transcript import TYPED, render

ECHO_AGENT = str(Path(sys.executable).parent / "echo-agent")
PROMPT = "(rec) me$ "
PAUSED = "me$ "


@pytest.fixture
def user_home(tmp_path):
    home = tmp_path / "user"
    home.mkdir()
    (home / ".bashrc").write_text("HISTCONTROL=ignoreboth\nPS1='me$ '\nHISTFILE=~/.bash_history\n")
    (home / "notes.txt").write_text("".join(f"line {i}\n" for i in range(200)))
    return home


def spawn(isolated_home, user_home, *args, shell="/bin/bash"):
    env = {**os.environ, "ECHO_AGENT_HOME": str(isolated_home), "HOME": str(user_home), "SHELL": shell,
           "TERM": "xterm", "PAGER": "less"}
    env.pop("ECHO_AGENT_SHELL", None)
    return pexpect.spawn(ECHO_AGENT, ["shell", *args], env=env, encoding="utf-8", timeout=30, dimensions=(30, 100),
                         cwd=str(user_home))


def run(child, command, prompt=PROMPT):
    child.sendline(command)
    child.expect_exact(prompt)


def finish(child, status=0):
    child.sendline(f"exit {status}")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == status


def steps(isolated_home):
    deadline = time.monotonic() + 10
    while not (isolated_home / "store.db").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    with sqlite3.connect(isolated_home / "store.db") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(
            "SELECT s.*, e.task, e.status AS episode_status, x.kind AS session_kind FROM step s "
            "JOIN episode e ON e.id = s.episode_id JOIN session x ON x.id = e.session_id ORDER BY s.seq")]


def test_commands_are_recorded_field_by_field(isolated_home, user_home):
    child = spawn(isolated_home, user_home)
    child.expect_exact(PROMPT)
    run(child, "cd /tmp")
    run(child, "ls /nonexistent-dir")
    run(child, "printf 'a\\nb\\n' > /tmp/echo-agent-ls-test && ls --color=always /tmp/echo-agent-ls-test /")
    run(child, "for i in 1 2 3; do\necho n$i\ndone", prompt=PROMPT)
    time.sleep(0.5)
    with sqlite3.connect(isolated_home / "store.db") as db:  # an open shell is no running episode for the updater
        assert db.execute("SELECT count(*) FROM episode WHERE status='running'").fetchone()[0] == 0
    finish(child, 3)
    got = steps(isolated_home)
    assert [s["command"] for s in got] == ["cd /tmp", "ls /nonexistent-dir",
                                           "printf 'a\\nb\\n' > /tmp/echo-agent-ls-test && ls --color=always "
                                           "/tmp/echo-agent-ls-test /", "for i in 1 2 3; do echo n$i; done"]
    cd, failing, coloured, loop = got
    assert (cd["cwd_before"], cd["cwd_after"], cd["exit_code"], cd["output"]) == (str(user_home), "/tmp", 0, "")
    assert failing["exit_code"] == 2 and failing["status"] == "[exit 2]"
    assert "No such file or directory" in failing["output"] and failing["cwd_before"] == "/tmp"
    assert "\x1b" not in coloured["output"] and "/tmp/echo-agent-ls-test" in coloured["output"]
    assert "etc" in coloured["output"]
    assert loop["output"] == "n1\nn2\nn3\n"
    for s in got:
        assert s["author"] == "human" and s["session_kind"] == "human" and s["episode_status"] == "done"
        assert s["started_at"] and s["duration_ms"] >= 0 and s["trainable"] == 1
    assert (user_home / ".bash_history").read_text().splitlines()[-1] == "exit 3"  # bash's history as usual
    with sqlite3.connect(isolated_home / "store.db") as db:
        assert db.execute("SELECT ended_at FROM session").fetchone()[0] is not None
    env = {**os.environ, "ECHO_AGENT_HOME": str(isolated_home), "COLUMNS": "200"}
    logs = subprocess.run([ECHO_AGENT, "logs"], env=env, capture_output=True, text=True, check=True).stdout
    assert "human" in logs and "$ ls /nonexistent-dir" in logs
    found = subprocess.run([ECHO_AGENT, "logs", "search", "n2"], env=env, capture_output=True, text=True,
                           check=True).stdout
    assert "human" in found and "for i in 1 2 3" in found


def test_what_is_never_recorded(isolated_home, user_home):
    child = spawn(isolated_home, user_home)
    child.expect_exact(PROMPT)
    run(child, " echo hidden-by-space")
    child.sendline("read -s -p 'password: ' pw; echo; echo got ${#pw}")
    child.expect_exact("password: ")
    child.sendline("hunter2-secret")
    child.expect_exact(PROMPT)
    child.sendline("less notes.txt")
    child.expect_exact("line 1")
    child.send("q")
    child.expect_exact(PROMPT)
    run(child, "echo-agent-pause", prompt=PAUSED)
    run(child, "echo while-paused", prompt=PAUSED)
    run(child, "echo-agent-resume")
    run(child, "echo after-resume")
    finish(child)
    got = steps(isolated_home)
    commands = [s["command"] for s in got]
    assert commands == ["read -s -p 'password: ' pw; echo; echo got ${#pw}", "less notes.txt", "echo after-resume"]
    password, pager, resumed = got
    assert "hunter2" not in password["output"] and "got 14" in password["output"]
    assert pager["output"] == "" and "full-screen" in pager["note"]
    assert resumed["output"] == "after-resume\n"


def test_a_resize_reaches_the_programs_in_the_shell(isolated_home, user_home):
    child = spawn(isolated_home, user_home)
    child.expect_exact(PROMPT)
    run(child, "stty size")
    child.setwinsize(40, 132)
    time.sleep(0.2)
    run(child, "echo $(stty size)")  # not `stty size` again: a repeat that ignoredups drops is not recorded
    finish(child)
    assert [s["output"] for s in steps(isolated_home)] == ["30 100\n", "40 132\n"]


def test_no_record_refusals_and_the_exit_status(isolated_home, user_home):
    child = spawn(isolated_home, user_home, "--no-record")
    child.expect_exact(PAUSED)
    run(child, "echo not-recorded", prompt=PAUSED)
    child.sendline(f"{ECHO_AGENT} shell")
    child.expect_exact("already inside `echo-agent shell`")
    child.expect_exact(PAUSED)
    finish(child, 5)
    assert not (isolated_home / "store.db").exists() or steps(isolated_home) == []
    zsh = spawn(isolated_home, user_home, shell="/usr/bin/zsh")
    zsh.expect(pexpect.EOF)
    zsh.close()
    assert zsh.exitstatus == 1 and "only bash is recorded for now" in zsh.before


def test_a_store_that_cannot_take_steps_spools_them_and_the_shell_goes_on(isolated_home, user_home):
    (isolated_home / "store.db").write_bytes(b"this is not a database" * 100)
    child = spawn(isolated_home, user_home)
    child.expect_exact(PROMPT)
    child.sendline("echo first")
    child.expect_exact("commands are not being recorded")  # once, written when the step could not be
    run(child, "echo second")
    run(child, "true")
    finish(child)
    spool = (isolated_home / "shell-spool.jsonl").read_text().splitlines()
    assert [json.loads(line)["command"] for line in spool] == ["echo first", "echo second", "true"]
    (isolated_home / "store.db").unlink()
    child = spawn(isolated_home, user_home)  # the next shell writes what waited, first
    child.expect_exact(PROMPT)
    run(child, "echo third")
    finish(child)
    assert [s["command"] for s in steps(isolated_home)] == ["echo first", "echo second", "true", "echo third"]
    assert not (isolated_home / "shell-spool.jsonl").exists()


def test_marks_split_across_reads_and_foreign_escapes_pass_through():
    stream = b"out\x1b]6973;S;12;ZWNobyBoaQ==;L3RtcA==\x07hi\r\n\x1b]0;title\x07\x1b]6973;E;0;L3RtcA==;12\x07$ "
    for cut in range(len(stream)):
        p = MarkParser()
        parts = list(p.feed(stream[:cut])) + list(p.feed(stream[cut:]))
        text = b"".join(x for x in parts if isinstance(x, bytes))
        assert text == b"outhi\r\n\x1b]0;title\x07$ "
        assert [x for x in parts if isinstance(x, Mark)] == [Mark("S", ("12", "echo hi", "/tmp")),
                                                             Mark("E", ("0", "/tmp", "12"))]


def test_terminal_output_is_resolved_to_what_a_reader_sees():
    assert resolve(b"\x1b[01;34mdir\x1b[0m  file\r\n10%\r55%\r100%\r\n", 1000) == "dir  file\n100%\n"
    assert resolve(b"abc\x1b[2Dx\r\n", 1000) == "axc\n"
    long = resolve(b"".join(b"row %d\r\n" % i for i in range(5000)), 2000)
    assert long.startswith("row 0\n") and long.endswith("row 4999\n") and "bytes omitted" in long


def test_a_typed_command_reads_as_the_persons_not_the_agents():
    step = {"id": "s1", "author": "human", "command": "git status", "output": "clean\n", "status": "[exit 0]",
            "source": "executed", "trainable": 1}
    r = render({"task": "a command typed in the terminal", "prompt": []}, [step])
    roles = [m.role for m in r.messages]
    assert roles == ["user", "user", "tool"] and r.messages[1].content == TYPED + "git status"
    assert not any(m.action for m in r.messages) and r.messages[2].env_spans


def test_a_killed_shell_loses_at_most_the_command_in_flight_and_leaves_the_terminal_usable(isolated_home, user_home):
    import psutil

    env = {**os.environ, "ECHO_AGENT_HOME": str(isolated_home), "HOME": str(user_home), "SHELL": "/bin/bash",
           "TERM": "xterm", "PS1": "outer$ "}
    env.pop("ECHO_AGENT_SHELL", None)
    outer = pexpect.spawn("/bin/bash", ["--norc", "-i"], env=env, encoding="utf-8", timeout=30)
    outer.expect_exact("outer$ ")
    outer.sendline(f"{ECHO_AGENT} shell")
    outer.expect_exact(PROMPT)
    run(outer, "echo before-the-kill")
    outer.sendline("sleep 60")
    time.sleep(0.5)
    [ours] = [p for p in psutil.Process(outer.pid).children() if "shell" in " ".join(p.cmdline())]
    inner = ours.children()
    ours.kill()
    outer.expect_exact("outer$ ")
    outer.sendline("stty -a | tr ' ' '\\n' | grep -xE -- '-?(icanon|echo)'")
    outer.expect_exact("outer$ ")
    flags = [w for w in outer.before.split() if w.lstrip("-") in ("icanon", "echo")]
    assert flags[-2:] == ["icanon", "echo"]  # not -icanon -echo: the terminal is not raw
    gone, alive = psutil.wait_procs(inner, timeout=10)
    assert not alive  # the bash it ran got its hangup
    outer.sendline("exit")
    outer.expect(pexpect.EOF)
    assert [s["command"] for s in steps(isolated_home)] == ["echo before-the-kill"]


def test_job_control_and_completion_behave_as_in_bash(isolated_home, user_home):
    child = spawn(isolated_home, user_home)
    child.expect_exact(PROMPT)
    child.sendline("sleep 30")
    time.sleep(0.5)
    child.sendcontrol("z")
    child.expect("Stopped")
    child.expect_exact(PROMPT)
    run(child, "kill %1")
    child.send("wc -l not\t")  # tab completion: not -> notes.txt
    child.expect_exact("notes.txt")
    child.sendline("")
    child.expect_exact(PROMPT)
    finish(child)
    got = {s["command"]: s for s in steps(isolated_home)}
    assert got["sleep 30"]["exit_code"] == 148  # 128 + SIGTSTP, as bash reports a stopped job
    assert got["wc -l notes.txt "]["output"] == "200 notes.txt\n"


def test_the_users_prompt_command_still_runs_and_typed_commands_stay_out_of_task_stats_until_forgotten(
        isolated_home, user_home):
    (user_home / ".bashrc").write_text("HISTCONTROL=ignoreboth\nPROMPT_COMMAND='PS1=\"me$ \"; n=$((n+1))'\n")
    child = spawn(isolated_home, user_home)
    child.expect_exact(PROMPT)  # their PROMPT_COMMAND sets PS1 at every prompt: the sign stays
    run(child, "echo secret-project-notes")
    run(child, "echo prompts $n")
    finish(child)
    got = steps(isolated_home)
    assert got[-1]["output"] == "prompts 2\n"  # their PROMPT_COMMAND ran at each prompt
    from echo_agent.memory import adapters as adapter_rows
    from echo_agent.memory import queries
    from echo_agent.memory.store import TrajectoryStore

    with TrajectoryStore(isolated_home / "store.db") as store:
        assert queries.task_counts(store) == [] and queries.episode_lookups(store) == []
        adapter_rows.insert_adapter(store, id="a0001", parent_id=None, base_model="m", base_hash="h", path="/x",
                                    status="candidate", trained_through_seq=0, n_env_tokens=0, metrics={})
        adapter_rows.record_verdict(store, "a0001", status="promoted", metrics={}, step_ids=[s["id"] for s in got])
    env = {**os.environ, "ECHO_AGENT_HOME": str(isolated_home)}
    subprocess.run([ECHO_AGENT, "logs", "forget", "--query", "secret-project-notes", "--yes"], env=env, check=True,
                   capture_output=True)
    assert [s["command"] for s in steps(isolated_home)] == ["echo prompts $n"]
    with TrajectoryStore(isolated_home / "store.db") as store:
        assert adapter_rows.get_adapter(store, "a0001")["status"] == "stale"


def test_recall_counts_the_agents_runs_only(isolated_home):
    from echo_agent.memory.store import TrajectoryStore

    with TrajectoryStore(isolated_home / "store.db") as store:
        session = store.start_session()
        for author in ("agent", "human", "human"):
            episode = store.start_episode(session, "t", [])
            store.record_step(episode, reply=None, command="cat a.conf", output=f"x = {author}\n",
                              status="[exit 0]", cwd_before="/srv", author=author)
        assert store.recent_runs("cat a.conf", "/srv", 3) == [("x = agent\n", "[exit 0]")]


def test_a_command_that_can_be_neither_stored_nor_spooled_is_said_every_time(tmp_path):
    from echo_agent.config import Settings
    from echo_agent.human.recorder import SPOOL, Recorder

    (tmp_path / "store.db").mkdir()  # no store can open here
    (tmp_path / SPOOL).mkdir()  # and no spool can be appended to
    said: list[str] = []
    rec = Recorder(tmp_path, Settings(), said.append)
    rec.mark(Mark("E", ("0", "/tmp", "1")))
    for n, command in ((2, "echo one"), (3, "echo two")):
        rec.mark(Mark("S", (str(n), command, "/tmp")))
        rec.output(b"out\r\n")
        rec.mark(Mark("E", ("0", "/tmp", str(n))))
    rec.close()
    lost = [s for s in said if "could not be recorded or kept" in s]
    assert sum(int(s.split("echo-agent: ")[1].split()[0]) for s in lost) == 2  # both said, none silently
    assert any("cannot read" in s for s in said)
