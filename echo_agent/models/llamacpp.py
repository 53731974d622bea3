"""llama.cpp backend: the GGUF file itself on CPU, through llama-cpp-python's low-level C bindings, with the
updater's LoRA adapters hot-swapped on the loaded model.

- Prompts are rendered and tokenized by the model's transformers tokenizer (cached once per GGUF, see
  `echo_agent.models.embedded.gguf_tokenizer_dir`), the same one training uses, and the token ids are fed to
  llama.cpp: the text a model is trained on and the tokens it runs on are one and the same on both backends.
- Log-probs are computed from llama.cpp's logits (log-softmax in numpy), so `generate` streams with per-token
  log-probs, `min_logprob` stops early, and `score` is teacher-forced over one decode of prompt + text.
- The KV cache of the previous call is kept: a new call decodes only what follows the longest shared token
  prefix (the system prompt, the episode so far, the command being scored). Keys and values depend on the
  adapter, so the cache holds one sequence per recently used adapter (`_SLOTS`: the policy's and the
  predictor's, when they differ), each computed under its own adapter alone, sharing one pool of `n_ctx` cells.
- Adapters: `use_adapter(dir)` loads the adapter's `adapter.gguf` (exported from its peft safetensors on first
  use, see `echo_agent.models.gguf_lora`) with `llama_adapter_lora_init` on the loaded model and sets it on the
  context with `llama_set_adapters_lora`; the base weights are never reloaded. A few recent adapters stay loaded.

`PINNED_VERSION` is the llama-cpp-python this code and its tests were written against; `available()` says whether
it imports, and why not. The build flags are chosen in `scripts/setup.sh` (docs/architecture.md says why).
"""

from __future__ import annotations

import ctypes
import os
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from echo_agent.errors import AdapterError, ModelError
from echo_agent.models.base import ChatMessage, Generation, GenerationBuilder, greedy
from echo_agent.models.prompt import IncrementalDecoder, PromptRenderer

__all__ = ["PINNED_VERSION", "LlamaCppBackend", "available", "resolve_gguf", "runs_here"]

PINNED_VERSION = "0.3.36"
_BATCH = 512
_SLOTS = 2
"""KV sequences kept, one per recently used adapter: the agent's policy and predictor may serve two."""
_log_lines: deque[str] = deque(maxlen=20)  # llama.cpp's recent warnings and errors, for messages
_log_callback: Any = None  # kept referenced: llama.cpp calls it for the life of the process


def available() -> tuple[bool, str]:
    """(whether the pinned llama-cpp-python imports, why not: "" when it is simply not installed)."""
    try:
        import llama_cpp
    except ModuleNotFoundError as e:
        if e.name == "llama_cpp":
            return False, ""
        return False, f"llama-cpp-python does not import ({e})"
    except Exception as e:  # an ImportError or OSError from a shared library that does not load
        return False, f"llama-cpp-python does not import ({type(e).__name__}: {e})"
    version = getattr(llama_cpp, "__version__", "?")
    if version != PINNED_VERSION:
        return False, f"llama-cpp-python {version} is installed; echo-agent runs llama.cpp with {PINNED_VERSION}"
    return True, ""


def runs_here(gguf: Path) -> tuple[bool, str]:
    """(whether this llama.cpp build decodes without crashing on this machine, why not).

    A build for the wrong instruction set dies with SIGSEGV or SIGILL on its first decode, which no Python code
    can catch; so a short decode of `gguf` runs once per build in a child process, and its verdict is remembered
    in the cache (a rebuilt library is checked again).
    """
    import hashlib
    import importlib.util
    import json
    import signal
    import subprocess
    import sys

    from echo_agent.config import cache_dir

    spec = importlib.util.find_spec("llama_cpp")
    package = Path(spec.origin).parent if spec and spec.origin else None
    libs = sorted(package.glob("lib/*.so*")) if package else []
    key = hashlib.sha256("|".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in libs).encode())
    marker = cache_dir() / "llamacpp-checked" / f"{key.hexdigest()[:16]}.json"
    try:
        verdict = json.loads(marker.read_text())
        return bool(verdict["ok"]), str(verdict["why"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # not checked yet, or an unreadable verdict: check again
    code = f"from echo_agent.models.llamacpp import _probe; _probe({str(gguf)!r})"
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return False, "llama.cpp took over 5 minutes on a test decode"
    why = ""
    if done.returncode != 0:
        what = (f"crashed ({signal.Signals(-done.returncode).name})" if done.returncode < 0
                else f"failed ({(done.stderr.strip().splitlines() or ['exit ' + str(done.returncode)])[-1]})")
        why = f"this llama.cpp build {what} on a test decode; rebuild it with scripts/setup.sh"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"ok": not why, "why": why, "model": str(gguf)}))
    return not why, why


