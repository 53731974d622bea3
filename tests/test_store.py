"""TrajectoryStore: schema, steps, redaction on write, search, export/import, forget, stats."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from echo_agent.config import Settings
from echo_agent.memory.adapters import get_adapter, insert_adapter, list_adapters, record_verdict, set_status
from echo_agent.memory.exchange import export_episodes, import_episodes
from echo_agent.memory.forget import ForgetCriteria, forget_plan, forget_steps
from echo_agent.memory.migrations import KNOWN
from echo_agent.memory.queries import store_counts, task_counts
from echo_agent.memory.store import (
    SNIPPET_CLOSE,
    SNIPPET_OPEN,
    StoreError,
    TrajectoryStore,
    fts_query,
    task_identity,
)
from echo_agent.shell.result import ShellResult

PROMPT = [{"role": "system", "content": "You are a terminal agent."}]


def result(command: str, output: str, exit_code: int = 0, cwd: str = "/tmp/work") -> ShellResult:
    return ShellResult(
        command=command,
        output=output,
        status=f"[exit {exit_code}]",
        note="",
        exit_code=exit_code,
        cwd_before=cwd,
        cwd_after=cwd,
        started_at="2026-01-02T03:04:05+00:00",
        duration_ms=12,
        timed_out=False,
        truncated=False,
        output_bytes=len(output.encode()),
    )


@pytest.fixture
def store(isolated_home) -> TrajectoryStore:
    s = TrajectoryStore()
    yield s
    s.close()


def episode_with_steps(store: TrajectoryStore, task: str = "list files", n: int = 2) -> tuple[str, list[str]]:
    sid = store.start_session(model="scripted", shell="bash")
    eid = store.start_episode(sid, task, PROMPT)
    ids = [
        store.record_step(
            eid,
            reply=f"```bash\nls {i}\n```",
            command=f"ls {i}",
            result=result(f"ls {i}", f"file{i}.txt\nnotes{i}.md\n"),
        )
        for i in range(n)
    ]
    return eid, ids


def test_default_path_wal_foreign_keys_and_schema(store, isolated_home):
    assert store.path == isolated_home / "store.db"
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 30000
    cols = {r[1] for r in store.conn.execute("PRAGMA table_info(step)")}
    for c in [
        "id",
        "seq",
        "episode_id",
        "idx",
        "author",
        "reply",
        "command",
        "output",
        "status",
        "note",
        "exit_code",
        "cwd_before",
        "cwd_after",
        "started_at",
        "duration_ms",
        "timed_out",
        "truncated",
        "output_bytes",
        "redactions",
        "kind",
        "source",
        "predicted_output",
        "confidence",
        "confidence_mean",
        "confidence_min",
        "verified",
        "verify_f1",
        "surprise",
        "trainable",
    ]:
        assert c in cols
    for table in ["session", "episode", "adapter", "adapter_step", "step_fts"]:
        assert store.db[table].exists()
    applied = [r[0] for r in store.conn.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
    assert applied == KNOWN


def test_reopen_applies_nothing_twice(store):
    store.close()
    again = TrajectoryStore(store.path)
    assert again.conn.execute("SELECT count(*) FROM _sqlite_migrations").fetchone()[0] == len(KNOWN)
    again.close()


def test_record_step_fields_seq_idx_and_episode(store):
    eid, ids = episode_with_steps(store, n=3)
    steps = store.episode_steps(eid)
    assert [s["id"] for s in steps] == ids
    assert [s["idx"] for s in steps] == [0, 1, 2]
    seqs = [s["seq"] for s in steps]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    s = steps[1]
    assert (s["command"], s["output"], s["status"], s["exit_code"]) == (
        "ls 1",
        "file1.txt\nnotes1.md\n",
        "[exit 0]",
        0,
    )
    assert s["trainable"] == 1 and s["redactions"] == 0 and s["source"] == "executed"
    store.finish_episode(eid, "done", "two files")
    ep = store.get_episode(eid)
    assert ep["status"] == "done" and ep["answer"] == "two files" and ep["prompt"] == PROMPT
    assert ep["pid"] == os.getpid() and ep["heartbeat_at"]
    assert store.get_episode(eid[:8])["id"] == eid


def test_seq_is_never_reused_after_forget(store):
    eid, ids = episode_with_steps(store, n=2)
    top = store.episode_steps(eid)[-1]["seq"]
    forget_steps(store, ForgetCriteria(episode_ids=(eid,)))
    eid2, _ = episode_with_steps(store, n=1)
    assert store.episode_steps(eid2)[0]["seq"] > top


def test_secrets_are_redacted_before_writing_and_step_untrainable(store):
    sid = store.start_session()
    eid = store.start_episode(sid, "show env", PROMPT)
    secret = "ghp_" + "a1B2c3D4e5" * 4
    step_id = store.record_step(
        eid,
        reply=f"```bash\necho {secret}\n```",
        command=f"echo {secret}",
        result=result(f"echo {secret}", f"{secret}\nPASSWORD=hunter2\n"),
    )
    step = store.episode_steps(eid)[0]
    assert step["id"] == step_id
    assert secret not in step["output"] + step["command"] + step["reply"]
    assert "[REDACTED:github_token]" in step["output"] and "PASSWORD=[REDACTED:password]" in step["output"]
    assert step["redactions"] == 4 and step["trainable"] == 0
    raw = store.path.read_bytes() + store.path.with_name("store.db-wal").read_bytes()
    assert secret.encode() not in raw
    assert store.search("hunter2") == []


def test_task_prompt_and_answer_are_redacted_too(store, tmp_path):
    """The user may type a secret into a task, and the model saw unredacted output, so its answer may repeat one;
    the prompt's messages are redacted one string at a time (a match cut across a JSON escape would break it)."""
    gh, sk = "ghp_" + "a1B2c3D4e5" * 4, "sk-" + "Zx9" * 10
    eid = store.start_episode(store.start_session(), f"log in with password=hunter2 and {gh}",
                              [{"role": "user", "content": f'say "password=abc\\"def" {gh}'}])
    store.finish_episode(eid, "done", f"The key is {sk}")
    ep = store.get_episode(eid)
    assert ep["task"] == "log in with password=[REDACTED:password] and [REDACTED:github_token]"
    assert ep["answer"] == "The key is [REDACTED:api_key]"
    assert ep["prompt"][0]["content"].startswith('say "password=[REDACTED:password]')
    assert "[REDACTED:github_token]" in ep["prompt"][0]["content"]
    raw = store.path.read_bytes() + store.path.with_name("store.db-wal").read_bytes()
    assert not any(x.encode() in raw for x in (gh, sk, "hunter2"))

    record = next(export_episodes(store))
    record.update(task=f"imported {gh}", answer=f"imported {sk}", prompt=json.dumps([{"content": gh}]))
    other = TrajectoryStore(tmp_path / "other.db")
    import_episodes(other, [record])
    ep = other.get_episode(eid)
    assert (ep["task"], ep["answer"]) == ("imported [REDACTED:github_token]", "imported [REDACTED:api_key]")
    assert ep["prompt"] == [{"content": "[REDACTED:github_token]"}]


