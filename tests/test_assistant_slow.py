"""One real episode with the embedded model (SmolLM2) through the agent loop, the shell and the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from echo_agent.agent import Agent, AgentConfig, SilentUI
from echo_agent.config import Settings
from echo_agent.memory.store import TrajectoryStore
from echo_agent.prompting import SYSTEM_PROMPT
from echo_agent.shell import ShellSession


@pytest.mark.slow
def test_embedded_model_runs_a_real_episode(embedded_dir: Path, tmp_path: Path, isolated_home: Path) -> None:
    from echo_agent.models.local import LocalBackend

    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "fruits.txt").write_text("apple\nbanana\ncherry\n")
    backend = LocalBackend(embedded_dir, device="cpu")
    settings = Settings.load()
    config = AgentConfig(max_steps=2, max_new_tokens=48, max_seconds=50.0)
    with (
        TrajectoryStore(isolated_home / "store.db", settings=settings) as store,
        ShellSession(cwd=ws) as shell,
    ):
        result = Agent(backend, shell, store, config=config, settings=settings, ui=SilentUI()).run(
            "how many lines does fruits.txt have"
        )
        episode = store.get_episode(result.episode_id)
        steps = store.episode_steps(result.episode_id)

    assert episode["status"] == result.status and result.status in ("done", "limit")
    system = episode["prompt"]["messages"][0]
    assert system["role"] == "system" and system["content"].startswith(SYSTEM_PROMPT)
    assert system["content"].endswith("it holds: fruits.txt.")  # the listing of the working directory
    assert episode["prompt"]["messages"][-1]["role"] == "assistant"  # the in-context examples end the prompt
    executed = [s for s in steps if s["command"] and s["status"] and s["status"].startswith("[exit ")]
    assert executed, [s["reply"] for s in steps]
    first = executed[0]
    assert first["reply"].startswith("```bash\n") and first["command"] in first["reply"]
    assert first["exit_code"] is not None and first["cwd_before"] == str(ws.resolve())


@pytest.mark.slow
def test_the_readmes_first_command_answers_right_in_a_generated_folder(embedded_dir: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's first `ask`, run as written in a folder generated from a seed, answers with the right count."""
    import re

    from typer.testing import CliRunner

    from echo_agent.bench.world import World
    from echo_agent.cli.app import app

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    task = re.search(r'scripts/run\.sh ask "([^"]+)"', readme).group(1)
    world = World(11)
    world.meeting_notes()
    world.inventory_csv()
    world.service_log()
    n_lines = world.rng.randint(30, 90)
    world.add("README.md", "".join(f"{world.word()} {world.word(3)}\n" for _ in range(n_lines)))
    root = world.build(tmp_path / "folder")
    monkeypatch.chdir(root)
    result = CliRunner().invoke(app, ["ask", task])
    assert result.exit_code == 0, result.output
    assert re.search(rf"(?<![\d.]){n_lines}(?!\d)", result.output), result.output
