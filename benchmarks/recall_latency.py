"""What a recall costs against the look-up it replaces, for a short and a long output, on the default backend.

    .venv/bin/python benchmarks/recall_latency.py [--threads 2] [--repeats 5] [--backend auto]

Two files in a fresh workspace: a short one (one line) and a long one (~300 tokens of a service listing). An
adapter learns both outputs in the agent's own prompt (the assistant's system prompt, worked example and
examples, then the task and the `cat` command); training is in transformers, as the updater trains, and the
backend then serves the adapter. Measured per output:
- lookup_ms: `cat` in the agent's persistent shell (`ShellSession.run`, the path every executed look-up takes);
- recall_ms: `recall.predict` with the default backend (what `backend = "auto"` picks) and the adapter, with the
  KV cache emptied first, so the whole prompt is processed as after an adapter switch (the worst case);
- recall_warm_ms: the same with the prompt before the command already in the cache (the policy just wrote the
  command with the same adapter: the common case);
- whether the recall was exactly the file's content, with its confidence (weakest token log-prob).
Medians over --repeats; the ranges are in the table. The last line is machine-readable:
    RESULT recall_ms_short=… lookup_ms_short=… recall_ms_long=… lookup_ms_long=… backend=…
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

SHORT = "observatory-7 opens Thursdays 21:40-02:10\n"
LONG = "".join(
    f"{name:<18}{port:>6}  {state:<8} pid {pid:<6} since 2026-11-{day:02d}\n"
    for name, port, state, pid, day in [
        ("nginx", 443, "running", 1187, 3), ("postgres", 5432, "running", 1210, 3), ("redis", 6379, "running", 1302, 4),
        ("grafana", 3000, "stopped", 0, 9), ("prometheus", 9090, "running", 1455, 4), ("node-exporter", 9100,
        "running", 1460, 4), ("loki", 3100, "failed", 0, 12), ("minio", 9000, "running", 1622, 5), ("vault", 8200,
        "sealed", 1701, 6), ("consul", 8500, "running", 1733, 6), ("traefik", 8080, "running", 1802, 7),
        ("mosquitto", 1883, "running", 1850, 8), ("jellyfin", 8096, "stopped", 0, 15), ("syncthing", 8384,
        "running", 1999, 9)])


def train(backend_dir: Path, cases: list[tuple[list[dict], str]], out: Path, steps: int) -> Path:
    """A LoRA (the default shape) trained in transformers on each case's observation (env tokens only)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from echo_agent.models.prompt import PromptRenderer

    tokenizer = AutoTokenizer.from_pretrained(backend_dir)
    prompts = PromptRenderer(tokenizer)
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(backend_dir), LoraConfig(
        r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                             "down_proj"]))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    batches = []
    for messages, observation in cases:
        prompt = prompts.encode(prompts.render(messages, "tool"))
        target = prompts.encode(observation) + [end]
        batches.append((torch.tensor([prompt + target]), torch.tensor([[-100] * len(prompt) + target])))
    for step in range(steps):
        ids, labels = batches[step % len(batches)]
        model(input_ids=ids, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backend", default="auto", help="auto, llamacpp or local")
    parser.add_argument("--steps", type=int, default=80, help="training steps for the adapter")
    args = parser.parse_args()

    from echo_agent import recall
    from echo_agent.models import make_backend, resolve_backend
    from echo_agent.models.embedded import embedded_model_dir
    from echo_agent.prompting import build_prompt
    from echo_agent.shell import ShellSession

    name, why = resolve_backend(args.backend, "embedded")
    if why:
        print(f"note: {why}")
    work = Path(tempfile.mkdtemp(prefix="echo-bench-recall-"))
    ws = work / "ws"
    ws.mkdir()
    (ws / "hours.txt").write_text(SHORT)
    (ws / "services.txt").write_text(LONG)
    cases = {}
    with ShellSession(cwd=ws) as shell:
        for key, task, command in [("short", "when does the observatory open?", "cat hours.txt"),
                                   ("long", "which services run here, on which ports?", "cat services.txt")]:
            reply = f"```bash\n{command}\n```"
            messages = [*build_prompt(task, None, cwd=ws, listing=8), {"role": "user", "content": task}]
            result = shell.run(command)
            observation = f"{result.output}{result.status}"
            cases[key] = (messages, reply, command, result.output, result.status, observation)
        adapter = train(embedded_model_dir(), [([*m, {"role": "assistant", "content": r}], o)
                                               for m, r, _, _, _, o in cases.values()], work / "adapter", args.steps)
        backend = make_backend(name, "embedded", **({"threads": args.threads} if name == "llamacpp" else
                                                    {"device": "cpu"}))
        backend.use_adapter(adapter)
        rows = {}
        for key, (messages, reply, command, output, status, _) in cases.items():
            lookups, colds, warms = [], [], []
            prediction = None
            for _ in range(args.repeats):
                t = time.perf_counter()
                shell.run(command)
                lookups.append((time.perf_counter() - t) * 1000)
                if hasattr(backend, "_forget_cache"):
                    backend._forget_cache()
                t = time.perf_counter()
                prediction = recall.predict(backend, messages, reply)
                colds.append((time.perf_counter() - t) * 1000)
                backend.generate(messages, max_new_tokens=1)  # the policy's turn: the prompt is in the cache
                t = time.perf_counter()
                recall.predict(backend, messages, reply)
                warms.append((time.perf_counter() - t) * 1000)
            tokens = len(backend.encode(output))
            rows[key] = (lookups, colds, warms, recall.exactly_right(prediction, output, status),
                         prediction.confidence_min, tokens, len(backend.encode(backend.render(messages))))

    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"

    print(f"{'output':<8}{'tokens':>7}{'prompt':>8}  {'lookup ms':<20}{'recall ms (cold)':<24}"
          f"{'recall ms (warm)':<24}{'exact':<7}confidence")
    for key, (lookups, colds, warms, exact, conf, tokens, prompt) in rows.items():
        print(f"{key:<8}{tokens:>7}{prompt:>8}  {cell(lookups):<20}{cell(colds):<24}{cell(warms):<24}"
              f"{'yes' if exact else 'no':<7}{conf:.3f}")
    print(f"backend {name}, threads {args.threads}, repeats {args.repeats}")
    med = {k: (statistics.median(v[0]), statistics.median(v[1]), statistics.median(v[2])) for k, v in rows.items()}
    print(f"RESULT recall_ms_short={med['short'][1]:.1f} lookup_ms_short={med['short'][0]:.1f} "
          f"recall_ms_long={med['long'][1]:.1f} lookup_ms_long={med['long'][0]:.1f} "
          f"recall_warm_ms_short={med['short'][2]:.1f} recall_warm_ms_long={med['long'][2]:.1f} "
          f"exact={sum(v[3] for v in rows.values())}/2 backend={name}")


if __name__ == "__main__":
    main()