def test_excluded_dir_and_recalled_steps_are_untrainable(isolated_home):
    store = TrajectoryStore(settings=Settings(excluded_dirs=["/secret/place"]))
    sid = store.start_session()
    eid = store.start_episode(sid, "t", PROMPT)
    store.record_step(eid, reply="r", command="ls", result=result("ls", "a\n", cwd="/secret/place/sub"))
    store.record_step(eid, reply="r", command="ls", result=result("ls", "a\n", cwd="/secret/placebo"))
    store.record_step(
        eid,
        reply="r",
        command="cat x",
        source="recalled",
        kind="retrieval",
        output="predicted\n",
        status="[exit 3]",
        confidence=-0.2,
        confidence_min=-0.5,
    )
    steps = store.episode_steps(eid)
    assert [s["trainable"] for s in steps] == [0, 1, 0]
    assert steps[2]["exit_code"] == 3 and steps[2]["output"] == "predicted\n"
    assert steps[2]["confidence_min"] == -0.5
    store.close()


def test_format_error_step_has_null_command(store):
    sid = store.start_session()
    eid = store.start_episode(sid, "t", PROMPT)
    store.record_step(eid, reply="I think we should look around", command=None)
    s = store.episode_steps(eid)[0]
    assert s["command"] is None and s["status"] is None and s["output"] == ""


