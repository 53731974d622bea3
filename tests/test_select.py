"""Choosing within a cycle's budget: what is pending, how steps are weighed, and what a cycle over its budget
trains and leaves for later."""

import json

import pytest
from test_updater import ACCEPT_ANY

from echo_agent.config import Settings
from echo_agent.memory import adapters as adapter_rows
from echo_agent.memory import cycles, queries
from echo_agent.memory.store import TrajectoryStore
from echo_agent.records import AdapterStatus, EpisodeStatus, StepKind
from echo_agent.transcript import is_trainable
from echo_agent.updater.cycle import run_cycle
from echo_agent.updater.dataset import choose_episodes, render_windows
from echo_agent.updater.report import build, render_text
from echo_agent.updater.select import weights, within_budget
from echo_agent.updater.train import TrainConfig


@pytest.fixture
def store(isolated_home):
    with TrajectoryStore(isolated_home / "store.db") as s:
        yield s


def lookup(store, command, output, cwd="/srv"):
    """One episode of one look-up; returns the step id."""
    session = store.start_session()
    episode = store.start_episode(session, f"run {command}", [])
    sid = store.record_step(episode, reply=f"```bash\n{command}\n```", command=command, output=output,
                            status="[exit 0]", cwd_before=cwd, kind=StepKind.RETRIEVAL)
    store.finish_episode(episode, EpisodeStatus.DONE, "ok")
    return sid


def trained_by(store, adapter_id, parent_id, step_ids, status=AdapterStatus.PROMOTED, through=0):
    adapter_rows.insert_adapter(store, id=adapter_id, parent_id=parent_id, base_model="m", base_hash="h",
                                path="/nowhere", status=AdapterStatus.CANDIDATE, trained_through_seq=through,
                                n_env_tokens=0, metrics={})
    adapter_rows.record_verdict(store, adapter_id, status=status, metrics={}, step_ids=step_ids)


def test_pending_steps_are_the_ones_no_adapter_of_the_lineage_trained(store):
    a, b, c, d = (lookup(store, f"cat f{i}", f"v = {i}\n") for i in range(4))
    trained_by(store, "a0001", None, [a])
    trained_by(store, "a0002", "a0001", [c])
    trained_by(store, "a0003", "a0001", [b], status=AdapterStatus.REJECTED)  # a sibling: not this lineage
    pending = [s["id"] for s in queries.pending_steps(store, 0, "a0002")]
    assert pending == [b, d]
    assert [s["id"] for s in queries.pending_steps(store, 0, None)] == [a, b, c, d]
    first = store.get_step(a)["seq"]
    assert [s["id"] for s in queries.pending_steps(store, first, "a0002")] == [b, d]
    assert queries.pending_output_chars(store, 0, "a0002") == len("v = 1\n") + len("v = 3\n")


def test_near_duplicates_count_once_and_changing_output_counts_less(store):
    old = lookup(store, "ls -l", "total 8\n-rw 1 me 4096 Dec  1 10:00 a\n")
    new = lookup(store, "ls -l", "total 12\n-rw 1 me 4096 Dec  2 11:30 a\n")  # the same once numbers are blanked
    other_dir = lookup(store, "ls -l", "total 8\n-rw 1 me 4096 Dec  1 10:00 a\n", cwd="/tmp")
    date1, date2 = lookup(store, "date", "Mon Dec  7"), lookup(store, "date", "Tue Dec  8")
    fact = lookup(store, "cat app.conf", "name = web\nport = 8080\n")
    listing = lookup(store, "find .", "".join(f"./file_{chr(97 + i % 26)}\n" for i in range(120)))
    digits = lookup(store, "cat ids", "88231 99120 11234 55621\n")
    steps = list(store.iter_steps())
    w = weights(store, steps)
    assert w[old] == 0.0 and w[new] > 0 and w[other_dir] > 0  # the newest copy stands for the group
    assert w[fact] == 1.0
    assert w[date2] < 1.0 and w[date1] < 1.0  # `date` printed something else on another run
    assert w[new] < 1.0  # so did `ls -l` in /srv
    assert 0 < w[listing] < 0.5 and w[digits] == 0.5


def over_budget(store, selection, speed=10.0):
    """Settings choosing by `selection`, on a home whose last cycle trained at `speed` tok/s."""
    cycle_id = cycles.begin(store, 0)
    cycles.end(store, cycle_id, status="promoted", metrics={"train": {"tokens_per_s": speed}})
    return Settings(cycle_budget_minutes=0.0, cycle_selection=selection, replay_min=0, heldout_fraction=0.1), speed


