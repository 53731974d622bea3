"""Choosing a new task's first command among the model's reply and its examples adapted to the task."""

from __future__ import annotations

import pytest

from echo_agent.agent import Agent, AgentConfig
from echo_agent.choosing import (
    adapt,
    candidates,
    degenerate,
    fallbacks,
    prompt_examples,
    rank,
    second_look,
)
from echo_agent.models.scripted import ScriptedBackend
from echo_agent.searching import related_files
from echo_agent.shell import ShellSession


@pytest.mark.parametrize(("example", "command", "task", "want"), [
    ("how many python files are in src", "ls src/*.py | wc -l", "how many python files are in the tools folder",
     "ls tools/*.py | wc -l"),
    ("how many DEBUG lines are in worker.log", "grep -c DEBUG worker.log",
     "how many ERROR lines are in logs/service.log", "grep -c ERROR logs/service.log"),
    ("find the file that talks about banana", "grep -rl banana .", "find the file that talks about a pineapple",
     "grep -rl pineapple ."),
    ("how many commits are there", "git rev-list --count HEAD", "count the git commits", "git rev-list --count HEAD"),
    ("how much disk space does src use", "du -sh src", "how much disk space does media take up", "du -sh media"),
    # the names do not line up: two paths against one, or no word of the task names anything here
    ("compare a.txt and b.txt", "diff a.txt b.txt", "compare notes.md", None),
    ("what port is set in config.ini", "grep port config.ini", "how many workers run per node in settings.toml",
     None),
    # a program or a subcommand is never what gets swapped
    ("which branch am I working on", "git branch --show-current", "write out", "git branch --show-current"),
    # a name the task shares stays; the "s" of a possessive is no name ("%s" is not the task's "say")
    ("what version is set in setup.cfg", "grep -n version setup.cfg", "what version is set in app.conf",
     "grep -n version app.conf"),
    ("show the latest commit's message", "git log -1 --format=%s", "what does the latest commit message say",
     "git log -1 --format=%s"),
])
def test_adapt_swaps_the_examples_names_for_the_tasks(example, command, task, want):
    assert adapt(example, command, task, lambda name: name in {"tools", "media", "logs"}) == want


def test_degenerate_replies_and_missing_paths_are_left_out(tmp_path):
    (tmp_path / "media").mkdir()
    prompt = [{"role": "system", "content": "s"},
              {"role": "user", "content": "how much disk space does src use"},
              {"role": "assistant", "content": "```bash\ndu -sh src\n```"},
              {"role": "user", "content": "what is the biggest file in src"},
              {"role": "assistant", "content": "```bash\nls -S src | head -n 1\n```"}]
    assert prompt_examples(prompt) == [("how much disk space does src use", "du -sh src"),
                                       ("what is the biggest file in src", "ls -S src | head -n 1")]
    task = "how much disk space does media take up"
    adapted = ["du -sh media", "ls -S media | head -n 1"]
    assert candidates(task, prompt, "du -sh media.txt", tmp_path) == adapted  # media.txt is not there
    assert degenerate("git branch -m -l " + "-m -l " * 6) and not degenerate("git log -1 --format=%s")
    # an output copied into the command, with or without the syntax error it makes
    assert degenerate("kamictl --version) echo 'kamictl 7.22.85' ;;\n[exit 0]\n\n[exit 0]")
    assert degenerate("kamictl --version) echo 'kamictl 7.22.85' ;;") and degenerate("cat a.conf\n[exit 0]")
    assert not degenerate("for f in *.log; do wc -l \"$f\"; done") and not degenerate("[ -f a.conf ] && cat a.conf")
    assert candidates(task, prompt, "du -sh media) echo 'x' ;;", tmp_path) == adapted
    assert candidates(task, prompt, "git branch " + "-m " * 12, tmp_path) == adapted
    assert candidates(task, prompt, "touch media/new.txt", tmp_path)[0] == "touch media/new.txt"  # an action may
    # make a path; a pattern that matches nothing, a literal echo, a program the shell lacks, or a command that
    # leaves out what the task names here (media) are left out while others remain
    for own in ("ls media/*.csv", 'echo "media takes 3G"', "media-size media", "df -h"):
        assert candidates(task, prompt, own, tmp_path, runnable=lambda c: not c.startswith("media-size")) == adapted
    assert candidates("what is the weather", [], 'echo "sunny"', tmp_path) == ['echo "sunny"']  # nothing else