def test_search_ranks_quotes_and_never_raises(store):
    sid = store.start_session()
    eid = store.start_episode(sid, "t", PROMPT)
    store.record_step(
        eid,
        reply="",
        command="cat nginx.conf",
        result=result("cat nginx.conf", "server {\n listen 8080;\n server_name foo-bar.example;\n}\n"),
    )
    store.record_step(eid, reply="", command="echo", result=result("echo", "listen listen listen 8080\n"))
    hits = store.search("listen 8080")
    assert len(hits) == 2 and hits[0]["rank"] <= hits[1]["rank"]
    assert f"{SNIPPET_OPEN}8080{SNIPPET_CLOSE}" in hits[0]["snippet"] or \
        f"{SNIPPET_OPEN}listen{SNIPPET_CLOSE}" in hits[0]["snippet"]
    assert store.search("foo-bar")[0]["command"] == "cat nginx.conf"
    for nasty in ['"', 'a"b', "NEAR(", "*", "-x", "AND OR NOT", "()", "col:val", ""]:
        store.search(nasty)
    assert fts_query('say "hi"') == '"say" """hi"""'


def test_fts_stays_consistent_after_forget(store):
    eid, _ = episode_with_steps(store, n=2)
    assert len(store.search("notes1.md")) == 1
    counts = forget_steps(store, ForgetCriteria(query="notes1.md"))
    assert counts["steps"] == 1 and counts["episodes"] == 0
    assert store.search("notes1.md") == []
    assert store.conn.execute("INSERT INTO step_fts(step_fts) VALUES('integrity-check')") is not None
    assert len(store.search("notes0.md")) == 1


def test_forget_by_dir_time_and_marks_adapters_stale(store):
    eid, ids = episode_with_steps(store, n=2)
    a1 = insert_adapter(store, base_model="m", path="/x", status="promoted")
    a2 = insert_adapter(store, base_model="m", path="/y", status="promoted")
    assert (a1, a2) == ("a0001", "a0002")
    record_verdict(store, a1, status="promoted", metrics={}, step_ids=ids[:1])
    plan = forget_plan(store, ForgetCriteria(directory="/tmp/work"))
    assert len(plan.step_seqs) == 2 and plan.episodes == [eid] and plan.adapters == [a1]
    assert forget_plan(store, ForgetCriteria(directory="/tmp/wor")).step_seqs == []
    assert forget_plan(store, ForgetCriteria(until="2000-01-01")).step_seqs == []
    counts = forget_steps(store, ForgetCriteria(directory="/tmp/work", since="2026-01-01"))
    assert counts == {"steps": 2, "episodes": 1, "adapters_stale": 1}
    assert store.get_episode(eid) is None
    assert get_adapter(store, a1)["status"] == "stale" and get_adapter(store, a2)["status"] == "promoted"
    assert store.conn.execute("SELECT count(*) FROM adapter_step").fetchone()[0] == 0
    with pytest.raises(StoreError):
        forget_steps(store, ForgetCriteria())


def test_forget_parent_of_chat_turn(store):
    sid = store.start_session()
    first = store.start_episode(sid, "hi", PROMPT)
    second = store.start_episode(sid, "and then?", PROMPT, parent_episode_id=first)
    assert [e["id"] for e in store.episode_chain(second)] == [first]
    forget_steps(store, ForgetCriteria(episode_ids=(first,)))
    assert store.get_episode(second)["parent_episode_id"] is None


