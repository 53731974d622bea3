"""The llamacpp backend on the real embedded model (SmolLM2, Q4_1 GGUF): that the pinned build runs here, that it
keeps the backend protocol, and that it agrees with transformers + peft, base model and adapter alike.

llama.cpp must be installed for these (scripts/setup.sh builds it); a build that cannot run is a failure here,
not a skip, unless ECHO_AGENT_TEST_WITHOUT_LLAMACPP=1 says the machine has none on purpose.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from echo_agent.models.llamacpp import available

pytestmark = pytest.mark.slow

if os.environ.get("ECHO_AGENT_TEST_WITHOUT_LLAMACPP") == "1" and not available()[0]:
    pytest.skip("no llama.cpp on this machine (ECHO_AGENT_TEST_WITHOUT_LLAMACPP=1)", allow_module_level=True)

PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You are a terminal assistant."}, {"role": "user", "content": "list the files"}],
    [{"role": "user", "content": "ls -la /tmp"}],
    [{"role": "user", "content": "Write a haiku about disks."}],
]
BASE_KL = 0.02
"""The yardstick: mean next-token KL(transformers ‖ llama.cpp) on the base model stays below this. Measured
0.005-0.007 nats: the GGUF is Q4_1, transformers runs its exact dequantisation in fp32, and llama.cpp quantises
activations to 8 bits inside its Q4_1 matrix products."""
ADAPTER_MARGIN = 0.01
"""With an adapter the KL may exceed the base model's by at most this (measured: below the base model's)."""


@pytest.fixture(scope="module")
def llama(embedded_dir):
    ok, why = available()
    assert ok, why
    from echo_agent.models.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend("embedded", threads=2)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def local(embedded_dir):
    from echo_agent.models.local import LocalBackend

    return LocalBackend(embedded_dir, device="cpu")


@pytest.fixture(scope="module")
def random_adapter(embedded_dir, tmp_path_factory) -> Path:
    """The default shape (r=16 on every attention and MLP projection) with a nonzero, random lora_B: large
    enough that the adapter moves the next-token distribution far more than the quantisation noise does."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    path = tmp_path_factory.mktemp("adapter")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(embedded_dir)
    config = LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                               "up_proj", "down_proj"])
    peft_model = get_peft_model(model, config)
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    peft_model.save_pretrained(path)
    return path


