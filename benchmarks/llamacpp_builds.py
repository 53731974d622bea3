"""What a llama.cpp build's instruction set costs: raw llama-cpp-python builds side by side on the embedded GGUF.

    .venv/bin/python benchmarks/llamacpp_builds.py [--build NAME=SITE_DIR ...] [--threads 2] [--repeats 3]

The installed build (`installed`, what scripts/setup.sh built: AVX2/FMA/F16C, no AVX512, no AMX) is always
measured; each `--build NAME=DIR` adds another, installed with `pip install --no-deps --target DIR <wheel>`, e.g. one
built with `CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON … -DGGML_AMX_TILE=OFF"` and
`pip wheel --no-cache-dir`. Each build runs in its own process (prompt processing of a ~300-token prompt and greedy
decoding of 128 tokens), the builds interleaved, --repeats times. A build that crashes is reported as such.

    RESULT installed_tok_per_s=… installed_prompt_tok_per_s=… <name>_tok_per_s=… … <name>_vs_installed=…
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

_CHILD = r"""
import json, sys, time
from llama_cpp import Llama
from echo_agent.models.embedded import gguf_path
ids = json.loads(sys.argv[2])
llm = Llama(model_path=str(gguf_path()), n_ctx=1024, n_threads=int(sys.argv[1]), n_threads_batch=int(sys.argv[1]),
            verbose=False)
llm.eval(ids[:8]); llm.reset()
t = time.perf_counter(); llm.eval(ids); prompt = len(ids) / (time.perf_counter() - t)
llm.reset()
stamps = [time.perf_counter() for _ in llm.create_completion(ids, max_tokens=128, temperature=0, stream=True)]
print(json.dumps({"prompt": prompt, "decode": (len(stamps) - 1) / (stamps[-1] - stamps[0])}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="append", default=[], help="NAME=SITE_DIR of another build")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    sys.path.insert(0, os.path.dirname(__file__))
    from generation import PROMPT
    from transformers import AutoTokenizer

    from echo_agent.models.embedded import gguf_path, gguf_tokenizer_dir
    from echo_agent.models.prompt import PromptRenderer

    renderer = PromptRenderer(AutoTokenizer.from_pretrained(gguf_tokenizer_dir(gguf_path(), "smollm2-135m-instruct")))
    ids = renderer.encode(renderer.render(PROMPT))
    builds = {"installed": None, **dict(b.split("=", 1) for b in args.build)}
    runs: dict[str, list[dict]] = {name: [] for name in builds}
    crashed: dict[str, str] = {}
    for _ in range(args.repeats):
        for name, site in builds.items():
            if name in crashed:
                continue
            env = dict(os.environ)
            if site:
                env["PYTHONPATH"] = os.pathsep.join([site, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
            done = subprocess.run([sys.executable, "-c", _CHILD, str(args.threads), json.dumps(ids)],
                                  capture_output=True, text=True, env=env, timeout=600)
            if done.returncode != 0:
                crashed[name] = f"exit {done.returncode}: {(done.stderr.strip().splitlines() or [''])[-1]}"
                continue
            runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    def rng(name: str, key: str) -> str:
        values = [r[key] for r in runs[name]]
        return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"

    print(f"{'build':<12}{'decode tok/s':<24}{'prompt tok/s':<24}")
    for name in builds:
        if runs[name]:
            print(f"{name:<12}{rng(name, 'decode'):<24}{rng(name, 'prompt'):<24}")
        if name in crashed:
            print(f"{name:<12}crashed ({crashed[name]})")
    print(f"prompt tokens {len(ids)}, threads {args.threads}, repeats {args.repeats}")
    parts = []
    for name in builds:
        if runs[name]:
            parts += [f"{name}_tok_per_s={med(name, 'decode'):.1f}", f"{name}_prompt_tok_per_s={med(name, 'prompt'):.1f}"]
            if name != "installed" and runs["installed"]:
                parts.append(f"{name}_vs_installed={med(name, 'decode') / med('installed', 'decode'):.3f}")
                parts.append(f"{name}_prompt_vs_installed={med(name, 'prompt') / med('installed', 'prompt'):.3f}")
        else:
            parts.append(f"{name}_tok_per_s=crashed")
    print("RESULT " + " ".join(parts))


if __name__ == "__main__":
    main()
