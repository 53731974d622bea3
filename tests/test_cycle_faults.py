"""A cycle's faults: it yields to an agent episode, a full disk, a store held by another writer, a kill during
training. Each one promotes nothing, is recorded in the cycle table, and the next cycle recovers and says so."""

import errno
import os
import signal
import sqlite3
import subprocess
import sys

import pytest
import test_updater
from test_updater import ACCEPT_ANY, cycle

from echo_agent.errors import AdapterError, StoreBusy
from echo_agent.memory import cycles
from echo_agent.memory.adapters import get_adapter, list_adapters
from echo_agent.updater import registry

store, filled_store = test_updater.store, test_updater.filled_store  # the fixtures these tests share


def statuses(store):
    return [c["status"] for c in cycles.list_cycles(store)]


def test_a_cycle_is_recorded_with_what_became_recallable(filled_store, isolated_home, tiny_model_dir):
    report = cycle(filled_store, isolated_home, tiny_model_dir, **ACCEPT_ANY)
    [row] = cycles.list_cycles(filled_store)
    assert row["status"] == "promoted" and row["adapter_id"] == report.adapter_id and row["message"] == report.message
    assert row["ended_at"] > row["started_at"] and row["cpu_s"] > 0 and row["wall_s"] > 0
    assert row["metrics"]["train"]["tokens"] > 0 and row["metrics"]["recovered_cycles"] == []
    recallable = row["metrics"]["recallable"]
    assert recallable["gained_count"] == len(recallable["gained"]) and recallable["lost_count"] == 0
    for g in recallable["gained"]:
        assert g["command"].startswith("cat ") and g["confidence"] >= recallable["threshold"]


def test_training_yields_to_an_agent_episode_and_a_later_cycle_trains_the_same_data(filled_store, isolated_home,
                                                                                      tiny_model_dir):
    from echo_agent.config import Settings
    from echo_agent.updater.cycle import run_cycle
    from echo_agent.updater.train import TrainConfig

    stepped = []

    def interrupt():
        return "an agent episode started" if stepped else None

    report = run_cycle(filled_store, Settings.load(**ACCEPT_ANY), home=isolated_home, model=tiny_model_dir,
                       cfg=TrainConfig(epochs=2, lr=5e-3), device="cpu", interrupt=interrupt,
                       on_progress=lambda event, info: stepped.append(1) if event == "step" else None)
    assert report.status == "yielded" and report.adapter_id is None
    assert "an agent episode started" in report.message and "nothing was promoted" in report.message
    assert report.metrics["train"]["steps"] == 1  # asked before each optimizer step: the second one stops
    assert get_adapter(filled_store, "a0001")["status"] == "rejected"
    assert not (registry.adapters_dir(isolated_home) / "a0001").exists()
    assert registry.current_adapter(filled_store) == (None, None)
    assert all(s["surprise"] is not None for s in filled_store.iter_steps())  # what it measured is kept
    again = cycle(filled_store, isolated_home, tiny_model_dir, **ACCEPT_ANY)
    assert again.status == "promoted" and get_adapter(filled_store, again.adapter_id)["n_env_tokens"] == get_adapter(
        filled_store, "a0001")["n_env_tokens"]
    assert statuses(filled_store) == ["yielded", "promoted"]


def test_evaluation_gives_way_too_and_the_candidate_is_rejected(filled_store, isolated_home, tiny_model_dir):
    """The baseline, the candidate's evaluation and the policy replays take minutes on a CPU: they give way at
    their next batch (or task), before training and after it."""
    from echo_agent.config import Settings
    from echo_agent.updater.cycle import run_cycle
    from echo_agent.updater.train import TrainConfig

    before = run_cycle(filled_store, Settings.load(**ACCEPT_ANY), home=isolated_home, model=tiny_model_dir,
                       cfg=TrainConfig(epochs=1), device="cpu", interrupt=lambda: "an agent episode started")
    assert before.status == "yielded" and "yielded while evaluating" in before.message
    assert "unfinished" not in before.message and list_adapters(filled_store) == []
    trained = []
    after = run_cycle(filled_store, Settings.load(**ACCEPT_ANY), home=isolated_home, model=tiny_model_dir,
                      cfg=TrainConfig(epochs=1), device="cpu", interrupt=lambda: "a user" if trained else None,
                      on_progress=lambda event, info: trained.append(1) if event == "policy" and
                      info["model"] == "the candidate" else None)
    assert after.status == "yielded" and "(a0001 unfinished)" in after.message
    assert get_adapter(filled_store, "a0001")["status"] == "rejected"
    assert not (registry.adapters_dir(isolated_home) / "a0001").exists()
    assert statuses(filled_store) == ["yielded", "yielded"]


