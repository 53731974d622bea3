"""`echo-agent logs …` through the real typer app (CliRunner): output, exit codes, help, no tracebacks."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from echo_agent.cli import app
from echo_agent.cli.logs import logs_app
from echo_agent.memory.store import TrajectoryStore
from echo_agent.shell.result import ShellResult

runner = CliRunner()


def seed(path=None) -> str:
    store = TrajectoryStore(path)
    sid = store.start_session(model="scripted")
    eid = store.start_episode(sid, "Find the nginx port", [{"role": "system", "content": "sys"}])
    out = "server {\n  listen 8080;\n}\n"
    store.record_step(
        eid,
        reply="```bash\ncat nginx.conf\n```",
        command="cat nginx.conf",
        result=ShellResult(
            "cat nginx.conf",
            out,
            "[exit 0]",
            "",
            0,
            "/srv",
            "/srv",
            "2026-03-01T10:00:00+00:00",
            5,
            False,
            False,
            len(out),
        ),
        surprise=1.25,
    )
    store.finish_episode(eid, "done", "8080")
    store.close()
    return eid


def test_list_show_search(isolated_home):
    eid = seed()
    r = runner.invoke(app, ["logs"])
    assert r.exit_code == 0 and eid[:8] in r.output and "Find the nginx port" in r.output
    r = runner.invoke(app, ["logs", "-n", "5", "--json"])
    assert json.loads(r.output)[0]["id"] == eid
    r = runner.invoke(app, ["logs", "show", eid])
    assert r.exit_code == 0
    assert "listen 8080;" in r.output and "[exit 0]" in r.output and "surprise 1.250" in r.output
    assert "done" in r.output
    r = runner.invoke(app, ["logs", "search", "listen", "--json"])
    hits = json.loads(r.output)
    assert hits[0]["episode_id"] == eid and "[listen]" in hits[0]["snippet"]
    r = runner.invoke(app, ["logs", "search", 'foo-"bar'])
    assert r.exit_code == 0
    r = runner.invoke(app, ["logs", "show", "nope"])
    assert r.exit_code == 1 and "no episode" in r.output


def test_export_import_roundtrip(isolated_home, tmp_path):
    eid = seed()
    out = tmp_path / "e.jsonl"
    r = runner.invoke(app, ["logs", "export", "-o", str(out)])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["id"] == eid
    assert [m["role"] for m in rows[0]["messages"]] == ["system", "user", "assistant", "tool"]
    assert rows[0]["steps"][0]["command"] == "cat nginx.conf"
    other = tmp_path / "other.db"
    r = runner.invoke(app, ["logs", "import", str(out), "--db", str(other)])
    assert r.exit_code == 0 and "1 episodes" in r.output
    r = runner.invoke(app, ["logs", "import", str(out), "--db", str(other)])
    assert "0 episodes" in r.output and "1 skipped episodes" in r.output
    r = runner.invoke(app, ["logs", "export", "--since", "2999-01-01"])
    assert r.exit_code == 0 and r.output.strip() == ""
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    r = runner.invoke(app, ["logs", "import", str(bad), "--db", str(other)])
    assert r.exit_code == 1 and "Traceback" not in r.output


def _lines(*values) -> bytes:
    return b"".join(v if isinstance(v, bytes) else json.dumps(v).encode() + b"\n" for v in values)


@pytest.mark.parametrize("content, message", [
    (b"{not json\n", "line 1 is not JSONL"),
    (b"\x82\xff binary\n", "line 1 is not JSONL"),
    (_lines([1, 2]), "record 1 is not an episode from `logs export`: a JSON list, not an object"),
    (_lines({"id": "x"}), "episode x has no session with an id"),
    (_lines({"id": "x", "task": "t", "session": {"id": "s"}, "steps": "none"}), "`steps` is not a list"),
    (_lines({"id": "x", "task": {"a": 1}, "session": {"id": "s"}, "steps": []}), "non-text value in task"),
    (_lines({"id": "x", "task": "t", "session": {"id": "s"}, "steps": [{"id": "y", "output": [1]}]}),
     "step y has a non-text value in output"),
])
def test_import_of_a_bad_file_is_one_line_naming_the_line_or_record(tmp_path, content, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content)
    r = runner.invoke(app, ["logs", "import", str(bad), "--db", str(tmp_path / "s.db")])
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit)  # an uncaught error would be kept here
    assert message in r.output and len(r.output.strip().splitlines()) == 1


def test_import_keeps_what_came_before_a_bad_line(isolated_home, tmp_path):
    seed()
    good = tmp_path / "e.jsonl"
    assert runner.invoke(app, ["logs", "export", "-o", str(good)]).exit_code == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(good.read_bytes() + b"\n{oops\n")
    other = tmp_path / "other.db"
    r = runner.invoke(app, ["logs", "import", str(bad), "--db", str(other)])
    assert isinstance(r.exception, SystemExit) and r.exit_code == 1
    assert "line 3 is not JSONL" in r.output and "(1 episodes, 1 new)" in r.output
    assert len(TrajectoryStore(other).recent_episodes()) == 1
    r = runner.invoke(app, ["logs", "import", str(tmp_path), "--db", str(other)])
    assert r.exit_code == 1 and "is not a file" in r.output


def test_forget_asks_and_refuses_without_tty(isolated_home):
    eid = seed()
    r = runner.invoke(app, ["logs", "forget", "--query", "listen"])
    assert r.exit_code == 1 and "will delete 1 steps and 1 episodes" in r.output and "--yes" in r.output
    assert TrajectoryStore().get_episode(eid) is not None
    r = runner.invoke(app, ["logs", "forget", "--dir", "/srv", "--yes"])
    assert r.exit_code == 0 and "forgot 1 steps, 1 episodes" in r.output
    assert TrajectoryStore().get_episode(eid) is None
    r = runner.invoke(app, ["logs", "forget"])
    assert r.exit_code == 1 and "needs at least one" in r.output


def test_stats_and_path(isolated_home):
    seed()
    r = runner.invoke(app, ["logs", "stats", "--json"])
    s = json.loads(r.output)
    assert (s["sessions"], s["episodes"], s["steps"]) == (1, 1, 1)
    assert s["tasks"][0]["task"] == "find the nginx port"
    r = runner.invoke(app, ["logs", "stats"])
    assert r.exit_code == 0 and "find the nginx port" in r.output
    r = runner.invoke(app, ["logs", "path"])
    assert r.output.strip() == str(isolated_home / "store.db")


def test_config_error_is_one_line(isolated_home):
    (isolated_home / "config.toml").write_text("not = [valid")
    r = runner.invoke(app, ["logs"])
    assert r.exit_code == 1 and r.output.startswith("error: ") and "Traceback" not in r.output


@pytest.mark.parametrize("command", [c.name for c in logs_app.registered_commands])
def test_every_logs_command_has_help(command):
    r = runner.invoke(app, ["logs", command, "--help"])
    assert r.exit_code == 0
    cmd = next(c for c in logs_app.registered_commands if c.name == command)
    assert cmd.callback.__doc__ and cmd.callback.__doc__.strip()


def test_a_mistyped_db_is_an_error_not_a_new_store(tmp_path):
    missing = tmp_path / "nope" / "store.db"
    for args in (["logs"], ["logs", "stats"], ["logs", "search", "x"], ["stats"], ["adapters", "list"]):
        r = runner.invoke(app, [*args, "--db", str(missing)])
        assert r.exit_code == 1 and isinstance(r.exception, SystemExit), args
        assert f"there is no store at {missing}" in r.output
    assert not missing.parent.exists()
    r = runner.invoke(app, ["logs", "--db", str(tmp_path)])  # a directory
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit) and "cannot open" in r.output


def test_export_to_a_bad_path_is_one_line_and_leaves_no_partial_file(isolated_home, tmp_path):
    seed()
    for target in (tmp_path / "no" / "dir" / "x.jsonl", tmp_path):
        r = runner.invoke(app, ["logs", "export", "-o", str(target)])
        assert r.exit_code == 1 and isinstance(r.exception, SystemExit) and "cannot write" in r.output
    assert not list(tmp_path.rglob("*.part"))


@pytest.mark.parametrize("args", [["logs", "export", "--since", "yesterday"],
                                  ["logs", "forget", "--until", "2026-13-01", "--yes"]])
def test_dates_must_be_iso(isolated_home, args):
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and "is not an ISO date or time" in r.output


def test_dates_are_local_time_compared_in_utc(isolated_home, monkeypatch):
    from echo_agent.cli.logs import parse_when

    monkeypatch.setenv("TZ", "Asia/Tokyo")  # UTC+9, no daylight saving
    time.tzset()
    try:
        assert parse_when("2026-03-01") == "2026-02-28T15:00:00.000000+00:00"
        assert parse_when("2026-03-01T12:00+01:00") == "2026-03-01T11:00:00.000000+00:00"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    seed()  # its step started at 2026-03-01T10:00 UTC
    assert "will delete 0 steps" in runner.invoke(app, ["logs", "forget", "--until", "2026-03-01T10:59+01:00"]).output
    assert "will delete 1 steps" in runner.invoke(app, ["logs", "forget", "--until", "2026-03-01T11:01+01:00"]).output


MARKUP = "[files] [bold]b[/bold] x"


def test_stored_text_is_shown_literally_never_as_markup(isolated_home, tmp_path):
    """Commands, outputs, tasks and answers are untrusted: `[...]` in them is shown as typed, and a search
    match is marked without eating the matched word."""
    from echo_agent.shell import ShellSession

    store = TrajectoryStore()
    sid = store.start_session()
    command = f"printf '%s\\n' \"{MARKUP}\"; wc -l files.txt"
    for task in (f"show {MARKUP}", f"show {MARKUP}"):  # twice: `stats` lists tasks seen 2+ times
        eid = store.start_episode(sid, task, [])
        with ShellSession(cwd=tmp_path) as shell:
            store.record_step(eid, reply="r", command=command, result=shell.run(command))
        store.finish_episode(eid, "done", f"[red]{MARKUP}[/red]")
    store.close()
    wide = {"COLUMNS": "300"}
    r = runner.invoke(app, ["logs", "search", "files"], env=wide)
    assert r.exit_code == 0
    assert f"{MARKUP} wc: files.txt: No such file or" in r.output  # FTS5 cuts the snippet at 12 words
    assert f"printf '%s\\n' \"{MARKUP}" in r.output
    r = runner.invoke(app, ["logs", "show", eid], env=wide)
    assert f"show {MARKUP}" in r.output and f"[red]{MARKUP}[/red]" in r.output and f"\n{MARKUP}\n" in r.output
    assert f"$ {command}" in r.output
    assert f"show {MARKUP}" in runner.invoke(app, ["logs"], env=wide).output
    assert f"show {MARKUP}" in runner.invoke(app, ["logs", "stats"], env=wide).output
    assert f"show {MARKUP}" in runner.invoke(app, ["stats"], env=wide).output
    hits = json.loads(runner.invoke(app, ["logs", "search", "files", "--json"]).output)
    assert "[files].txt" in " ".join(h["snippet"] for h in hits)  # JSON keeps its bracket markers
