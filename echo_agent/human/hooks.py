"""The bash side of `echo-agent shell`: an rc file that runs the user's own, then marks where each command starts
and ends, and the parser that finds those marks in the terminal's byte stream.

Marks are private OSC sequences, `ESC ] 6973 ; kind ; fields BEL`, in the spirit of OSC 133, written by the shell
itself, never guessed from the prompt's text:

- `S;<n>;<command>;<cwd>` from `PS0`, after bash read a command line and added it to its history, before it runs:
  `n` is the number of the newest history entry, `command` that entry.
- `E;<exit>;<cwd>;<n>` first thing in `PROMPT_COMMAND`: the command ended (or the shell started).
- `R;1` / `R;0` from `echo-agent-resume` / `echo-agent-pause`.

Text fields are base64, so no byte of a command or a directory can end the sequence early. The proxy strips the
marks from what reaches the user's terminal.

The command comes from bash's own history (`history 1`), so what bash's history leaves out is not recorded: a
command typed with a leading space under `HISTCONTROL=ignorespace` (the shell-history convention; a leading-space
command is skipped also where the history keeps it), one `HISTIGNORE` matches, and a repeat that `ignoredups`
drops. The user's history settings are left as they are.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass

OSC_ID = b"6973"
_START = b"\x1b]" + OSC_ID + b";"
_END = b"\x07"
MAX_MARK = 1 << 20
"""A mark longer than this is not one of ours: its bytes pass through as output."""

SIGN = "(rec) "
"""The prompt's prefix while recording is on."""

RC = r"""# echo-agent shell: the user's own rc file, then the marks (echo_agent/human/hooks.py).
if [ -n "$ECHO_AGENT_USER_RC" ] && [ -f "$ECHO_AGENT_USER_RC" ]; then . "$ECHO_AGENT_USER_RC"; fi
__ea_b64() { printf %s "$1" | base64 | tr -d '\n'; }
__ea_hist() { local l; l=$(HISTTIMEFORMAT= builtin history 1); [[ $l =~ ^\ *([0-9]+) ]] && printf %s "${BASH_REMATCH[1]}"; }
__ea_start() {
  local l; l=$(HISTTIMEFORMAT= builtin history 1)
  [[ $l =~ ^\ *([0-9]+)\*?\ \ (.*)$ ]] || return 0
  printf '\033]6973;S;%s;%s;%s\007' "${BASH_REMATCH[1]}" "$(__ea_b64 "${BASH_REMATCH[2]}")" "$(__ea_b64 "$PWD")"
}
__ea_end() {
  local e=$?
  printf '\033]6973;E;%s;%s;%s\007' "$e" "$(__ea_b64 "$PWD")" "$(__ea_hist)"
  return $e
}
echo-agent-pause() { __ea_sign=''; printf '\033]6973;R;0\007'; }
echo-agent-resume() { __ea_sign='SIGN_TEXT'; printf '\033]6973;R;1\007'; }
if [ "$ECHO_AGENT_RECORDING" = 0 ]; then __ea_sign=''; else __ea_sign='SIGN_TEXT'; fi
PS0='$(__ea_start)'"${PS0-}"
PS1='${__ea_sign}'"${PS1-\s-\v\$ }"
__ea_ps1() { [[ $PS1 == '${__ea_sign}'* ]] || PS1='${__ea_sign}'"$PS1"; }  # after a PROMPT_COMMAND that sets PS1
PROMPT_COMMAND="__ea_end${PROMPT_COMMAND:+;$PROMPT_COMMAND};__ea_ps1"
""".replace("SIGN_TEXT", SIGN)


@dataclass(frozen=True)
class Mark:
    kind: str
    """S (a command starts), E (the prompt is back), R (recording on or off)."""
    fields: tuple[str, ...]


def _text(field: bytes) -> str:
    try:
        return base64.b64decode(field, validate=True).decode("utf-8", errors="replace")
    except ValueError:
        return ""


def parse_mark(body: bytes) -> Mark | None:
    """The mark in `body` (what lies between `ESC ] 6973 ;` and BEL), or None when it is not a well-formed one."""
    parts = body.split(b";")
    kind = parts[0].decode("ascii", errors="replace")
    if kind == "S" and len(parts) == 4 and parts[1].isdigit():
        return Mark("S", (parts[1].decode(), _text(parts[2]), _text(parts[3])))
    if kind == "E" and len(parts) == 4 and parts[1].lstrip(b"-").isdigit():
        return Mark("E", (parts[1].decode(), _text(parts[2]), parts[3].decode("ascii", errors="replace")))
    if kind == "R" and len(parts) == 2 and parts[1] in (b"0", b"1"):
        return Mark("R", (parts[1].decode(),))
    return None


class MarkParser:
    """Splits the shell's byte stream into output (bytes) and marks (`Mark`), in order, across reads: a mark cut
    between two reads is held until its end arrives."""

    def __init__(self) -> None:
        self._held = b""

    def feed(self, data: bytes) -> Iterator[bytes | Mark]:
        data = self._held + data
        self._held = b""
        while data:
            i = data.find(_START)
            if i < 0:
                # A mark may begin at the very end of this read: hold a partial prefix of it back.
                keep = next((k for k in range(min(len(_START) - 1, len(data)), 0, -1)
                             if _START.startswith(data[-k:])), 0)
                out, self._held = (data[:-keep], data[-keep:]) if keep else (data, b"")
                if out:
                    yield out
                return
            if i:
                yield data[:i]
            j = data.find(_END, i + len(_START))
            if j < 0:
                if len(data) - i > MAX_MARK:
                    yield data[i:]
                else:
                    self._held = data[i:]
                return
            body = data[i + len(_START):j]
            mark = parse_mark(body)
            if mark is None:
                yield data[i:j + 1]
            else:
                yield mark
            data = data[j + 1:]
