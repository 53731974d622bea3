"""The command line: help everywhere, no heavy imports for --help, and `exec`."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from echo_agent.cli import app

runner = CliRunner()


def _all_commands(group, prefix: tuple[str, ...] = ()):
    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if hasattr(cmd, "commands"):  # a group (typer may bring its own click: no isinstance)
            yield from _all_commands(cmd, (*prefix, name))


def test_every_command_has_help_text():
    root = typer.main.get_command(app)
    commands = list(_all_commands(root))
    assert ("exec",) in [path for path, _ in commands] and ("bench", "retrieval") in [path for path, _ in commands]
    for path, cmd in commands:
        assert (cmd.help or cmd.short_help or "").strip(), f"`echo-agent {' '.join(path)}` has no help text"
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, path
        for param in cmd.params:  # rich reads "[default: 4]" in a help text as markup and drops it
            assert not re.search(r"\[[a-z/#]", getattr(param, "help", None) or ""), (path, param.name)


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from echo_agent.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'peft', 'vllm') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_exec_prints_the_observation_and_passes_the_exit_code(tmp_path):
    result = runner.invoke(app, ["exec", "--", "echo", "hello;", "exit 3"])
    assert result.exit_code == 3  # `exit 3` ends the shell itself, with its status
    assert result.output == "hello\n[exit 3, shell restarted]\n"
    result = runner.invoke(app, ["exec", "--", "kill -9 $$"])
    assert result.exit_code == 1 and result.output == "[no exit code: shell restarted]\n"
    result = runner.invoke(app, ["exec", "--", "ls /nope"])
    assert result.exit_code == 2 and result.output.endswith("[exit 2]\n")


def test_exec_json_has_every_field():
    result = runner.invoke(app, ["exec", "--json", "--timeout", "5", "--", "printf 'a\\nb'"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["output"] == "a\nb" and data["status"] == "[exit 0]" and data["exit_code"] == 0
    for key in ("command", "note", "cwd_before", "cwd_after", "started_at", "duration_ms", "timed_out",
                "truncated", "output_bytes"):
        assert key in data


def test_an_empty_or_overlong_task_is_refused_in_one_line(tmp_path, monkeypatch):
    script = tmp_path / "s.json"
    script.write_text(json.dumps(["```answer\nhi\n```"]))
    for task, says in [("", "the task is empty"), ("   ", "the task is empty"),
                       ("x" * 10_240, "the task is 10,240 characters long; keep it under 2,000")]:
        r = runner.invoke(app, ["ask", "--backend", "scripted", "--script", str(script), task])
        assert r.exit_code == 1 and r.output.startswith(f"error: {says}") and r.output.count("\n") == 1, r.output
    # refused before any model loads: a real model would take seconds, or a conversion, to say no
    monkeypatch.setattr("echo_agent.models.make_backend", lambda *a, **k: pytest.fail("a model was loaded"))
    r = runner.invoke(app, ["ask", ""])
    assert r.exit_code == 1 and r.output.startswith("error: the task is empty"), r.output


def test_a_task_in_another_language_gets_an_honest_attempt(tmp_path):
    script = tmp_path / "s.json"
    script.write_text(json.dumps(["```bash\npwd\n```", "```answer\nわかりません\n```"]))
    r = runner.invoke(app, ["ask", "--backend", "scripted", "--script", str(script), "このフォルダには何がありますか"])
    assert r.exit_code == 0 and "わかりません" in r.output, r.output
