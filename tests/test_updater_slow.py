"""One real update cycle on the embedded SmolLM2: it learns what this machine's files say."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_updater import record_lookups

from echo_agent.config import Settings
from echo_agent.memory.store import TrajectoryStore
from echo_agent.updater import registry
from echo_agent.updater.cycle import run_cycle
from echo_agent.updater.train import TrainConfig

pytestmark = pytest.mark.slow


def test_a_cycle_on_smollm2_lowers_env_ce_and_the_adapter_loads(embedded_dir, isolated_home, tmp_path):
    from echo_agent.models.local import LocalBackend

    ws = tmp_path / "ws"
    ws.mkdir()
    files = {"db.conf": "host = vexor-17\nport = 6391\n", "web.conf": "host = quill-4\nport = 8817\n"}
    with TrajectoryStore(isolated_home / "store.db") as store:
        record_lookups(store, ws, files, rounds=2)
        lenient = Settings.load(gate_margin=-10.0, forgetting_tolerance=10.0, policy_tolerance=1.0)
        report = run_cycle(store, lenient, home=isolated_home, model="embedded", cfg=TrainConfig(epochs=2),
                           device="cpu")
        assert report.status == "promoted", report.message
        assert report.metrics["policy"]["cases"] == len(files)  # each task's first command replayed on SmolLM2
        ce = report.metrics["heldout_ce"]
        assert ce["candidate"] < 0.8 * ce["base"], ce  # the held-out run of a seen command is now expected
        adapter_id, path = registry.current_adapter(store)
    assert adapter_id == report.adapter_id and registry.adapter_complete(Path(path))

    backend = LocalBackend("embedded", device="cpu")
    messages = [{"role": "user", "content": "show db.conf"},
                {"role": "assistant", "content": "```bash\ncat db.conf\n```"}]
    target = files["db.conf"] + "[exit 0]"
    base = sum(backend.score(messages, "tool", target))
    backend.use_adapter(path)
    tuned = sum(backend.score(messages, "tool", target))
    assert tuned > base + 1.0  # the file's facts became far more likely
