"""transformers + peft backend, CPU (fp32) or CUDA (bf16), with LoRA adapters switched in place.

Generation is a hand-written greedy loop over a KV cache rather than `model.generate`, so that per-token
log-probs, the early stop on a weak token (`min_logprob`), stop strings and streaming are exact and cheap.
`generate` and `score` build their prompt with the same `render`, so `score` sees exactly the tokens that
`generate` conditions on.

Adapters: the first `use_adapter(path)` wraps the base model in a `PeftModel` (LoRA layers are injected in
place; the base weights are never copied or reloaded); later adapters are added with `load_adapter` under a
fresh name and made active with `set_adapter`; `use_adapter(None)` disables the LoRA layers. A few recently used
adapters stay loaded (they are small) so switching back is instant.
"""

from __future__ import annotations

import inspect
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from echo_agent.errors import AdapterError, ModelError
from echo_agent.models.base import ChatMessage, Generation, GenerationBuilder, greedy
from echo_agent.models.prompt import IncrementalDecoder, PromptRenderer, template_role

__all__ = ["IncrementalDecoder", "LocalBackend", "quiet_peft", "resolve_model", "template_role"]

def resolve_model(model: str | Path) -> tuple[Path | str, bool]:
    """(what to pass to from_pretrained, whether it is the embedded ChatML model)."""
    from echo_agent.models.embedded import converted_gguf_dir, embedded_model_dir

    if str(model) == "embedded":
        return embedded_model_dir(), True
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return converted_gguf_dir(path), False
    if path.is_dir():
        return path, False
    if path.suffix == ".gguf" or str(model).startswith(("/", ".", "~")):
        raise ModelError(f"model {model}: no such GGUF file or model directory; check the path")
    return str(model), False  # a hub id; transformers says if it cannot be found


