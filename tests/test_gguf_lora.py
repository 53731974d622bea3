"""Exporting peft LoRA adapters to llama.cpp's GGUF LoRA format, on a small synthetic base GGUF (no model needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from echo_agent.errors import AdapterError
from echo_agent.models import gguf_lora
from echo_agent.models.gguf_lora import AdapterExportError, base_info, export_adapter, read_header

N_LAYER, N_HEAD, N_KV, HEAD_DIM, FF = 2, 4, 2, 4, 24
HIDDEN = N_HEAD * HEAD_DIM
SHAPES = {  # HF module -> (GGUF name, out, in)
    "self_attn.q_proj": ("attn_q", HIDDEN, HIDDEN),
    "self_attn.k_proj": ("attn_k", N_KV * HEAD_DIM, HIDDEN),
    "self_attn.v_proj": ("attn_v", N_KV * HEAD_DIM, HIDDEN),
    "self_attn.o_proj": ("attn_output", HIDDEN, HIDDEN),
    "mlp.gate_proj": ("ffn_gate", FF, HIDDEN),
    "mlp.up_proj": ("ffn_up", FF, HIDDEN),
    "mlp.down_proj": ("ffn_down", HIDDEN, FF),
}


def write_base(path: Path, arch: str = "llama") -> Path:
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(N_LAYER)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_KV)
    w.add_token_list(["<a>", "b", "c"])  # a string array the header reader must skip
    w.add_array("test.numbers", [1, 2, 3])
    w.add_tensor("token_embd.weight", np.zeros((3, HIDDEN), np.float32))
    for i in range(N_LAYER):
        for name, out_dim, in_dim in SHAPES.values():
            w.add_tensor(f"blk.{i}.{name}.weight", np.zeros((out_dim, in_dim), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_adapter(path: Path, r: int = 4, alpha: float = 8, dtype=np.float32, seed: int = 0, **config) -> dict:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    tensors = {}
    for i in range(N_LAYER):
        for module, (_, out_dim, in_dim) in SHAPES.items():
            key = f"base_model.model.model.layers.{i}.{module}"
            tensors[f"{key}.lora_A.weight"] = rng.normal(size=(r, in_dim)).astype(dtype)
            tensors[f"{key}.lora_B.weight"] = rng.normal(size=(out_dim, r)).astype(dtype)
    path.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path / "adapter_model.safetensors"))
    cfg = {"peft_type": "LORA", "r": r, "lora_alpha": alpha, "target_modules": ["q_proj"], **config}
    (path / "adapter_config.json").write_text(json.dumps(cfg))
    return tensors


def field_value(field):
    """A scalar or string field's value from the gguf package's reader (`contents()` is newer than gguf 0.11)."""
    if hasattr(field, "contents"):
        return field.contents()
    from gguf import GGUFValueType

    part = field.parts[field.data[0]]
    return bytes(part).decode() if field.types[0] == GGUFValueType.STRING else part.tolist()[0]


def read_gguf(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    fields = {k: field_value(f) for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    return fields, {t.name: np.array(t.data) for t in reader.tensors}


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return write_base(tmp_path / "base.gguf")


def test_header_reader_agrees_with_the_gguf_package(base: Path) -> None:
    from gguf import GGUFReader

    meta, names = read_header(base)
    reader = GGUFReader(str(base))
    assert names == [t.name for t in reader.tensors]
    for key, field in reader.fields.items():
        if not key.startswith("GGUF.") and key not in ("tokenizer.ggml.tokens", "test.numbers"):
            assert meta[key] == field_value(field), key
    info = base_info(base)
    assert (info.arch, info.n_layer, info.n_head, info.n_head_kv) == ("llama", N_LAYER, N_HEAD, N_KV)


def test_export_is_what_llama_cpp_reads(base: Path, tmp_path: Path) -> None:
    """Names, metadata and layout as llama_adapter_lora_init checks them; the scale folded into lora_b; q and k
    rows in llama.cpp's rotary layout, which transformers' own GGUF loader maps back to the adapter's delta."""
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    lora = write_adapter(tmp_path / "a", r=4, alpha=8)
    out = export_adapter(tmp_path / "a", base)
    assert out == tmp_path / "a" / "adapter.gguf"
    fields, tensors = read_gguf(out)
    assert fields["general.type"] == "adapter" and fields["general.architecture"] == "llama"
    assert fields["adapter.type"] == "lora" and fields["adapter.lora.alpha"] == 0.0
    assert len(tensors) == 2 * N_LAYER * len(SHAPES)
    undo = LlamaTensorProcessor(config={"num_attention_heads": N_HEAD, "num_key_value_heads": N_KV})
    for i in range(N_LAYER):
        for module, (name, out_dim, in_dim) in SHAPES.items():
            a, b = tensors[f"blk.{i}.{name}.weight.lora_a"], tensors[f"blk.{i}.{name}.weight.lora_b"]
            assert a.shape == (4, in_dim) and b.shape == (out_dim, 4) and a.dtype == b.dtype == np.float32
            key = f"base_model.model.model.layers.{i}.{module}"
            want = 2.0 * lora[f"{key}.lora_B.weight"] @ lora[f"{key}.lora_A.weight"]  # alpha / r = 2
            got = b @ a
            if name in ("attn_q", "attn_k"):
                assert not np.allclose(got, want)  # the rows really moved
                got = undo.process(got, f"blk.{i}.{name}.weight").weights
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_rslora_and_alpha_patterns_scale_like_peft(base: Path, tmp_path: Path) -> None:
    lora = write_adapter(tmp_path / "a", r=4, alpha=8, use_rslora=True, alpha_pattern={"down_proj": 2})
    _, tensors = read_gguf(export_adapter(tmp_path / "a", base))
    key = "base_model.model.model.layers.1"
    v = tensors["blk.1.attn_v.weight.lora_b"] @ tensors["blk.1.attn_v.weight.lora_a"]
    np.testing.assert_allclose(v, 8 / 2 * lora[f"{key}.self_attn.v_proj.lora_B.weight"]
                               @ lora[f"{key}.self_attn.v_proj.lora_A.weight"], rtol=1e-5)
    down = tensors["blk.1.ffn_down.weight.lora_b"] @ tensors["blk.1.ffn_down.weight.lora_a"]
    np.testing.assert_allclose(down, 2 / 2 * lora[f"{key}.mlp.down_proj.lora_B.weight"]
                               @ lora[f"{key}.mlp.down_proj.lora_A.weight"], rtol=1e-5)


