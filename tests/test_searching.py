"""Finding what a task is about in the files here: the words searched for, the file chosen, the grep built, and
when an output counts as being about the task."""

from __future__ import annotations

import subprocess

import pytest

from echo_agent.agent import Agent, AgentConfig
from echo_agent.grepping import grep_command, grep_output, matching_lines
from echo_agent.models.scripted import ScriptedBackend
from echo_agent.searching import (
    about_task,
    content_search,
    held_words,
    search_files,
    search_in,
    shows_best,
    task_terms,
    task_words,
    written_dates,
)
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
    assert task_words("how often does the alarm go off before someone is paged") == ["alarm", "pag"]


def test_a_short_file_holding_the_rarest_word_is_read_whole(tmp_path):
    here = _repo(tmp_path)
    # "payment" is in OWNERS and docs/queues.md, as much in each: both are searched, the shallower first; the
    # line holds its value (`payments: ilse.brandt`), so it is shown without the settings beside it
    assert content_search("who looks after payments", here) == (
        "grep -n -i -E payment OWNERS docs/queues.md")
    assert content_search("which bucket do the offsite copies go to", here) == "cat .env.example"  # hidden: read
    assert content_search("what is the weather like", here) is None


def test_a_long_file_is_searched_for_its_rarest_words_and_the_output_stays_short(tmp_path):
    here = _repo(tmp_path)
    command = content_search("how many daily snapshots does make prune keep", here)
    # the recipe line holds "daily" and "prune": it is the best line; its record is the recipe under `prune:`, so
    # the grep shows the line above each match, and the rarest word of that line is the one searched for
    assert command == "grep -n -i -B1 -E daily Makefile"
    out = subprocess.run(command, shell=True, cwd=here, capture_output=True, text=True, check=True).stdout
    assert "KEEP_DAILY  := 38" in out and "11-prune:" in out and out.count("\n") <= 7
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
    assert [s["command"] for s in result.steps] == ["nproc", "grep -n -i -E payment OWNERS docs/queues.md"]
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
        search = "grep -n -i -E payment OWNERS docs/queues.md"
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
        # a look-up after which the agent could not tell is no example, and is not run again in its place
        task = "what is the biggest number seq prints"
        unsure, _ = ask(["```bash\nseq 1 40\n```", "```answer\nIt is 99.\n```"], task=task)
        assert unsure.answer.startswith("I could not tell")
        assert all(e.task != task for e in store_examples(store))
        retry, _ = ask(["```bash\nseq 1 40 | tail -n 1\n```", "```answer\n40\n```"], task=task)
        assert retry.steps[0]["command"] == "seq 1 40 | tail -n 1"


ROUTES = """{
  "operator": "Tern Lines",
  "routes": [
    {
      "id": "R1",
      "to": "Keelby",
      "minutes": 47
    },
    {
      "id": "R2",
      "to": "Wraysholm",
      "minutes": 83
    }
  ]
}
"""
SERVICE = """# tern-api settings
name: tern-api
server:
  bind: 0.0.0.0
  workers: 19
  threads_per_worker: 4

database:
  host: pg.tern.example
  pool: 9
"""


def test_the_search_shows_the_record_around_the_best_line(tmp_path):
    (tmp_path / "routes.json").write_text(ROUTES)
    (tmp_path / "service.yaml").write_text(SERVICE)
    (tmp_path / "fares.toml").write_text("[fares]\ncar = 62.30\nmotorcycle = 27.90\ncampervan = 98.75\n" * 3)

    def shown(task, file):
        command = search_in(task, [file], tmp_path)
        return command, subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True).stdout

    # a JSON object: the route's other fields come with the line that names it
    command, out = shown("how long is the crossing to Wraysholm", "routes.json")
    assert command == "grep -n -i -B2 -A1 -E wraysholm routes.json" and '"minutes": 83' in out and "47" not in out
    # a YAML block under its key, and a block's header with what it holds
    command, out = shown("how many workers does the server start", "service.yaml")
    assert "5-  workers: 19" in out and "3:server:" in out and "pg.tern.example" not in out
    command, out = shown("which database host", "service.yaml")
    assert command == "grep -n -i -A2 -E database service.yaml" and "host: pg.tern.example" in out
    # a line that holds its own value is shown alone, not with the prices beside it
    command, out = shown("how much is a motorcycle ticket", "fares.toml")
    assert command == "grep -n -i -E motorcycle fares.toml" and "62.30" not in out


def test_a_setting_comes_with_the_settings_beside_it_that_hold_the_tasks_other_words(tmp_path):
    service = "[Unit]\nDescription=Push the tickets\n\n[Service]\nType=oneshot\nUser=weighdesk\nGroup=ops\n" \
              "WorkingDirectory=/opt/tw\nEnvironment=BATCH=250\nExecStart=/opt/tw/bin/nightly-sync\nTimeout=9\n"
    (tmp_path / "sync.service").write_text(service)
    # ExecStart holds "nightly" and "sync", User= holds "user": both lines, not the whole section
    command = search_in("which user does the nightly sync run as", ["sync.service"], tmp_path)
    assert command == "grep -n -i -E 'nightly|user' sync.service"
    out = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True).stdout
    assert out == "6:User=weighdesk\n10:ExecStart=/opt/tw/bin/nightly-sync\n"


