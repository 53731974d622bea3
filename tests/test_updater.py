"""The updater on a tiny random model with the real SmolLM2 tokenizer: masks, windows, training, the cycle."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from echo_agent import observation as obs
from echo_agent.agent import Agent, AgentConfig
from echo_agent.config import Settings
from echo_agent.errors import UpdateBusy
from echo_agent.memory.adapters import get_adapter, insert_adapter, list_adapters
from echo_agent.memory.store import TrajectoryStore
from echo_agent.models.scripted import ScriptedBackend
from echo_agent.shell import ShellSession
from echo_agent.transcript import render_episode
from echo_agent.updater import registry
from echo_agent.updater.cycle import run_cycle, update_lock
from echo_agent.updater.dataset import select_cycle_data, tokenize_episode, windows
from echo_agent.updater.gate import retention
from echo_agent.updater.train import TrainConfig, evaluate, train

# --- masks -----------------------------------------------------------------------------------------------

output_lines = st.lists(
    st.one_of(
        st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=40),
        st.sampled_from([obs.TIMEOUT_MARKER, obs.elision_marker(12), "port = 8080", "  indented", "[exit 0]"]),
    ),
    max_size=6,
)


@st.composite
def episodes(draw):
    steps = []
    for i in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["ok", "ok", "recalled", "untrainable", "format"]))
        lines = draw(output_lines)
        steps.append({
            "id": f"s{i}", "reply": f"```bash\ncmd{i}\n```", "command": None if kind == "format" else f"cmd{i}",
            "output": "\n".join(lines), "status": draw(st.sampled_from(["[exit 0]", "[exit 2]", None])),
            "note": draw(st.sampled_from(["", obs.INPUT_MARKER])), "source": "recalled" if kind == "recalled"
            else "executed", "trainable": 0 if kind == "untrainable" else 1,
        })
    episode = {"task": draw(st.text(min_size=1, max_size=30)), "prompt": [{"role": "system", "content": "sys"}]}
    return episode, steps


def _env_pieces(tokenizer, tok, messages):
    """The labelled tokens, decoded run by run (byte-level tokens of one character decode only together)."""
    runs, cur = [], []
    for i, m in zip(tok.input_ids, tok.env_mask, strict=True):
        if m:
            cur.append(i)
        elif cur:
            runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    return "".join(tokenizer.decode(r) for r in runs)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(episodes())
def test_labels_cover_exactly_the_environment_text(smollm2_tokenizer, ep):
    episode, steps = ep
    messages = render_episode(episode, steps)
    tok = tokenize_episode(smollm2_tokenizer, messages)
    env_text = "".join(m.env_text() for m in messages)
    labelled = _env_pieces(smollm2_tokenizer, tok, messages)
    # Up to tokens merged across a span boundary (counted), the labels spell the environment text.
    labelled_bytes = sum(len(t) for t, m in zip(smollm2_tokenizer.convert_ids_to_tokens(tok.input_ids),
                                                 tok.env_mask, strict=True) if m)  # byte-level BPE: 1 char/byte
    assert labelled_bytes <= len(env_text.encode())
    round_trips = tok.text == smollm2_tokenizer.decode(tok.input_ids)  # some rare characters are lossy
    if tok.boundary_tokens == 0 and round_trips:
        assert labelled == env_text
    # No label falls on the system prompt, task, replies, template tokens or harness lines.
    special = set(smollm2_tokenizer.all_special_ids)
    assert not any(m and i in special for i, m in zip(tok.input_ids, tok.env_mask, strict=True))
    for line in labelled.split("\n"):
        assert not obs.is_harness_line(line) or any(obs.is_harness_line(x) for x in env_text.split("\n"))
    assert tok.boundary_tokens <= 2 * len(steps)


def test_boundary_tokens_are_rare_on_realistic_outputs(smollm2_tokenizer):
    outputs = ["port = 8123\nname = zeta\n", "total 12\ndrwxr-xr-x 2 root root 4096 a\n", "3 notes.txt\n", ""]
    total_env, boundary = 0, 0
    for out in outputs:
        msgs = render_episode({"task": "t", "prompt": []}, [{"id": "s", "reply": "r", "command": "c", "output": out,
                                                             "status": "[exit 0]", "note": ""}])
        tok = tokenize_episode(smollm2_tokenizer, msgs)
        total_env += sum(tok.env_mask)
        boundary += tok.boundary_tokens
    assert boundary <= 0.05 * total_env


def test_harness_and_non_trainable_steps_carry_no_labels(smollm2_tokenizer):
    steps = [
        {"id": "a", "reply": "```bash\ncat f\n```", "command": "cat f", "output": "secret-free\n",
         "status": "[exit 0]", "note": obs.TIMEOUT_MARKER, "source": "executed", "trainable": 1},
        {"id": "b", "reply": "```bash\ncat g\n```", "command": "cat g", "output": "predicted\n",
         "status": "[exit 0]", "note": "", "source": "recalled", "trainable": 0},
        {"id": "c", "reply": "nonsense", "command": None, "output": "", "status": None, "note": "",
         "source": "executed", "trainable": 1},
    ]
    msgs = render_episode({"task": "t", "prompt": []}, steps)
    owners = [None] * (len(msgs) - 6) + ["a", "a", "b", "b", "c", "c"]
    tok = tokenize_episode(smollm2_tokenizer, msgs, owners)
    labelled = _env_pieces(smollm2_tokenizer, tok, msgs)
    assert labelled == "secret-free\n[exit 0]"
    assert {s for s, m in zip(tok.step_ids, tok.env_mask, strict=True) if m} == {"a"}


def test_template_without_tool_role_falls_back_to_user(smollm2_tokenizer):
    tokenizer = copy.deepcopy(smollm2_tokenizer)
    tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] not in ['system', 'user', 'assistant'] %}"
        "{{ raise_exception('unknown role') }}{% endif %}"
        "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    )
    msgs = render_episode({"task": "t", "prompt": []}, [{"id": "s", "reply": "r", "command": "c",
                                                         "output": "hello\n", "status": "[exit 0]", "note": ""}])
    tok = tokenize_episode(tokenizer, msgs)
    assert "<|im_start|>tool" not in tok.text and tok.text.count("<|im_start|>user") == 2
    assert _env_pieces(tokenizer, tok, msgs) == "hello\n[exit 0]"


def test_windows_keep_the_prefix_and_cover_every_step(smollm2_tokenizer):
    steps = [{"id": f"s{i}", "reply": f"```bash\ncat f{i}\n```", "command": f"cat f{i}",
              "output": f"line {i}\n" * 30, "status": "[exit 0]", "note": ""} for i in range(8)]
    msgs = render_episode({"task": "the task", "prompt": [{"role": "system", "content": "system prompt"}]}, steps)
    owners = [None] * 2 + [s["id"] for s in steps for _ in (0, 1)]
    tok = tokenize_episode(smollm2_tokenizer, msgs, owners)
    ws = windows(tok, 256, 2)
    assert len(ws) > 1 and all(len(w.input_ids) <= 256 for w in ws)
    prefix = tok.input_ids[: tok.message_starts[2]]
    assert all(w.input_ids[: len(prefix)] == prefix for w in ws)
    assert sum(w.n_env_tokens for w in ws) == sum(tok.env_mask[1:])
    assert {s for w in ws for s, m in zip(w.step_ids, w.env_mask, strict=True) if m} == {s["id"] for s in steps}


# --- a store with episodes, built through the real agent loop ---------------------------------------------


def record_lookups(store: TrajectoryStore, ws: Path, files: dict[str, str], rounds: int) -> None:
    for name, text in files.items():
        (ws / name).write_text(text)
    with ShellSession(cwd=ws) as shell:
        for _ in range(rounds):
            for name in files:
                backend = ScriptedBackend([f"```bash\ncat {name}\n```", "```answer\nok\n```"])
                Agent(backend, shell, store, config=AgentConfig(examples=0, memory=False)).run(f"show {name}")


FILES = {f"svc{i}.conf": f"name = svc{i}\nport = {8000 + 7 * i}\n" for i in range(4)}


@pytest.fixture
def store(isolated_home):
    with TrajectoryStore(isolated_home / "store.db") as s:
        yield s


@pytest.fixture
def filled_store(store, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    record_lookups(store, ws, FILES, rounds=3)
    return store


def test_cycle_data_holds_out_the_newest_episodes_and_caps_duplicates(filled_store, smollm2_tokenizer):
    data = select_cycle_data(filled_store, smollm2_tokenizer, since_seq=0,
                             settings=Settings(heldout_fraction=0.1, duplicate_cap=2))
    assert len(data.heldout_episode_ids) == 1  # 10% of 12, at least one
    newest = filled_store.recent_episodes(1)[0]["id"]
    assert data.heldout_episode_ids == [newest]
    assert all(w.episode_id != newest for w in data.train)
    # Each file was read 3 times (one of them maybe held out); at most 2 identical steps are labelled.
    labelled_cmds = [filled_store.conn.execute("SELECT command FROM step WHERE id=?", [i]).fetchone()[0]
                     for i in data.train_step_ids]
    assert max(labelled_cmds.count(c) for c in set(labelled_cmds)) == 2
    assert data.trained_through_seq < max(s["seq"] for s in filled_store.iter_steps())


def test_training_lowers_env_ce_and_is_reproducible(filled_store, tiny_model_dir, smollm2_tokenizer):
    from echo_agent.updater.cycle import load_for_training

    cfg = TrainConfig(epochs=3, lr=5e-3, seed=7)
    data = select_cycle_data(filled_store, smollm2_tokenizer, since_seq=0)
    results = []
    for _ in range(2):
        model, tok, _ = load_for_training(tiny_model_dir, None, cfg, device="cpu")
        before, n = evaluate(model, data.train, tok.pad_token_id)
        stats = train(model, data.train, cfg, tok.pad_token_id)
        after, _ = evaluate(model, data.train, tok.pad_token_id)
        results.append((before, after, stats.steps,
                        [p.detach().clone() for n_, p in model.named_parameters() if "lora_B" in n_]))
    (b1, a1, s1, w1), (b2, a2, s2, w2) = results
    assert n > 0 and s1 > 0 and a1 < b1 - 0.1
    assert (b1, a1, s1) == (b2, a2, s2)
    assert all(bool((x == y).all()) for x, y in zip(w1, w2, strict=True))


def test_loading_for_training_hides_peft_deprecation_noise(tiny_model_dir):
    import warnings

    from echo_agent.updater.cycle import load_for_training

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_for_training(tiny_model_dir, None, TrainConfig(epochs=1), device="cpu")
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]


def test_saving_an_adapter_never_asks_the_hub(tiny_model_dir, tmp_path, monkeypatch):
    import peft.utils.save_and_load as peft_save

    from echo_agent.updater import registry
    from echo_agent.updater.cycle import load_for_training

    def no_network(*args, **kwargs):
        raise AssertionError("asked the Hub")

    monkeypatch.setattr(peft_save, "check_file_exists_on_hf_hub", no_network, raising=False)
    model, _, _ = load_for_training(tiny_model_dir, None, TrainConfig(epochs=1), device="cpu")
    model.peft_config["default"].base_model_name_or_path = "smollm2-135m-instruct"  # a name, not a path
    path = registry.save_adapter(model, tmp_path, "a0001", {"parent_id": None})
    assert (path / "adapter_config.json").exists()


@pytest.mark.parametrize("cfg", [TrainConfig(epochs=1, objective="env+action", action_weight=0.5),
                                 TrainConfig(epochs=1, kl_weight=0.1), TrainConfig(epochs=50, max_minutes=0.0)])
def test_objectives_and_time_limit(filled_store, tiny_model_dir, smollm2_tokenizer, cfg):
    from echo_agent.updater.cycle import load_for_training

    data = select_cycle_data(filled_store, smollm2_tokenizer, since_seq=0)
    model, tok, _ = load_for_training(tiny_model_dir, None, cfg, device="cpu")
    replies_before, n_replies = evaluate(model, data.train, tok.pad_token_id, tokens="action")
    stats = train(model, data.train, cfg, tok.pad_token_id)
    if cfg.max_minutes == 0.0:
        assert stats.stopped_early and stats.steps == 0
    else:
        assert stats.steps > 0 and stats.final_loss == stats.final_loss  # not NaN
    if cfg.objective == "env+action":  # the replies that worked are trained: the model finds them likelier
        assert n_replies > 0 and evaluate(model, data.train, tok.pad_token_id, tokens="action")[0] < replies_before


def test_training_stops_after_the_first_epoch_that_finds_every_window_known(filled_store, tiny_model_dir,
                                                                            smollm2_tokenizer):
    from echo_agent.updater.cycle import load_for_training
    from echo_agent.updater.train import collate, loss_fn

    data = select_cycle_data(filled_store, smollm2_tokenizer, since_seq=0)
    pad = smollm2_tokenizer.pad_token_id
    runs = {}
    for known_ce in (None, 0.0, 100.0):  # never asked; never reached (a random model); reached at once
        cfg = TrainConfig(epochs=3, batch_tokens=256, known_ce=known_ce)
        model, _, _ = load_for_training(tiny_model_dir, None, cfg, device="cpu")
        runs[known_ce] = train(model, data.train[:3], cfg, pad)
    assert [(s.epochs, s.stopped_known) for s in runs.values()] == [(3, False), (3, False), (1, True)]
    assert runs[100.0].steps * 3 == runs[None].steps

    # The known test reads each window's weakest env token from its training step: the same number `evaluate`
    # gives as the window's largest token CE (dropout off).
    model.eval()
    for w in data.train[:3]:
        per_step: dict = {}
        evaluate(model, [w], pad, per_step=per_step)
        _, _, worst = loss_fn(model, collate([w], pad, "cpu"), TrainConfig())
        assert float(worst[0]) == pytest.approx(max(v[2] for v in per_step.values()), abs=1e-4)
    assert TrainConfig.from_settings(Settings(recall_threshold=-0.1)).known_ce == pytest.approx(0.05)


def test_training_text_never_holds_a_secret_that_older_rules_missed(store, smollm2_tokenizer, monkeypatch):
    """A step stored before a redaction rule existed stays as it is in the store; the cycle's windows, context
    included, see it redacted by today's rules and do not label it."""
    import echo_agent.memory.store as store_module
    from tests.test_store import result as res

    sid = store.start_session()
    token = "shpat_" + "0123456789abcdef" * 2
    monkeypatch.setattr(store_module, "redact", lambda text, extra=(): (text, 0))  # the older rules missed it
    monkeypatch.setattr(store_module, "redact_json", lambda value, extra=(): value)
    eid = store.start_episode(sid, f"is {token} the shop token", [{"role": "system", "content": f"key {token}"}])
    store.record_step(eid, reply="r", command="printenv SHOP", result=res("printenv SHOP", token + "\n"))
    monkeypatch.undo()
    store.record_step(eid, reply="r", command="pwd", result=res("pwd", "/srv/app\n"))
    store.finish_episode(eid, "done", "the token is in SHOP")
    assert token in store.episode_steps(eid)[0]["output"] and token in store.get_episode(eid)["task"]

    data = select_cycle_data(store, smollm2_tokenizer, since_seq=0, settings=Settings())
    text = "".join(smollm2_tokenizer.decode(w.input_ids) for w in data.train + data.heldout)
    assert token not in text and "[REDACTED:shopify_token]" in text
    assert store.episode_steps(eid)[0]["id"] not in data.train_step_ids


