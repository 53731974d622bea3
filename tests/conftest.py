"""Tests never touch the user's files: every test gets its own home; the model cache is shared per run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parent.parent
TEST_CACHE = Path(os.environ.get("ECHO_AGENT_TEST_CACHE", _REPO / ".cache" / "test-models"))


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("ECHO_AGENT_HOME", str(home))
    monkeypatch.setenv("ECHO_AGENT_CACHE", str(TEST_CACHE))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home
pytest_plugins = ["model_fixtures"]
