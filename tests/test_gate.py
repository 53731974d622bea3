"""The gate as a pure function: measured numbers in, a Decision with one reason per check out (no model)."""

from __future__ import annotations

import pytest

from echo_agent.config import Settings
from echo_agent.updater.cycle import verdict_message
from echo_agent.updater.gate import Baseline, Candidate, gate, retention

KNOWN = {"s1": [0.1, 2, 0.05], "s2": [0.2, 2, 0.08], "s3": [9.0, 3, 4.0]}
"""Older steps under the adapter in use: s1 and s2 recallable (weakest token within 0.1 nats), s3 not."""


def baseline(**kw) -> Baseline:
    return Baseline(**{"heldout_current": 2.0, "heldout_base": 2.5, "probe_base": 3.0, "retention": KNOWN,
                       "policy_kept": ["e1", "e2", "e3"], "policy_cases": 4, **kw})


def candidate(**kw) -> Candidate:
    return Candidate(**{"heldout": 1.5, "probe": 3.0, "retention": KNOWN, "policy_kept": ["e1", "e2", "e3"], **kw})


def test_a_candidate_that_passes_every_check_is_promoted():
    d = gate(baseline(), candidate(), Settings())
    assert d.promoted and d.chooses
    assert [r.check for r in d.reasons] == ["heldout_gain", "forgetting", "retention", "policy"]
    gain = d.reasons[0]
    assert gain.passed and gain.value == pytest.approx(0.25) and gain.limit == 0.02
    assert "2.000 → 1.500 (+25.0% vs the 2% margin)" in gain.text
    assert d.failed() == [] and d.to_dict()["reasons"][1]["check"] == "forgetting"


@pytest.mark.parametrize("cand, failing", [
    (candidate(heldout=1.99), "heldout_gain"),        # 0.5% better: under the 2% margin
    (candidate(probe=3.2), "forgetting"),             # the probe rose 6.7% over the base model
    (candidate(retention={**KNOWN, "s1": [3.0, 2, 2.5]}), "retention"),  # lost 1 of 2 recallable steps
    (candidate(retention={"s2": KNOWN["s2"]}), "retention"),             # a step it was not measured on is lost
])
def test_each_check_alone_can_reject(cand, failing):
    d = gate(baseline(), cand, Settings())
    assert not d.promoted and not d.chooses and [r.check for r in d.failed()] == [failing]
    message = verdict_message("a0007", d)
    assert message.startswith("a0007 rejected: held-out env CE") and "probe" in message


@pytest.mark.parametrize("kept", [["e1", "e2"],  # stops choosing the command that worked for one task
                                  ["e4"]])       # gains one, loses three
def test_a_candidate_that_fails_only_the_policy_check_recalls_but_does_not_choose(kept):
    d = gate(baseline(), candidate(policy_kept=kept), Settings())
    assert d.promoted and not d.chooses and [r.check for r in d.failed()] == ["policy"]
    assert d.to_dict()["chooses"] is False
    message = verdict_message("a0007", d, "a0003")
    assert message.startswith("a0007 promoted to recall only (a0003 still chooses the commands): held-out env CE")
    assert not gate(baseline(), candidate(heldout=1.99, policy_kept=kept), Settings()).chooses


def test_limits_come_from_the_settings():
    lenient = Settings(gate_margin=-10.0, forgetting_tolerance=1.0, retention_tolerance=1.0, policy_tolerance=0.25)
    d = gate(baseline(), candidate(heldout=5.0, probe=5.0, retention={}, policy_kept=["e1", "e3"]), lenient)
    assert d.promoted and [r.limit for r in d.reasons] == [-10.0, 1.0, 1.0, 0.25]
    assert not gate(baseline(), candidate(), Settings(gate_margin=0.5)).promoted


def test_retention_counts_only_steps_the_adapter_in_use_recalls():
    r = retention(KNOWN, {"s1": [0.1, 2, 0.05], "s2": [1.0, 2, 0.9], "s3": [0.0, 3, 0.0]}, threshold=-0.1)
    assert (r["known"], r["lost"], r["lost_steps"]) == (2, 1, ["s2"]) and r["lost_fraction"] == 0.5
    assert retention({}, {}, -0.1)["lost_fraction"] == 0.0
    d = gate(baseline(retention={}), candidate(retention={}), Settings())
    assert d.promoted and d.reasons[2].text == "no older step the adapter in use recalls"


def test_the_policy_check_weighs_tasks_lost_against_tasks_gained():
    swapped = gate(baseline(), candidate(policy_kept=["e1", "e2", "e4"]), Settings())
    assert swapped.promoted and swapped.chooses
    policy = swapped.reasons[3]
    assert policy.value == 0.0
    assert policy.text == ("chooses the command that worked for 3 of 4 tasks (the adapter choosing now: 3; "
                           "lost 1, gained 1)")
    better = gate(baseline(), candidate(policy_kept=["e1", "e2", "e3", "e4"]), Settings()).reasons[3]
    assert better.passed and better.value == -0.25
    worse = gate(baseline(), candidate(policy_kept=["e1", "e2"]), Settings()).reasons[3]
    assert not worse.passed and worse.value == 0.25
    none = gate(baseline(policy_kept=[], policy_cases=0), candidate(policy_kept=[]), Settings()).reasons[3]
    assert none.passed and none.text == "no answered task to check the policy on"
