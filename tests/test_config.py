"""Settings: defaults, config.toml, and the checks that turn a bad value into one clear error at start."""

from __future__ import annotations

import dataclasses

import pytest
from typer.testing import CliRunner

from echo_agent.cli import app
from echo_agent.config import ConfigError, Settings

runner = CliRunner()


def test_defaults_pass_their_own_checks():
    s = Settings()
    assert s.recall_threshold <= 0 and 0 <= s.recall_verify_fraction <= 1


@pytest.mark.parametrize("values, message", [
    ({"recall_threshold": 0.5}, "recall_threshold must be at most 0 (got 0.5)"),
    ({"recall_verify_fraction": 1.5}, "recall_verify_fraction must be from 0 to 1"),
    ({"lora_r": "8"}, "lora_r must be a whole number (got '8')"),
    ({"lora_r": 0}, "lora_r must be at least 1"),
    ({"command_timeout": 0}, "command_timeout must be more than 0"),
    ({"heldout_fraction": True}, "heldout_fraction must be a number"),
    ({"read_only_commands": "jq"}, "read_only_commands must be a list of strings"),
    ({"excluded_dirs": [1]}, "excluded_dirs must be a list of strings"),
    ({"model": 3}, "model must be text"),
    ({"redact_patterns": ["ok-\\d+", "(unclosed"]}, "redact_patterns[1] '(unclosed' is not a regular expression"),
])
def test_bad_values_are_refused_with_the_setting_named(values, message):
    with pytest.raises(ConfigError) as e:
        Settings(**values)
    assert message in str(e.value)


def test_numbers_where_a_float_is_expected_may_be_whole():
    assert Settings(command_timeout=5, recall_threshold=-1).command_timeout == 5


def test_replace_is_checked_too():
    with pytest.raises(ConfigError):
        dataclasses.replace(Settings(), recall_threshold=1.0)


def test_a_bad_config_file_names_the_file(isolated_home):
    (isolated_home / "config.toml").write_text('recall_threshold = -0.2\nredact_patterns = ["(x"]\n')
    with pytest.raises(ConfigError) as e:
        Settings.load()
    assert str(e.value).startswith(f"{isolated_home / 'config.toml'}: redact_patterns[0]")
    with pytest.raises(ConfigError) as e:  # a bad keyword argument is not the file's fault
        Settings.load(recall_verify_fraction=2.0)
    assert "config.toml" not in str(e.value)


@pytest.mark.parametrize("args", [["logs"], ["stats"], ["adapters", "list"], ["updater", "start"],
                                  ["bench", "retrieval", "--tasks", "1", "--rounds", "1"]])
def test_commands_refuse_a_bad_config_in_one_line(isolated_home, args):
    (isolated_home / "config.toml").write_text("lora_r = 'eight'\n")
    r = runner.invoke(app, args)
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.output
    assert r.output.strip() == f"error: {isolated_home / 'config.toml'}: lora_r must be a whole number (got 'eight')"
    assert not (isolated_home / "updater.pid").exists()