def test_training_ends_with_the_latest_epoch_within_the_limit(filled_store, tiny_model_dir, smollm2_tokenizer):
    import torch

    from echo_agent.updater.cycle import load_for_training

    data = select_cycle_data(filled_store, smollm2_tokenizer, since_seq=0)
    cfg = TrainConfig(epochs=4, batch_tokens=256)

    def run(answers):
        model, _, _ = load_for_training(tiny_model_dir, None, cfg, device="cpu")
        seen = []

        def within():
            seen.append({n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad})
            return answers[len(seen) - 1]

        stats = train(model, data.train[:3], cfg, smollm2_tokenizer.pad_token_id, within=within)
        now = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
        ends_with = [i + 1 for i, w in enumerate(seen) if all(torch.equal(w[n], now[n]) for n in now)]
        return stats.kept_epoch, ends_with

    # Refused after epochs 1 and 4: the adapter after epoch 3, the latest allowed, not the first.
    assert run([False, True, True, False]) == (3, [3])
    assert run([True, True, True, True]) == (None, [4])
    assert run([False, False, False, False]) == (None, [4])  # none allowed: the last stays, the gate rejects it


# --- the cycle and the registry ---------------------------------------------------------------------------


ACCEPT_ANY = {"gate_margin": -10.0, "retention_tolerance": 1.0, "policy_tolerance": 1.0}
"""Gate settings under which any candidate is promoted."""
NEVER_CHOOSES = -2.0
"""A policy tolerance no candidate meets: the net share lost is never below -1 (every checked task gained)."""


