"""Finding what a task is about in the files here: the words searched for, the file chosen, the grep built, and
when an output counts as being about the task."""

from __future__ import annotations

import subprocess

from echo_agent.agent import Agent, AgentConfig
from echo_agent.models.scripted import ScriptedBackend
from echo_agent.searching import about_task, content_search, held_words, task_terms, task_words
from echo_agent.shell import ShellSession

MAKEFILE = """# backups for the lab
RESTIC_REPO ?= sftp:backup@vault.example:/volume3/restic-lab
KEEP_DAILY  := 38
KEEP_WEEKLY := 9

.PHONY: backup prune

backup:
\trestic -r $(RESTIC_REPO) backup /srv --tag nightly

prune:
\trestic -r $(RESTIC_REPO) forget --keep-daily $(KEEP_DAILY) --prune
"""


def _repo(tmp_path):
    (tmp_path / "Makefile").write_text(MAKEFILE)
    (tmp_path / "OWNERS").write_text("backend: tamsin.okafor\npayments: ilse.brandt\n")
    (tmp_path / "app.json").write_text('{"timeout": 78, "retries": 4}\n')
    (tmp_path / ".env.example").write_text("TZ=UTC\nOFFSITE_BUCKET=s3://mossgate-4412\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "queues.md").write_text("Refunds go through the payments queue.\n")
    return tmp_path


def test_the_words_searched_for_are_the_tasks_names_without_their_endings():
    assert task_words("who looks after payments") == ["payment"]
    assert task_words("how long are archived snapshots kept") == ["archiv", "snapshot"]
    assert task_words("which bucket do the offsite copies go to") == ["bucket", "offsite", "copy"]
    assert task_words("what ip does sorrelbank have") == ["ip", "sorrelbank"]
    assert task_words("what is in config/app.json") == []  # a path is read, not searched for


def test_a_short_file_holding_the_rarest_word_is_read_whole(tmp_path):
    here = _repo(tmp_path)
    # "payment" is in OWNERS and docs/queues.md, as much in each: both are searched, the shallower first
    assert content_search("who looks after payments", here) == (
        "grep -n -i -C1 -E payment OWNERS docs/queues.md")
    assert content_search("which bucket do the offsite copies go to", here) == "cat .env.example"  # hidden: read
    assert content_search("what is the weather like", here) is None


def test_a_long_file_is_searched_for_its_rarest_words_and_the_output_stays_short(tmp_path):
    here = _repo(tmp_path)
    command = content_search("how many daily snapshots does make prune keep", here)
    # "daily" is on two lines, "prune" on three: the rarest word alone, since both together match more than two
    assert command == "grep -n -i -C1 -E daily Makefile"
    out = subprocess.run(command, shell=True, cwd=here, capture_output=True, text=True, check=True).stdout
    assert "KEEP_DAILY  := 38" in out and out.count("\n") <= 7
    out = subprocess.run(content_search("what ip does the restic repo use", here), shell=True, cwd=here,
                         capture_output=True, text=True).stdout
    assert "/volume3/restic-lab" in out  # a short word is matched whole: "ip" is not in "PHONY" or "pipe"


def test_an_output_is_about_the_task_when_it_mentions_a_word_the_files_hold_whole(tmp_path):
    here = _repo(tmp_path)
    assert held_words("who looks after payments", here) == ["payment"]
    assert held_words("what time zone is this machine in", here) == []  # "time" is only in "timeout"
    assert held_words("how many daily snapshots are kept", here) == ["daily"]  # KEEP_DAILY holds it
    assert task_terms("what is in the docs folder about payments", here) == []  # it names docs: always about it
    assert about_task("payments: ilse.brandt\n", ["payment"]) and not about_task("2\n", ["payment"])
    assert not about_task("ls: cannot access 'payments': No such file or directory\n", ["payment"])
    assert about_task("anything\n", [])


def test_the_agent_searches_when_its_look_up_printed_nothing_about_the_task(tmp_path, isolated_home):
    here = _repo(tmp_path)
    backend = ScriptedBackend(["```bash\nnproc\n```", "```answer\nilse.brandt looks after them.\n```"])
    with ShellSession(cwd=here) as shell:
        result = Agent(backend, shell, config=AgentConfig(show_output=False)).run("who looks after payments")
    assert [s["command"] for s in result.steps] == ["nproc", "grep -n -i -C1 -E payment OWNERS docs/queues.md"]
    assert "ilse.brandt" in result.steps[1]["output"] and result.answer == "ilse.brandt looks after them."
    # a look-up that mentions the task is answered from; one of a file the task names is about it, whatever it says
    backend = ScriptedBackend(["```bash\ncat OWNERS\n```", "```answer\nilse.brandt\n```"])
    with ShellSession(cwd=here) as shell:
        result = Agent(backend, shell, config=AgentConfig(show_output=False)).run("who looks after payments")
    assert [s["command"] for s in result.steps] == ["cat OWNERS"]
    backend = ScriptedBackend(["```bash\nwc -l < OWNERS\n```", "```answer\n2\n```"])
    with ShellSession(cwd=here) as shell:
        result = Agent(backend, shell, config=AgentConfig(show_output=False)).run(
            "how many payments lines does OWNERS have")
    assert [s["command"] for s in result.steps] == ["wc -l < OWNERS"] and result.answer == "2"


def test_a_task_answered_here_before_starts_with_the_look_up_its_answer_came_from(tmp_path, isolated_home):
    from echo_agent.examples import store_examples
    from echo_agent.memory.store import TrajectoryStore

    here = _repo(tmp_path)
    with TrajectoryStore(isolated_home / "store.db") as store, ShellSession(cwd=here) as shell:
        def ask(replies, task="who looks after payments", **config):
            backend = ScriptedBackend(replies)
            agent = Agent(backend, shell, store, config=AgentConfig(show_output=False, memory=False, **config))
            return agent.run(task), backend

        first, _ = ask(["```bash\nnproc\n```", "```answer\nilse.brandt\n```"])
        search = "grep -n -i -C1 -E payment OWNERS docs/queues.md"
        assert [s["command"] for s in first.steps] == ["nproc", search]
        # the example this episode gives is the look-up the answer came from, not the first command
        assert [(e.task, e.command) for e in store_examples(store)] == [("who looks after payments", search)]
        again, _ = ask(["```bash\nnproc\n```", "```answer\nilse.brandt\n```"])  # its own pick gives way
        assert [s["command"] for s in again.steps] == [search] and again.answer == "ilse.brandt"
        assert again.steps[0]["reply"] == f"```bash\n{search}\n```"
        anew, _ = ask(["```bash\nnproc\n```", "```answer\nilse.brandt\n```"], reuse=False)
        assert anew.steps[0]["command"] == "nproc"  # without reuse the model chooses again
        # an episode that acted: its first command is its example, and it is never run again unasked
        acted, _ = ask(["```bash\nmkdir -p out && ls\n```", "```answer\ndone\n```"], task="make the out folder",
                       yes=True)
        assert store_examples(store)[0].command == "mkdir -p out && ls"
        later, _ = ask(["```bash\nls out\n```", "```answer\ndone\n```"], task="make the out folder", yes=True)
        assert later.steps[0]["command"] == "ls out"
