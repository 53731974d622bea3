"""A typed command's terminal output as the text a reader would see (pyte, a VT100 emulator): colours dropped,
carriage returns and cursor movement applied, progress bars at their last state.

The output is replayed on a screen wide enough that no line wraps (what the person saw wrapped is one line here)
and tall enough that nothing scrolls away. A program that switches to the alternate screen (`vim`, `less`, `top`)
draws a screen, not output: it is recorded as a harness line instead.
"""

from __future__ import annotations

import re

from echo_agent.observation import cap_text

COLUMNS = 4096
"""Characters per line on the replay screen: a longer line wraps."""
ALT_SCREEN = re.compile(rb"\x1b\[\?(?:1049|1047|47)h")
FULL_SCREEN_NOTE = "[a full-screen program ran: its screens are not recorded]"


def full_screen(raw: bytes) -> bool:
    return bool(ALT_SCREEN.search(raw))


def resolve(raw: bytes, max_chars: int) -> str:
    """The plain text of `raw`, at most `max_chars` characters around an elision marker (head and tail)."""
    text = raw.decode("utf-8", errors="replace")
    if len(text) > 2 * max_chars:  # what the cap drops need not be replayed
        head, tail = text[:max_chars], text[-max_chars:]
        return cap_text(_replay(head) + "\n" + _replay(tail), max_chars // 2, max_chars // 2)
    return cap_text(_replay(text), max_chars // 2, max_chars // 2) if text else ""


def _replay(text: str) -> str:
    import pyte

    lines = text.count("\n") + text.count("\x1b") + 2  # room for every line and any cursor-down
    screen = pyte.Screen(COLUMNS, lines)
    screen.set_mode(pyte.modes.LNM)  # a bare \n also returns the carriage, as the tty's onlcr does
    stream = pyte.Stream(screen)
    stream.feed(text)
    out = []
    for y in range(max(screen.buffer, default=-1) + 1):  # the buffer is sparse: read what was written
        row = screen.buffer[y]
        out.append("".join(row[x].data for x in range(max(row, default=-1) + 1)).rstrip() if row else "")
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + ("\n" if out else "")