def test_export_import_roundtrip_is_idempotent(store, tmp_path):
    eid, _ = episode_with_steps(store, n=2)
    sid = store.get_episode(eid)["session_id"]
    child = store.start_episode(sid, "follow up", PROMPT, parent_episode_id=eid)
    store.record_step(child, reply="r", command=None)
    records = list(export_episodes(store))
    assert len(records) == 2
    assert set(records[0]) == set(records[1])
    assert records[0]["messages"][0] == PROMPT[0] and records[0]["messages"][1]["content"] == "list files"
    assert all(isinstance(r["prompt"], str) for r in records)
    json.dumps(records)
    other = TrajectoryStore(tmp_path / "other.db")
    first = import_episodes(other, reversed(records))  # child before parent: deferred foreign keys
    assert first == {"sessions": 1, "episodes": 2, "steps": 3, "skipped_episodes": 0}
    assert import_episodes(other, records) == {"sessions": 0, "episodes": 0, "steps": 0, "skipped_episodes": 2}
    assert [s["output"] for s in other.episode_steps(eid)] == [s["output"] for s in store.episode_steps(eid)]
    assert len(other.search("notes1.md")) == 1
    assert list(export_episodes(other)) == records
    other.close()


def test_import_redacts(store):
    rec = {
        "id": "e1",
        "session_id": "s1",
        "task": "t",
        "prompt": "[]",
        "status": "done",
        "started_at": "2026-01-01T00:00:00+00:00",
        "session": {"id": "s1", "started_at": "2026"},
        "steps": [
            {"id": "x1", "idx": 0, "command": "cat .env", "output": "token=abcdef123456\n", "trainable": 1}
        ],
    }
    import_episodes(store, [rec])
    s = store.episode_steps("e1")[0]
    assert s["output"] == "token=[REDACTED:token]\n" and s["trainable"] == 0


def test_iter_steps_since_and_trainable_only(store):
    sid = store.start_session()
    eid = store.start_episode(sid, "t", PROMPT)
    for i in range(1203):
        store.conn.execute("BEGIN")
        store.conn.execute(
            "INSERT INTO step (id, episode_id, idx, output, trainable) VALUES (?,?,?,?,?)",
            [f"s{i}", eid, i, f"out {i}", i % 2],
        )
        store.conn.execute("COMMIT")
    all_steps = list(store.iter_steps())
    assert len(all_steps) == 1203 and [s["idx"] for s in all_steps] == list(range(1203))
    since = all_steps[999]["seq"]
    assert [s["idx"] for s in store.iter_steps(since_seq=since)] == list(range(1000, 1203))
    assert all(s["trainable"] == 1 for s in store.iter_steps(trainable_only=True))
    assert len(list(store.iter_steps(trainable_only=True))) == 601


def test_running_episodes_treats_dead_pid_as_aborted(store):
    sid = store.start_session()
    alive = store.start_episode(sid, "mine", PROMPT)
    dead = store.start_episode(sid, "gone", PROMPT)
    store.conn.execute("BEGIN")
    store.conn.execute("UPDATE episode SET pid=? WHERE id=?", [2**22 + 12345, dead])
    store.conn.execute("COMMIT")
    assert [e["id"] for e in store.running_episodes()] == [alive]
    assert store.get_episode(dead)["status"] == "aborted"
    store.heartbeat(alive)


def test_task_counts_and_stats(store):
    sid = store.start_session()
    for task in ["Free up  space", "free up space", "FREE UP SPACE\n", "list files"]:
        store.start_episode(sid, task, PROMPT)
    assert task_identity(" Free\tUP  space ") == "free up space"
    counts = task_counts(store)
    assert counts[0]["task"] == "free up space" and counts[0]["episodes"] == 3
    assert sum(counts[0]["by_day"].values()) == 3
    st = store_counts(store)
    assert (st["sessions"], st["episodes"], st["steps"]) == (1, 4, 0)
    assert st["bytes"] > 0 and st["tasks"][1]["task"] == "list files"


