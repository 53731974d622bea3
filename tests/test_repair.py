"""A look-up that names a missing file, when the task names one that exists, runs with the task's file."""

from __future__ import annotations

from echo_agent import observation as obs
from echo_agent.agent import Agent, AgentConfig
from echo_agent.models.scripted import ScriptedBackend
from echo_agent.repair import fix_missing_file, path_words
from echo_agent.shell import ShellSession
from echo_agent.transcript import render_episode


def test_the_missing_file_is_replaced_by_the_one_the_task_names(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "inventory.csv").write_text("a\nb\n")
    (tmp_path / "logs" / "service.log").write_text("x\n")
    assert fix_missing_file("wc -l files.txt", "count the lines in inventory.csv", tmp_path) == (
        "wc -l inventory.csv", "[ran with inventory.csv: files.txt does not exist]")
    assert fix_missing_file("grep -c ERROR logs/app.log", "ERROR lines in logs/service.log?", tmp_path)[0] == \
        "grep -c ERROR logs/service.log"
    # Nothing to repair, or no single file to repair it with: the command stays as it is.
    for command, task in [("wc -l inventory.csv", "count the lines in inventory.csv"),
                          ("cat a.txt b.txt", "show inventory.csv"),
                          ("cat nope.txt", "what is in the file"),
                          ("cat nope.txt", "compare inventory.csv and logs/service.log"),
                          ("grep 'unclosed", "inventory.csv")]:
        assert fix_missing_file(command, task, tmp_path) == (command, None)
    assert path_words("lines in logs/service.log, ./x.py and 1.5 s") == ["logs/service.log", "./x.py", "1.5"]
    assert obs.is_harness_line("[ran with inventory.csv: files.txt does not exist]")


def test_the_agent_runs_the_repaired_look_up_and_says_so(tmp_path, isolated_home):
    from echo_agent.memory.store import TrajectoryStore

    (tmp_path / "inventory.csv").write_text("a\nb\n")
    backend = ScriptedBackend(["```bash\nwc -l files.txt\n```", "```answer\nIt has 2 lines.\n```"])
    with ShellSession(cwd=tmp_path) as shell, TrajectoryStore() as store:
        result = Agent(backend, shell, store, config=AgentConfig(repair=True, choose=False, show_output=False)).run("count the lines in inventory.csv")
        step = store.episode_steps(result.episode_id)[0]
        episode = store.get_episode(result.episode_id)
    assert step["command"] == "wc -l inventory.csv" and step["reply"] == "```bash\nwc -l files.txt\n```"
    assert step["output"] == "2 inventory.csv\n" and step["note"] == "[ran with inventory.csv: files.txt does not exist]"
    observation = render_episode(episode, [step])[-1]
    assert "[ran with inventory.csv" in observation.content and "ran with" not in observation.env_text()
    assert result.answer == "It has 2 lines."
