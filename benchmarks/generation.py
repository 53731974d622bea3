"""Embedded-model speed: conversion (cold), warm load, time to first token, greedy tokens/s, vs llama.cpp.

    .venv/bin/python benchmarks/generation.py [--threads 2] [--new-tokens 64]

Cold = the one-time GGUF → safetensors conversion, in a temporary cache (the user's cache is not touched).
Warm load = `LocalBackend("embedded")` in a fresh process that has already imported torch and transformers'
Llama/tokenizer modules (their import time is every model command's, not the cache's; the total from process
start is shown too), reading the converted cache.
Time to first token and tokens/s use one ~300-token prompt and greedy decoding; tokens/s counts the tokens after
the first over the time after the first (decode speed). llama.cpp (llama-cpp-python, if installed) decodes the
same token ids from the same GGUF with n_threads threads. The last line is machine-readable:
    RESULT warm_load_s=… ttft_s=… tok_per_s=… llamacpp_tok_per_s=… ratio=…
(ratio = our tokens/s over llama.cpp's).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPT = [
    {"role": "system", "content": "You are a helpful terminal assistant. Answer with care and in detail."},
    {
        "role": "user",
        "content": (
            "Here is the output of `df -h` on my machine:\n"
            + "".join(
                f"/dev/sd{c}{i}   {100 + 7 * i}G  {40 + 3 * i}G  {60 + 4 * i}G  {35 + i}% /mnt/disk{c}{i}\n"
                for c in "a"
                for i in range(1, 8)
            )
            + "Explain what each column means, which disks are fullest, and what I should clean up first. "
            "Write a long, thorough answer."
        ),
    },
]

_WARM_LOAD = (
    "import time; t0 = time.perf_counter()\n"
    "import torch, transformers.models.llama.modeling_llama, transformers.tokenization_utils_tokenizers\n"
    "from echo_agent.models.local import LocalBackend\n"
    "t = time.perf_counter(); LocalBackend('embedded', device='cpu')\n"
    "print(time.perf_counter() - t0); print(time.perf_counter() - t)\n"
)


def measure_ours(new_tokens: int) -> tuple[float, float, int, list[int]]:
    """(ttft_s, decode tok/s, tokens generated, prompt ids) with the local backend on the embedded model."""
    from echo_agent.models.local import LocalBackend

    backend = LocalBackend("embedded", device="cpu")
    prompt_ids = backend.encode(backend.render(PROMPT))
    backend.generate(PROMPT, max_new_tokens=2)  # one warm-up call (allocator, kernels)
    stamps: list[float] = []
    t0 = time.perf_counter()
    g = backend.generate(
        PROMPT, max_new_tokens=new_tokens, on_token=lambda _: stamps.append(time.perf_counter())
    )
    t_end = time.perf_counter()
    n = len(g.tokens)
    ttft = stamps[0] - t0
    return ttft, (n - 1) / (t_end - stamps[0]), n, prompt_ids


def measure_llamacpp(gguf: Path, prompt_ids: list[int], new_tokens: int, threads: int) -> tuple[float, int]:
    """(decode tok/s, tokens generated) with llama.cpp on the same GGUF and the same prompt token ids."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=1024, n_threads=threads, verbose=False)
    llm.create_completion(prompt_ids, max_tokens=2, temperature=0)  # warm-up
    stamps: list[float] = []
    for _ in llm.create_completion(prompt_ids, max_tokens=new_tokens, temperature=0, stream=True):
        stamps.append(time.perf_counter())
    n = len(stamps)
    return (n - 1) / (stamps[-1] - stamps[0]), n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads (torch keeps its default)")
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()

    from echo_agent.models.embedded import embedded_model_dir, gguf_path

    with tempfile.TemporaryDirectory(prefix="echo-bench-cache-") as cache:
        os.environ["ECHO_AGENT_CACHE"] = cache  # this process and its children use the temp cache only
        t = time.perf_counter()
        embedded_model_dir()
        cold = time.perf_counter() - t
        lines = subprocess.run([sys.executable, "-c", _WARM_LOAD], capture_output=True, text=True, check=True)
        total, warm = (float(x) for x in lines.stdout.strip().splitlines()[-2:])
        ttft, tps, n, prompt_ids = measure_ours(args.new_tokens)

    try:
        llama_tps, llama_n = measure_llamacpp(gguf_path(), prompt_ids, args.new_tokens, args.threads)
        llama_note = ""
    except ImportError:
        llama_tps, llama_n = float("nan"), 0
        llama_note = (
            "llama-cpp-python is not installed (pip install llama-cpp-python); llama.cpp column skipped"
        )

    import torch

    rows = [
        ("cold conversion (GGUF → safetensors)", f"{cold:.1f} s"),
        ("warm load (fresh process, libs imported)", f"{warm:.2f} s"),
        ("  … from process start, with imports", f"{total:.2f} s"),
        ("prompt tokens / torch threads", f"{len(prompt_ids)} / {torch.get_num_threads()}"),
        ("time to first token", f"{ttft:.3f} s"),
        (f"transformers fp32 decode ({n} tokens)", f"{tps:.1f} tok/s"),
        (f"llama.cpp Q4_1, {args.threads} threads ({llama_n} tokens)", f"{llama_tps:.1f} tok/s"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if llama_note:
        print(llama_note)
    ratio = tps / llama_tps if llama_tps == llama_tps else float("nan")
    print(
        f"RESULT warm_load_s={warm:.2f} ttft_s={ttft:.3f} tok_per_s={tps:.1f} "
        f"llamacpp_tok_per_s={llama_tps:.1f} ratio={ratio:.2f}"
    )


if __name__ == "__main__":
    main()