def test_over_budget_surprise_trains_the_worst_predicted_first_and_the_rest_waits(store, smollm2_tokenizer):
    ids = [lookup(store, f"cat f{i}.conf", f"key = value{i}\n") for i in range(10)]
    settings, speed = over_budget(store, "surprise")
    chosen = choose_episodes(store, 0, settings)
    assert len(chosen.train) == 9  # the newest episode is held out
    surprise = {sid: (5.0 if i in (2, 5) else 0.1) for i, sid in enumerate(ids)}
    store.set_surprise(surprise)  # measured already: no pass is needed
    chosen = choose_episodes(store, 0, settings)
    ws, _ = render_windows(store, smollm2_tokenizer, chosen.train, is_trainable, settings.max_seq_len)
    per_window = max(len(w.input_ids) for w in ws)
    budget_s = 2.5 * per_window / speed
    settings.cycle_budget_minutes = budget_s / 60
    choice = within_budget(store, None, smollm2_tokenizer, chosen, settings, TrainConfig(epochs=1), 0)
    assert choice.only == {ids[2], ids[5]}
    assert choice.left == set(ids[:9]) - {ids[2], ids[5]}
    assert choice.metrics["chosen_steps"] == 2 and choice.metrics["left_steps"] == 7
    assert "surprise_pass_s" in choice.metrics and choice.metrics["surprise_measured"] == 0

    settings.cycle_selection = "newest"
    choice = within_budget(store, None, smollm2_tokenizer, chosen, settings, TrainConfig(epochs=1), 0)
    assert choice.only == {ids[7], ids[8]}

    settings.cycle_budget_minutes = 600.0  # it all fits: nothing is chosen, everything is trained
    assert within_budget(store, None, smollm2_tokenizer, chosen, settings, TrainConfig(epochs=1), 0).only is None


def test_a_cycle_over_budget_leaves_the_rest_pending_and_a_later_cycle_trains_it(store, isolated_home,
                                                                               tiny_model_dir):
    ids = [lookup(store, f"cat f{i}.conf", f"name = svc{i}\nport = {8000 + i}\n") for i in range(8)]
    over_budget(store, "newest", speed=5.0)
    settings = Settings.load(cycle_budget_minutes=0.5, cycle_selection="newest", replay_min=0, **ACCEPT_ANY)
    report = run_cycle(store, settings, home=isolated_home, model=tiny_model_dir, cfg=TrainConfig(epochs=1),
                       device="cpu")
    selection = report.metrics["selection"]
    assert report.status == "promoted" and 0 < selection["chosen_steps"] < 7, selection
    row = adapter_rows.get_adapter(store, report.adapter_id)
    trained = {r["step_id"] for r in store.rows("SELECT step_id FROM adapter_step WHERE adapter_id=?",
                                                [report.adapter_id])}
    assert trained and trained <= set(ids[:7])
    left = set(ids[:7]) - trained
    assert row["trained_through_seq"] < min(store.get_step(s)["seq"] for s in left)  # the watermark waits
    pending = {s["id"] for s in queries.pending_steps(store, row["trained_through_seq"], row["id"])}
    assert pending == left | {ids[7]}  # what was left out and what was held out
    assert json.loads(store.rows("SELECT metrics FROM cycle ORDER BY id DESC LIMIT 1")[0]["metrics"])[
        "selection"]["left_steps"] == len(left)
    text = render_text(build(store))
    assert f"chosen by newest; {len(left)} wait for a later cycle" in text

    later = run_cycle(store, Settings.load(cycle_budget_minutes=0, replay_min=0, **ACCEPT_ANY), home=isolated_home,
                      model=tiny_model_dir, cfg=TrainConfig(epochs=1), device="cpu")
    assert later.status == "promoted"
    again = {r["step_id"] for r in store.rows("SELECT step_id FROM adapter_step WHERE adapter_id=?",
                                              [later.adapter_id])}
    assert left <= again and not (trained & again)


def test_a_window_is_valued_by_its_pending_steps_only():
    from echo_agent.updater.dataset import Window
    from echo_agent.updater.select import _value

    w = Window(input_ids=list(range(10)), env_mask=[False, True, True, False, False, True, True, True, True, False],
               action_mask=[False] * 10, step_ids=[None, "trained", "trained", None, None, "p", "p", "p", "p", None])
    assert _value(w, {"p": 1.0}, {"p": 2.0}) == pytest.approx(2.0 * 4 / 10)  # the trained step counts nothing
    assert _value(w, {"p": 1.0}, {"p": None}) is None  # not measured yet: ranked after the measured