def cycle(store, home, tiny_model_dir, **gate):
    s = Settings.load(**gate)
    return run_cycle(store, s, home=home, model=tiny_model_dir, cfg=TrainConfig(epochs=2, lr=5e-3), device="cpu")


def test_empty_store_and_only_redacted_steps_have_nothing_to_train(store, isolated_home, tiny_model_dir, tmp_path):
    assert cycle(store, isolated_home, tiny_model_dir).status == "nothing-new"
    ws = tmp_path / "ws"
    ws.mkdir()
    record_lookups(store, ws, {"creds.env": "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"}, 3)
    assert all(s["trainable"] == 0 for s in store.iter_steps())
    assert cycle(store, isolated_home, tiny_model_dir).status == "nothing-new"
    assert list_adapters(store) == []


def test_cycle_registers_a_complete_adapter_with_metrics(filled_store, isolated_home, tiny_model_dir):
    report = cycle(filled_store, isolated_home, tiny_model_dir, **ACCEPT_ANY)
    assert report.status == "promoted" and report.adapter_id == "a0001"
    row = get_adapter(filled_store, "a0001")
    assert row["status"] == "promoted" and row["metrics"]["heldout_ce"]["candidate"] > 0
    # How likely the held-out replies that worked are, before and after: the policy's drift, measured.
    replies = row["metrics"]["heldout_action_ce"]
    assert replies["tokens"] > 0 and replies["current"] > 0 and replies["candidate"] > 0
    # The promoted adapter was checked on every look-up the agent may recall (each file read 3 times, one output).
    check = row["metrics"]["recall_check"]
    assert check["checked"] == len(FILES) and isinstance(check["wrong"], list)
    # The policy check replayed each task's first command once (four tasks, each asked three times).
    replayed = row["metrics"]["policy"]
    assert replayed["cases"] == len(FILES) and 0 <= replayed["candidate"] <= len(FILES)
    assert [r["check"] for r in row["metrics"]["decision"]["reasons"]][-1] == "policy"
    path = Path(row["path"])
    assert registry.adapter_complete(path)
    meta = registry.read_meta(path)
    assert meta["base_hash"] == row["base_hash"] and meta["versions"]["peft"] and meta["config"]["lora_r"] == 16
    assert json.loads((path / "adapter_config.json").read_text()).get("modules_to_save") in (None, [])
    n_links = filled_store.conn.execute("SELECT count(*) FROM adapter_step WHERE adapter_id='a0001'").fetchone()[0]
    assert n_links > 0
    assert all(s["surprise"] is not None for s in filled_store.iter_steps())
    assert registry.current_adapter(filled_store) == ("a0001", path)
    # Nothing new since: the next cycle has nothing to do.
    assert cycle(filled_store, isolated_home, tiny_model_dir).status in ("nothing-new", "no-heldout")


