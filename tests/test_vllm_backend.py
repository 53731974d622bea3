"""The vLLM backend's parts that need neither vllm nor a GPU: adapter validation and LoRARequest naming."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from echo_agent.models.vllm import AdapterError, LoRARegistry, validate_adapter_dir


def _adapter(path: Path, weights: bytes = b"w", **config) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    cfg = {"peft_type": "LORA", "r": 16, "lora_alpha": 32, "target_modules": ["q_proj", "v_proj"]} | config
    (path / "adapter_config.json").write_text(json.dumps(cfg))
    (path / "adapter_model.safetensors").write_bytes(weights)
    return path


def test_importing_the_module_does_not_import_vllm():
    code = "import sys, echo_agent.models.vllm; print('vllm' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_a_plain_lora_adapter_is_valid(tmp_path):
    config = validate_adapter_dir(_adapter(tmp_path / "a0001"))
    assert config["r"] == 16 and config["target_modules"] == ["q_proj", "v_proj"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"r": 4},
            r"Adapter a0007 has LoRA rank 4, which vLLM cannot load .*retrain with one of those ranks",
        ),
        ({"rank_pattern": {"q_proj": 12}}, "rank 12"),
        (
            {"modules_to_save": ["lm_head"]},
            "Adapter a0007 has modules_to_save .*retrain with the default config",
        ),
        ({"use_dora": True}, "Adapter a0007 uses DoRA, which vLLM cannot load; retrain"),
        ({"peft_type": "IA3"}, "IA3 adapter"),
    ],
)
def test_adapters_vllm_cannot_load_are_refused_with_the_fix(tmp_path, config, message):
    with pytest.raises(AdapterError, match=message):
        validate_adapter_dir(_adapter(tmp_path / "a0007", **config))


def test_missing_files_and_ranks_above_the_engine_limit_are_refused(tmp_path):
    with pytest.raises(AdapterError, match="not a directory"):
        validate_adapter_dir(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AdapterError, match="Adapter empty has no adapter_config.json"):
        validate_adapter_dir(tmp_path / "empty")
    half = _adapter(tmp_path / "half")
    (half / "adapter_model.safetensors").unlink()
    with pytest.raises(AdapterError, match="Adapter half has no adapter_model.safetensors; it is incomplete"):
        validate_adapter_dir(half)
    with pytest.raises(AdapterError, match="above the engine's max_lora_rank 64; start .*max_lora_rank=128"):
        validate_adapter_dir(_adapter(tmp_path / "big", r=128), max_rank=64)


def test_each_distinct_adapter_gets_a_new_id_and_a_name_never_reused(tmp_path):
    registry = LoRARegistry()
    a = _adapter(tmp_path / "a0001")
    b = _adapter(tmp_path / "a0002")
    ra, rb = registry.request_for(a), registry.request_for(b)
    assert (ra.name, ra.int_id, ra.path) == ("a0001-1", 1, str(a.resolve()))
    assert (rb.name, rb.int_id) == ("a0002-2", 2)
    assert registry.request_for(a) == ra  # same adapter, same request: vLLM keeps it cached

    # The same directory rewritten with new weights (as a retrain into the same path would) is a new adapter.
    new = tmp_path / "new"
    _adapter(new, weights=b"other weights")
    os.replace(new / "adapter_model.safetensors", a / "adapter_model.safetensors")
    ra2 = registry.request_for(a)
    assert ra2.int_id == 3 and ra2.name == "a0001-3"
    assert len({ra.name, rb.name, ra2.name}) == 3


def test_the_registry_refuses_invalid_adapters(tmp_path):
    with pytest.raises(AdapterError, match="use_dora|DoRA"):
        LoRARegistry().request_for(_adapter(tmp_path / "d", use_dora=True))