def test_half_precision_adapters_export(base: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    lora = write_adapter(tmp_path / "f16", dtype=np.float16)
    _, tensors = read_gguf(export_adapter(tmp_path / "f16", base))
    a = lora["base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight"]
    np.testing.assert_array_equal(tensors["blk.0.attn_v.weight.lora_a"], a.astype(np.float32))
    bf16 = {k: torch.from_numpy(v.astype(np.float32)).to(torch.bfloat16) for k, v in lora.items()}
    (tmp_path / "bf16").mkdir()
    save_file(bf16, str(tmp_path / "bf16" / "adapter_model.safetensors"))
    (tmp_path / "bf16" / "adapter_config.json").write_text((tmp_path / "f16" / "adapter_config.json").read_text())
    _, tensors = read_gguf(export_adapter(tmp_path / "bf16", base))
    np.testing.assert_allclose(tensors["blk.0.attn_v.weight.lora_a"], a.astype(np.float32), rtol=1e-2)


def test_export_is_kept_until_the_weights_change_and_is_written_atomically(base: Path, tmp_path: Path,
                                                                          monkeypatch) -> None:
    write_adapter(tmp_path / "a")
    out = export_adapter(tmp_path / "a", base)
    first = out.stat().st_mtime_ns
    assert export_adapter(tmp_path / "a", base).stat().st_mtime_ns == first  # kept
    write_adapter(tmp_path / "a", seed=1)
    later = first + 10**9
    os.utime(tmp_path / "a" / "adapter_model.safetensors", ns=(later, later))
    assert export_adapter(tmp_path / "a", base).stat().st_mtime_ns > first  # rewritten for the new weights
    # A crash while writing leaves the old export (or none) and no temporary file.
    out.unlink()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(gguf_lora.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        export_adapter(tmp_path / "a", base)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]


def test_a_read_only_adapter_exports_into_the_cache(base: Path, tmp_path: Path, monkeypatch) -> None:
    write_adapter(tmp_path / "a")
    monkeypatch.setenv("ECHO_AGENT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(gguf_lora.os, "access", lambda path, mode: False)
    out = export_adapter(tmp_path / "a", base)
    assert out.parent.parent == tmp_path / "cache" / "adapters"
    assert out.is_file() and not (tmp_path / "a" / "adapter.gguf").exists()
    assert gguf_lora.exported_path(tmp_path / "a") == out


def test_the_shipped_starter_exports_into_the_cache_not_the_package(monkeypatch, tmp_path) -> None:
    from echo_agent.updater.registry import STARTER_DIR

    monkeypatch.setenv("ECHO_AGENT_CACHE", str(tmp_path / "cache"))
    assert gguf_lora.exported_path(STARTER_DIR).is_relative_to(tmp_path / "cache" / "adapters")


def test_what_cannot_be_exported_says_why_in_one_line(tmp_path: Path) -> None:
    qwen = write_base(tmp_path / "qwen.gguf", arch="qwen2")
    llama = write_base(tmp_path / "llama.gguf")
    write_adapter(tmp_path / "a")
    with pytest.raises(AdapterExportError, match="supports llama models, not qwen2"):
        export_adapter(tmp_path / "a", qwen)
    write_adapter(tmp_path / "saved", modules_to_save=["lm_head"])
    with pytest.raises(AdapterExportError, match="modules_to_save"):
        export_adapter(tmp_path / "saved", llama)
    write_adapter(tmp_path / "dora", use_dora=True)
    with pytest.raises(AdapterExportError, match="not a plain LoRA"):
        export_adapter(tmp_path / "dora", llama)
    with pytest.raises(AdapterError, match="incomplete"):
        export_adapter(tmp_path / "missing", llama)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "adapter_config.json").write_text(json.dumps({"r": 4, "lora_alpha": 8}))
    from safetensors.numpy import save_file

    save_file({"base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight": np.zeros((4, HIDDEN), np.float32),
               "base_model.model.model.layers.9.self_attn.q_proj.lora_B.weight": np.zeros((HIDDEN, 4), np.float32)},
              str(tmp_path / "other" / "adapter_model.safetensors"))
    with pytest.raises(AdapterExportError, match="trained on another model"):
        export_adapter(tmp_path / "other", llama)


def test_promotion_exports_for_a_gguf_model_only_and_says_why_not(base: Path, tmp_path: Path) -> None:
    from echo_agent.updater.registry import export_llamacpp, llamacpp_export_state

    write_adapter(tmp_path / "a")
    assert llamacpp_export_state(tmp_path / "a").startswith("not yet")
    assert export_llamacpp(tmp_path / "a", tmp_path) is None  # a transformers directory: nothing to export
    assert not (tmp_path / "a" / "adapter.gguf").exists()
    assert export_llamacpp(tmp_path / "a", base) is None
    assert llamacpp_export_state(tmp_path / "a") == str(tmp_path / "a" / "adapter.gguf")
    write_adapter(tmp_path / "b")
    why = export_llamacpp(tmp_path / "b", write_base(tmp_path / "q.gguf", arch="qwen2"))
    assert why == "adapter b was not exported to llama.cpp (adapter b: llama.cpp export supports llama models, not qwen2)"