def test_a_day_and_a_weekday_are_searched_for_as_files_write_them():
    assert written_dates("whose lorry was turned away on 14 May") == "whose lorry was turned away on 05-14"
    assert written_dates("what broke on May 3rd") == "what broke on 05-03"
    assert written_dates("deploys on the 1st of March") == "deploys on the 03-01"
    assert written_dates("may I see the 3 files") == "may I see the 3 files"  # "may" is no month here
    assert task_words("whose lorry was turned away on 14 May")[-1] == "05-14"
    assert task_words("who is on call if it breaks on a Sunday") == ["call", "break", "sunday", "sun"]


def test_the_record_context_narrows_until_the_output_is_short_enough_to_show(tmp_path):
    lines = ["[main]", "# dumps of the database", *(f"dump_{i} = /srv/d{i}" for i in range(12))]
    (tmp_path / "dumps.ini").write_text("\n".join(lines) + "\n")
    command = search_in("where are the database dumps", ["dumps.ini"], tmp_path)
    # the comment (both words) heads a paragraph too long to show: a line above it and what fits below
    assert command == "grep -n -i -B1 -A6 -E database dumps.ini"
    records = "".join(f"{name}:\n  database: {name}_db\n  host: {name}.example\n  pool: 4\n"
                      for name in ("primary", "replica", "reports", "archive"))
    (tmp_path / "pools.yaml").write_text(records)
    # every match with its record is too much to show: only the first match, which is the best line, with its
    # record ("host" is on fewer lines here than "database", which dumps.ini holds too)
    command = search_in("what is the database host", ["pools.yaml"], tmp_path)
    assert command == "grep -n -i -m1 -B2 -A1 -E host pools.yaml"
    out = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True).stdout
    assert out == "1-primary:\n2-  database: primary_db\n3:  host: primary.example\n4-  pool: 4\n"


@pytest.mark.parametrize("before,after,first", [(0, 0, False), (1, 1, False), (2, 0, False), (0, 3, True),
                                                (3, 1, True)])
def test_the_output_the_search_expects_is_the_output_grep_prints(tmp_path, before, after, first):
    texts = {"a.txt": ["x", "key one", "y", "", "z", "key two", "key three", "w"], "b/c.txt": ["key", "q"]}
    for name, lines in texts.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    for files in (["a.txt"], ["a.txt", "b/c.txt"]):
        command = grep_command(["key"], files, before, after, first)
        real = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True).stdout
        expected = grep_output([texts[f] for f in files], files,
                               [matching_lines("\n".join(texts[f]), "key") for f in files], before, after, first)
        assert real.rstrip("\n") == expected


def test_a_files_path_counts_as_words_it_holds(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "docs" / "ports.md").write_text(
        "| port | berth | harbourmaster |\n| Keelby | 3 | Ana Ross |\n| Wraysholm | 5 | Ivo Kerr |\n")
    (tmp_path / "data" / "routes.json").write_text(
        ROUTES.replace('"minutes"', '"crossing_minutes"').replace('"id": "R1",', '"id": "R1", "from": "Port Keelby",'))
    # "port" is in docs/ports.md's name, "crossing" in the routes' text: the routes hold more of the task
    assert search_files("how long is the crossing from port Keelby to Wraysholm", tmp_path) == ["data/routes.json"]
    assert search_files("who is the harbourmaster at the port of Wraysholm", tmp_path) == ["docs/ports.md"]
    (tmp_path / ".harbourmaster.md").write_text("Wraysholm\n")  # a hidden file's name is no word of it
    assert search_files("who is the harbourmaster at Wraysholm", tmp_path) == ["docs/ports.md"]
    # files holding the task's words as much: first those named for them, then the shallowest
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "relay-poller.service").write_text("[Service]\nExecStart=/opt/relay/poller\nUser=rwpoll\n")
    for name in ("README.md", "CHANGELOG.md", "NOTES.md"):
        (tmp_path / name).write_text("The poller asks each site for its state.\n")
    assert search_files("which account does the poller run under", tmp_path, limit=1) == [
        "deploy/relay-poller.service"]


def test_a_word_weighs_by_how_few_lines_of_all_the_files_here_hold_it(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sites.json").write_text(
        '{\n  "sites": [\n    {"name": "Knockvallan", "ctcss": 94.8},\n    {"name": "Brannock", "ctcss": 88.5},\n'
        '    {"name": "Tarrow", "note": "Knockvallan mast backup"}\n  ]\n}\n')
    (tmp_path / "notes.md").write_text("".join(f"- site {i} checked\n" for i in range(6)))
    # in sites.json "site" is on one line and "Knockvallan" on two; here "site" is on seven: Knockvallan's line
    command = search_in("what tone does the Knockvallan site need", ["data/sites.json"], tmp_path)
    assert command == "grep -n -i -B1 -A2 -E knockvallan data/sites.json"
    out = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True).stdout
    assert "94.8" in out


def test_a_question_word_breaks_a_tie_between_lines_holding_the_tasks_words(tmp_path):
    (tmp_path / "Makefile").write_text("DUMP_DIR := /srv/dumps\nKEEP_DUMPS := 46\n\ndump:\n\tpg_dump app\n")
    task = "how many dumps does the Makefile keep"
    assert task_words(task) == ["dump", "makefile"]  # "keep" is how the question is put: never searched for
    assert shows_best("2:KEEP_DUMPS := 46\n", task, ["Makefile"], tmp_path)  # but it makes the best line
    assert not shows_best("4:dump:\n5:\tpg_dump app\n", task, ["Makefile"], tmp_path)
    assert shows_best("anything", "what is the weather", ["Makefile"], tmp_path)  # no line holds a word of it
