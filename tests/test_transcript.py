"""transcript.py: stored records -> chat messages with environment-text spans (the observation contract)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from echo_agent.config import Settings
from echo_agent.observation import (
    FORMAT_WARNING,
    INPUT_MARKER,
    RECALL_MARKER,
    TIMEOUT_MARKER,
    elision_marker,
    is_harness_line,
)
from echo_agent.transcript import (
    TranscriptMessage,
    build_context,
    live_step,
    observation_message,
    render_episode,
)

PROMPT = [
    {"role": "system", "content": "You are a terminal agent."},
    {"role": "user", "content": "example task"},
    {"role": "assistant", "content": "```bash\nls\n```"},
]


def step(output: str, status: str | None = "[exit 0]", command: str | None = "ls", **kw) -> dict:
    return {
        "reply": f"```bash\n{command}\n```",
        "command": command,
        "output": output,
        "status": status,
        "note": "",
        "source": "executed",
        "trainable": 1,
        **kw,
    }


def assert_spans_are_env_only(msg: TranscriptMessage) -> None:
    for a, b in msg.env_spans:
        assert 0 <= a < b <= len(msg.content)
        for line in msg.content[a:b].split("\n"):
            assert not is_harness_line(line)


def test_spans_slice_back_to_output_and_status():
    msg = observation_message(step("a.txt\nb.txt"))
    assert msg.role == "tool" and msg.content == "a.txt\nb.txt\n[exit 0]"
    assert msg.env_text() == "a.txt\nb.txt\n[exit 0]"
    assert msg.env_spans == [(0, len(msg.content))]


def test_harness_lines_are_outside_spans():
    s = step("partial\n", status="[exit 130, interrupted after 30 s]", note=TIMEOUT_MARKER)
    msg = observation_message(s)
    assert msg.content == f"partial\n{TIMEOUT_MARKER}\n[exit 130, interrupted after 30 s]"
    assert msg.env_text() == "partial\n[exit 130, interrupted after 30 s]"
    assert_spans_are_env_only(msg)


def test_context_cap_elision_marker_is_not_env():
    cfg = Settings(context_head_chars=20, context_tail_chars=20)
    out = "".join(f"line {i:04d}\n" for i in range(100))
    msg = observation_message(step(out), settings=cfg)
    assert "bytes omitted" in msg.content
    env = msg.env_text()
    assert "omitted" not in env and env.startswith("line 0000\n") and env.endswith("line 0099\n[exit 0]")
    assert_spans_are_env_only(msg)


def test_format_error_step_is_the_warning_alone():
    msg = observation_message(step("", status=None, command=None))
    assert msg.content == FORMAT_WARNING and msg.env_spans == []


def test_recalled_and_untrainable_steps_have_no_spans():
    recalled = observation_message(step("x\n", source="recalled", trainable=0))
    assert recalled.content.startswith(RECALL_MARKER + "\n") and recalled.env_spans == []
    assert observation_message(step("x\n", trainable=0), labelled=False).env_spans == []
    eps = render_episode({"task": "t", "prompt": PROMPT}, [step("x\n", trainable=0), step("y\n")])
    assert [m.env_spans == [] for m in eps if m.role == "tool"] == [True, False]
    # The updater's own rule (e.g. the duplicate cap) can unlabel a trainable step.
    eps = render_episode({"task": "t", "prompt": PROMPT}, [step("y\n")], labelled=lambda s: False)
    assert all(m.env_spans == [] for m in eps)


def test_empty_output_has_only_the_status_span():
    msg = observation_message(step(""))
    assert msg.content == "[exit 0]" and msg.env_text() == "[exit 0]"


def test_episode_order_prompt_task_reply_observation():
    msgs = render_episode({"task": "count files", "prompt": PROMPT}, [step("3\n"), step("", command=None)])
    assert [m.role for m in msgs] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
    ]
    assert msgs[3].content == "count files" and msgs[4].content == "```bash\nls\n```"
    assert all(m.env_spans == [] for m in msgs if m.role != "tool")
    assert msgs[-1].content == FORMAT_WARNING


def test_multi_turn_chat_renders_earlier_turns_first():
    first = {"task": "what is here?", "prompt": PROMPT, "answer": "two files"}
    second = {"task": "and how big?", "prompt": PROMPT}
    msgs = render_episode(second, [step("4K\n")], earlier_turns=[(first, [step("a\nb\n")])])
    contents = [m.content for m in msgs]
    assert contents.count(PROMPT[0]["content"]) == 1
    i_first, i_answer, i_second = (
        contents.index("what is here?"),
        contents.index("two files"),
        contents.index("and how big?"),
    )
    assert i_first < i_answer < i_second
    assert msgs[i_answer].role == "assistant" and msgs[-1].content == "4K\n[exit 0]"


def test_build_context_matches_stored_rendering():
    steps = [step("a\n")]
    live = [live_step("```bash\nls\n```", "ls", output="a\n", status="[exit 0]")]
    stored = render_episode({"task": "t", "prompt": PROMPT}, steps)
    ctx = build_context(PROMPT, "t", live).messages
    assert [(m.role, m.content, m.env_spans) for m in ctx] == [
        (m.role, m.content, m.env_spans) for m in stored
    ]


HARNESS_LIKE = [
    RECALL_MARKER,
    INPUT_MARKER,
    TIMEOUT_MARKER,
    FORMAT_WARNING,
    elision_marker(123),
    "[exit 0]",
    "[exit 1, interrupted after 2 s]",
    "[no exit code: shell restarted]",
    "[exit 3, shell restarted]",
    "[recalled]",
    "",
]
line_st = st.one_of(
    st.sampled_from(HARNESS_LIKE), st.text(alphabet=st.characters(blacklist_characters="\n"), max_size=30)
)


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(line_st, max_size=30),
    trailing_nl=st.booleans(),
    status=st.sampled_from(
        ["[exit 0]", "[exit 2]", "[exit 124, interrupted after 1.5 s]", "[no exit code: shell restarted]",
         "[exit 3, shell restarted]"]
    ),
    notes=st.lists(st.sampled_from([INPUT_MARKER, TIMEOUT_MARKER]), max_size=2),
    head=st.integers(5, 200),
    tail=st.integers(5, 200),
)
def test_random_outputs_spans_cover_exactly_env_lines(lines, trailing_nl, status, notes, head, tail):
    output = "\n".join(lines) + ("\n" if trailing_nl and lines else "")
    cfg = Settings(context_head_chars=head, context_tail_chars=tail)
    msg = observation_message(step(output, status=status, note="\n".join(notes)), settings=cfg)
    assert msg.content.endswith(status)
    assert_spans_are_env_only(msg)
    # Expected env text: every non-harness line of the capped output (with its newline), then the status.
    from echo_agent.observation import cap_text

    capped = cap_text(output, head, tail)
    body = capped if not capped or capped.endswith("\n") else capped + "\n"
    expected = "".join(x + "\n" for x in body.split("\n")[:-1] if not is_harness_line(x))
    assert msg.env_text() == expected + status
    spans = msg.env_spans
    assert all(b1 < a2 for (_, b1), (a2, _) in zip(spans, spans[1:], strict=False))
