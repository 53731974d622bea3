"""The retrieval benchmark: the generated world, suite files, and whole runs with a scripted or tiny model."""

from __future__ import annotations

import json
import math
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from echo_agent.bench.report import plot, result_line, rounds_table
from echo_agent.bench.run import BENCH_SYSTEM_PROMPT, Bench, BenchConfig
from echo_agent.bench.suite import SuiteError, load_suite, parse_suite
from echo_agent.bench.workspace import build_workspace, generated_suite
from echo_agent.cli import app
from echo_agent.config import Settings
from echo_agent.models.scripted import ScriptedBackend
from echo_agent.shell import ShellSession

RESULT_RE = re.compile(r"^RESULT learning_ratio=(\S+) frozen_ratio=(\S+) accuracy=(\S+) frozen_accuracy=(\S+) "
                       r"paraphrased_ratio=(\S+) rounds=(\d+) minutes=\d+\.\d$", re.MULTILINE)


def _tree(root):
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*"))
            if p.is_file() and ".git" not in p.parts}


def _git_log(root):
    return subprocess.run(["git", "log", "--oneline"], cwd=root, capture_output=True, text=True,
                          check=True).stdout


# --- the generated world ------------------------------------------------------------------------------------


def test_generated_world_is_deterministic_per_seed_and_differs_across_seeds(tmp_path):
    a, b, c = (build_workspace(generated_suite(seed, 12), tmp_path / name)
               for seed, name in ((7, "a"), (7, "b"), (8, "c")))
    assert _tree(a) == _tree(b) and _git_log(a) == _git_log(b)  # git hashes too: dates and names are pinned
    assert _tree(a) != _tree(c) and _git_log(a) != _git_log(c)
    s7, s8 = generated_suite(7, 12), generated_suite(8, 12)
    assert [t.answer for t in s7.tasks] != [t.answer for t in s8.tasks]
    kinds = [t.kind for t in s7.tasks]
    assert len(kinds) == 12 and kinds.count("repeated") == 6 and kinds.count("paraphrased") == 6
    assert all(1 <= len(t.commands) <= 2 for t in s7.tasks)


def test_every_generated_task_is_answered_by_its_look_ups_in_every_round(tmp_path):
    suite = generated_suite(3, 12)
    ws = build_workspace(suite, tmp_path / "ws")
    with ShellSession(cwd=ws) as shell:
        for task in suite.tasks:
            for round_no in (1, 2):
                seen = "".join(shell.run(c).output for c in task.commands_for(round_no))
                assert task.check(seen), (task.question, task.commands_for(round_no), seen)
                if task.kind == "paraphrased" and round_no == 2:
                    assert task.commands_for(2) != task.commands


# --- suite files --------------------------------------------------------------------------------------------

SUITE_YAML = """\
name: demo
read_only: [./deployctl]
files:
  app.conf: |
    port = 8123
  deployctl: |
    #!/bin/sh
    echo "target: eu-west-9"
executables: [deployctl]
setup:
  - echo ready > setup.txt
tasks:
  - question: what port does the app use
    commands: [cat app.conf]
    paraphrased: [grep port app.conf]
    answer: "8123"
  - question: where do we deploy
    commands: [./deployctl]
    answer_regex: "eu-west-\\\\d"
"""


