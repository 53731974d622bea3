"""Generation speed on the embedded model: echo-agent's default CPU backend against raw llama-cpp-python and
transformers, with and without an adapter, in one run and on one prompt.

    .venv/bin/python benchmarks/generation.py [--threads 2] [--new-tokens 128] [--repeats 3]

Rows (each decodes the same ~300-token prompt's token ids greedily; tok/s counts the tokens after the first over
the time after the first, i.e. decode speed):
- raw llama-cpp-python (`Llama`, `n_threads=--threads`) on the GGUF, and the same loading `adapter.gguf` through
  `lora_path`;
- echo-agent's default CPU backend (what `backend = "auto"` picks here), without and with the adapter;
- transformers (`--backend local`), without adapter.
The adapter has the default shape (r=16 on every attention and MLP projection) with a random, nonzero lora_B.
Each measurement runs `--repeats` times, interleaved; the table shows the median and the range.

    ratio        = default backend with the adapter / raw llama-cpp-python with the same adapter.gguf
    adapter_cost = raw with the adapter / raw without
    warm_load_s  = building the default backend in a fresh process that has already imported its libraries
                   (the total from process start is shown too)
    swap_ms      = switching between two loaded adapters (the first load of each is shown apart)

The last line is machine-readable:
    RESULT tok_per_s=… adapter_tok_per_s=… llamacpp_tok_per_s=… transformers_tok_per_s=… ratio=… warm_load_s=…
           swap_ms=… adapter_cost=… backend=…
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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
    "import sys, transformers, llama_cpp\n"
    "from transformers import AutoTokenizer\n"
    "from echo_agent.models import make_backend\n"
    "from echo_agent.models.llamacpp import LlamaCppBackend\n"
    "t = time.perf_counter(); make_backend('auto', 'embedded', threads=int(sys.argv[1]))\n"
    "print(time.perf_counter() - t0); print(time.perf_counter() - t)\n"
)


def make_adapter(out: Path) -> Path:
    """The default shape, r=16 on every attention and MLP projection, with a random nonzero lora_B."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from echo_agent.models.embedded import embedded_model_dir

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(embedded_model_dir())
    peft_model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=[
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    peft_model.save_pretrained(out)
    return out


def timed(run: Callable[[Callable[[str], None]], int]) -> tuple[float, float, int]:
    """(decode tok/s, time to first token in s, tokens) of one generation that calls `tick` per token."""
    stamps: list[float] = []
    t0 = time.perf_counter()
    n = run(lambda _: stamps.append(time.perf_counter()))
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]), stamps[0] - t0, n


def ours(backend, new_tokens: int) -> Callable[[Callable[[str], None]], int]:
    def run(tick: Callable[[str], None]) -> int:
        forget = getattr(backend, "_forget_cache", None)
        if forget:
            forget()  # every row processes the whole prompt, as raw llama-cpp-python does after reset()
        return len(backend.generate(PROMPT, max_new_tokens=new_tokens, on_token=tick).tokens)

    return run


def raw(llm, ids: list[int], new_tokens: int) -> Callable[[Callable[[str], None]], int]:
    def run(tick: Callable[[str], None]) -> int:
        llm.reset()
        n = 0
        for _ in llm.create_completion(ids, max_tokens=new_tokens, temperature=0, stream=True):
            tick("")
            n += 1
        return n

    return run