def test_gate_rejects_without_enough_gain(filled_store, isolated_home, tiny_model_dir):
    report = cycle(filled_store, isolated_home, tiny_model_dir, gate_margin=0.99)
    assert report.status == "rejected" and get_adapter(filled_store, report.adapter_id)["status"] == "rejected"
    assert registry.current_adapter(filled_store) == (None, None)


def test_retention_counts_recallable_steps_the_candidate_loses():
    before = {"kept": [0.1, 10, 0.02], "lost": [0.2, 10, 0.2], "unknown": [5.0, 10, 3.0], "gone": [0.1, 5, 0.01]}
    after = {"kept": [0.1, 10, 0.24], "lost": [2.0, 10, 5.9], "unknown": [0.1, 10, 0.01]}
    r = retention(before, after, threshold=-0.25)
    assert (r["known"], r["lost"], sorted(r["lost_steps"])) == (3, 2, ["gone", "lost"])
    assert r["lost_fraction"] == pytest.approx(2 / 3)
    assert retention({}, {}, -0.25)["lost_fraction"] == 0.0


def test_later_cycles_replay_and_check_older_episodes(filled_store, isolated_home, tiny_model_dir, tmp_path,
                                                      smollm2_tokenizer):
    first = cycle(filled_store, isolated_home, tiny_model_dir, **ACCEPT_ANY)
    since = get_adapter(filled_store, first.adapter_id)["trained_through_seq"]
    record_lookups(filled_store, tmp_path / "ws", {"more.conf": "x = 1\n", "other.conf": "y = 2\n"}, 1)
    data = select_cycle_data(filled_store, smollm2_tokenizer, since_seq=since,
                             settings=Settings(replay_min=5, retention_episodes=7))
    old = {s["episode_id"] for s in filled_store.iter_steps() if s["seq"] <= since}
    assert len(data.replay_episode_ids) == 5 and set(data.replay_episode_ids) <= old  # the floor, not 1 of 2 new
    assert len({w.episode_id for w in data.retention}) == 7 and {w.episode_id for w in data.retention} <= old
    # A gate that tolerates no loss at all still reports what it measured; one that tolerates none below zero
    # rejects even a candidate that lost nothing.
    report = cycle(filled_store, isolated_home, tiny_model_dir, gate_margin=-10.0, retention_tolerance=-1.0)
    assert report.status == "rejected" and report.metrics["retention"]["lost_fraction"] >= 0.0
    assert get_adapter(filled_store, report.adapter_id)["metrics"]["gate"]["retention_tolerance"] == -1.0
    assert registry.current_adapter(filled_store)[0] == first.adapter_id