def test_a_suite_file_builds_its_workspace_and_checks_answers(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE_YAML)
    suite = load_suite(path)
    assert suite.name == "demo" and [t.kind for t in suite.tasks] == ["paraphrased", "repeated"]
    ws = build_workspace(suite, tmp_path / "ws")
    assert (ws / "setup.txt").read_text() == "ready\n"
    with ShellSession(cwd=ws) as shell:
        assert suite.tasks[1].check(shell.run("./deployctl").output)
    assert suite.tasks[1].matched("target: eu-west-9\n") == "eu-west-9"
    assert not suite.tasks[0].check("port = 8124")
    as_json = tmp_path / "suite.json"
    as_json.write_text(json.dumps(suite.to_dict()))
    assert load_suite(as_json).tasks == suite.tasks


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("tasks"), "`tasks` must be a non-empty list"),
    (lambda d: d.update(colour="red"), "unknown key(s) colour"),
    (lambda d: d["tasks"][0].update(commands=["rm app.conf"]), "is not read-only"),
    (lambda d: d["tasks"][1].update(commands=["./deployctl --force"], answer_regex="x") or d.update(read_only=[]),
     "declare its name under `read_only`"),
    (lambda d: d["tasks"][0].update(answer_regex="8123"), "exactly one checker"),
    (lambda d: d["tasks"][1].update(answer_regex="eu-(west"), "not a valid regular expression"),
    (lambda d: d["tasks"][0].pop("commands"), "commands: expected a list"),
    (lambda d: d.update(executables=["nope"]), "'nope' is not one of the files"),
    (lambda d: d["files"].update({"../escape": "x"}), "must be a relative path inside the workspace"),
    (lambda d: d["tasks"].append(dict(d["tasks"][0], question="What  PORT does the app use")),
     "questions must be distinct"),
])
def test_invalid_suites_are_refused_with_a_message_that_says_where(change, message):
    import yaml

    data = yaml.safe_load(SUITE_YAML)
    change(data)
    with pytest.raises(SuiteError) as err:
        parse_suite(data, "my.yaml")
    assert message in str(err.value) and str(err.value).startswith("my.yaml")


