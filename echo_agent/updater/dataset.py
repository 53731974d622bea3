"""ECHO training examples: rendered episodes as token ids with environment-token masks.

The text is rendered with the model's chat template exactly as the agent renders its context (the same
`transcript.py` messages, the same `tool`→`user` rule), then tokenized once with offsets (byte offsets for
byte-level BPE, so a multi-byte character split over tokens is placed exactly; character offsets otherwise). A
token is an environment token when it lies wholly inside an environment span of its message
(docs/architecture.md, "The observation contract"); a token that the tokenizer merges across a span boundary
stays unlabelled and is counted
(`boundary_tokens`). Action tokens get their own mask for the optional `env+action` objective: in a cycle, the
replies of this episode's steps whose command ran and exited 0 (`transcript.worked`); rendered without a rule, every
assistant message (the starter's recipe).

Episodes longer than `max_seq_len` become several windows, each starting with the episode's prefix (prompt,
earlier turns and task) followed by whole steps; a step longer than a window is cut into pieces.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from echo_agent.config import Settings
from echo_agent.models.prompt import PromptRenderer
from echo_agent.transcript import Rendered, TranscriptMessage

if TYPE_CHECKING:
    from echo_agent.memory.store import TrajectoryStore

_PLACEHOLDER = "\x00echo-agent-message-{}\x00"


@dataclass
class Window:
    """One training sequence. Masks are per position of `input_ids`; position 0 is never a target."""

    input_ids: list[int]
    env_mask: list[bool]
    action_mask: list[bool]
    step_ids: list[str | None]
    """The step each token belongs to (None for prompt, task and earlier turns)."""
    episode_id: str = ""

    @property
    def n_env_tokens(self) -> int:
        return sum(self.env_mask[1:])


@dataclass
class TokenizedEpisode:
    input_ids: list[int]
    env_mask: list[bool]
    action_mask: list[bool]
    step_ids: list[str | None]
    message_starts: list[int]
    """Token index where each message (its template header included) begins."""
    boundary_tokens: int = 0
    """Tokens that straddle an environment-span edge and so carry no label."""
    text: str = ""
    offsets: list[tuple[int, int]] = field(default_factory=list)


def render_with_offsets(tokenizer: Any, messages: Sequence[TranscriptMessage]) -> tuple[str, list[tuple[int, int]]]:
    """The chat-template text of `messages` and where each message's content sits in it.

    Rendered once with placeholders to find positions, then checked against a plain rendering; a template that
    rewrites content (trims it, say) falls back to a sequential search.
    """
    msgs = PromptRenderer(tokenizer).template_messages([m.to_dict() for m in messages])
    plain = tokenizer.apply_chat_template(msgs, tokenize=False)
    marked = tokenizer.apply_chat_template(
        [{"role": m["role"], "content": _PLACEHOLDER.format(i)} for i, m in enumerate(msgs)], tokenize=False
    )
    text, spans, pos = [], [], 0
    out_len = 0
    for i, m in enumerate(msgs):
        ph = _PLACEHOLDER.format(i)
        j = marked.index(ph, pos)
        text.append(marked[pos:j])
        out_len += j - pos
        spans.append((out_len, out_len + len(m["content"])))
        text.append(m["content"])
        out_len += len(m["content"])
        pos = j + len(ph)
    text.append(marked[pos:])
    rendered = "".join(text)
    if rendered == plain:
        return rendered, spans
    spans, pos = [], 0
    for m in msgs:  # the template changed the content; find each message's text in order
        j = plain.find(m["content"].strip(), pos)
        if j < 0:
            raise ValueError("the chat template rewrites message content; cannot place environment labels")
        spans.append((j, j + len(m["content"].strip())))
        pos = j + len(m["content"].strip())
    return plain, spans


def tokenize_episode(
    tokenizer: Any, messages: Sequence[TranscriptMessage], owners: Sequence[str | None] | None = None
) -> TokenizedEpisode:
    """Token ids and masks for `messages`; `owners[i]` is the step id message i belongs to."""
    owners = list(owners) if owners is not None else [None] * len(messages)
    text, content_spans = render_with_offsets(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    to_unit = _byte_units(tokenizer, ids, text)
    if to_unit is not None:  # byte-level BPE: label by byte ranges, exact even inside multi-byte characters
        offsets = _byte_offsets(tokenizer, ids)
        content_spans_u = [(to_unit[a], to_unit[b]) for a, b in content_spans]
    else:
        to_unit = list(range(len(text) + 1))
        content_spans_u = content_spans

    env_spans: list[tuple[int, int]] = []
    action_spans: list[tuple[int, int]] = []
    for m, (start, end) in zip(messages, content_spans, strict=True):
        if m.role == "assistant" and m.action:
            action_spans.append((to_unit[start], to_unit[end]))
        env_spans.extend((to_unit[start + a], to_unit[start + b]) for a, b in m.env_spans)

    env_mask, boundary = _mask(offsets, env_spans)
    action_mask, _ = _mask(offsets, action_spans)
    # A message begins at its template header, i.e. just after the previous message's content ends.
    message_text_starts = [0] + [end for _, end in content_spans_u[:-1]]
    message_starts, step_ids = [], []
    t = 0
    for s in message_text_starts:
        while t < len(offsets) and offsets[t][1] <= s:
            t += 1
        message_starts.append(t)
    k = 0
    for i in range(len(ids)):
        while k + 1 < len(message_starts) and i >= message_starts[k + 1]:
            k += 1
        step_ids.append(owners[k] if messages else None)
    return TokenizedEpisode(ids, env_mask, action_mask, step_ids, message_starts, boundary, text, offsets)


def _byte_units(tokenizer: Any, ids: list[int], text: str) -> list[int] | None:
    """Char index -> byte index of `text`, when the tokens are byte-level BPE pieces that spell its bytes
    (one piece character per byte); None otherwise (labels then go by character offsets)."""
    pieces = tokenizer.convert_ids_to_tokens(ids)
    data = text.encode("utf-8", errors="surrogatepass")
    if sum(len(p) for p in pieces) != len(data):
        return None
    units = [0]
    for ch in text:
        units.append(units[-1] + len(ch.encode("utf-8", errors="surrogatepass")))
    return units


def _byte_offsets(tokenizer: Any, ids: list[int]) -> list[tuple[int, int]]:
    out, pos = [], 0
    for p in tokenizer.convert_ids_to_tokens(ids):
        out.append((pos, pos + len(p)))
        pos += len(p)
    return out


def _mask(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> tuple[list[bool], int]:
    """(mask, boundary count): a token is in when it lies wholly inside a span; partial overlaps are counted."""
    mask = [False] * len(offsets)
    boundary = 0
    spans = sorted(spans)
    j = 0
    for i, (s, e) in enumerate(offsets):
        if s == e:
            continue
        while j < len(spans) and spans[j][1] <= s:
            j += 1
        if j == len(spans) or spans[j][0] >= e:
            continue  # no span overlaps this token
        if spans[j][0] <= s and e <= spans[j][1]:
            mask[i] = True
        else:
            boundary += 1
    return mask, boundary


def windows(
    tok: TokenizedEpisode, max_seq_len: int, prefix_messages: int, episode_id: str = "",
    step_starts: Sequence[int] | None = None,
) -> list[Window]:
    """Split into sequences of at most `max_seq_len` tokens, each starting with the prefix (the first
    `prefix_messages` messages: prompt, earlier turns, task) and holding whole steps where they fit.
    `step_starts`: the message index where each step begins (default: every two messages after the prefix)."""
    n = len(tok.input_ids)
    if n <= max_seq_len:
        return [Window(tok.input_ids, tok.env_mask, tok.action_mask, tok.step_ids, episode_id)]
    starts = tok.message_starts
    prefix_end = starts[prefix_messages] if prefix_messages < len(starts) else n
    prefix = range(max(0, prefix_end - max_seq_len // 2), prefix_end)  # a huge prompt keeps its end
    room = max_seq_len - len(prefix)
    # Units are steps: an assistant message and its observation, or a user message.
    first_messages = range(prefix_messages, len(starts), 2) if step_starts is None else step_starts
    bounds = [starts[i] for i in first_messages] + [n]
    units = [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
    pieces: list[tuple[int, int]] = []
    for a, b in units:
        while b - a > room:
            pieces.append((a, a + room))
            a += room
        pieces.append((a, b))
    out: list[Window] = []
    cur: list[tuple[int, int]] = []
    for piece in pieces + [None]:
        if piece is None or (cur and sum(b - a for a, b in cur) + piece[1] - piece[0] > room):
            idx = list(prefix) + [i for a, b in cur for i in range(a, b)]
            env = [tok.env_mask[i] for i in idx]
            for p in range(len(prefix)):
                env[p] = False  # the prefix is context in every window; its labels (if any) count once
            out.append(Window([tok.input_ids[i] for i in idx], env, [tok.action_mask[i] for i in idx],
                              [tok.step_ids[i] for i in idx], episode_id))
            cur = []
        if piece is not None:
            cur.append(piece)
    return [w for w in out if len(w.input_ids) > len(prefix)]


def episode_windows(tokenizer: Any, rendered: Rendered, max_seq_len: int,
                    episode_id: str = "") -> tuple[list[Window], int]:
    """A rendered episode as training windows, each token owned by its step; and its boundary-token count."""
    tok = tokenize_episode(tokenizer, rendered.messages, rendered.owners)
    return (windows(tok, max_seq_len, rendered.prefix, episode_id, rendered.step_starts), tok.boundary_tokens)


# --- selecting a cycle's data from the store ------------------------------------------------------------------


@dataclass
class CycleData:
    train: list[Window]
    heldout: list[Window]
    train_step_ids: list[str]
    """Every step labelled in `train` (new and replayed): recorded in adapter_step."""
    new_step_ids: list[str]
    """Trainable steps newer than the current adapter (their surprise is measured)."""
    heldout_episode_ids: list[str]
    replay_episode_ids: list[str]
    trained_through_seq: int
    boundary_tokens: int = 0
    retention: list[Window] = field(default_factory=list)
    """Older episodes (a seeded sample, replayed or not), all trainable steps labelled: what the current adapter
    already learned, which the candidate must not forget."""
    train_episode_ids: list[str] = field(default_factory=list)
    """The new episodes trained on (not held out), oldest first."""
    retention_episode_ids: list[str] = field(default_factory=list)
    """The episodes of `retention`."""

    @property
    def n_train_env_tokens(self) -> int:
        return sum(w.n_env_tokens for w in self.train)

    @property
    def n_heldout_env_tokens(self) -> int:
        return sum(w.n_env_tokens for w in self.heldout)


def duplicate_key(step: dict) -> tuple:
    return (step.get("command"), step.get("output"), step.get("cwd_before"))


@dataclass
class CycleEpisodes:
    """Which episodes a cycle uses, and for what (`choose_episodes`)."""

    new_steps: list[dict]
    """Trainable steps newer than the adapter in use, in seq order."""
    train: list[dict]
    heldout: list[dict]
    """The newest of the new episodes: evaluated, not trained on in this cycle."""
    replay: list[dict]
    """Older episodes rehearsed with the new ones."""
    retention: list[dict]
    """Older episodes on which the gate checks that nothing recallable is lost."""


def choose_episodes(store: TrajectoryStore, since_seq: int, settings: Settings, seed: int = 0,
                    adapter_id: str | None = None) -> CycleEpisodes:
    """New data: episodes with trainable steps newer than `since_seq` that `adapter_id`'s lineage has not trained
    (`queries.pending_steps`). The newest `heldout_fraction` of them (at least one, at most
    `heldout_max_episodes`) are held out and not trained on in this cycle. Replay: a seeded sample of older episodes,
    `replay_fraction` times as many as the new training episodes and at least `replay_min`, so earlier facts are
    rehearsed; a cycle with little new data would otherwise take many passes over a few look-ups and overwrite
    similar older facts. Retention: up to `retention_episodes` older episodes for the gate."""
    import random

    from echo_agent.memory.queries import older_trainable_episodes, pending_steps

    new_steps = pending_steps(store, since_seq, adapter_id)
    new_episode_ids = list(dict.fromkeys(s["episode_id"] for s in new_steps))
    episodes = sorted((store.get_episode(e) for e in new_episode_ids), key=lambda e: e["started_at"])
    n_held = (min(settings.heldout_max_episodes, max(1, round(len(episodes) * settings.heldout_fraction)))
              if episodes else 0)
    heldout, train = episodes[len(episodes) - n_held:], episodes[: len(episodes) - n_held]

    rng = random.Random(seed)
    new_ids = set(new_episode_ids)
    old_ids = [e for e in older_trainable_episodes(store, since_seq) if e not in new_ids]
    n_replay = (min(len(old_ids), max(settings.replay_min, math.ceil(len(train) * settings.replay_fraction)))
                if train else 0)
    replay = [store.get_episode(e) for e in rng.sample(old_ids, n_replay)]
    retention = [store.get_episode(e) for e in rng.sample(old_ids, min(len(old_ids), settings.retention_episodes))]
    return CycleEpisodes(new_steps, train, heldout, replay, retention)


def _redacted_now(store: TrajectoryStore) -> tuple[Callable[[dict], dict], Callable[[str], list[dict]]]:
    """(an episode, an episode's steps by id) as today's redaction rules would store them (`redacted_now`):
    training text, its context included, never holds a secret that older rules missed."""
    from echo_agent.memory.store import episode_redacted_now, redacted_now

    extra = tuple(store.settings.redact_patterns)
    return (lambda ep: episode_redacted_now(ep, extra),
            lambda episode_id: [redacted_now(s, extra) for s in store.episode_steps(episode_id)])


def render_windows(store: TrajectoryStore, tokenizer: Any, episodes: Sequence[dict], labelled: Callable[[dict], bool],
                   max_seq_len: int) -> tuple[list[Window], int]:
    """`episodes` rendered in the agent's context (earlier chat turns as context; they are trained in their own
    episodes), with the steps `labelled` picks labelled: the windows holding env tokens, and the boundary-token
    count."""
    from echo_agent.transcript import render, worked

    episode_now, steps_of = _redacted_now(store)
    out: list[Window] = []
    boundary = 0
    for ep in episodes:
        earlier = [(episode_now(e), steps_of(e["id"])) for e in store.episode_chain(ep["id"])]
        rendered = render(episode_now(ep), steps_of(ep["id"]), earlier, actions=worked,
                          labelled=lambda s, ep=ep: s["episode_id"] == ep["id"] and labelled(s))
        ws, b = episode_windows(tokenizer, rendered, max_seq_len, ep["id"])
        out += ws
        boundary += b
    return [w for w in out if w.n_env_tokens], boundary


def build_windows(store: TrajectoryStore, tokenizer: Any, chosen: CycleEpisodes, *, since_seq: int,
                  max_seq_len: int, duplicate_cap: int, only: set[str] | None = None,
                  replay_tokens: int | None = None, left: set[str] = frozenset()) -> CycleData:
    """The chosen episodes as windows. Within the training set (new and replayed episodes), identical
    (command, output, cwd_before) steps beyond `duplicate_cap` are rendered unlabelled.

    With `only` (a cycle over its budget, `select.within_budget`), just those new steps are trained, the replayed
    windows stop at `replay_tokens`, and the steps in `left` hold the watermark for a later cycle."""
    from echo_agent.transcript import is_trainable

    seen: dict[tuple, int] = {}
    train_ids: list[str] = []

    def labelled_for_training(step: dict) -> bool:
        if not is_trainable(step):
            return False
        key = duplicate_key(step)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > duplicate_cap:
            return False
        train_ids.append(step["id"])
        return True

    if only is not None:
        has = {s["episode_id"] for s in chosen.new_steps if s["id"] in only}
        chosen.train = [e for e in chosen.train if e["id"] in has]
    train, boundary = render_windows(store, tokenizer, chosen.train, lambda s: (
        only is None or s["id"] in only) and labelled_for_training(s), max_seq_len)
    replay_ids = len(train_ids)
    replay, b = render_windows(store, tokenizer, chosen.replay, labelled_for_training, max_seq_len)
    boundary += b
    if replay_tokens is not None:
        kept, used = [], 0
        for w in replay:
            if used + len(w.input_ids) <= replay_tokens:
                kept.append(w)
                used += len(w.input_ids)
        dropped = {e["id"] for e in chosen.replay} - {w.episode_id for w in kept}
        chosen.replay = [e for e in chosen.replay if e["id"] not in dropped]
        labelled = {sid for w in kept for sid in w.step_ids if sid is not None}
        train_ids = train_ids[:replay_ids] + [sid for sid in train_ids[replay_ids:] if sid in labelled]
        replay = kept
    heldout, b = render_windows(store, tokenizer, chosen.heldout, is_trainable, max_seq_len)
    boundary += b
    retention, _ = render_windows(store, tokenizer, chosen.retention, is_trainable, max_seq_len)
    return CycleData(
        train=train + replay,
        heldout=heldout,
        train_step_ids=train_ids,
        new_step_ids=[s["id"] for s in chosen.new_steps],
        heldout_episode_ids=[e["id"] for e in chosen.heldout],
        replay_episode_ids=[e["id"] for e in chosen.replay],
        trained_through_seq=_trained_through(chosen.new_steps, {e["id"] for e in chosen.heldout}, since_seq, left),
        boundary_tokens=boundary,
        retention=retention,
        train_episode_ids=[e["id"] for e in chosen.train],
        retention_episode_ids=[e["id"] for e in chosen.retention],
    )


def step_windows(store: TrajectoryStore, tokenizer: Any, step_ids: Sequence[str], max_seq_len: int) -> list[Window]:
    """Windows of the episodes holding `step_ids`, in the agent's context, with only those steps labelled."""
    wanted = set(step_ids)
    episodes = [store.get_episode(e) for e in dict.fromkeys(store.get_step(s)["episode_id"] for s in step_ids)]
    return render_windows(store, tokenizer, episodes, lambda s: s["id"] in wanted, max_seq_len)[0]


def select_cycle_data(store: TrajectoryStore, tokenizer: Any, *, since_seq: int, settings: Settings | None = None,
                      seed: int = 0, adapter_id: str | None = None) -> CycleData:
    """The cycle's training, held-out and retention windows, every pending step trained: `choose_episodes`, then
    `build_windows` (a cycle over its budget chooses in between: `select.within_budget`)."""
    settings = settings or Settings()
    chosen = choose_episodes(store, since_seq, settings, seed, adapter_id)
    return build_windows(store, tokenizer, chosen, since_seq=since_seq, max_seq_len=settings.max_seq_len,
                         duplicate_cap=settings.duplicate_cap)


def _trained_through(new_steps: list[dict], heldout: set[str], since_seq: int, left: set[str] = frozenset()) -> int:
    """The newest seq this cycle's data covers: before the first step of a held-out episode (the next cycle
    trains on what this one held out) and before the first step left out for the budget."""
    waiting = [s["seq"] for s in new_steps if s["episode_id"] in heldout or s["id"] in left]
    if waiting:
        return max(since_seq, min(waiting) - 1)
    return max((s["seq"] for s in new_steps), default=since_seq)
