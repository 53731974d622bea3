"""LoRA training on environment tokens (the ECHO objective), and the cross-entropy that evaluates it.

The loss, per batch, written out:
    ce_t      = -log p(x_t | x_<t)                        for every position t            # (B, T-1)
    L_env     = sum(ce_t * env_t) / sum(env_t)            token mean over env tokens
    L_action  = sum(ce_t * act_t) / sum(act_t)            (objective "env+action" only)
    L_kl      = sum(KL(p_adapter || p_base)_t * env_t) / sum(env_t)   (kl_weight > 0 only)
    L         = L_env + action_weight * L_action + kl_weight * L_kl
Base logits for the KL term come from the same model with its adapter disabled (no second copy).

Logits are computed only at the positions a term needs (env, plus action for "env+action"): the decoder runs
on the whole sequence, the lm_head on the gathered hidden states. With a 49k vocabulary and a 576-wide model the
lm_head is ~20% of SmolLM2-135M's weights, and env tokens are ~20% of a look-up episode's tokens (the system
prompt, task and commands are context). The CE is the same number as with full logits (checked to 0.0 nats on
SmolLM2); `evaluate` uses the same path and stays exact.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from echo_agent.updater.dataset import Window

if TYPE_CHECKING:
    from echo_agent.config import Settings

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

EVAL_BATCH_TOKENS = 2048
"""Tokens per no-grad evaluation batch: one batch is what a cycle finishes before it gives way to an agent episode
(docs/measurements.md, "Overnight cycles")."""

_interrupt: ContextVar[Callable[[], str | None] | None] = ContextVar("interrupt", default=None)


class Yielded(Exception):  # noqa: N818 - it is not an error: the cycle gave way
    """Raised by `check_yield` inside `yielding_to`: someone needs the CPU (an agent episode started)."""


@contextmanager
def yielding_to(interrupt: Callable[[], str | None] | None) -> Iterator[None]:
    """Within it, training stops before its next optimizer step (`TrainStats.yielded`), and evaluation raises
    `Yielded` before its next batch, when `interrupt` gives a reason."""
    token = _interrupt.set(interrupt)
    try:
        yield
    finally:
        _interrupt.reset(token)


def yield_reason() -> str | None:
    interrupt = _interrupt.get()
    return interrupt() if interrupt is not None else None


def check_yield() -> None:
    if why := yield_reason():
        raise Yielded(why)


class Objective(StrEnum):
    ENV = "env"
    """Cross-entropy on environment tokens only (ECHO's env term)."""
    ENV_ACTION = "env+action"
    """Plus `action_weight` times cross-entropy on the assistant's replies."""


@dataclass
class TrainConfig:
    # The defaults are measured: docs/measurements.md, "One ECHO update cycle".
    lr: float = 1e-3
    epochs: int = 2  # passes over this cycle's windows; repeated cycles add more exposure
    batch_tokens: int = 512  # tokens per optimizer step (padded batch size x length)
    grad_clip: float = 1.0
    weight_decay: float = 0.0
    warmup_steps: int = 2
    objective: Objective = Objective.ENV
    action_weight: float = 0.0  # λ for action tokens when objective is "env+action"
    kl_weight: float = 0.0  # weight of KL(adapter || base) on env tokens; 0 disables
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGETS))
    seed: int = 0
    max_minutes: float | None = None  # stop cleanly after this much training time (evaluation still runs)
    known_ce: float | None = None
    """Stop after an epoch in which every window's largest env-token CE was at most this: the data is known, and
    more epochs only move the adapter further from the base model (the forgetting probe). None runs every epoch."""

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> TrainConfig:
        """The config a cycle trains with: the user's LoRA settings, then `overrides` (None leaves a default).

        Training stops once every window is known at half the recall threshold's CE (`known_ce`): recall would
        return each output, with a margin for the context at recall time differing from the training window's.
        """
        values = {"lora_r": settings.lora_r, "lora_alpha": settings.lora_alpha,
                  "known_ce": -settings.recall_threshold / 2}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainStats:
    steps: int = 0
    env_tokens: int = 0
    tokens: int = 0
    seconds: float = 0.0
    final_loss: float = float("nan")
    stopped_early: bool = False
    """Stopped by `max_minutes`."""
    epochs: int = 0
    """Epochs completed."""
    stopped_known: bool = False
    """Stopped before the last epoch because every window was known (`known_ce`)."""
    kept_epoch: int | None = None
    """The epoch whose adapter the model ends with, when `within` refused the last one's (None: the last)."""
    yielded: str | None = None
    """Why training stopped for someone else (`interrupt`): the adapter is unfinished and must not be kept."""
    planned_steps: int = 0
    losses: list[float] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def lora_config(cfg: TrainConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM")


def batches(windows: Sequence[Window], batch_tokens: int, rng: random.Random | None = None,
            in_order: bool = False) -> list[list[Window]]:
    """Group windows of similar length so padding stays small; each batch holds about `batch_tokens` tokens.
    `in_order` keeps the windows' order instead (a step cut over windows is then read from its first piece on)."""
    order = list(range(len(windows)))
    if not in_order:
        order.sort(key=lambda i: len(windows[i].input_ids))
    out: list[list[Window]] = []
    cur: list[Window] = []
    for i in order:
        w = windows[i]
        longest = max([len(w.input_ids)] + [len(x.input_ids) for x in cur])
        if cur and longest * (len(cur) + 1) > batch_tokens:
            out.append(cur)
            cur = []
        cur.append(w)
    if cur:
        out.append(cur)
    if rng is not None:
        rng.shuffle(out)
    return out


def collate(batch: Sequence[Window], pad_id: int, device: Any) -> dict[str, Any]:
    import torch

    T = max(len(w.input_ids) for w in batch)

    def pad(seq, value):
        return list(seq) + [value] * (T - len(seq))

    return {
        "input_ids": torch.tensor([pad(w.input_ids, pad_id) for w in batch], device=device),  # (B, T)
        "attention_mask": torch.tensor([pad([1] * len(w.input_ids), 0) for w in batch], device=device),
        "env": torch.tensor([pad(w.env_mask, False) for w in batch], device=device),  # (B, T)
        "action": torch.tensor([pad(w.action_mask, False) for w in batch], device=device),
    }


def _decoder_and_head(model: Any) -> tuple[Any, Any, float | None]:
    """(decoder stack, lm_head, final-logit softcap) of a causal LM, peft-wrapped or not."""
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = getattr(causal_lm, causal_lm.base_model_prefix)
    return decoder, causal_lm.get_output_embeddings(), getattr(causal_lm.config, "final_logit_softcapping", None)


def logits_at(model: Any, b: dict[str, Any], keep: Any) -> Any:
    """Logits only where `keep` (B, T-1) is true: position t-1's prediction of token t, as (N, V) in row-major
    order of `keep`. The lm_head and softmax over a 49k vocabulary at every position are a large share of a
    135M model's compute; the ECHO loss needs them at env (and action) positions only."""
    decoder, head, softcap = _decoder_and_head(model)
    hidden = decoder(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state  # (B, T, H)
    logits = head(hidden[:, :-1][keep]).float()  # (N, V)
    if softcap:
        logits = softcap * (logits / softcap).tanh()
    return logits


def token_ce(model: Any, b: dict[str, Any], keep: Any) -> Any:
    """CE of predicting token t from t-1 at the `keep` (B, T-1) positions, as a (B, T-1) tensor (0 elsewhere)."""
    import torch.nn.functional as F

    targets = b["input_ids"][:, 1:]  # (B, T-1)
    ce = F.cross_entropy(logits_at(model, b, keep), targets[keep], reduction="none")  # (N,)
    return ce.new_zeros(targets.shape).masked_scatter(keep, ce)


def loss_fn(model: Any, b: dict[str, Any], cfg: TrainConfig) -> tuple[Any, int, Any]:
    """(loss, env-token count, each row's largest env-token CE as a detached (B,) tensor: 0 for a row without
    env tokens)."""
    import torch
    import torch.nn.functional as F

    env = b["env"][:, 1:]  # (B, T-1) targets that are environment tokens
    act = b["action"][:, 1:] if cfg.objective == Objective.ENV_ACTION and cfg.action_weight > 0 else torch.zeros_like(env)
    keep = env | act
    targets = b["input_ids"][:, 1:][keep]  # (N,)
    logits = logits_at(model, b, keep)  # (N, V)
    ce = F.cross_entropy(logits, targets, reduction="none")  # (N,)
    is_env, is_act = env[keep].float(), act[keep].float()  # (N,)
    n_env = is_env.sum()
    loss = (ce * is_env).sum() / n_env.clamp(min=1)
    worst = ce.detach().new_zeros(env.shape).masked_scatter(keep, ce.detach() * is_env).amax(dim=1)  # (B,)
    if act.any():
        loss = loss + cfg.action_weight * (ce * is_act).sum() / is_act.sum().clamp(min=1)
    if cfg.kl_weight > 0:
        with torch.no_grad(), model.disable_adapter():
            base = logits_at(model, b, env)  # (N_env, V)
        logp = F.log_softmax(logits[env[keep]], -1)  # (N_env, V)
        kl = (logp.exp() * (logp - F.log_softmax(base, -1))).sum(-1)  # (N_env,)
        loss = loss + cfg.kl_weight * kl.sum() / n_env.clamp(min=1)
    return loss, int(n_env.item()), worst


def train(
    model: Any,
    windows: Sequence[Window],
    cfg: TrainConfig,
    pad_id: int,
    on_step: Callable[[TrainStats, int], None] | None = None,
    within: Callable[[], bool] | None = None,
) -> TrainStats:
    """Train the LoRA parameters of a peft `model` in place on `windows`; returns what happened.

    Seeded: the same windows, config and initial adapter give the same adapter. With `cfg.known_ce`, an epoch
    whose every window had its largest env-token CE at or under it is the last: each window's CE is read from
    its own training step (dropout on, before that step's update), so the test errs toward training on.

    `within`, asked after every epoch, says whether the adapter as it is then may be kept (the cycle's
    forgetting limit). When the last epoch's adapter may not and an earlier one may, the model ends with the
    latest that may (`TrainStats.kept_epoch`); training goes on past a refused epoch, as a later one may be
    within again.

    Inside `yielding_to(interrupt)`, `interrupt` is asked before every optimizer step; when it gives why training
    must yield (an agent episode started), training stops there and says why (`TrainStats.yielded`).
    """
    import torch

    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    plan = [batches(windows, cfg.batch_tokens, rng) for _ in range(cfg.epochs)]
    total = sum(len(p) for p in plan)

    def lr_at(step: int) -> float:  # linear warmup, cosine decay to 10%
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
        return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    stats = TrainStats(planned_steps=total)
    kept: dict[str, Any] | None = None  # the trainable weights after the latest epoch `within` allowed
    last_within = True
    model.train()
    start = time.monotonic()
    for epoch_batches in plan:
        known = True
        for batch in epoch_batches:
            if cfg.max_minutes is not None and time.monotonic() - start > cfg.max_minutes * 60:
                stats.stopped_early = True
                break
            if why := yield_reason():
                stats.yielded = why
                break
            b = collate(batch, pad_id, device)
            if not bool(b["env"][:, 1:].any()):
                continue
            for group in opt.param_groups:
                group["lr"] = lr_at(stats.steps)
            loss, n_env, worst = loss_fn(model, b, cfg)
            if known and cfg.known_ce is not None:
                known = float(worst.max().item()) <= cfg.known_ce
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            stats.steps += 1
            stats.env_tokens += n_env
            stats.tokens += int(b["attention_mask"].sum().item())
            stats.final_loss = float(loss.item())
            stats.losses.append(stats.final_loss)
            stats.seconds = time.monotonic() - start
            if on_step is not None:
                on_step(stats, total)
        if stats.yielded:
            break
        if not stats.stopped_early:
            stats.epochs += 1
        if within is not None and stats.steps:
            last_within = within()
            if last_within:
                kept = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
                stats.kept_epoch = stats.epochs
        if stats.stopped_early:
            break
        if known and cfg.known_ce is not None and stats.epochs < len(plan):
            stats.stopped_known = True
            break
    if not last_within and kept is not None:
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n in kept:
                    p.copy_(kept[n])
    else:
        stats.kept_epoch = None
    stats.seconds = time.monotonic() - start
    model.eval()
    return stats


@contextmanager
def evaluating(model: Any) -> Iterator[None]:
    """`model` in eval mode (no dropout) with gradients off; back in training mode afterwards if it was."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        if was_training:
            model.train()


def evaluate(model: Any, windows: Sequence[Window], pad_id: int, batch_tokens: int = EVAL_BATCH_TOKENS,
             per_step: dict[str, list[float]] | None = None, tokens: str = "env") -> tuple[float, int]:
    """(mean env-token CE in nats/token, env-token count) of `model` on `windows`.

    With `per_step`, each step's env-token CE sum, count and largest token CE are accumulated there (step id ->
    [sum, n, max]); the largest is the teacher-forced counterpart of recall's confidence (the weakest token).
    `tokens="action"` measures the action tokens instead (the replies `render`'s `actions` rule marks): how
    likely the model finds the commands that worked, which is what its choices follow (`choosing.py`).
    """
    device = next(model.parameters()).device
    total, n = 0.0, 0
    with evaluating(model):
        for batch in batches(windows, batch_tokens):
            check_yield()
            b = collate(batch, pad_id, device)
            keep = b[tokens][:, 1:]  # (B, T-1) the targets measured
            if not bool(keep.any()):
                continue
            ce = token_ce(model, b, keep)  # (B, T-1), exact CE at the kept positions
            total += float((ce * keep).sum().item())
            n += int(keep.sum().item())
            if per_step is not None:
                rows = ce.float().cpu().tolist()
                mask = "env_mask" if tokens == "env" else "action_mask"
                for row, w in enumerate(batch):
                    for t in range(1, len(w.input_ids)):
                        if getattr(w, mask)[t] and w.step_ids[t] is not None:
                            acc = per_step.setdefault(w.step_ids[t], [0.0, 0, 0.0])
                            x = rows[row][t - 1]
                            acc[0] += x
                            acc[1] += 1
                            acc[2] = max(acc[2], x)
    return (total / n if n else float("nan")), n


def confidently_wrong(model: Any, windows: Sequence[Window], pad_id: int, threshold: float,
                      batch_tokens: int = EVAL_BATCH_TOKENS) -> dict[str, float]:
    """Steps whose output `model` would recall wrong at `threshold`: step id -> the wrong token's log-prob.

    Recall is greedy and stops at the first token under the threshold. Teacher-forced on the real output, the
    greedy path follows it while each real token is the argmax; at the first position where it is not, greedy
    recall writes another token. If that token clears the threshold (and every real token before it did), the
    recall goes on past a wrong token with confidence: a confidently wrong fact, which the agent must not use.
    A step whose real token falls under the threshold first is safe: recall stops there and the command runs.
    """
    import torch

    device = next(model.parameters()).device
    out: dict[str, float] = {}
    settled: set[str] = set()  # steps already decided (safe or wrong) at an earlier position
    with evaluating(model):
        for batch in batches(windows, batch_tokens, in_order=True):
            check_yield()
            b = collate(batch, pad_id, device)
            env = b["env"][:, 1:]
            if not bool(env.any()):
                continue
            lp = torch.log_softmax(logits_at(model, b, env), dim=-1)  # (N, V), row-major over env positions
            best_lp, best = lp.max(dim=-1)  # (N,)
            real = b["input_ids"][:, 1:][env]  # (N,)
            real_lp = lp.gather(-1, real[:, None]).squeeze(-1)
            rows = zip(best.tolist(), best_lp.tolist(), real.tolist(), real_lp.tolist(), strict=True)
            for w in batch:
                for t in range(1, len(w.input_ids)):
                    if not w.env_mask[t]:
                        continue
                    top, top_lp, tok, tok_lp = next(rows)
                    sid = w.step_ids[t]
                    if sid is None or sid in settled:
                        continue
                    if top != tok:
                        settled.add(sid)
                        if top_lp >= threshold:
                            out[sid] = top_lp
                    elif tok_lp < threshold:
                        settled.add(sid)
    return out
