"""Grounded answers: an answer's numbers, names and paths must be in what the episode observed."""

from __future__ import annotations

import pytest

from echo_agent.grounding import claims, ground, stated, supported

DATE = [{"command": "date", "output": "Wed Dec  2 01:34:52 UTC 2026\n", "status": "[exit 0]", "exit_code": 0}]
LS = [{"command": "ls misc", "output": "letters.txt\nrecipes.txt\nshopping.txt\n", "status": "[exit 0]",
       "exit_code": 0}]


def test_claims_are_numbers_names_paths_and_quoted_text():
    assert claims("The date in config.ini is 2026-12-24 01:34:56.") == ["config.ini", "2026-12-24", "01:34:56"]
    assert claims("`q1.txt` is in ./projects/beta/etc, 1.1M and port 5246") == [
        "q1.txt", "./projects/beta/etc", "1.1M", "5246"]
    assert claims("There is nothing there.") == []


@pytest.mark.parametrize("answer", ["Today is Wed Dec 2, 2026.", "It is 01:34 UTC."])
def test_an_answer_the_output_supports_stands(answer):
    g = ground(answer, DATE, "what is the date")
    assert g.supported and g.text == answer


def test_an_answer_that_contradicts_the_output_is_replaced_by_it():
    g = ground("The date in config.ini is 2026-12-24.", DATE, "what is the date")
    assert not g.supported and g.unsupported == ("config.ini", "2026-12-24")
    assert g.text == "`date` printed:\nWed Dec  2 01:34:52 UTC 2026"


def test_numbers_match_whole_and_a_count_of_printed_lines_is_supported():
    assert ground("There are 3 files.", LS, "how many files are in misc").supported  # ls printed 3 lines
    assert not ground("It ran 35 times.", DATE, "when").supported
    assert ground("The task names misc and 3.", LS, "count 3 in misc").supported  # the task is evidence


def test_without_a_short_successful_output_the_agent_says_it_could_not_tell():
    failed = [{"command": "cat nope", "output": "cat: nope: No such file or directory\n", "status": "[exit 1]",
               "exit_code": 1}]
    assert ground("It is 42.", failed, "what").text == "I could not tell from what I ran (`cat nope`)."
    long = [{"command": "seq 1000", "output": "".join(f"{i}\n" for i in range(1000)), "status": "[exit 0]",
             "exit_code": 0}]
    assert ground("The total is 5.5.", long, "sum").text == "I could not tell from what I ran (`seq 1000`)."
    assert ground("It is 42.", [], "what").text == "I could not tell from what I ran."
    assert not ground("", DATE, "date").supported  # an empty answer is no answer


def test_a_literal_the_model_echoed_is_not_evidence():
    echoed = [{"command": 'echo "2023"', "output": "2023\n", "status": "[exit 0]", "exit_code": 0}]
    g = ground("The year is 2023.", echoed, "what year is it")
    assert not g.supported and g.text == "I could not tell from what I ran."
    home = [{"command": "echo $HOME", "output": "/root\n", "status": "[exit 0]", "exit_code": 0}]
    assert ground("Your home is /root.", home, "home").supported  # an expansion is the machine's answer


def test_a_bare_number_must_stand_alone_in_the_evidence():
    evidence = "tools/1.py tools/b.py 2026-12-02 10:22:01 v3.4 [2]"
    assert not supported("1", evidence) and not supported("22", evidence) and not supported("3", evidence)
    assert supported("2", evidence) and supported("2026-12-02", evidence) and supported("v3.4", evidence)
    assert supported("7", "workers = 7\n") and supported("12", "12 files.")


def test_the_models_own_words_are_what_comes_before_the_output_shown():
    shown = ground("It is Wed Dec 2.", DATE, "what day is it", with_output=True).text
    assert shown.endswith("Wed Dec  2 01:34:52 UTC 2026") and stated(shown) == "It is Wed Dec 2.\n"
    replaced = ground("The date is 2026-12-24.", DATE, "what is the date").text
    assert stated(replaced) == "" and stated("I could not tell from what I ran (`date`).") == ""
    assert stated("It is 42.") == "It is 42."