def test_not_a_store_and_foreign_database(tmp_path):
    bad = tmp_path / "junk.db"
    bad.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="is not a usable echo-agent store .*move it aside"):
        TrajectoryStore(bad)
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE customers (id)").connection.commit()
    with pytest.raises(StoreError, match="holds other tables"):
        TrajectoryStore(foreign)


def test_adapter_helpers(store):
    aid = insert_adapter(store, base_model="smol", path="/a", metrics={"env_ce": 1.5}, trained_through_seq=7)
    assert get_adapter(store, aid)["metrics"] == {"env_ce": 1.5}
    set_status(store, {aid: "promoted"})
    assert [a["id"] for a in list_adapters(store, "promoted")] == [aid]
    assert list_adapters(store, "rejected") == []


@pytest.mark.parametrize("durable, level", [(True, 2), (False, 1)])
def test_durable_chooses_synchronous_level(isolated_home, durable, level):
    s = TrajectoryStore(durable=durable)
    assert s.conn.execute("PRAGMA synchronous").fetchone()[0] == level  # 2 = FULL, 1 = NORMAL
    assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    s.close()


def test_idx_counts_per_episode_across_connections(store):
    sid = store.start_session()
    e1, e2 = store.start_episode(sid, "a", PROMPT), store.start_episode(sid, "b", PROMPT)
    other = TrajectoryStore(store.path)
    for i in range(3):
        store.record_step(e1, reply="r", command=f"ls {i}", result=result(f"ls {i}", "x\n"))
        other.record_step(e1, reply="r", command=f"pwd {i}", result=result(f"pwd {i}", "y\n"))
        other.record_step(e2, reply="r", command="id", result=result("id", "z\n"))
    other.close()
    assert [s["idx"] for s in store.episode_steps(e1)] == list(range(6))
    assert [s["command"] for s in store.episode_steps(e1)][:2] == ["ls 0", "pwd 0"]
    assert [s["idx"] for s in store.episode_steps(e2)] == [0, 1, 2]


def test_import_skips_redaction_only_for_sealed_unchanged_steps(store, tmp_path, monkeypatch):
    import echo_agent.memory.store as store_module  # import redacts through store.redacted_now

    sid = store.start_session()
    eid = store.start_episode(sid, "t", PROMPT)
    store.record_step(eid, reply="r", command="cat .env", result=result("cat .env", "token=abcdef123456\n"))
    store.record_step(eid, reply="r", command="cat ids", result=result("cat ids", "customer-4242\n"))
    records = list(export_episodes(store))
    assert all(s["redaction_seal"] for s in records[0]["steps"])
    calls = []
    real = store_module.redact
    monkeypatch.setattr(
        store_module, "redact", lambda text, extra=(): calls.append(text) or real(text, extra)
    )

    sealed = TrajectoryStore(tmp_path / "sealed.db")
    import_episodes(sealed, records)
    step_texts = {st[k] for st in records[0]["steps"] for k in ("reply", "command", "output")}
    assert calls and not step_texts & set(calls)  # the steps, sealed by the same rules, are not redacted twice
    steps = sealed.episode_steps(eid)
    assert [s["output"] for s in steps] == ["token=[REDACTED:token]\n", "customer-4242\n"]
    assert [s["trainable"] for s in steps] == [0, 1] and steps[0]["redactions"] == 1
    sealed.close()

    # An edited step keeps its old seal: it no longer matches, so the step is redacted again.
    tampered = json.loads(json.dumps(records))
    tampered[0]["steps"][1]["output"] = "password=hunter2\n"
    edited = TrajectoryStore(tmp_path / "edited.db")
    import_episodes(edited, tampered)
    s = edited.episode_steps(eid)[1]
    assert s["output"] == "password=[REDACTED:password]\n" and s["trainable"] == 0 and s["redactions"] == 1
    assert "password=hunter2\n" in calls
    edited.close()

    # Other rules (a user pattern here) make every seal stale: the importing store applies its own.
    strict = TrajectoryStore(tmp_path / "strict.db", settings=Settings(redact_patterns=[r"customer-\d+"]))
    import_episodes(strict, records)
    s = strict.episode_steps(eid)[1]
    assert s["output"] == "[REDACTED:custom]\n" and s["trainable"] == 0
    strict.close()


