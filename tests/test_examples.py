"""The in-context examples: the bundled library and BM25 retrieval, the user's own episodes first."""

from __future__ import annotations

from echo_agent.examples import OWN_BOOST, Example, bundled_examples, choose_examples
from echo_agent.prompting import build_prompt, directory_listing
from echo_agent.records import task_identity


def test_the_library_is_large_distinct_and_each_command_is_read_only():
    from echo_agent.shell.risk import is_read_only

    library = bundled_examples()
    assert len(library) >= 250
    assert len({task_identity(e.task) for e in library}) == len(library)
    assert [e for e in library if not is_read_only(e.command)] == []


def test_retrieval_finds_the_example_that_fits_the_task():
    library = list(bundled_examples())
    best = choose_examples("which clip in footage is the biggest", library, 4)[-1]
    assert best.command.startswith("ls -S")
    best = choose_examples("count the ERROR entries in app.log", library, 4)[-1]
    assert best.command.startswith("grep -c")
    assert choose_examples("anything", library, 0) == []


def test_the_users_own_example_wins_at_comparable_relevance():
    mine = Example("count the lines in notes.md", "wc -l notes.md", "store")
    bundled = Example("count the lines in essay.txt", "wc -l < essay.txt", "bundled")
    other = Example("show the date", "date", "bundled")
    assert choose_examples("count the lines in report.md", [bundled, other, mine], 1) == [mine]
    assert OWN_BOOST > 1
    # the task itself is never its own example
    assert mine not in choose_examples("count the lines in notes.md", [bundled, mine], 2)


def test_the_prompt_shows_the_working_directory_by_name(tmp_path):
    tmp_path = tmp_path / "ws"
    tmp_path.mkdir()
    for name in ("b.txt", "a.csv", ".hidden"):
        (tmp_path / name).write_text("x")
    (tmp_path / "sub").mkdir()
    line = directory_listing(tmp_path, 40)
    assert line == f"The current directory is {tmp_path}; it holds: a.csv b.txt sub/."
    assert directory_listing(tmp_path, 2).endswith("a.csv b.txt and 1 more.")
    system = build_prompt("how many lines in a.csv", None, 2, cwd=tmp_path, listing=40)[0]["content"]
    assert system.endswith(line) and "x" not in system.split("holds:")[1].replace("txt", "")
    assert build_prompt("t", None, 2, cwd=tmp_path, listing=0)[0]["content"].count("holds") == 0


def test_a_task_asked_again_gets_the_examples_it_had_the_last_time_it_worked(tmp_path, isolated_home):
    from echo_agent.agent import Agent, AgentConfig
    from echo_agent.memory.store import TrajectoryStore
    from echo_agent.models.scripted import ScriptedBackend
    from echo_agent.shell import ShellSession

    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "fingallo.conf").write_text("port = 8123\nversion = 2.1\n")
    (ws / "other.conf").write_text("port = 9000\n")

    def ask(shell, store, task, command):
        agent = Agent(ScriptedBackend([f"```bash\n{command}\n```", "```answer\nok\n```"]), shell, store,
                      config=AgentConfig(choose=False, recall=False, show_output=False))
        return store.get_episode(agent.run(task).episode_id)["prompt"]["messages"]

    def examples(prompt):
        return [(u["content"], a["content"]) for u, a in zip(prompt[5::2], prompt[6::2], strict=True)]

    with TrajectoryStore(isolated_home / "store.db") as store, ShellSession(cwd=ws) as shell:
        first = ask(shell, store, "what port is set in fingallo.conf", "cat fingallo.conf")
        # Episodes that become the nearest examples of the task: a new choice would show them.
        for task in ("what version is set in fingallo.conf", "what port is set in other.conf"):
            ask(shell, store, task, f"cat {task.split()[-1]}")
        fresh = build_prompt("what port is set in fingallo.conf ?", store, 4, cwd=ws, listing=40)
        assert ("what port is set in other.conf", "```bash\ncat other.conf\n```") in examples(fresh)
        again = ask(shell, store, "What port is set in  fingallo.conf", "cat fingallo.conf")
        assert examples(again) == examples(first) and again[0] == first[0]
        # Elsewhere, or after the last run failed, the examples are chosen anew.
        elsewhere = build_prompt("what port is set in fingallo.conf", store, 4, cwd=tmp_path, listing=40)
        assert examples(elsewhere) != examples(first)
        ask(shell, store, "what owner is set in nowhere.conf", "cat nowhere.conf")  # exits 1
        ask(shell, store, "what owner is set in other.conf", "cat other.conf")
        failed = ask(shell, store, "what owner is set in nowhere.conf", "cat nowhere.conf")
        assert ("what owner is set in other.conf", "```bash\ncat other.conf\n```") in examples(failed)