def test_a_full_disk_while_the_adapter_is_written_promotes_nothing(filled_store, isolated_home, tiny_model_dir,
                                                                   monkeypatch):
    from peft import PeftModel

    real_save = PeftModel.save_pretrained

    def full_disk(self, path, **kw):
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "adapter_model.safetensors"), "wb") as f:  # the part that fit
            f.write(b"\0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(PeftModel, "save_pretrained", full_disk)
    with pytest.raises(AdapterError) as e:
        cycle(filled_store, isolated_home, tiny_model_dir, **ACCEPT_ANY)
    assert "No space left on device" in str(e.value) and "\n" not in str(e.value)
    root = registry.adapters_dir(isolated_home)
    assert sorted(p.name for p in root.iterdir()) == []  # no partial copy, nothing published
    assert registry.current_adapter(filled_store) == (None, None)
    [failed] = cycles.list_cycles(filled_store)
    assert failed["status"] == "failed" and "No space left on device" in failed["message"]
    monkeypatch.setattr(PeftModel, "save_pretrained", real_save)
    report = cycle(filled_store, isolated_home, tiny_model_dir, **ACCEPT_ANY)
    assert report.status == "promoted" and get_adapter(filled_store, "a0001")["status"] == "rejected"


def test_a_store_held_by_another_writer_fails_the_cycle_in_one_line_and_the_next_recovers(
        filled_store, isolated_home, tiny_model_dir, monkeypatch):
    """A long `logs import` holds the write lock while the cycle trains: the verdict cannot be written, the
    cycle fails with one line and promotes nothing; the next cycle finds its row and its candidate and says so."""
    from echo_agent.updater import cycle as cycle_mod

    holder = sqlite3.connect(filled_store.path, isolation_level=None)
    filled_store.conn.execute("PRAGMA busy_timeout=200")
    real_train = cycle_mod.train

    def train_then_lock(*a, **k):
        stats = real_train(*a, **k)
        holder.execute("BEGIN IMMEDIATE")  # what `logs import` holds for its whole batch
        return stats

    monkeypatch.setattr(cycle_mod, "train", train_then_lock)
    with pytest.raises(StoreBusy) as e:
        cycle(filled_store, isolated_home, tiny_model_dir, **ACCEPT_ANY)
    assert "busy" in str(e.value) and "\n" not in str(e.value)
    holder.execute("ROLLBACK")
    holder.close()
    monkeypatch.setattr(cycle_mod, "train", real_train)
    assert get_adapter(filled_store, "a0001")["status"] == "candidate"  # never half-promoted
    assert registry.current_adapter(filled_store) == (None, None)
    report = cycle(filled_store, isolated_home, tiny_model_dir, **ACCEPT_ANY)
    first, second = cycles.list_cycles(filled_store)
    assert first["status"] == "failed" and "nothing of it was promoted" in first["message"]
    assert second["metrics"]["recovered_cycles"] == [first["id"]] and report.status == "promoted"
    assert get_adapter(filled_store, "a0001")["status"] == "rejected"


def test_sigkill_during_training_is_recorded_by_the_next_cycle(filled_store, isolated_home, tiny_model_dir):
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from echo_agent.config import Settings\n"
        "from echo_agent.memory.store import TrajectoryStore\n"
        "from echo_agent.updater.cycle import run_cycle\n"
        "from echo_agent.updater.train import TrainConfig\n"
        "store = TrajectoryStore(Path(sys.argv[1]) / 'store.db')\n"
        "def progress(event, info):\n"
        "    if event == 'step':\n"
        "        print('training', flush=True); sys.stdin.readline()\n"
        "run_cycle(store, Settings.load(gate_margin=-10.0), home=Path(sys.argv[1]), model=sys.argv[2],\n"
        "          cfg=TrainConfig(epochs=1), device='cpu', on_progress=progress)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(isolated_home), str(tiny_model_dir)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "training"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert statuses(filled_store) == ["running"]
    report = cycle(filled_store, isolated_home, tiny_model_dir, **ACCEPT_ANY)
    first, second = cycles.list_cycles(filled_store)
    assert first["status"] == "failed" and f"pid {proc.pid}" in first["message"]
    assert second["metrics"]["recovered_cycles"] == [first["id"]] and report.status == "promoted"
    assert get_adapter(filled_store, "a0001")["status"] == "rejected" and report.adapter_id == "a0002"
