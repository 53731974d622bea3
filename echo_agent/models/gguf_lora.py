"""peft LoRA adapters in llama.cpp's GGUF LoRA format: `adapter.gguf` beside the adapter's safetensors.

What llama.cpp expects (its `convert_lora_to_gguf.py` and `llama_adapter_lora_init`, in the llama.cpp that the
pinned llama-cpp-python carries):
- metadata `general.type = "adapter"`, `general.architecture` equal to the base model's, `adapter.type = "lora"`
  and `adapter.lora.alpha` (the scale applied is alpha / rank, or 1 when alpha is 0);
- for each adapted base tensor `<name>.weight`, a pair `<name>.weight.lora_a` and `<name>.weight.lora_b`, named
  as in the base GGUF (`blk.3.attn_q`), stored as peft keeps them: lora_A is (r, in) and lora_B is (out, r) in
  row-major order, which ggml reads as ne = [in, r] and [r, out];
- tensors for the token embedding or the output head are not LoRA pairs here (peft would keep them as
  `modules_to_save`); an adapter with them cannot be exported.

Two conversions that depend on how transformers loaded the GGUF the adapter was trained on:
- Llama's q and k projections are stored in llama.cpp's rotary layout, and transformers' GGUF loader undoes
  that permutation when it loads them. The adapter's lora_B rows (the output dimension) are put back into
  llama.cpp's layout with the same permutation `convert_hf_to_gguf.py` applies to the weights; lora_A is
  unchanged.
- peft's scaling (alpha / r, or alpha / sqrt(r) with rsLoRA, per module with rank or alpha patterns) is folded
  into lora_B, and alpha is written as 0, so llama.cpp applies exactly the scale peft applied.

Only architectures whose transformers-side layout is known are exported (`EXPORTABLE_ARCHS`); any other gets one
line (`AdapterExportError`) and the llama.cpp backend falls back to transformers.

The file is written to a temporary name in the same directory, flushed to disk and renamed into place, so a
crash never leaves an `adapter.gguf` that looks valid. An adapter directory that cannot be written to, or that
is inside the package (the shipped starter), gets its export in the cache instead (`exported_path`).
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from echo_agent.errors import AdapterError

__all__ = ["EXPORT_FILE", "EXPORTABLE_ARCHS", "AdapterExportError", "BaseInfo", "base_info", "export_adapter",
           "exported_path"]

EXPORT_FILE = "adapter.gguf"
EXPORTABLE_ARCHS = ("llama",)
"""Base architectures whose adapters are exported; transformers loads their projections in a known layout."""

_PEFT_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")


class AdapterExportError(AdapterError):
    """An adapter that cannot be written in llama.cpp's format (its base architecture, or what it adapts)."""


@dataclass(frozen=True)
class BaseInfo:
    """What the export needs from the base model's GGUF: no weights, only its metadata and tensor names."""

    arch: str
    n_layer: int
    n_head: int
    n_head_kv: int
    tensors: frozenset[str]


_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