def test_a_degenerate_reply_with_no_example_to_adapt_gives_way_to_the_fallbacks(tmp_path):
    here = _project(tmp_path)
    copied = "grep: type: storage: odile\n[exit 0]\n[exit 1]"  # an output written where the command goes
    assert candidates("who looks after storage", [], copied, here) == ["cat MAINTAINERS"]  # the one file with it
    assert candidates("what is the weather", [], copied, here) == [copied]  # no fallback either: it stays


class Scores(ScriptedBackend):
    """A scripted model that is surest of one command."""

    def __init__(self, replies, best):
        super().__init__(replies)
        self.best = best

    def score(self, messages, role, text):
        return [0.0 if self.best in text else -3.0] * max(1, len(text.split()))


def test_a_command_the_task_quotes_in_backticks_is_the_candidate(tmp_path):
    prompt = [{"role": "user", "content": "how many lines are in a.txt"},
              {"role": "assistant", "content": "```bash\nwc -l a.txt\n```"}]
    task = "how many nodes does `./clusterctl status` report, and what does `./clusterctl region` say"
    assert candidates(task, prompt, "nproc", tmp_path) == ["./clusterctl status", "./clusterctl region"]
    assert candidates("how many nodes are there", prompt, "nproc", tmp_path) == ["nproc"]


def test_choose_takes_the_best_scored_command_first_on_a_tie():
    backend = Scores([], best="du -sh media\n")
    assert rank(backend, [], "```bash\n", ["du -sh media.txt", "du -sh media"])[0] == "du -sh media"
    assert rank(backend, [], "```bash\n", ["ls", "pwd"]) == ["ls", "pwd"]  # a tie keeps the order given


def test_the_agent_runs_the_chosen_example_and_records_it_as_the_reply(tmp_path, isolated_home):
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "a.bin").write_bytes(b"x" * 5000)
    backend = Scores(["```bash\ndu -sh media.txt\n```", "```answer\nIt takes 8.0K.\n```"], best="du -sh media\n")
    with ShellSession(cwd=tmp_path) as shell:
        result = Agent(backend, shell, config=AgentConfig(show_output=False)).run(
            "how much disk space does media take up")
    assert result.steps[0]["command"] == "du -sh media" and result.steps[0]["reply"] == "```bash\ndu -sh media\n```"
    with ShellSession(cwd=tmp_path) as shell:
        kept = Agent(Scores(["```bash\ndu -sh media.txt\n```", "```answer\nno\n```"], best="-"), shell,
                     config=AgentConfig(choose=False)).run("how much disk space does media take up")
    assert kept.steps[0]["command"] == "du -sh media.txt"


def _project(tmp_path):
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "backup.sh").write_text("#!/bin/sh\nrsync -a data/ /mnt/vault-17/\n")
    (tmp_path / "tools" / "old" / "older").mkdir(parents=True)
    (tmp_path / "tools" / "old" / "older" / "backup.sh").write_text("old\n")  # deeper than WALK_DEPTH
    (tmp_path / "build-matrix.toml").write_text("[matrix]\narch = ['riscv64']\n")
    (tmp_path / "MAINTAINERS").write_text("storage: odile.marsh\nnetwork: pim.adeyemi\n")
    (tmp_path / "notes.txt").write_text("the network is flaky on fridays\n")
    (tmp_path / ".secret-backup.sh").write_text("hidden\n")
    (tmp_path / "backup.bin").write_bytes(b"\0" * 64)  # not text
    return tmp_path


