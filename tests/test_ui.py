"""What a person sees: untrusted text shown literally, and the confirmation prompt."""

from __future__ import annotations

import pytest
from rich.console import Console

from echo_agent.agent import UserQuit
from echo_agent.memory.store import SNIPPET_CLOSE, SNIPPET_OPEN
from echo_agent.shell.risk import classify
from echo_agent.ui import RichUI, highlighted, literal

MARKUP = "[files] [bold]b[/bold] x [link=http://evil]y[/link]"


def ui(interactive: bool = True) -> tuple[RichUI, Console]:
    console = Console(record=True, width=200, color_system=None)
    return RichUI(console, interactive=interactive), console


def test_literal_and_highlighted_show_markup_as_typed():
    console = Console(record=True, width=200)
    console.print(literal(MARKUP, "bold"))
    console.print(highlighted(f"wc: {SNIPPET_OPEN}files{SNIPPET_CLOSE}.txt: {MARKUP}"))
    console.print(highlighted(f"unclosed {SNIPPET_OPEN}mark"))
    text = console.export_text()
    assert text.splitlines() == [MARKUP, f"wc: files.txt: {MARKUP}", "unclosed mark"]
    styled = highlighted(f"a {SNIPPET_OPEN}files{SNIPPET_CLOSE} b")
    assert [(styled.plain[s.start:s.end], s.style) for s in styled.spans] == [("files", "bold")]


def test_the_assistant_shows_commands_outputs_and_answers_literally():
    r, console = ui()
    command = f"echo '{MARKUP}'"
    r.command(command, classify(command))
    r.observation({"command": command, "output": f"{MARKUP}\n", "note": "[not run: x]", "status": "[exit 0]"})
    r.answer(MARKUP)
    text = console.export_text()
    assert f"$ {command}  [read-only]" in text and f"\n{MARKUP}\n" in text and "[exit 0]" in text
    assert f"answer  {MARKUP}" in text or f"answer {MARKUP}" in text
    assert "from memory" not in text
    r.answer(MARKUP, remembered=True)  # nothing was run for it, and the user is told so
    assert f"answer from memory (nothing was run; --no-recall looks it up)  {MARKUP}" in console.export_text()


def test_the_confirmation_prompt_says_what_the_command_is(monkeypatch):
    r, console = ui()
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert r.confirm("rm notes.txt", classify("rm notes.txt")) == "n"
    assert "This command is destructive: rm deletes files" in console.export_text()
    assert classify("touch x").phrase == "writes files" and classify("curl -O http://x").phrase == "uses the network"


def test_end_of_input_at_the_confirmation_prompt_ends_the_episode(monkeypatch):
    def eof(prompt: str) -> str:
        raise EOFError

    r, _ = ui()
    monkeypatch.setattr("builtins.input", eof)
    with pytest.raises(UserQuit):
        r.confirm("rm notes.txt", classify("rm notes.txt"))
    answers = iter(["e"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers) if prompt.startswith("Run") else eof(prompt))
    with pytest.raises(UserQuit):  # at the edit prompt too
        r.confirm("rm notes.txt", classify("rm notes.txt"))


def test_not_a_terminal_means_no_without_asking(monkeypatch):
    r, console = ui(interactive=False)
    monkeypatch.setattr("builtins.input", lambda prompt: pytest.fail("asked"))
    assert r.confirm("rm x", classify("rm x")) == "n"
    assert "standard input is not a terminal" in console.export_text()


def test_ctrl_d_at_the_prompt_ends_the_episode_as_ctrl_c_does(tmp_path, isolated_home):
    """On a real terminal: `ask` proposes `rm`, the user presses Ctrl-D at the prompt; nothing runs, nothing
    more is proposed, the episode is recorded as aborted and the exit status is 130 (as for Ctrl-C)."""
    import json
    import os
    import sys

    import pexpect

    from echo_agent.memory.store import TrajectoryStore

    (tmp_path / "two.txt").write_text("2\n")
    script = tmp_path / "replies.json"
    script.write_text(json.dumps(["```bash\nrm two.txt\n```", "```bash\nrm -r two.txt\n```", "```answer\nok\n```"]))
    child = pexpect.spawn(sys.executable, ["-m", "echo_agent", "ask", "--backend", "scripted", "--script",
                                           str(script), "delete two.txt"], cwd=tmp_path, timeout=30,
                          env={**os.environ, "ECHO_AGENT_HOME": str(isolated_home)}, encoding="utf-8")
    child.expect("This command is destructive: rm deletes files")
    child.expect(r"Run it\?")
    child.sendeof()
    child.expect("stopped: aborted")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130 and "Run it?" not in child.before
    assert (tmp_path / "two.txt").exists()
    with TrajectoryStore(isolated_home / "store.db") as store:
        (episode,) = store.recent_episodes()
        assert episode["status"] == "aborted" and episode["n_steps"] == 0