def test_corrupt_adapter_is_refused_and_the_previous_stays_in_use(filled_store, isolated_home, tiny_model_dir,
                                                                   tmp_path):
    first = cycle(filled_store, isolated_home, tiny_model_dir, **ACCEPT_ANY)
    record_lookups(filled_store, tmp_path / "ws", {"more.conf": "x = 1\n", "other.conf": "y = 2\n"}, 2)
    second = cycle(filled_store, isolated_home, tiny_model_dir, **ACCEPT_ANY)
    assert (first.status, second.status) == ("promoted", "promoted")
    (Path(get_adapter(filled_store, second.adapter_id)["path"]) / "adapter_model.safetensors").unlink()
    assert registry.current_adapter(filled_store)[0] == first.adapter_id
    with pytest.raises(registry.AdapterError, match="incomplete"):
        registry.check_adapter(Path(get_adapter(filled_store, second.adapter_id)["path"]), "x")


def test_adapter_for_another_base_is_refused(filled_store, isolated_home, tiny_model_dir):
    report = cycle(filled_store, isolated_home, tiny_model_dir, **ACCEPT_ANY)
    path = Path(get_adapter(filled_store, report.adapter_id)["path"])
    with pytest.raises(registry.AdapterError, match="trained on"):
        registry.check_adapter(path, "0" * 64)


def test_promote_and_rollback(filled_store, isolated_home, tiny_model_dir, tmp_path):
    first = cycle(filled_store, isolated_home, tiny_model_dir, **ACCEPT_ANY)
    record_lookups(filled_store, tmp_path / "ws", {"more.conf": "x = 1\n", "other.conf": "y = 2\n"}, 2)
    second = cycle(filled_store, isolated_home, tiny_model_dir, **ACCEPT_ANY)
    assert registry.rollback(filled_store) == (second.adapter_id, first.adapter_id)
    assert registry.current_adapter(filled_store)[0] == first.adapter_id
    registry.promote(filled_store, second.adapter_id)
    assert registry.current_adapter(filled_store)[0] == second.adapter_id
    registry.promote(filled_store, first.adapter_id)  # an older one: the newer steps aside
    assert registry.current_adapter(filled_store)[0] == first.adapter_id
    with pytest.raises(registry.AdapterError):
        registry.promote(filled_store, "a9999")


def test_two_updates_at_once(isolated_home):
    with update_lock(isolated_home):
        with pytest.raises(UpdateBusy, match=f"pid {os.getpid()}"):
            with update_lock(isolated_home, wait=False):
                pass
    with update_lock(isolated_home, wait=False):
        pass