def test_a_file_the_task_is_about_is_read_when_the_task_names_none(tmp_path):
    here = _project(tmp_path)
    assert related_files("what does the backup script copy", here) == ["tools/backup.sh"]
    assert related_files("which arch does the build matrix test", here) == ["build-matrix.toml"]
    assert related_files("how much memory is free", here) == []
    prompt = [{"role": "user", "content": "what time is it"}, {"role": "assistant", "content": "```bash\ndate\n```"}]
    assert candidates("what does the backup script copy", prompt, "date +%Z", here) == ["cat tools/backup.sh"]
    # a command that names the file stays, before the cat; with no related file nothing changes
    assert candidates("what does the backup script copy", prompt, "grep rsync tools/backup.sh", here) == [
        "grep rsync tools/backup.sh", "cat tools/backup.sh"]
    assert candidates("what time is it in tokyo", prompt, "date +%Z", here) == ["date +%Z", "date"]


def test_an_example_that_searched_is_adapted_by_searching_for_the_tasks_words(tmp_path):
    here = _project(tmp_path)
    # the example's grep was built for its own words and files: copied with a word swapped, it would grep
    # MAINTAINERS for "arch"; the task's own search is run instead
    prompt = [{"role": "user", "content": "who handles the network"},
              {"role": "assistant", "content": "```bash\ngrep -n -i -E network MAINTAINERS notes.txt\n```"}]
    assert candidates("which arch does the build matrix test", prompt, "uname -m", here) == [
        "cat build-matrix.toml"]
    assert candidates("who looks after storage", prompt, "who", here) == ["who", "cat MAINTAINERS"]


def test_after_a_failed_look_up_a_search_of_the_files_then_the_next_candidate(tmp_path):
    here = _project(tmp_path)
    assert fallbacks("who looks after storage", ["who storage", "ls tools", "rm -rf x"], here) == [
        "cat MAINTAINERS", "ls tools"]  # the one file holding "storage" is short: read whole; never the rm
    assert fallbacks("who handles the network", ["who", "ls"], here) == [
        "grep -n -i -E network MAINTAINERS notes.txt", "ls"]  # two files hold it as much: both searched
    assert fallbacks("what is the weather", ["curl wttr.in", "date"], here) == ["date"]  # no file holds a word
    # the file the task names is read first; the first candidate is the look-up that failed
    assert fallbacks("what arch is set in build-matrix.toml", ["file build-matrix.toml", "ls"], here) == [
        "cat build-matrix.toml", "ls"]
    assert fallbacks("who is in MAINTAINERS for the network", ["who", "ls"], here)[0] == "cat MAINTAINERS"
    backend = Scores([], best="cat MAINTAINERS")
    assert rank(backend, [], "```bash\n", ["ls", "cat MAINTAINERS", "pwd"]) == ["cat MAINTAINERS", "ls", "pwd"]


def test_the_agent_runs_the_fallbacks_while_its_look_ups_fail(tmp_path, isolated_home):
    here = _project(tmp_path)
    backend = Scores(["```bash\ncat OWNERS\n```", "```answer\nodile.marsh\n```"], best="cat OWNERS")
    with ShellSession(cwd=here) as shell:
        result = Agent(backend, shell, config=AgentConfig(show_output=False)).run("who looks after storage")
    assert [s["command"] for s in result.steps] == ["cat OWNERS", "cat MAINTAINERS"]
    assert result.steps[1]["reply"] == "```bash\ncat MAINTAINERS\n```"
    assert "odile.marsh" in result.steps[1]["output"] and result.answer.startswith("odile.marsh")
    # a program the shell does not have is a look-up that failed too
    backend = Scores(["```bash\nstoragectl owner\n```", "```answer\nodile.marsh\n```"], best="storagectl")
    with ShellSession(cwd=here) as shell:
        result = Agent(backend, shell, config=AgentConfig(show_output=False)).run("who looks after storage")
    assert [s["command"] for s in result.steps] == ["storagectl owner", "cat MAINTAINERS"]
    assert "no command named storagectl" in result.steps[0]["note"] and "odile.marsh" in result.steps[1]["output"]
    # so is one that exited 0 and printed nothing: there is nothing in it to answer from
    backend = Scores(["```bash\nfind . -name storage\n```", "```answer\nodile.marsh\n```"], best="find")
    with ShellSession(cwd=here) as shell:
        result = Agent(backend, shell, config=AgentConfig(show_output=False)).run("who looks after storage")
    assert [s["command"] for s in result.steps] == ["find . -name storage", "cat MAINTAINERS"]
    assert result.steps[0]["status"] == "[exit 0]" and result.steps[0]["output"] == ""
    # a first look-up that works: the model answers from it, no fallback runs
    backend = Scores(["```bash\ncat MAINTAINERS\n```", "```answer\nodile.marsh\n```"], best="cat MAINTAINERS")
    with ShellSession(cwd=here) as shell:
        result = Agent(backend, shell, config=AgentConfig(show_output=False)).run("who looks after storage")
    assert [s["command"] for s in result.steps] == ["cat MAINTAINERS"]