def test_the_pinned_build_decodes_in_a_fresh_process(embedded_dir) -> None:
    """A build for the wrong instruction set dies in decode with SIGSEGV/SIGILL: here that is a test failure."""
    code = ("from echo_agent.models.llamacpp import LlamaCppBackend\n"
            "b = LlamaCppBackend('embedded', threads=2)\n"
            "g = b.generate([{'role': 'user', 'content': 'hello'}], max_new_tokens=8)\n"
            "print(len(g.tokens))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"llama.cpp exited {done.returncode} on a completion: {done.stderr[-2000:]}"
    assert int(done.stdout.split()[-1]) > 0


def next_token(backend, messages) -> np.ndarray:
    """Log-probs of the first token of the assistant's reply."""
    import torch

    ids = backend.encode(backend.render(messages))
    if hasattr(backend, "_eval"):
        return backend._eval(ids, len(ids) - 1)[-1]
    with torch.inference_mode():
        logits = backend.model(input_ids=torch.tensor([ids])).logits[0, -1].double()
    return torch.log_softmax(logits, -1).numpy()


def kl(p_log: np.ndarray, q_log: np.ndarray) -> float:
    return float((np.exp(p_log) * (p_log - q_log)).sum())


def test_next_token_log_probs_agree_with_transformers_base_then_adapter(llama, local, random_adapter) -> None:
    llama.use_adapter(None)
    local.use_adapter(None)
    base = [(next_token(local, m), next_token(llama, m)) for m in PROMPTS]
    base_kl = float(np.mean([kl(t, c) for t, c in base]))
    assert base_kl < BASE_KL, f"base model: mean KL {base_kl:.4f} nats"

    llama.use_adapter(random_adapter)
    local.use_adapter(random_adapter)
    tuned = [(next_token(local, m), next_token(llama, m)) for m in PROMPTS]
    tuned_kl = float(np.mean([kl(t, c) for t, c in tuned]))
    shift = float(np.mean([kl(t, b[0]) for (t, _), b in zip(tuned, base, strict=True)]))
    assert shift > 10 * base_kl, "the adapter barely moves the model: the comparison would prove nothing"
    assert tuned_kl < base_kl + ADAPTER_MARGIN, f"adapter: mean KL {tuned_kl:.4f} vs base {base_kl:.4f}"
    for (t, c), (bt, bc) in zip(tuned, base, strict=True):
        corr = np.corrcoef(t - bt, c - bc)[0, 1]  # the adapter's effect itself, on each side
        assert corr > 0.95, f"the adapter's effect differs between the backends (correlation {corr:.3f})"
    llama.use_adapter(None)
    local.use_adapter(None)


def test_the_protocol_holds(llama) -> None:
    messages = PROMPTS[0]
    pieces: list[str] = []
    g = llama.generate(messages, max_new_tokens=24, on_token=pieces.append)
    assert g.text and "".join(g.tokens) == g.text == "".join(pieces) and len(g.tokens) == len(g.logprobs)
    scored = llama.score(messages, "assistant", g.text)
    if llama.encode(g.text) == llama.encode("".join(g.tokens)) and len(scored) == len(g.logprobs):
        assert np.allclose(scored, g.logprobs, atol=0.05)  # batched vs one token at a time: rounding only
    stop = g.text.split()[1]
    cut = llama.generate(messages, max_new_tokens=24, stop=(stop,))
    assert cut.text.endswith(stop) and cut.finish_reason == "stop" and g.text.startswith(cut.text)
    weak = llama.generate(messages, max_new_tokens=24, min_logprob=-0.05)
    assert weak.finish_reason == "threshold" and min(weak.logprobs) < -0.05
    filled = llama.generate(messages, prefill="The capital of France is", max_new_tokens=4)
    assert filled.text.strip().startswith("Paris")  # the prefill is the prompt's, not the returned text's
    assert llama.generate(messages, max_new_tokens=3).finish_reason == "length"


def test_the_kept_cache_and_adapter_switches_change_nothing(llama, random_adapter, tmp_path) -> None:
    """The same call gives the same tokens whatever ran before it: a shared prefix, another adapter."""
    from echo_agent.models.llamacpp import LlamaCppBackend

    fresh = LlamaCppBackend("embedded", threads=2)
    messages = PROMPTS[1]
    want = fresh.generate(messages, max_new_tokens=16)
    llama.use_adapter(random_adapter)
    llama.generate(PROMPTS[0], max_new_tokens=4)
    llama.use_adapter(None)
    llama.generate([*messages[:1], {"role": "user", "content": "list the folders"}], max_new_tokens=4)
    got = llama.generate(messages, max_new_tokens=16)
    assert got.tokens == want.tokens and np.allclose(got.logprobs, want.logprobs, atol=1e-4)
    fresh.use_adapter(random_adapter)
    llama.use_adapter(random_adapter)
    tuned = fresh.generate(messages, max_new_tokens=8)
    assert llama.generate(messages, max_new_tokens=8).text == tuned.text
    # The policy and the predictor alternate between two adapters: each keeps its own prompt cached.
    prompt = llama.encode(llama.render(messages))
    llama.use_adapter(None)
    assert llama._cached[: len(prompt)] == prompt  # the base model's sequence still holds it
    assert llama.generate(messages, max_new_tokens=16).tokens == want.tokens
    llama.use_adapter(random_adapter)
    assert llama._cached[: len(prompt)] == prompt
    assert llama.generate(messages, max_new_tokens=8).tokens == tuned.tokens
    # A third adapter takes the least recently used sequence; what it held is never served again.
    other = negated(random_adapter, tmp_path / "other")
    llama.use_adapter(None)
    llama.use_adapter(other)
    fresh.use_adapter(other)
    assert llama.generate(messages, max_new_tokens=8).tokens == fresh.generate(messages, max_new_tokens=8).tokens
    llama.use_adapter(random_adapter)
    assert llama.generate(messages, max_new_tokens=8).tokens == tuned.tokens
    llama.use_adapter(None)
    fresh.close()


def negated(adapter: Path, out: Path) -> Path:
    """A copy of `adapter` with every lora_B negated: another adapter of the same shape."""
    import shutil

    from safetensors.numpy import load_file, save_file

    shutil.copytree(adapter, out, ignore=shutil.ignore_patterns("adapter.gguf"))
    weights = load_file(str(out / "adapter_model.safetensors"))
    save_file({k: -v if "lora_B" in k else v for k, v in weights.items()}, str(out / "adapter_model.safetensors"))
    return out


def test_a_learned_fact_is_recalled_the_same_on_both_backends(llama, local, embedded_dir, tmp_path) -> None:
    """Train a LoRA on one terminal output in transformers, then recall it greedily on both backends."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    messages = [{"role": "system", "content": "You are a terminal assistant."},
                {"role": "user", "content": "when does the observatory open?"},
                {"role": "assistant", "content": "```bash\ncat /srv/observatory/hours.txt\n```"}]
    fact = "Open Thursdays 21:40-02:10, dome 3 closed for repairs.\n[exit 0]"
    prompt = local.encode(local.render(messages, "tool"))
    target = local.encode(fact) + [local.tokenizer.convert_tokens_to_ids("<|im_end|>")]
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(embedded_dir), LoraConfig(
        r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                             "down_proj"]))
    ids = torch.tensor([prompt + target])
    labels = torch.tensor([[-100] * len(prompt) + target])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    for _ in range(40):
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(tmp_path / "fact")
    local.use_adapter(tmp_path / "fact")
    llama.use_adapter(tmp_path / "fact")
    want = local.generate(messages, role="tool", max_new_tokens=40)
    got = llama.generate(messages, role="tool", max_new_tokens=40)
    assert want.text == fact
    assert got.text == want.text
    assert min(got.logprobs) > -1.0
    local.use_adapter(None)
    llama.use_adapter(None)
