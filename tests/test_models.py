"""Model backends: the generation rules, the local backend on a tiny random Llama, adapters, the scripted model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from echo_agent.errors import AdapterError
from echo_agent.models.base import Generation, GenerationBuilder, find_stop
from echo_agent.models.local import template_role
from echo_agent.models.scripted import UNKNOWN_LOGPROB, ScriptedBackend, ScriptExhausted, split_tokens

MSGS = [
    {"role": "system", "content": "You are a terminal assistant."},
    {"role": "user", "content": "How many files are in /etc?"},
]
TOOL_MSGS = [*MSGS, {"role": "assistant", "content": "```bash\nls /etc | wc -l\n```"}]


def test_importing_models_does_not_import_heavy_libraries():
    code = (
        "import sys, echo_agent.models, echo_agent.models.vllm, echo_agent.models.local, echo_agent.models.llamacpp,"
        " echo_agent.models.gguf_lora;"
        "print(sorted(m for m in ('torch', 'transformers', 'peft', 'vllm', 'llama_cpp', 'gguf') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- which backend "auto" means --------------------------------------------------------------------------


def test_auto_is_llamacpp_for_a_gguf_model_where_it_runs_and_says_why_not(tmp_path, monkeypatch):
    from echo_agent.models import llamacpp, resolve_backend
    from tests.test_gguf_lora import write_base

    llama_gguf, qwen_gguf = write_base(tmp_path / "m.gguf"), write_base(tmp_path / "q.gguf", arch="qwen2")
    monkeypatch.setattr(llamacpp, "available", lambda: (True, ""))
    monkeypatch.setattr(llamacpp, "runs_here", lambda gguf: (True, ""))
    assert resolve_backend("auto", str(llama_gguf)) == ("llamacpp", "")
    assert resolve_backend("auto", str(tmp_path)) == ("local", "")  # a transformers directory
    assert resolve_backend("local", str(llama_gguf)) == ("local", "")  # a choice is kept
    backend, why = resolve_backend("auto", str(qwen_gguf))
    assert backend == "local" and why == ("adapters for qwen2 models cannot be exported to llama.cpp yet; running "
                                          "the model with transformers (--backend local)")
    monkeypatch.setattr(llamacpp, "runs_here", lambda gguf: (False, "this llama.cpp build crashed (SIGSEGV)"))
    assert resolve_backend("auto", str(llama_gguf))[1].startswith("this llama.cpp build crashed (SIGSEGV); running")
    monkeypatch.setattr(llamacpp, "available", lambda: (False, ""))  # not installed: transformers, silently
    assert resolve_backend("auto", str(llama_gguf)) == ("local", "")


def test_a_build_that_crashes_on_a_test_decode_is_found_once_and_remembered(tmp_path, monkeypatch):
    import subprocess as sp

    from echo_agent.models import llamacpp

    monkeypatch.setenv("ECHO_AGENT_CACHE", str(tmp_path / "cache"))
    runs = []

    def crash(args, **kwargs):
        runs.append(args)
        return sp.CompletedProcess(args, -11, "", "")

    monkeypatch.setattr(sp, "run", crash)
    first = llamacpp.runs_here(tmp_path / "m.gguf")
    assert first == (False, "this llama.cpp build crashed (SIGSEGV) on a test decode; rebuild it with "
                            "scripts/setup.sh")
    assert llamacpp.runs_here(tmp_path / "m.gguf") == first and len(runs) == 1  # the verdict is remembered


def test_llamacpp_availability_names_the_pinned_version(monkeypatch):
    import types

    from echo_agent.models import llamacpp

    monkeypatch.setitem(sys.modules, "llama_cpp", types.SimpleNamespace(__version__="0.2.0"))
    assert llamacpp.available() == (False, f"llama-cpp-python 0.2.0 is installed; echo-agent runs llama.cpp with "
                                           f"{llamacpp.PINNED_VERSION}")
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import fails as if it were not installed
    assert llamacpp.available()[0] is False


# --- the generation rules, shared by every backend ---------------------------------------------------------


def test_builder_stop_string_is_included_and_the_rest_cut():
    streamed: list[str] = []
    b = GenerationBuilder(stop=("]",), on_token=streamed.append)
    assert not b.add("3\n[ex", -0.1)
    assert b.add("it 0]\nmore", -0.2)
    g = b.result("length")
    assert g == Generation("3\n[exit 0]", ["3\n[ex", "it 0]"], [-0.1, -0.2], "stop")
    assert "".join(streamed) == g.text


def test_builder_threshold_includes_the_weak_token_and_wins_over_stop():
    b = GenerationBuilder(stop=("]",), min_logprob=-1.0)
    assert not b.add("[exit", -0.5)
    assert b.add(" 0]", -3.0)
    g = b.result("length")
    assert (g.finish_reason, g.text, g.confidence_min) == ("threshold", "[exit 0]", -3.0)


def test_find_stop_finds_strings_straddling_old_and_new_text_only_once():
    assert find_stop("abc]def", ("]",), start=3) == 4
    assert find_stop("abc]def]", ("]",), start=5) == 8
    assert find_stop("ab\n[exit 0]", ("0]", "\n["), start=1) == 4
    assert find_stop("abc", ("x",), 0) is None


# --- chat template roles -------------------------------------------------------------------------------------


class _FakeTokenizer:
    def __init__(self, render):
        self.render = render

    def apply_chat_template(self, messages, tokenize=False):
        return self.render(messages)


def test_tool_role_kept_when_the_template_renders_it(smollm2_tokenizer):
    assert template_role(smollm2_tokenizer, "tool") == "tool"
    assert template_role(smollm2_tokenizer, "assistant") == "assistant"


def test_tool_role_becomes_user_when_the_template_refuses_or_drops_it():
    def refuses(messages):
        if any(m["role"] == "tool" for m in messages):
            raise ValueError("Conversation roles must alternate user/assistant")
        return ""

    def drops(messages):
        return "".join(f"[{m['role']}]{m['content']}" for m in messages if m["role"] != "tool")

    def headerless(messages):
        return "".join(m["content"] for m in messages)

    assert template_role(_FakeTokenizer(refuses), "tool") == "user"
    assert template_role(_FakeTokenizer(drops), "tool") == "user"
    assert template_role(_FakeTokenizer(headerless), "tool") == "user"


# --- the local backend on a tiny random Llama ----------------------------------------------------------------


def test_render_appends_the_role_header_and_prefill(tiny_backend):
    prompt = tiny_backend.render(TOOL_MSGS, "tool", "12")
    assert prompt.endswith("ls /etc | wc -l\n```<|im_end|>\n<|im_start|>tool\n12")
    assert prompt.startswith("<|im_start|>system\nYou are a terminal assistant.<|im_end|>\n")
    assert tiny_backend.render(MSGS).endswith("<|im_start|>assistant\n")


def _manual_logprobs(backend, prompt_ids: list[int], target_ids: list[int]) -> list[float]:
    """Log-probs of `target_ids` after `prompt_ids` by one plain forward pass (no cache)."""
    import torch

    ids = torch.tensor([prompt_ids + target_ids])  # (1, T)
    with torch.no_grad():
        logits = backend.model(input_ids=ids).logits[0]  # (T, V)
    logp = torch.log_softmax(logits.float(), dim=-1)  # (T, V)
    n = len(prompt_ids)
    return [float(logp[n - 1 + i, t]) for i, t in enumerate(target_ids)]


def test_score_equals_hand_computed_cross_entropy(tiny_backend):
    text = "total 12\n-rw-r--r-- 1 root root 42 hosts\n[exit 0]"
    got = tiny_backend.score(TOOL_MSGS, "tool", text)
    prompt_ids = tiny_backend.encode(tiny_backend.render(TOOL_MSGS, "tool"))
    target_ids = tiny_backend.encode(text)
    assert len(got) == len(target_ids) > 5
    assert got == pytest.approx(_manual_logprobs(tiny_backend, prompt_ids, target_ids), abs=1e-4)
    assert all(lp <= 0 for lp in got)
    assert tiny_backend.score(TOOL_MSGS, "tool", "") == []


def test_generate_matches_transformers_greedy_and_a_plain_forward(tiny_backend):
    import torch

    pieces: list[str] = []
    g = tiny_backend.generate(MSGS, prefill="Sure", max_new_tokens=12, on_token=pieces.append)
    prompt_ids = tiny_backend.encode(tiny_backend.render(MSGS, "assistant", "Sure"))
    with torch.no_grad():
        ref = tiny_backend.model.generate(
            torch.tensor([prompt_ids]), max_new_tokens=12, do_sample=False, pad_token_id=2
        )[0, len(prompt_ids) :].tolist()
    assert g.finish_reason == "length" and len(g.tokens) == len(g.logprobs) == 12
    assert g.text == tiny_backend.tokenizer.decode(ref) and not g.text.startswith("Sure")
    assert "".join(pieces) == "".join(g.tokens) == g.text
    # The KV-cache loop's log-probs equal a plain forward over prompt + generated tokens.
    assert g.logprobs == pytest.approx(_manual_logprobs(tiny_backend, prompt_ids, ref), abs=1e-4)


def test_generate_stops_early_below_min_logprob(tiny_backend):
    free = tiny_backend.generate(MSGS, max_new_tokens=16)
    lps = free.logprobs
    # The first token weaker than every token before it; a threshold between them must stop exactly there.
    k = next(i for i in range(1, len(lps)) if lps[i] < min(lps[:i]))
    threshold = (lps[k] + min(lps[:k])) / 2
    g = tiny_backend.generate(MSGS, max_new_tokens=16, min_logprob=threshold)
    assert g.finish_reason == "threshold"
    assert g.tokens == free.tokens[: k + 1] and g.logprobs == pytest.approx(lps[: k + 1])
    assert min(g.logprobs) < threshold <= min(g.logprobs[:-1])


def test_generate_stop_strings_end_with_the_stop_string(tiny_backend):
    free = tiny_backend.generate(MSGS, max_new_tokens=16)
    full = free.text
    # A stop string spanning the boundary between tokens 4 and 5, and one inside a later token.
    boundary = len("".join(free.tokens[:5]))
    for stop in (full[boundary - 2 : boundary + 2], free.tokens[8].strip() or free.tokens[8]):
        streamed: list[str] = []
        g = tiny_backend.generate(MSGS, max_new_tokens=16, stop=[stop], on_token=streamed.append)
        end = full.find(stop) + len(stop)
        assert g.finish_reason == "stop"
        assert g.text == full[:end] and g.text.endswith(stop)
        assert "".join(streamed) == "".join(g.tokens) == g.text
        assert len(g.tokens) < 16


# --- LoRA adapters -------------------------------------------------------------------------------------------


def _make_adapter(model_dir: Path, out: Path, seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # peft initialises B to zero, which would make the adapter a no-op
    peft_model.save_pretrained(out)
    return out


def _base_ptrs(backend) -> dict[str, int]:
    return {
        n.replace(".base_layer", ""): p.data_ptr()
        for n, p in backend._base.named_parameters()
        if "lora_" not in n
    }


def test_adapters_switch_in_place_without_reloading_the_base(tiny_model_dir, tmp_path):
    from echo_agent.models.local import LocalBackend

    a = _make_adapter(tiny_model_dir, tmp_path / "a", seed=1)
    b = _make_adapter(tiny_model_dir, tmp_path / "b", seed=2)
    backend = LocalBackend(tiny_model_dir, device="cpu")
    ptrs = _base_ptrs(backend)
    text = "total 3\nbin\netc\nusr\n[exit 0]"

    base = backend.score(TOOL_MSGS, "tool", text)
    backend.use_adapter(a)
    assert backend.adapter == a.resolve()
    with_a = backend.score(TOOL_MSGS, "tool", text)
    backend.use_adapter(b)
    with_b = backend.score(TOOL_MSGS, "tool", text)
    backend.use_adapter(None)
    assert backend.adapter is None
    again_base = backend.score(TOOL_MSGS, "tool", text)
    backend.use_adapter(a)
    again_a = backend.score(TOOL_MSGS, "tool", text)

    assert max(abs(x - y) for x, y in zip(base, with_a, strict=True)) > 1e-2
    assert max(abs(x - y) for x, y in zip(with_a, with_b, strict=True)) > 1e-2
    assert again_base == pytest.approx(base, abs=1e-5)
    assert again_a == pytest.approx(with_a, abs=1e-5)
    assert _base_ptrs(backend) == ptrs  # same tensors: the base was never copied or reloaded
    with backend.base_model_disabled():
        assert backend.score(TOOL_MSGS, "tool", text) == pytest.approx(base, abs=1e-5)


def test_use_adapter_rejects_a_directory_without_an_adapter(tiny_backend, tmp_path):
    with pytest.raises(AdapterError, match="adapter_config.json"):
        tiny_backend.use_adapter(tmp_path)
    assert tiny_backend.adapter is None


# --- the scripted backend ------------------------------------------------------------------------------------


def test_scripted_replays_replies_in_order_then_says_it_is_exhausted():
    backend = ScriptedBackend(["```bash\nls\n```", "```answer\n3 files\n```"])
    assert backend.generate(MSGS).text == "```bash\nls\n```"
    g = backend.generate(MSGS)
    assert g.text == "```answer\n3 files\n```" and g.finish_reason == "stop" and set(g.logprobs) == {0.0}
    with pytest.raises(ScriptExhausted, match="all 2 were used"):
        backend.generate(MSGS)
    assert [role for role, _ in backend.calls] == ["assistant"] * 3


def test_scripted_predictions_by_command_with_their_confidence():
    backend = ScriptedBackend(
        [],
        predictions={
            "ls /etc | wc -l": ("212\n[exit 0]", [-0.1, -2.5, -0.2]),
            "pwd": ("/root\n", [-1.0, -2.0]),
        },
    )
    g = backend.generate(TOOL_MSGS, role="tool")
    assert (g.text, g.tokens, g.logprobs) == ("212\n[exit 0]", ["212\n", "[exit ", "0]"], [-0.1, -2.5, -0.2])
    cut = backend.generate(TOOL_MSGS, role="tool", min_logprob=-1.0)
    assert (cut.text, cut.finish_reason) == ("212\n[exit ", "threshold")
    with pytest.raises(ValueError, match="1 tokens but 2 log-probs"):
        backend.generate([*MSGS, {"role": "assistant", "content": "pwd"}], role="tool")
    unknown = backend.generate([*MSGS, {"role": "assistant", "content": "```bash\ndf -h\n```"}], role="tool")
    assert (
        unknown.confidence_min == UNKNOWN_LOGPROB
        and unknown.text == ""
        and unknown.finish_reason == "threshold"
    )


def test_scripted_honours_prefill_stop_and_streaming():
    streamed: list[str] = []
    backend = ScriptedBackend(["THOUGHT: look\n```bash\nls\n```\nextra"])
    g = backend.generate(MSGS, prefill="THOUGHT:", stop=["```\n"], on_token=streamed.append)
    assert g.text == " look\n```bash\nls\n```\n" and g.finish_reason == "stop"
    assert "".join(streamed) == g.text == "".join(g.tokens)


def test_scripted_score_is_deterministic_and_adapters_are_recorded(tmp_path):
    backend = ScriptedBackend([])
    s1 = backend.score(MSGS, "tool", "a b c")
    assert s1 == backend.score(MSGS, "tool", "a b c") and len(s1) == len(split_tokens("a b c")) == 3
    assert all(-2 < x <= 0 for x in s1)
    backend.use_adapter(tmp_path / "a0001")
    backend.use_adapter(None)
    assert backend.adapters_used == [tmp_path / "a0001", None] and backend.adapter is None
