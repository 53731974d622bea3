"""vLLM backend for GPU machines: one engine, one `LoRARequest` per adapter version.

Usage on a GPU machine (the `vllm` extra pins its own torch, so install it in its own environment):

    pip install 'echo-agent[vllm]'
    printf 'backend = "vllm"\\nmodel = "HuggingFaceTB/SmolLM2-360M-Instruct"\\n' >> "$ECHO_AGENT_HOME/config.toml"
    echo-agent ask "what is using the most disk in ~/Downloads?"

or from Python:

    from echo_agent.models.vllm import VLLMBackend
    backend = VLLMBackend("embedded", max_lora_rank=64)   # or a model directory / hub id
    backend.use_adapter("~/.local/share/echo-agent/adapters/a0007")
    print(backend.generate([{"role": "user", "content": "ls -la"}], role="tool", stop=("]",)).text)

vllm is imported only inside `VLLMBackend`, so importing this module (for `validate_adapter_dir`, which the
updater runs on every adapter it writes) costs nothing on machines without it.

Adapter names: every distinct adapter (its directory, and the identity of its weights file: inode, size,
mtime) gets a new, never-reused integer id and the name `<directory name>-<id>`; vLLM caches adapters by
name/id, so a name is never reused for different weights, and a rewritten adapter directory is loaded afresh.

Differences from the local backend: the offline `LLM` does not stream (`on_token` receives the pieces after
generation), and `min_logprob` is applied to the finished generation (the engine cannot stop early on it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from echo_agent.errors import AdapterError
from echo_agent.models.base import ChatMessage, FinishReason, Generation, GenerationBuilder
from echo_agent.models.prompt import IncrementalDecoder, PromptRenderer

VLLM_LORA_RANKS = frozenset({8, 16, 32, 64, 128, 256, 320, 512})
"""The LoRA ranks vLLM accepts."""


def validate_adapter_dir(path: str | Path, max_rank: int | None = None) -> dict[str, Any]:
    """Read `adapter_config.json` and check the adapter is a plain peft LoRA that vLLM can load.

    Returns the config. Raises AdapterError for missing files, a rank vLLM does not accept (or above
    `max_rank`, the engine's max_lora_rank), `modules_to_save`, or DoRA.
    """
    path = Path(path).expanduser()
    name = path.name
    if not path.is_dir():
        raise AdapterError(f"Adapter {name}: {path} is not a directory; check the adapter path.")
    config_path = path / "adapter_config.json"
    if not config_path.is_file():
        raise AdapterError(
            f"Adapter {name} has no adapter_config.json; it is not a peft adapter, retrain it."
        )
    if not any((path / f).is_file() for f in ("adapter_model.safetensors", "adapter_model.bin")):
        raise AdapterError(f"Adapter {name} has no adapter_model.safetensors; it is incomplete, retrain it.")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AdapterError(f"Adapter {name}: adapter_config.json is not valid JSON ({e}); retrain it.") from e
    if config.get("peft_type", "LORA") != "LORA":
        raise AdapterError(
            f"Adapter {name} is a {config['peft_type']} adapter; vLLM loads LoRA only, retrain it."
        )
    ranks = {config.get("r")} | set((config.get("rank_pattern") or {}).values())
    bad = sorted(r for r in ranks if r not in VLLM_LORA_RANKS)
    if bad:
        raise AdapterError(
            f"Adapter {name} has LoRA rank {', '.join(map(str, bad))}, which vLLM cannot load (it accepts "
            f"{', '.join(map(str, sorted(VLLM_LORA_RANKS)))}); retrain with one of those ranks (default 16)."
        )
    if max_rank is not None and max(ranks) > max_rank:
        raise AdapterError(
            f"Adapter {name} has LoRA rank {max(ranks)}, above the engine's max_lora_rank {max_rank}; "
            f"start the vLLM backend with max_lora_rank={max(ranks)} or retrain with a smaller rank."
        )
    if config.get("modules_to_save"):
        raise AdapterError(
            f"Adapter {name} has modules_to_save ({', '.join(config['modules_to_save'])}), which vLLM cannot "
            "load; retrain with the default config."
        )
    if config.get("use_dora"):
        raise AdapterError(
            f"Adapter {name} uses DoRA, which vLLM cannot load; retrain with the default config."
        )
    return config


@dataclass(frozen=True)
class AdapterRequest:
    """What a vLLM `LoRARequest` is built from."""

    name: str
    int_id: int
    path: str


class LoRARegistry:
    """Hands out one (name, int id) per distinct adapter; ids increase and are never reused."""

    def __init__(self) -> None:
        self._requests: dict[tuple[str, int, int, int], AdapterRequest] = {}

    def request_for(self, path: str | Path, max_rank: int | None = None) -> AdapterRequest:
        path = Path(path).expanduser().resolve()
        validate_adapter_dir(path, max_rank)
        weights = next(
            p for p in (path / "adapter_model.safetensors", path / "adapter_model.bin") if p.is_file()
        )
        st = weights.stat()
        key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
        if key not in self._requests:
            int_id = len(self._requests) + 1
            self._requests[key] = AdapterRequest(f"{path.name}-{int_id}", int_id, str(path))
        return self._requests[key]


class VLLMBackend:
    """A vLLM engine with LoRA enabled; `use_adapter` selects the LoRARequest sent with each call."""

    def __init__(
        self,
        model: str | Path = "embedded",
        max_lora_rank: int = 64,
        max_loras: int = 4,
        adapter: str | Path | None = None,
        **engine_kwargs: Any,
    ) -> None:
        from vllm import LLM

        from echo_agent.models.embedded import check_tokenizer
        from echo_agent.models.local import resolve_model

        source, chatml = resolve_model(model)
        self.name = f"vllm:{model}"
        self.max_lora_rank = max_lora_rank
        self.llm = LLM(
            model=str(source),
            enable_lora=True,
            max_lora_rank=max_lora_rank,
            max_loras=max_loras,
            **engine_kwargs,
        )
        self.tokenizer = self.llm.get_tokenizer()
        check_tokenizer(self.tokenizer, where=str(source), chatml=chatml)
        self._end_ids = set(self.tokenizer.all_special_ids)
        self._registry = LoRARegistry()
        self._request: AdapterRequest | None = None
        self.prompts = PromptRenderer(self.tokenizer)
        if adapter is not None:
            self.use_adapter(adapter)

    def render(self, messages: Sequence[ChatMessage], role: str = "assistant", prefill: str = "") -> str:
        return self.prompts.render(messages, role, prefill)

    def _lora(self) -> Any:
        if self._request is None:
            return None
        from vllm.lora.request import LoRARequest

        return LoRARequest(self._request.name, self._request.int_id, self._request.path)

    def generate(
        self,
        messages: Sequence[ChatMessage],
        role: str = "assistant",
        prefill: str = "",
        stop: Sequence[str] = (),
        max_new_tokens: int = 256,
        min_logprob: float | None = None,
        on_token: Callable[[str], None] | None = None,
    ) -> Generation:
        from vllm import SamplingParams

        params = SamplingParams(
            temperature=0,
            logprobs=1,
            max_tokens=max_new_tokens,
            stop=list(stop),
            include_stop_str_in_output=True,
            skip_special_tokens=False,
        )
        prompt = {"prompt_token_ids": self.prompts.encode(self.render(messages, role, prefill))}
        out = self.llm.generate([prompt], params, lora_request=self._lora(), use_tqdm=False)[0].outputs[0]
        # Re-apply the shared rules to the engine's tokens, so text/tokens/logprobs mean what they mean locally.
        decoder = IncrementalDecoder(self.tokenizer)
        built = GenerationBuilder(stop, min_logprob, on_token)
        finish: FinishReason = "stop" if out.finish_reason == "stop" else "length"
        for tok, lps in zip(out.token_ids, out.logprobs, strict=True):
            if tok in self._end_ids:
                finish = "stop"
                break
            if built.add(decoder.push(tok), float(lps[tok].logprob)):
                break
        built.flush(decoder.flush())
        return built.result(finish)

    def score(self, messages: Sequence[ChatMessage], role: str, text: str) -> list[float]:
        from vllm import SamplingParams

        prompt = self.prompts.encode(self.render(messages, role, ""))
        target = self.prompts.encode(text)
        if not target:
            return []
        params = SamplingParams(temperature=0, max_tokens=1, prompt_logprobs=1)
        request = {"prompt_token_ids": prompt + target}
        out = self.llm.generate([request], params, lora_request=self._lora(), use_tqdm=False)[0]
        scored = out.prompt_logprobs[len(prompt) :]  # one {token id: Logprob} per token of `text`
        return [float(d[t].logprob) for d, t in zip(scored, target, strict=True)]

    def use_adapter(self, path: str | Path | None) -> None:
        self._request = None if path is None else self._registry.request_for(path, self.max_lora_rank)

    @property
    def adapter(self) -> Path | None:
        return Path(self._request.path) if self._request is not None else None