@contextmanager
def quiet_peft():
    """Hides the deprecation warning peft's model wrapper raises from transformers on every load."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


class LocalBackend:
    """A transformers model (directory, GGUF or "embedded") with switchable peft LoRA adapters."""

    def __init__(
        self,
        model: str | Path = "embedded",
        device: str = "auto",
        adapter: str | Path | None = None,
        max_loaded_adapters: int = 4,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from echo_agent.models.embedded import EMBEDDED_NAME, check_tokenizer

        source, chatml = resolve_model(model)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
        tokenizer = AutoTokenizer.from_pretrained(source)
        check_tokenizer(tokenizer, where=str(source), chatml=chatml)
        base = AutoModelForCausalLM.from_pretrained(source, dtype=dtype).to(device).eval()
        self._setup(base, tokenizer, f"embedded:{EMBEDDED_NAME}" if chatml else f"local:{model}",
                    max_loaded_adapters)
        if adapter is not None:
            self.use_adapter(adapter)

    def _setup(self, base: Any, tokenizer: Any, name: str, max_loaded_adapters: int = 4) -> None:
        self.device = next(base.parameters()).device
        self.tokenizer = tokenizer
        self._base = base
        self.model: Any = base
        """The model to run: the base model, or the PeftModel around it once an adapter has been used."""
        self.name = name
        self._peft: Any = None
        self._adapter: Path | None = None
        self._loaded: OrderedDict[tuple[str, int], str] = OrderedDict()  # (path, mtime) -> peft adapter name
        self._n_loaded = 0
        self._max_loaded = max(1, max_loaded_adapters)
        self.prompts = PromptRenderer(tokenizer)
        # Any special token (end of message, start of the next one, end of text) ends the message.
        self._end_ids = set(tokenizer.all_special_ids)
        eos = base.generation_config.eos_token_id
        self._end_ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        # transformers 5 renamed the KV-cache argument `past_key_values` to `cache`.
        self._cache_kw = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"

    @classmethod
    def around(cls, model: Any, tokenizer: Any) -> LocalBackend:
        """A backend over a model already loaded (a peft model being trained, as the update cycle holds it):
        `generate` and `score` run it as it is, in eval mode; no adapter switching."""
        backend = cls.__new__(cls)
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        backend._setup(base, tokenizer, "in-training")
        backend.model = model
        return backend

    # --- prompts -----------------------------------------------------------------------------------------

    def render(self, messages: Sequence[ChatMessage], role: str = "assistant", prefill: str = "") -> str:
        """The prompt text: `messages`, then the header of a new `role` message, then `prefill`."""
        return self.prompts.render(messages, role, prefill)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; special-token strings in it (the template's headers) become special tokens."""
        return self.prompts.encode(text)

    # --- the protocol ------------------------------------------------------------------------------------

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
        """Greedy continuation with a KV cache (semantics in `echo_agent.models.base`)."""
        import torch

        prompt = self.encode(self.render(messages, role, prefill))
        with torch.inference_mode():
            out = self.model(
                input_ids=torch.tensor([prompt], device=self.device), use_cache=True, logits_to_keep=1
            )

            def advance(tok: int) -> Any:
                nonlocal out
                past = out.cache if self._cache_kw == "cache" else out.past_key_values
                out = self.model(input_ids=torch.tensor([[tok]], device=self.device), use_cache=True,
                                 **{self._cache_kw: past})  # logits (1, 1, V)
                return torch.log_softmax(out.logits[0, -1].float(), dim=-1)

            return greedy(torch.log_softmax(out.logits[0, -1].float(), dim=-1), advance,
                          IncrementalDecoder(self.tokenizer), self._end_ids, max_new_tokens,
                          GenerationBuilder(stop, min_logprob, on_token))

    def score(self, messages: Sequence[ChatMessage], role: str, text: str) -> list[float]:
        """Teacher-forced log-prob of each token of `text` (tokenized on its own, as `generate` produces it)."""
        import torch

        prompt = self.encode(self.render(messages, role, ""))
        target = self.encode(text)
        if not target:
            return []
        n = len(target)
        with torch.inference_mode():
            ids = torch.tensor([prompt + target], device=self.device)  # (1, P+N)
            # Only the logits that predict `text` are needed: positions P-1 … P+N-2.
            logits = self.model(input_ids=ids, logits_to_keep=n + 1).logits[0, :-1].float()  # (N, V)
            lp = torch.log_softmax(logits, dim=-1)  # (N, V)
            picked = lp.gather(-1, torch.tensor(target, device=self.device)[:, None]).squeeze(-1)  # (N,)
        return picked.tolist()

    @property
    def adapter(self) -> Path | None:
        return self._adapter

    def use_adapter(self, path: str | Path | None) -> None:
        """Make the peft LoRA adapter at `path` active, or go back to the base model with None."""
        if path is None:
            if self._peft is not None:
                self._peft.base_model.disable_adapter_layers()
            self._adapter = None
            return
        path = Path(path).expanduser().resolve()
        config = path / "adapter_config.json"
        if not config.is_file():
            raise AdapterError(f"adapter {path}: no adapter_config.json there; is it a peft LoRA directory?")
        weights = [p for p in path.glob("adapter_model.*") if p.suffix in (".safetensors", ".bin")]
        if not weights:
            raise AdapterError(f"adapter {path}: no adapter_model.safetensors; the adapter is incomplete")
        # Keyed by mtime too: a directory rewritten with new weights is loaded again, never served stale.
        key = (str(path), max(p.stat().st_mtime_ns for p in [config, *weights]))
        if key in self._loaded:
            self._loaded.move_to_end(key)
            name = self._loaded[key]
        else:
            name = f"adapter{self._n_loaded}"
            self._n_loaded += 1
            self._load(path, name)
            self._loaded[key] = name
        self._peft.set_adapter(name)
        self._peft.base_model.enable_adapter_layers()
        self._adapter = path
        while len(self._loaded) > self._max_loaded:
            _, old = self._loaded.popitem(last=False)
            self._peft.delete_adapter(old)

    def _load(self, path: Path, name: str) -> None:
        from peft import PeftModel

        if self._peft is None:
            with quiet_peft():
                self._peft = PeftModel.from_pretrained(
                    self._base, str(path), adapter_name=name, is_trainable=False
                )
            self._peft.eval()
            self.model = self._peft
        else:
            self._peft.load_adapter(str(path), adapter_name=name, is_trainable=False)

    def base_model_disabled(self) -> Any:
        """Context in which `self.model` computes the base model's logits (adapter layers off)."""
        return self._peft.disable_adapter() if self._peft is not None else nullcontext()