def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    med = statistics.median(values)
    return f"{fmt.format(med)} ({fmt.format(min(values))}–{fmt.format(max(values))})" if len(values) > 1 else \
        fmt.format(med)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads, on both sides")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from llama_cpp import Llama

    from echo_agent.models import make_backend, resolve_backend
    from echo_agent.models.embedded import gguf_path
    from echo_agent.models.gguf_lora import export_adapter
    from echo_agent.models.local import LocalBackend

    name, why = resolve_backend("auto", "embedded")
    if why:
        print(f"note: {why}")
    work = Path(tempfile.mkdtemp(prefix="echo-bench-gen-"))
    adapter, other = make_adapter(work / "a"), make_adapter(work / "b")
    gguf = gguf_path()
    exported = export_adapter(adapter, gguf)
    export_adapter(other, gguf)

    lines = subprocess.run([sys.executable, "-c", _WARM_LOAD, str(args.threads)], capture_output=True, text=True,
                           check=True)
    total, warm = (float(x) for x in lines.stdout.strip().splitlines()[-2:])

    default = make_backend("auto", "embedded", threads=args.threads)
    ids = default.encode(default.render(PROMPT))
    t = time.perf_counter()
    default.use_adapter(adapter)
    first_load_ms = (time.perf_counter() - t) * 1000
    default.use_adapter(other)
    swaps = []
    for i in range(20):
        t = time.perf_counter()
        default.use_adapter(adapter if i % 2 == 0 else other)
        swaps.append((time.perf_counter() - t) * 1000)
    transformers = LocalBackend("embedded", device="cpu")
    plain = Llama(model_path=str(gguf), n_ctx=1024, n_threads=args.threads, n_threads_batch=args.threads,
                  verbose=False)
    with_lora = Llama(model_path=str(gguf), n_ctx=1024, n_threads=args.threads, n_threads_batch=args.threads,
                      lora_path=str(exported), verbose=False)

    def default_with(path):
        def run(tick):
            default.use_adapter(path)
            return ours(default, args.new_tokens)(tick)

        return run

    rows = {
        "raw llama-cpp-python": raw(plain, ids, args.new_tokens),
        "raw llama-cpp-python + adapter.gguf": raw(with_lora, ids, args.new_tokens),
        f"echo-agent default ({name})": default_with(None),
        f"echo-agent default ({name}) + adapter": default_with(adapter),
        "transformers (local)": ours(transformers, args.new_tokens),
    }
    results: dict[str, list[tuple[float, float, int]]] = {k: [] for k in rows}
    for run in rows.values():
        timed(run)  # warm-up: allocator, kernels, caches
    for _ in range(args.repeats):
        for key, run in rows.items():
            results[key].append(timed(run))

    def tps(key: str) -> list[float]:
        return [r[0] for r in results[key]]

    keys = list(rows)
    width = max(len(k) for k in keys) + 2
    print(f"{'':<{width}}{'decode tok/s (range)':<26}{'first token s':<16}tokens")
    for key in keys:
        print(f"{key:<{width}}{spread(tps(key)):<26}{spread([r[1] for r in results[key]], '{:.3f}'):<16}"
              f"{results[key][0][2]}")
    print(f"prompt tokens {len(ids)}, threads {args.threads}, repeats {args.repeats}")
    print(f"warm load (fresh process, libs imported) {warm:.2f} s; from process start {total:.2f} s")
    print(f"adapter: first load {first_load_ms:.1f} ms; switch between two loaded adapters "
          f"{spread(swaps, '{:.2f}')} ms")
    med = {k: statistics.median(tps(k)) for k in keys}
    ratio = med[keys[3]] / med[keys[1]]
    ratios = [a / b for a, b in zip(tps(keys[3]), tps(keys[1]), strict=True)]
    print(f"ratio per repeat {', '.join(f'{r:.3f}' for r in ratios)}")
    print(f"RESULT tok_per_s={med[keys[2]]:.1f} adapter_tok_per_s={med[keys[3]]:.1f} "
          f"llamacpp_tok_per_s={med[keys[0]]:.1f} transformers_tok_per_s={med[keys[4]]:.1f} ratio={ratio:.3f} "
          f"warm_load_s={warm:.2f} swap_ms={statistics.median(swaps):.2f} "
          f"adapter_cost={med[keys[1]] / med[keys[0]]:.3f} backend={name}")


if __name__ == "__main__":
    main()