def test_sigkill_during_training_promotes_nothing_and_is_cleaned_up(filled_store, isolated_home, tiny_model_dir):
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from echo_agent.config import Settings\n"
        "from echo_agent.memory.store import TrajectoryStore\n"
        "from echo_agent.updater import cycle\n"
        "from echo_agent.updater.train import TrainConfig\n"
        "def slow_train(*a, **k):\n"
        "    (Path(sys.argv[1]) / 'adapters' / '.tmp-a0001-' ).mkdir(parents=True, exist_ok=True)\n"
        "    print('training', flush=True); time.sleep(60)\n"
        "cycle.train = slow_train\n"
        "store = TrajectoryStore(Path(sys.argv[1]) / 'store.db')\n"
        "cycle.run_cycle(store, Settings.load(gate_margin=-10.0), home=Path(sys.argv[1]), model=sys.argv[2],\n"
        "                cfg=TrainConfig(epochs=1), device='cpu')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(isolated_home), str(tiny_model_dir)],
                            stdout=subprocess.PIPE, text=True, env={**os.environ})
    assert proc.stdout.readline().strip() == "training"
    tmp_dir = isolated_home / "adapters" / f".tmp-a0001-{proc.pid}"
    (isolated_home / "adapters" / ".tmp-a0001-").rename(tmp_dir)  # what a real save in flight leaves
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert get_adapter(filled_store, "a0001")["status"] == "candidate"
    assert registry.current_adapter(filled_store) == (None, None)
    report = cycle(filled_store, isolated_home, tiny_model_dir, **ACCEPT_ANY)
    assert not tmp_dir.exists()
    assert get_adapter(filled_store, "a0001")["status"] == "rejected"
    assert report.status == "promoted" and report.adapter_id == "a0002"