def test_search_returns_best_matches_first_with_limit(store):
    sid = store.start_session()
    eid = store.start_episode(sid, "t", PROMPT)
    for i in range(30):
        out = "kernel panic\n" * (1 + i % 3) + "filler words here\n" * 40
        store.record_step(eid, reply="r", command=f"dmesg {i}", result=result(f"dmesg {i}", out))
    store.record_step(eid, reply="r", command="uname", result=result("uname", "kernel\n"))
    hits = store.search("kernel", limit=5)
    assert len(hits) == 5 and [h["rank"] for h in hits] == sorted(h["rank"] for h in hits)
    assert all(h["task"] == "t" and f"{SNIPPET_OPEN}kernel{SNIPPET_CLOSE}" in h["snippet"] for h in hits)
    everything = store.search("kernel", limit=100)
    assert len(everything) == 31 and [h["rank"] for h in everything[:5]] == [h["rank"] for h in hits]


def test_search_ranks_only_the_newest_window_of_matches(store, monkeypatch):
    import echo_agent.memory.store as store_module

    sid = store.start_session()
    eid = store.start_episode(sid, "t", PROMPT)
    for i in range(6):  # the oldest match is the best one by bm25
        out = "needle " * (6 - i) + "hay\n" * (5 + 10 * i)
        store.record_step(eid, reply="r", command=f"look {i}", result=result(f"look {i}", out))
    assert store.search("needle", limit=1)[0]["command"] == "look 0"
    monkeypatch.setattr(store_module, "SEARCH_WINDOW", 3)
    hits = store.search("needle", limit=10)
    assert sorted(h["command"] for h in hits) == ["look 3", "look 4", "look 5"]
    assert hits[0]["command"] == "look 3"  # ranked by bm25 within the window


def test_a_step_stored_under_older_rules_is_redacted_on_export_and_not_trained(store, tmp_path, monkeypatch):
    """Redaction rules grow: a step stored before a rule existed is left as it is in the store (the user's data),
    but what leaves the store (an export, training text: tests/test_updater.py) carries today's redaction."""
    import echo_agent.memory.store as store_module
    from echo_agent.memory.store import redacted_now

    sid = store.start_session()
    token = "shpat_" + "0123456789abcdef" * 2
    monkeypatch.setattr(store_module, "redact", lambda text, extra=(): (text, 0))  # the older rules missed it
    monkeypatch.setattr(store_module, "redact_json", lambda value, extra=(): value)
    eid = store.start_episode(sid, f"is {token} the shop token", [{"role": "system", "content": token}])
    store.record_step(eid, reply="r", command="printenv SHOP", result=result("printenv SHOP", token + "\n"))
    monkeypatch.undo()
    store.record_step(eid, reply="r", command="pwd", result=result("pwd", "/tmp/work\n"))
    stored = store.episode_steps(eid)
    assert stored[0]["output"] == token + "\n" and stored[0]["trainable"] == 1  # the store is not rewritten
    now = [redacted_now(s) for s in stored]
    assert now[0]["output"] == "[REDACTED:shopify_token]\n" and [s["trainable"] for s in now] == [0, 1]
    assert now[1] == stored[1]

    record = next(export_episodes(store))
    assert record["steps"][0]["output"] == "[REDACTED:shopify_token]\n" and record["steps"][0]["redactions"] == 1
    assert token not in json.dumps(record)
    other = TrajectoryStore(tmp_path / "other.db")
    import_episodes(other, [record])
    assert [s["trainable"] for s in other.episode_steps(eid)] == [0, 1]
    other.close()
