"""Shared model fixtures: the real SmolLM2 tokenizer, a tiny random Llama beside it, a LocalBackend on that.

Session-scoped, so they cannot use conftest's function-scoped home/cache fixture: they point ECHO_AGENT_CACHE
at the shared test cache themselves (the embedded model is converted once per machine, ~25 s, then reused).
"""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_SEED = 0


@pytest.fixture(scope="session")
def embedded_dir() -> Path:
    """The converted embedded model in the shared test cache (converted on first use)."""
    from conftest import TEST_CACHE

    from echo_agent.models.embedded import embedded_model_dir

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ECHO_AGENT_CACHE", str(TEST_CACHE))
        return embedded_model_dir()


@pytest.fixture(scope="session")
def smollm2_tokenizer(embedded_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smollm2_tokenizer) -> Path:
    """A 2-layer random Llama with SmolLM2's vocabulary, tokenizer and chat template (a few MB, loads in ms)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = smollm2_tokenizer
    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        initializer_range=0.5,  # peaked enough that greedy tokens have varied log-probs
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(TINY_SEED)
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_backend(tiny_model_dir: Path):
    from echo_agent.models.local import LocalBackend

    return LocalBackend(tiny_model_dir, device="cpu")


@pytest.fixture
def tiny_starter(tiny_model_dir, tmp_path, monkeypatch):
    """A starter adapter made for the tiny model (random LoRA weights, B not zero so it changes predictions),
    in place of the shipped one."""
    import torch

    from echo_agent.updater import registry
    from echo_agent.updater.cycle import load_for_training
    from echo_agent.updater.train import TrainConfig

    model, _, _ = load_for_training(tiny_model_dir, None, TrainConfig(lora_r=4, lora_alpha=8), "cpu")
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05)
    base_name, base_hash = registry.model_identity(tiny_model_dir)
    path = registry.save_adapter(model, tmp_path / "data", "starter", {
        "parent_id": None, "base_model": base_name, "base_hash": base_hash, "starter": True,
        "metrics": {"heldout_env_ce": {"before": 5.0, "after": 4.0}}})
    monkeypatch.setattr(registry, "STARTER_DIR", path)
    return path