def test_unreadable_and_malformed_suite_files(tmp_path):
    with pytest.raises(SuiteError, match="cannot read the suite file"):
        load_suite(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [\n")
    with pytest.raises(SuiteError, match="not valid YAML"):
        load_suite(bad)


def test_a_failing_setup_command_is_reported(tmp_path):
    suite = parse_suite({"setup": ["exit 3"], "tasks": [{"question": "q", "commands": ["ls"], "answer": "x"}]})
    with pytest.raises(SuiteError, match="setup command 'exit 3' failed with exit code 3"):
        build_workspace(suite, tmp_path / "ws")


# --- whole runs ---------------------------------------------------------------------------------------------


def _real_outputs(suite, tmp_path, rounds=(1,)):
    ws = build_workspace(suite, tmp_path / "probe-ws")
    with ShellSession(cwd=ws) as shell:
        return {c: (r := shell.run(c)).output + r.status
                for t in suite.tasks for n in rounds for c in t.commands_for(n)}


ANY_HISTORY = Settings(recall_min_runs=0)
"""Recall from the first run on, so a predictor that already knows the world recalls in round 1."""


def test_recall_waits_until_a_command_has_run_twice_with_one_output(tmp_path):
    suite = generated_suite(1, 4)
    known = _real_outputs(suite, tmp_path, rounds=(1, 2))  # a predictor that knows every command
    cfg = BenchConfig(rounds=3, tasks=4, seed=1, arms=("frozen",), verify_fraction=0.0, out_dir=tmp_path / "b")
    r1, r2, r3 = Bench(cfg, suite, settings=Settings(), make_predictor=lambda: ScriptedBackend(predictions=known)
                       ).run()["arms"]["frozen"]["rounds"]
    runs: Counter[str] = Counter()  # a look-up is recalled once it has run twice (one output: the world is fixed)
    expected = []
    for n in (1, 2, 3):
        expected.append(0)
        for c in (c for t in suite.tasks for c in t.commands_for(n)):
            expected[-1] += runs[c] >= 2
            runs[c] += runs[c] < 2
    assert [r["recalls"] for r in (r1, r2, r3)] == expected and expected[0] == 0 and expected[2] > expected[1]
    assert r1["accuracy"] == r2["accuracy"] == r3["accuracy"] == 1.0
    # Round 3: repeated look-ups have run twice (rounds 1 and 2); a paraphrase has run once (round 2).
    assert r3["executed_per_task_repeated"] == 0 and r3["executed_per_task_paraphrased"] == 1.0


def test_confident_recall_replaces_look_ups_and_the_report_says_so(tmp_path):
    suite = generated_suite(1, 4)
    known = _real_outputs(suite, tmp_path)  # the predictor knows round 1's commands, not the paraphrases
    cfg = BenchConfig(rounds=2, tasks=4, seed=1, arms=("frozen",), verify_fraction=0.0, out_dir=tmp_path / "b")
    report = Bench(cfg, suite, settings=ANY_HISTORY, make_predictor=lambda: ScriptedBackend(predictions=known)).run()
    r1, r2 = report["arms"]["frozen"]["rounds"]
    n_lookups = sum(len(t.commands) for t in suite.tasks)
    assert r1["recalls"] == n_lookups == r1["recalls_exact"] and r1["executed"] == 0 and r1["accuracy"] == 1.0
    assert r1["answers"]["recall"] == {"tasks": 4, "right": 4}  # every answer from recalled look-ups only
    # Round 2: repeated tasks are still recalled; the paraphrased commands are unknown, so they run.
    assert r2["executed_per_task_repeated"] == 0 and r2["executed_per_task_paraphrased"] == 1.0
    assert r2["accuracy"] == 1.0 and r1["complete"] and r2["complete"]
    assert r1["env_ce"] is None  # no torch model behind a scripted predictor

    blind = Bench(BenchConfig(rounds=2, tasks=4, seed=1, arms=("frozen",), out_dir=tmp_path / "c"), suite,
                  make_predictor=lambda: ScriptedBackend()).run()
    b1, b2 = blind["arms"]["frozen"]["rounds"]
    assert b1["executed"] == n_lookups and b1["recalls"] == 0 and b2["accuracy"] == 1.0
    assert blind["result"]["frozen_ratio"] == 1.0 and blind["result"]["learning_ratio"] is None

    line = result_line(blind)
    assert RESULT_RE.search(line) and "learning_ratio=na" in line and "frozen_ratio=1.000" in line
    assert "rounds=2 " in line and "frozen_accuracy=1.000" in line and "accuracy=na" in line
    assert rounds_table(report).row_count == 2
    r1.update(adapter="a0002", choosing="starter")  # a0002 recalls; the starter still chooses the commands
    console = Console(record=True, width=300)
    console.print(rounds_table(report))
    assert "a0002 ◆starter" in console.export_text()
    assert plot(report, tmp_path / "p.png").stat().st_size > 1000


def test_plot_draws_no_paraphrased_line_for_a_suite_without_paraphrases(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    row = {"round": 1, "executed_per_task_repeated": 1.0, "executed_per_task_paraphrased": None,
           "accuracy": 1.0, "env_ce": None}
    measured = {**row, "executed_per_task_paraphrased": math.nan}  # as a run has it, before the JSON
    report = {"suite": "s", "arms": {"frozen": {"rounds": [row]}, "learning": {"rounds": [measured]}}}
    plot(report, tmp_path / "p.png")
    labels = [t.get_text() for t in figures[0].axes[0].get_legend().get_texts()]
    assert labels == ["frozen repeated", "learning repeated"]


def test_verify_all_runs_every_look_up_and_measures_precision(tmp_path):
    suite = generated_suite(2, 4)
    known = _real_outputs(suite, tmp_path)
    first = suite.tasks[0].commands[0]
    known[first] = "something else entirely\n[exit 0]"  # one confident, wrong prediction
    cfg = BenchConfig(rounds=1, tasks=4, arms=("frozen",), verify="all", out_dir=tmp_path / "b")
    (r1,) = Bench(cfg, suite, settings=ANY_HISTORY, make_predictor=lambda: ScriptedBackend(predictions=known)).run()[
        "arms"]["frozen"]["rounds"]
    n_lookups = sum(len(t.commands) for t in suite.tasks)
    wrong = sum(c == first for t in suite.tasks for c in t.commands)
    assert r1["executed"] == n_lookups and r1["recalls"] == 0
    assert r1["verified"] == n_lookups and r1["verified_right"] == n_lookups - wrong
    assert r1["accuracy"] == 1.0  # verified look-ups show the real output


def test_a_wrong_confident_recall_fails_the_task(tmp_path):
    suite = generated_suite(2, 2)
    known = _real_outputs(suite, tmp_path)
    known = {c: "nothing useful here\n[exit 0]" for c in known}
    cfg = BenchConfig(rounds=1, tasks=2, arms=("frozen",), verify_fraction=0.0, out_dir=tmp_path / "b")
    (r1,) = Bench(cfg, suite, settings=ANY_HISTORY, make_predictor=lambda: ScriptedBackend(predictions=known)).run()[
        "arms"]["frozen"]["rounds"]
    assert r1["recalls"] == sum(len(t.commands) for t in suite.tasks) and r1["accuracy"] == 0.0
    assert r1["recalls_exact"] == 0


def test_the_time_budget_stops_the_run_cleanly(tmp_path):
    cfg = BenchConfig(rounds=3, tasks=2, arms=("frozen",), minutes=0.0, out_dir=tmp_path / "b")
    report = Bench(cfg, make_predictor=lambda: ScriptedBackend()).run()
    assert report["stopped_early"] and report["arms"]["frozen"]["rounds"] == []
    assert RESULT_RE.search(result_line(report))


def test_learning_arm_with_a_tiny_model_trains_between_rounds(tmp_path, tiny_model_dir):
    cfg = BenchConfig(rounds=2, tasks=2, seed=0, model=str(tiny_model_dir), epochs=1, device="cpu",
                      out_dir=tmp_path / "b")
    report = Bench(cfg).run()
    frozen, learning = report["arms"]["frozen"]["rounds"], report["arms"]["learning"]["rounds"]
    assert [r["round"] for r in frozen] == [1, 2] == [r["round"] for r in learning]
    cycle = learning[0]["cycle"]
    assert cycle["status"] in ("promoted", "rejected") and cycle["train"]["steps"] >= 1
    assert "cycle" not in learning[1]  # no cycle after the last round
    for r in frozen + learning:
        assert r["env_ce"] > 0 and r["env_tokens"] > 0 and r["accuracy"] == 1.0
    assert frozen[1]["adapter"] is None
    assert learning[1]["adapter"] == (cycle["adapter_id"] if cycle["status"] == "promoted" else None)
    assert learning[1]["choosing"] == (cycle["adapter_id"] if cycle["status"] == "promoted" and cycle["chooses"]
                                       else None)
    assert (tmp_path / "b" / "learning" / "store.db").exists()  # its own home, not the user's
    assert report["result"]["frozen_ratio"] == 1.0


def test_cli_prints_the_table_and_the_result_line(tmp_path, tiny_model_dir, isolated_home):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["bench", "retrieval", "--tasks", "2", "--rounds", "2", "--arms", "frozen",
                                      "--model", str(tiny_model_dir), "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    m = RESULT_RE.search(result.output)
    assert m and m.group(1) == "na" and m.group(2) == "1.000" and m.group(3) == "na"
    assert (out / "bench.png").exists() and json.loads((out / "report.json").read_text())["arms"]["frozen"]
    assert not (isolated_home / "store.db").exists()  # the user's store is never touched
    bad = CliRunner().invoke(app, ["bench", "retrieval", "--arms", "frozen,slow"])
    assert bad.exit_code == 2 and "choose from frozen, learning" in bad.output


def test_model_policy_checks_the_models_answer(tmp_path):
    suite = generated_suite(4, 2)
    first, second = suite.tasks

    prompts = []

    def model(messages):  # looks up once, then answers the first task right and the second wrong (from a look-up
        prompts.append(messages)  # whose output does not hold the answer, so showing it cannot help)
        task = next(t for t in suite.tasks if t.question == [m for m in messages if m["role"] == "user"][-1]["content"])
        if messages[-1]["role"] != "tool":
            return f"```bash\n{task.commands[0] if task is first else 'pwd'}\n```"
        return f"```answer\n{task.answer if task is first else 'no idea'}\n```"

    cfg = BenchConfig(rounds=1, tasks=2, arms=("frozen",), policy="model", out_dir=tmp_path / "b")
    (r1,) = Bench(cfg, suite, make_predictor=lambda: ScriptedBackend(model)).run()["arms"]["frozen"]["rounds"]
    assert r1["passed"] == [0] and r1["accuracy"] == 0.5 and r1["executed"] == 2
    # Both answers came from executed look-ups; with the model in charge every task repeats as the same question.
    assert r1["answers"] == {"memory": {"tasks": 0, "right": 0}, "recall": {"tasks": 0, "right": 0},
                             "executed": {"tasks": 2, "right": 1}}
    assert r1["executed_per_task_repeated"] == 1.0 and math.isnan(r1["executed_per_task_paraphrased"])
    # The model chooses its commands, so it gets the assistant's own prompt with its in-context examples.
    assert sum(m["role"] == "assistant" for m in prompts[0]) >= 2 and prompts[0][0]["content"] != BENCH_SYSTEM_PROMPT


def test_model_policy_answers_from_memory_once_a_task_was_looked_up_twice(tmp_path):
    suite = generated_suite(4, 2)
    asked: Counter = Counter()

    def model(messages):  # looks up in its first two rounds; from then on, asked for the answer, it knows it
        task = next(t for t in suite.tasks if t.question == [m for m in messages if m["role"] == "user"][-1]["content"])
        if messages[-1]["role"] == "tool":
            return f"```answer\n{task.answer}\n```"
        asked[task.question] += 1
        return f"```answer\n{task.answer}\n```" if asked[task.question] > 2 else f"```bash\n{task.commands[0]}\n```"

    cfg = BenchConfig(rounds=3, tasks=2, arms=("frozen",), policy="model", verify="none", out_dir=tmp_path / "b")
    rounds = Bench(cfg, suite, make_predictor=lambda: ScriptedBackend(model)).run()["arms"]["frozen"]["rounds"]
    assert [r["executed"] for r in rounds] == [2, 2, 0] and [r["accuracy"] for r in rounds] == [1.0, 1.0, 1.0]
    assert rounds[2]["answers"]["memory"] == {"tasks": 2, "right": 2} and rounds[2]["recalls"] == 0
    assert [r["stated"] for r in rounds] == [2, 2, 2]  # every right answer says the fact in its own words


def test_the_model_policy_defaults_to_a_run_that_fits_its_budget():
    assert (BenchConfig().rounds, BenchConfig().tasks) == (4, 12)
    model = BenchConfig(policy="model")
    assert (model.rounds, model.tasks, model.policy) == (3, 10, "model")
    assert (BenchConfig(policy="model", rounds=5, tasks=4).rounds, BenchConfig(policy="model", tasks=4).tasks) == (5, 4)


def test_train_options_are_typed_and_checked():
    from echo_agent.cli.bench import parse_train_options
    from echo_agent.errors import EchoAgentError

    assert parse_train_options(["lr=5e-4", "lora_r=8", "objective=env"]) == {"lr": 5e-4, "lora_r": 8,
                                                                             "objective": "env"}
    with pytest.raises(EchoAgentError, match="KEY one of"):
        parse_train_options(["speed=11"])
    with pytest.raises(EchoAgentError, match="not a valid int"):
        parse_train_options(["epochs=many"])


def test_the_bench_threshold_reaches_the_cycle_settings(tmp_path):
    suite = generated_suite(1, 2)
    assert Bench(BenchConfig(recall_threshold=-0.7), suite).settings.recall_threshold == -0.7
    assert Bench(BenchConfig(), suite, settings=Settings(recall_threshold=-0.3)).settings.recall_threshold == -0.3


@pytest.mark.parametrize("kind, message", [("file", "is not a directory"), ("used", "is not empty")])
def test_out_must_be_new_or_empty_so_no_earlier_run_carries_over(tmp_path, isolated_home, kind, message):
    out = tmp_path / "out"
    if kind == "file":
        out.write_text("x")
    else:
        (out / "learning").mkdir(parents=True)
    r = CliRunner().invoke(app, ["bench", "retrieval", "--out", str(out)])
    assert r.exit_code == 2 and message in r.output and "give a new or empty directory" in r.output


@pytest.mark.parametrize("path", sorted((Path(__file__).parent.parent / "benchmarks" / "suites").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_every_shipped_suite_loads_and_its_look_ups_print_their_answers(path, tmp_path):
    suite = load_suite(path)
    workspace = build_workspace(suite, tmp_path / "ws")
    assert len(suite.tasks) >= 8
    for task in suite.tasks:
        out = "".join(subprocess.run(c, shell=True, cwd=workspace, capture_output=True, text=True).stdout
                      for c in task.commands_for(1))
        assert task.check(out), (task.question, out)