def _probe(gguf: str) -> None:
    """A few greedy tokens through the bindings (run by `runs_here` in a child process)."""
    ll = _lib()
    model = ll.llama_model_load_from_file(gguf.encode(), ll.llama_model_default_params())
    if not model:
        raise SystemExit(f"llama.cpp could not load {gguf}{_last_log()}")
    params = ll.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_ubatch = 64, 16, 16
    ctx = ll.llama_init_from_model(model, params)
    n_vocab = ll.llama_vocab_n_tokens(ll.llama_model_get_vocab(model))
    tokens = list(range(1, 9))
    for _ in range(4):
        ids = (ll.llama_token * len(tokens))(*tokens)  # referenced until the decode is done
        rc = ll.llama_decode(ctx, ll.llama_batch_get_one(ids, len(tokens)))
        if rc != 0:
            raise SystemExit(f"llama.cpp decode failed (code {rc}){_last_log()}")
        logits = np.ctypeslib.as_array(ll.llama_get_logits_ith(ctx, -1), shape=(n_vocab,))
        tokens = [int(logits.argmax())]
    ll.llama_free(ctx)
    ll.llama_model_free(model)


def resolve_gguf(model: str | Path) -> tuple[Path, bool]:
    """(the GGUF file to load, whether it is the embedded ChatML model); ModelError for anything else."""
    from echo_agent.models.embedded import gguf_path

    if str(model) == "embedded":
        return gguf_path(), True
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path.resolve(), False
    raise ModelError(f"model {model}: the llamacpp backend runs GGUF files; use --backend local for a "
                     "transformers model")


def _lib() -> Any:
    """The low-level bindings, with llama.cpp's log routed to a small buffer instead of stderr."""
    global _log_callback
    import llama_cpp

    if _log_callback is None:
        def keep(level: int, text: bytes, _user: Any) -> None:
            if level in (3, 4) and text:  # GGML_LOG_LEVEL_WARN and _ERROR
                _log_lines.append(text.decode("utf-8", "replace").strip())

        _log_callback = llama_cpp.llama_log_callback(keep)
        llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()
    return llama_cpp


def _last_log() -> str:
    return f" (llama.cpp: {_log_lines[-1]})" if _log_lines else ""