def _makefile(tmp_path):
    (tmp_path / "Makefile").write_text(
        "DUMP_DIR := /var/backups/pg\nKEEP_DUMPS := 46\n\ndump:\n\tpg_dump app > $(DUMP_DIR)/$$(date +%F).sql\n")
    (tmp_path / "README.md").write_text("# app\n\nThe web app. `make dump` writes a database dump.\n")
    return tmp_path


def test_a_look_up_that_read_part_of_a_file_but_missed_its_best_lines_gets_a_second_look(tmp_path):
    here = _makefile(tmp_path)
    task = "how many database dumps does the Makefile keep"
    # a case-sensitive grep printed the dump target but not KEEP_DUMPS: the search of the Makefile runs after it
    partial = "4:dump:\n5:\tpg_dump app > $(DUMP_DIR)/$$(date +%F).sql\n"
    assert second_look(task, "grep -n dump Makefile", partial, here) == "cat Makefile"  # short: read whole
    # it showed every line holding the task's words, or the search is what ran: nothing more to look at
    whole = (here / "Makefile").read_text()
    assert second_look(task, "cat Makefile", whole, here) is None
    assert second_look(task, "cat Makefile", partial, here) is None
    # a look-up that read no file here is the model's question to the machine, kept as it is
    assert second_look(task, "wc -l < Makefile", "5\n", here) is None
    assert second_look("which port does the web app listen on", "ss -ltn", "State  Local Address:Port\n", here) is None
    # a task that names nothing here: the best lines of the files the search chooses, as far as the look-up read
    # them (every "dump" line of the Makefile it grepped), run after it
    assert second_look("how many dumps are kept", "grep -n dump Makefile", partial, here) == (
        "grep -n -i -E dump Makefile README.md")
    assert second_look("how many dumps are kept", "cat Makefile", whole, here) is None  # README.md's need not show
    # the README's line holds both "database" and "dump": the best line, which the grep of the Makefile missed
    assert second_look("where do the database dumps go", "cat Makefile", whole, here) == "cat README.md"


def test_the_agent_takes_a_second_look_after_a_partial_read(tmp_path, isolated_home):
    here = _makefile(tmp_path)
    backend = Scores(["```bash\ngrep -n dump Makefile\n```", "```answer\n46\n```"], best="grep -n dump")
    with ShellSession(cwd=here) as shell:
        result = Agent(backend, shell, config=AgentConfig(show_output=False)).run(
            "how many database dumps does the Makefile keep")
    assert [s["command"] for s in result.steps] == ["grep -n dump Makefile", "cat Makefile"]
    assert "KEEP_DUMPS := 46" in result.steps[1]["output"] and result.answer == "46"
    # one that showed the best lines is answered from, as before
    backend = Scores(["```bash\ngrep -n KEEP Makefile\n```", "```answer\n46\n```"], best="grep -n KEEP")
    with ShellSession(cwd=here) as shell:
        result = Agent(backend, shell, config=AgentConfig(show_output=False)).run(
            "how many dumps does the Makefile keep")
    assert [s["command"] for s in result.steps] == ["grep -n KEEP Makefile"]