def test_one_huge_output_trains_within_the_window(store, isolated_home, tiny_model_dir, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    big = "".join(f"row {i} value {i * 31 % 977}\n" for i in range(250_000))[: 5 * 1024 * 1024]
    record_lookups(store, ws, {"big.txt": big, "small.conf": "a = 1\n"}, 2)
    steps = list(store.iter_steps())
    assert any(s["truncated"] for s in steps)
    report = cycle(store, isolated_home, tiny_model_dir, **ACCEPT_ANY)
    assert report.status == "promoted"
    assert report.metrics["train"]["tokens"] <= 2 * 2048 * report.metrics["train"]["steps"]


def test_agent_uses_a_newly_promoted_adapter_from_the_next_episode(filled_store, isolated_home, tiny_model_dir,
                                                                   tmp_path):
    from echo_agent.models.local import LocalBackend

    policy = LocalBackend(tiny_model_dir, device="cpu")
    ws = tmp_path / "ws"
    replies = iter(["```bash\ncat svc0.conf\n```", "```answer\nok\n```"] * 2)
    script = ScriptedBackend(lambda messages: next(replies))
    with ShellSession(cwd=ws) as shell:
        agent = Agent(script, shell, filled_store, predictor=policy, config=AgentConfig(examples=0, memory=False),
                      adapter=lambda: registry.current_adapter(filled_store))
        first = agent.run("show svc0.conf")
        assert policy.adapter is None and script.adapter is None
        report = cycle(filled_store, isolated_home, tiny_model_dir, **ACCEPT_ANY)
        second = agent.run("show svc0.conf")
    path = Path(get_adapter(filled_store, report.adapter_id)["path"])
    assert script.adapter == path and policy.adapter == path
    assert filled_store.get_episode(first.episode_id)["adapter_id"] is None
    assert filled_store.get_episode(second.episode_id)["adapter_id"] == report.adapter_id


def test_the_agent_refuses_an_adapter_trained_on_another_base(store, isolated_home, tiny_model_dir):
    from echo_agent.assistant import registry_adapter_sources

    path = isolated_home / "adapters" / "a0001"
    path.mkdir(parents=True)
    for name in registry.ADAPTER_FILES:
        (path / name).write_text("{}")
    (path / registry.META_FILE).write_text(json.dumps({"base_model": "other-model", "base_hash": "f" * 64}))
    insert_adapter(store, id="a0001", path=str(path), status="promoted", base_model="other-model",
                         base_hash="f" * 64, trained_through_seq=0, n_env_tokens=0)
    warnings: list[str] = []
    source, choosing = registry_adapter_sources(store, tiny_model_dir, warnings.append)
    assert source() == (None, None) and source() == (None, None) and choosing() == (None, None)
    assert len(warnings) == 1 and "trained on other-model" in warnings[0] and "base model" in warnings[0]


def test_the_starter_serves_until_a_cycle_promotes_and_the_first_cycle_continues_from_it(
        filled_store, isolated_home, tiny_model_dir, tiny_starter):
    base_hash = registry.model_identity(tiny_model_dir)[1]
    assert registry.adapter_in_use(filled_store, base_hash) == ("starter", tiny_starter)
    assert registry.adapter_in_use(filled_store, "0" * 64) == (None, None)  # made for another base model
    assert registry.starter_row(base_hash, enabled=False) is None
    assert registry.current_adapter(filled_store) == (None, None)  # it is no row of the store
    report = cycle(filled_store, isolated_home, tiny_model_dir, **ACCEPT_ANY)
    assert report.status == "promoted"
    assert get_adapter(filled_store, report.adapter_id)["parent_id"] == "starter"
    assert registry.read_meta(Path(get_adapter(filled_store, report.adapter_id)["path"]))["config"]["lora_r"] == 4
    assert registry.read_meta(Path(get_adapter(filled_store, report.adapter_id)["path"]))["parent_id"] == "starter"
    ce = report.metrics["heldout_ce"]
    assert ce["current"] != pytest.approx(ce["base"])  # the gate's "current" is the starter, not the base model
    assert registry.adapter_in_use(filled_store, base_hash)[0] == report.adapter_id
    registry.rollback(filled_store)
    assert registry.adapter_in_use(filled_store, base_hash) == ("starter", tiny_starter)


def test_a_candidate_that_fails_only_the_policy_check_recalls_while_the_adapter_before_chooses(
        filled_store, isolated_home, tiny_model_dir, tiny_starter, tmp_path):
    base_hash = registry.model_identity(tiny_model_dir)[1]
    first = cycle(filled_store, isolated_home, tiny_model_dir, **{**ACCEPT_ANY, "policy_tolerance": NEVER_CHOOSES})
    assert first.status == "promoted" and not first.decision.chooses
    assert "promoted to recall only (starter still chooses the commands)" in first.message
    assert get_adapter(filled_store, first.adapter_id)["chooses"] == 0
    assert registry.adapter_in_use(filled_store, base_hash)[0] == first.adapter_id
    assert registry.adapter_in_use(filled_store, base_hash, choosing=True) == ("starter", tiny_starter)
    record_lookups(filled_store, tmp_path / "ws", {"more.conf": "x = 1\n", "other.conf": "y = 2\n"}, 1)
    # The next cycle continues from the adapter that recalls; its policy baseline is the starter's choice.
    second = cycle(filled_store, isolated_home, tiny_model_dir, **ACCEPT_ANY)
    assert get_adapter(filled_store, second.adapter_id)["parent_id"] == first.adapter_id
    assert second.metrics["policy"]["choosing"] == "starter" and second.metrics["policy"]["cases"] > 0
    assert second.decision.chooses
    assert registry.adapter_in_use(filled_store, base_hash, choosing=True)[0] == second.adapter_id
    registry.promote(filled_store, first.adapter_id)  # by hand: both roles, whatever the gate said
    assert registry.adapter_in_use(filled_store, base_hash, choosing=True)[0] == first.adapter_id


def test_with_no_adapter_choosing_the_policy_baseline_is_the_base_model(filled_store, isolated_home, tiny_model_dir,
                                                                       tmp_path):
    gate = {**ACCEPT_ANY, "starter_adapter": False}
    first = cycle(filled_store, isolated_home, tiny_model_dir, **{**gate, "policy_tolerance": NEVER_CHOOSES})
    assert first.status == "promoted" and not first.decision.chooses
    assert registry.adapter_in_use(filled_store, registry.model_identity(tiny_model_dir)[1], True) == (None, None)
    record_lookups(filled_store, tmp_path / "ws", {"more.conf": "x = 1\n"}, 2)
    second = cycle(filled_store, isolated_home, tiny_model_dir, **gate)
    assert second.metrics["policy"]["choosing"] == "the base model" and second.decision.chooses


def test_switching_the_starter_off_trains_the_first_cycle_from_the_base_model(
        filled_store, isolated_home, tiny_model_dir, tiny_starter):
    report = cycle(filled_store, isolated_home, tiny_model_dir, starter_adapter=False, **ACCEPT_ANY)
    assert get_adapter(filled_store, report.adapter_id)["parent_id"] is None
    assert report.metrics["heldout_ce"]["current"] == pytest.approx(report.metrics["heldout_ce"]["base"])


def test_the_agent_uses_the_starter_only_on_its_own_base_model(store, tiny_model_dir, tiny_starter):
    from echo_agent.assistant import registry_adapter_sources

    warnings: list[str] = []
    assert [s() for s in registry_adapter_sources(store, tiny_model_dir, warnings.append)] == [
        ("starter", tiny_starter)] * 2
    meta = json.loads((tiny_starter / registry.META_FILE).read_text())
    (tiny_starter / registry.META_FILE).write_text(json.dumps({**meta, "base_hash": "f" * 64}))
    assert registry_adapter_sources(store, tiny_model_dir, warnings.append)[1]() == (None, None)
    assert warnings == []  # a starter for another model is no error: the base model runs, and nothing is said


KILL_AT = (
    "import os, signal, sys\n"
    "from pathlib import Path\n"
    "from echo_agent.memory.store import TrajectoryStore\n"
    "store = TrajectoryStore(Path(sys.argv[1]) / 'store.db')\n"
    "marker, nth, seen = sys.argv[2], int(sys.argv[3]), []\n"
    "def trace(sql):\n"
    "    if sql.startswith(marker):\n"
    "        seen.append(sql)\n"
    "        if len(seen) == nth:\n"
    "            os.kill(os.getpid(), signal.SIGKILL)\n"
    "store.conn.set_trace_callback(trace)\n"
    "exec(sys.argv[4])\n"
)
"""Runs argv[4] on the home's store and SIGKILLs itself as the nth statement starting with argv[2] starts."""


def kill_at(home: Path, marker: str, nth: int, code: str, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-c", KILL_AT, str(home), marker, str(nth), code, *args],
                          capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def fake_adapter(home: Path, adapter_id: str) -> str:
    path = registry.adapters_dir(home) / adapter_id
    path.mkdir(parents=True)
    for name in (*registry.ADAPTER_FILES, registry.META_FILE):
        (path / name).write_text("{}")
    return str(path)


def test_a_promotion_killed_half_way_changes_nothing(store, isolated_home):
    """Promoting an older adapter retires the newer one and promotes it: killed between the two writes, the
    store still has the newer one in use, never no adapter at all."""
    for adapter_id, status in (("a0001", "rejected"), ("a0002", "promoted")):
        insert_adapter(store, id=adapter_id, path=fake_adapter(isolated_home, adapter_id), status=status)
    kill_at(isolated_home, "UPDATE adapter SET status", 2,
            "from echo_agent.updater.registry import promote; promote(store, 'a0001')")
    assert [(a["id"], a["status"]) for a in list_adapters(store)] == [("a0001", "rejected"), ("a0002", "promoted")]
    assert registry.current_adapter(store)[0] == "a0002"
    registry.promote(store, "a0001")  # not killed: both changes land
    assert [(a["id"], a["status"]) for a in list_adapters(store)] == [("a0001", "promoted"), ("a0002", "retired")]


def test_a_cycle_killed_while_recording_its_verdict_records_none_of_it(filled_store, isolated_home,
                                                                       tiny_model_dir):
    """The steps a candidate trained on, its metrics and its status are one write: a kill between the
    adapter_step rows and the status leaves a plain candidate (which the next cycle rejects), never a candidate
    that claims training steps without a verdict."""
    code = ("from echo_agent.config import Settings\n"
            "from echo_agent.updater.cycle import run_cycle\n"
            "from echo_agent.updater.train import TrainConfig\n"
            "run_cycle(store, Settings.load(gate_margin=-10.0), home=Path(sys.argv[1]), model=sys.argv[5],\n"
            "          cfg=TrainConfig(epochs=1), device='cpu')\n")
    kill_at(isolated_home, "UPDATE adapter SET metrics", 1, code, str(tiny_model_dir))
    row = get_adapter(filled_store, "a0001")
    assert row["status"] == "candidate" and row["metrics"] == {}
    assert filled_store.conn.execute("SELECT count(*) FROM adapter_step").fetchone()[0] == 0
    report = cycle(filled_store, isolated_home, tiny_model_dir, **ACCEPT_ANY)
    assert get_adapter(filled_store, "a0001")["status"] == "rejected" and report.adapter_id == "a0002"
    assert filled_store.conn.execute("SELECT count(*) FROM adapter_step WHERE adapter_id='a0002'").fetchone()[0] > 0


def test_confidently_wrong_follows_the_greedy_path_of_each_step(monkeypatch):
    """A step is wrong when, while every real token so far is the confident argmax, another token wins with a
    log-prob over the threshold; a real token under the threshold first makes it safe (recall stops there)."""
    import torch

    from echo_agent.updater import train as train_mod
    from echo_agent.updater.dataset import Window

    V = 8
    # Window tokens 0..6: positions 1-2 are step "right", 3-4 step "wrong", 5-6 step "stops".
    ids = [0, 1, 2, 3, 4, 5, 6]
    env = [False, True, True, True, True, True, True]
    steps = [None, "right", "right", "wrong", "wrong", "stops", "stops"]
    window = Window(ids, env, [False] * 7, steps, "e")
    top = {1: (1, 0.99), 2: (2, 0.99), 3: (3, 0.99), 4: (7, 0.97), 5: (5, 0.5), 6: (7, 0.99)}
    rows = []
    for t in range(1, 7):
        tok, p = top[t]
        probs = torch.full((V,), (1 - p) / (V - 1))
        probs[tok] = p
        rows.append(probs.log())
    monkeypatch.setattr(train_mod, "logits_at", lambda model, b, keep: torch.stack(rows))

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

    wrong = train_mod.confidently_wrong(Model(), [window], pad_id=0, threshold=-0.1)
    assert set(wrong) == {"wrong"} and wrong["wrong"] == pytest.approx(torch.tensor(0.97).log().item(), abs=1e-5)
    assert train_mod.confidently_wrong(Model(), [window], pad_id=0, threshold=-0.01) == {}  # 0.97 is not sure


def test_cycle_action_tokens_are_the_replies_that_ran_and_exited_0(store, tmp_path, smollm2_tokenizer):
    """env+action trains on the replies whose command ran and exited 0: not a failing command, not the prompt's
    examples."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.conf").write_text("port = 1\n")
    with ShellSession(cwd=ws) as shell:
        for _ in range(3):
            replies = ["```bash\ncat missing.conf\n```", "```bash\ncat a.conf\n```", "```answer\n1\n```"]
            prompt = [{"role": "system", "content": "sys"}, {"role": "user", "content": "example task"},
                      {"role": "assistant", "content": "```bash\nls\n```"}]
            Agent(ScriptedBackend(replies), shell, store, config=AgentConfig(examples=0, prompt=prompt,
                                                                            repair=False)).run("show a.conf")
    data = select_cycle_data(store, smollm2_tokenizer, since_seq=0, settings=Settings(heldout_fraction=0.1))
    for w in data.train:
        acted = smollm2_tokenizer.decode([t for t, a in zip(w.input_ids, w.action_mask, strict=True) if a])
        assert "cat a.conf" in acted and "missing.conf" not in acted and "ls" not in acted.split()