class LlamaCppBackend:
    """A GGUF model in llama.cpp with switchable GGUF LoRA adapters (the protocol in `echo_agent.models.base`)."""

    def __init__(
        self,
        model: str | Path = "embedded",
        adapter: str | Path | None = None,
        threads: int = 0,
        n_ctx: int = 0,
        max_loaded_adapters: int = 4,
    ) -> None:
        from transformers import AutoTokenizer

        from echo_agent.models.embedded import EMBEDDED_NAME, check_tokenizer, gguf_tokenizer_dir

        self.gguf, chatml = resolve_gguf(model)
        source = gguf_tokenizer_dir(self.gguf, EMBEDDED_NAME if chatml else None)
        self.tokenizer = AutoTokenizer.from_pretrained(source)
        check_tokenizer(self.tokenizer, where=str(self.gguf), chatml=chatml)
        self.prompts = PromptRenderer(self.tokenizer)
        self.name = f"llamacpp:{EMBEDDED_NAME}" if chatml else f"llamacpp:{model}"
        self._ll = ll = _lib()
        self.threads = threads or len(os.sched_getaffinity(0))
        params = ll.llama_model_default_params()
        self._model = ll.llama_model_load_from_file(str(self.gguf).encode(), params)
        if not self._model:
            raise ModelError(f"llama.cpp could not load {self.gguf}{_last_log()}")
        self._ctx = None
        self._batch = None
        self.n_ctx = n_ctx or min(int(ll.llama_model_n_ctx_train(self._model)), 8192)
        cparams = ll.llama_context_default_params()
        cparams.n_ctx, cparams.n_batch, cparams.n_ubatch, cparams.n_seq_max = self.n_ctx, _BATCH, _BATCH, _SLOTS
        cparams.kv_unified = True  # the sequences share the n_ctx cells
        cparams.n_threads = cparams.n_threads_batch = self.threads
        cparams.no_perf = True
        self._ctx = ll.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            raise ModelError(f"llama.cpp could not create a context of {self.n_ctx} tokens{_last_log()}")
        self._batch = ll.llama_batch_init(_BATCH, 0, 1)
        self._mem = ll.llama_get_memory(self._ctx)
        self.n_vocab = int(ll.llama_vocab_n_tokens(ll.llama_model_get_vocab(self._model)))
        self._tokens: dict[int, list[int]] = {seq: [] for seq in range(_SLOTS)}  # each sequence's cached tokens
        self._seqs: OrderedDict[int | None, int] = OrderedDict({None: 0})  # adapter address (None: base) -> seq
        self._seq = 0
        self._cached = self._tokens[0]  # the active sequence's tokens, in order
        self._end_ids = set(self.tokenizer.all_special_ids)
        self._loaded: OrderedDict[str, Any] = OrderedDict()  # adapter.gguf path|mtime -> llama_adapter_lora
        self._max_loaded = max(1, max_loaded_adapters)
        self._active: Any = None
        self._adapter: Path | None = None
        self._info: Any = None
        if adapter is not None:
            self.use_adapter(adapter)

    # --- prompts -----------------------------------------------------------------------------------------

    def render(self, messages: Sequence[ChatMessage], role: str = "assistant", prefill: str = "") -> str:
        return self.prompts.render(messages, role, prefill)

    def encode(self, text: str) -> list[int]:
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
        """Greedy continuation over the kept KV cache (semantics in `echo_agent.models.base`)."""
        ids = self.encode(self.render(messages, role, prefill))

        def advance(tok: int) -> np.ndarray | None:
            if not self._room(len(self._cached) + 1):
                return None  # the context is full
            return self._decode([tok], len(self._cached), len(self._cached))[-1]

        return greedy(self._eval(ids, len(ids) - 1)[-1], advance, IncrementalDecoder(self.tokenizer),
                      self._end_ids, max_new_tokens, GenerationBuilder(stop, min_logprob, on_token))

    def score(self, messages: Sequence[ChatMessage], role: str, text: str) -> list[float]:
        """Teacher-forced log-prob of each token of `text` (tokenized on its own, as `generate` produces it)."""
        prompt = self.encode(self.render(messages, role, ""))
        target = self.encode(text)
        if not target:
            return []
        return self._eval(prompt + target[:-1], len(prompt) - 1, target)

    def token_logprobs(self, ids: Sequence[int]) -> list[float]:
        """Teacher-forced log-prob of each of `ids[1:]` given the ids before it (an evaluation window)."""
        ids = list(ids)
        return self._eval(ids[:-1], 0, ids[1:]) if len(ids) > 1 else []

    @property
    def adapter(self) -> Path | None:
        return self._adapter

    def use_adapter(self, path: str | Path | None) -> None:
        """Make the LoRA adapter directory at `path` active (its `adapter.gguf`, exported on first use), or go
        back to the base model with None. Each adapter decodes into a KV sequence of its own (see the module
        docstring), so switching back and forth keeps both prompts cached."""
        from echo_agent.models.gguf_lora import base_info, export_adapter

        ll = self._ll
        if path is None:
            handle = None
        else:
            path = Path(path).expanduser().resolve()
            if not (path / "adapter_config.json").is_file():
                raise AdapterError(f"adapter {path}: no adapter_config.json there; is it a peft LoRA directory?")
            self._info = self._info or base_info(self.gguf)
            exported = export_adapter(path, self.gguf, self._info)
            key = f"{exported}|{exported.stat().st_mtime_ns}"
            if key in self._loaded:
                self._loaded.move_to_end(key)
            else:
                loaded = ll.llama_adapter_lora_init(self._model, str(exported).encode())
                if not loaded:
                    raise AdapterError(f"adapter {path.name}: llama.cpp could not load {exported}{_last_log()}")
                self._loaded[key] = loaded
            handle = self._loaded[key]
        if handle != self._active:
            if handle is None:
                rc = ll.llama_set_adapters_lora(self._ctx, None, 0, None)
            else:
                rc = ll.llama_set_adapters_lora(self._ctx, (ll.llama_adapter_lora_p_ctypes * 1)(handle), 1,
                                                (ctypes.c_float * 1)(1.0))
            if rc != 0:
                raise AdapterError(f"llama.cpp could not set the adapter {path}{_last_log()}")
            self._active = handle
            self._select(_address(handle))
        self._adapter = path
        while len(self._loaded) > self._max_loaded:
            oldest = next(iter(self._loaded))
            if self._loaded[oldest] == self._active:
                self._loaded.move_to_end(oldest)
                continue
            freed = self._loaded.pop(oldest)
            if _address(freed) in self._seqs:  # its keys and values must never be taken for a later adapter's
                self._drop(self._seqs.pop(_address(freed)))
            ll.llama_adapter_lora_free(freed)

    def set_threads(self, threads: int) -> None:
        """Threads used for decoding and for prompt processing."""
        self.threads = max(1, threads)
        self._ll.llama_set_n_threads(self._ctx, self.threads, self.threads)

    # --- the KV cache ------------------------------------------------------------------------------------

    def _select(self, handle: int | None) -> None:
        """Decode into the sequence of the adapter at address `handle` (None: the base model), taking the least
        recently used sequence for a new one."""
        if handle in self._seqs:
            self._seqs.move_to_end(handle)
        else:
            free = set(range(_SLOTS)) - set(self._seqs.values())
            seq = free.pop() if free else self._seqs.popitem(last=False)[1]
            self._drop(seq)
            self._seqs[handle] = seq
        self._seq = self._seqs[handle]
        self._cached = self._tokens[self._seq]

    def _drop(self, seq: int) -> None:
        self._ll.llama_memory_seq_rm(self._mem, seq, -1, -1)  # a whole sequence: never fails
        self._tokens[seq].clear()

    def _forget_cache(self) -> None:
        """Forget every cached token (every sequence's)."""
        self._ll.llama_memory_clear(self._mem, False)  # the cells are forgotten; their bytes need no zeroing
        for tokens in self._tokens.values():
            tokens.clear()

    def _room(self, n: int) -> bool:
        """Whether the active sequence can hold `n` tokens, making room by dropping the other sequences."""
        if sum(len(t) for t in self._tokens.values()) - len(self._cached) + n > self.n_ctx:
            for seq in self._tokens:
                if seq != self._seq:
                    self._drop(seq)
        return n <= self.n_ctx

    def _eval(self, ids: list[int], logits_from: int, targets: Sequence[int] | None = None) -> list[Any]:
        """Bring the cache to `ids`; for positions `logits_from` … len(ids) - 1, the log-softmax rows, or with
        `targets` (one per such position) the log-prob of each target."""
        ll = self._ll
        if not self._room(len(ids)):
            raise ModelError(f"the prompt is {len(ids)} tokens, more than llama.cpp's context of {self.n_ctx}; "
                             "start a new session or lower context_head_chars/context_tail_chars")
        keep = 0
        for a, b in zip(self._cached, ids[:logits_from], strict=False):
            if a != b:
                break
            keep += 1
        if keep < len(self._cached):
            if not ll.llama_memory_seq_rm(self._mem, self._seq, keep, -1):
                self._drop(self._seq)
                keep = 0
            del self._cached[keep:]
        return self._decode(ids[keep:], keep, logits_from, targets)

    def _decode(self, ids: list[int], start: int, logits_from: int, targets: Sequence[int] | None = None
                ) -> list[Any]:
        """Decode `ids` at positions `start`… after the cached tokens; what `_eval` returns from `logits_from` on."""
        ll, batch = self._ll, self._batch
        rows: list[Any] = []
        for offset in range(0, len(ids), _BATCH):
            chunk, first = ids[offset : offset + _BATCH], start + offset
            batch.n_tokens = len(chunk)
            for i, tok in enumerate(chunk):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = tok, first + i, 1
                batch.seq_id[i][0] = self._seq
                batch.logits[i] = int(first + i >= logits_from)
            rc = ll.llama_decode(self._ctx, batch)
            if rc != 0:
                self._drop(self._seq)
                raise ModelError(f"llama.cpp decode failed (code {rc}){_last_log()}")
            self._cached.extend(chunk)
            for i in range(max(0, logits_from - first), len(chunk)):
                logits = np.ctypeslib.as_array(ll.llama_get_logits_ith(self._ctx, i), shape=(self.n_vocab,))
                if targets is None:
                    rows.append(_log_softmax(logits))
                else:
                    x = logits.astype(np.float64)
                    m = x.max()
                    rows.append(float(x[targets[first + i - logits_from]] - m - np.log(np.exp(x - m).sum())))
        return rows

    def close(self) -> None:
        """Free the context, the adapters and the model (also done when the backend is collected)."""
        ll = getattr(self, "_ll", None)
        if ll is None:
            return
        if self._batch is not None:
            ll.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            ll.llama_free(self._ctx)
            self._ctx = None
        for handle in self._loaded.values():
            ll.llama_adapter_lora_free(handle)
        self._loaded.clear()
        if self._model:
            ll.llama_model_free(self._model)
            self._model = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _address(handle: Any) -> int | None:
    """A loaded adapter's address (ctypes pointers are not hashable); None for the base model."""
    return None if handle is None else ctypes.cast(handle, ctypes.c_void_p).value


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    m = x.max()
    return x - (m + np.log(np.exp(x - m).sum()))