def read_header(gguf_file: str | Path) -> tuple[dict[str, Any], list[str]]:
    """A GGUF file's scalar metadata (arrays are skipped) and its tensor names, read from its header alone.

    The gguf package's reader parses every array (a vocabulary has tens of thousands of strings) into Python
    objects, which takes seconds; this walks the header once and skips them.
    """
    import mmap

    with open(gguf_file, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        if buf[:4] != b"GGUF":
            raise AdapterExportError(f"{gguf_file} is not a GGUF file")
        n_tensors, n_kv = struct.unpack_from("<QQ", buf, 8)
        pos = 24

        def string() -> str:
            nonlocal pos
            (n,) = struct.unpack_from("<Q", buf, pos)
            pos += 8 + n
            return bytes(buf[pos - n : pos]).decode("utf-8", "replace")

        def value(kind: int) -> Any:
            nonlocal pos
            if kind == _STRING:
                return string()
            if kind == _ARRAY:
                item, count = struct.unpack_from("<IQ", buf, pos)
                pos += 12
                if item in _SCALAR:
                    pos += count * struct.calcsize(_SCALAR[item])
                else:
                    for _ in range(count):
                        value(item)
                return None
            (v,) = struct.unpack_from("<" + _SCALAR[kind], buf, pos)
            pos += struct.calcsize(_SCALAR[kind])
            return v

        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key = string()
            (kind,) = struct.unpack_from("<I", buf, pos)
            pos += 4
            meta[key] = value(kind)
        names = []
        for _ in range(n_tensors):
            names.append(string())
            (n_dims,) = struct.unpack_from("<I", buf, pos)
            pos += 4 + 8 * n_dims + 4 + 8
    return meta, names


def base_info(gguf_file: str | Path) -> BaseInfo:
    """The base model's architecture, head counts and tensor names, read from its GGUF header."""
    meta, names = read_header(gguf_file)
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        raise AdapterExportError(f"{gguf_file}: no general.architecture in its header; is it a model GGUF?")
    n_head = int(meta.get(f"{arch}.attention.head_count") or 0)
    return BaseInfo(arch=arch, n_layer=int(meta.get(f"{arch}.block_count") or 0), n_head=n_head,
                    n_head_kv=int(meta.get(f"{arch}.attention.head_count_kv") or n_head),
                    tensors=frozenset(names))


def exported_path(adapter_dir: Path) -> Path:
    """Where the adapter's export lives: inside its directory, or in the cache for a directory that is not
    writable or that belongs to the installed package (the shipped starter: nothing is written into a package)."""
    inside = Path(adapter_dir) / EXPORT_FILE
    in_package = Path(adapter_dir).resolve().is_relative_to(Path(__file__).resolve().parent.parent)
    if not in_package and (inside.is_file() or os.access(adapter_dir, os.W_OK)):
        return inside
    from echo_agent.config import cache_dir

    weights = Path(adapter_dir) / "adapter_model.safetensors"
    st = weights.stat()
    return cache_dir() / "adapters" / f"{Path(adapter_dir).name}-{st.st_size}-{st.st_mtime_ns}" / EXPORT_FILE


def export_adapter(adapter_dir: str | Path, base_gguf: str | Path, info: BaseInfo | None = None) -> Path:
    """Write `adapter.gguf` for the peft LoRA in `adapter_dir` (see the module docstring); returns its path.

    An export newer than the adapter's weights is kept as it is.
    """
    adapter_dir = Path(adapter_dir)
    weights = adapter_dir / "adapter_model.safetensors"
    config_file = adapter_dir / "adapter_config.json"
    if not weights.is_file() or not config_file.is_file():
        raise AdapterError(f"adapter {adapter_dir.name}: no adapter_config.json or adapter_model.safetensors; "
                           "it is incomplete")
    out = exported_path(adapter_dir)
    if out.is_file() and out.stat().st_mtime_ns >= weights.stat().st_mtime_ns:
        return out
    info = info or base_info(base_gguf)
    if info.arch not in EXPORTABLE_ARCHS:
        raise AdapterExportError(f"adapter {adapter_dir.name}: llama.cpp export supports "
                                 f"{', '.join(EXPORTABLE_ARCHS)} models, not {info.arch}")
    config = json.loads(config_file.read_text())
    if config.get("peft_type", "LORA") != "LORA" or config.get("use_dora"):
        raise AdapterExportError(f"adapter {adapter_dir.name} is not a plain LoRA (DoRA or another peft type); "
                                 "llama.cpp cannot load it")
    if config.get("modules_to_save"):
        raise AdapterExportError(f"adapter {adapter_dir.name} has modules_to_save "
                                 f"({', '.join(config['modules_to_save'])}); llama.cpp loads LoRA pairs only")
    tensors = gguf_tensors(read_safetensors(weights), config, info, adapter_dir.name)
    _write(out, info.arch, tensors)
    return out


def gguf_tensors(lora: dict[str, np.ndarray], config: dict[str, Any], info: BaseInfo, name: str
                 ) -> dict[str, np.ndarray]:
    """The GGUF tensors (name → float32 array) for a peft adapter's `lora` tensors."""
    import gguf

    names = gguf.get_tensor_name_map(next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == info.arch),
                                     info.n_layer)
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, value in lora.items():
        m = _PEFT_KEY.match(key)
        if m is None:
            raise AdapterExportError(f"adapter {name}: tensor {key} is not a LoRA A/B matrix; llama.cpp cannot "
                                     "load it")
        pairs.setdefault(m["module"], {})[m["ab"]] = value
    out: dict[str, np.ndarray] = {}
    for module, ab in sorted(pairs.items()):
        target = names.get_name(module)
        if target is None or f"{target}.weight" not in info.tensors or set(ab) != {"A", "B"}:
            raise AdapterExportError(f"adapter {name}: {module} has no LoRA pair that maps onto a weight of the "
                                     "base GGUF; it was trained on another model")
        a, b = ab["A"].astype(np.float32), ab["B"].astype(np.float32) * _scaling(config, module, ab["A"].shape[0])
        if info.arch == "llama" and target.endswith((".attn_q", ".attn_k")):
            b = _rope_permute(b, info.n_head if target.endswith(".attn_q") else info.n_head_kv)
        out[f"{target}.weight.lora_a"] = np.ascontiguousarray(a)
        out[f"{target}.weight.lora_b"] = np.ascontiguousarray(b)
    if not out:
        raise AdapterExportError(f"adapter {name} has no LoRA tensors")
    return out


def _scaling(config: dict[str, Any], module: str, r: int) -> float:
    """peft's scale for `module`: alpha / r, or alpha / sqrt(r) with rsLoRA; rank and alpha patterns apply."""
    alpha = config.get("lora_alpha", 8)
    for pattern, value in (config.get("alpha_pattern") or {}).items():
        if re.search(rf"(^|\.){pattern}$", module):
            alpha = value
    return alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r


def _rope_permute(b: np.ndarray, n_head: int) -> np.ndarray:
    """lora_B's rows in llama.cpp's rotary layout: what `convert_hf_to_gguf.py` does to a Llama q/k weight."""
    out_dim = b.shape[0]
    return b.reshape(n_head, 2, out_dim // n_head // 2, *b.shape[1:]).swapaxes(1, 2).reshape(b.shape)


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file as numpy arrays (bfloat16, which numpy lacks, through torch)."""
    from safetensors import safe_open

    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    if any(isinstance(v, dict) and v.get("dtype") == "BF16" for v in header.values()):
        import torch

        with safe_open(str(path), "pt") as st:
            return {k: st.get_tensor(k).to(torch.float32).numpy() for k in st.keys()}  # noqa: SIM118
    with safe_open(str(path), "np") as st:
        return {k: st.get_tensor(k) for k in st.keys()}  # noqa: SIM118


def _write(out: Path, arch: str, tensors: dict[str, np.ndarray]) -> None:
    import gguf

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # as the adapter's other files, not mkstemp's owner-only mode
    try:
        writer = gguf.GGUFWriter(tmp, arch)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 0.0)  # the scale is folded into lora_b
        for name, value in tensors.items():
            writer.add_tensor(name, value)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
