"""A persistent bash session on a pseudo-terminal.

How a command runs:
- The command text is written to a private file and sourced (`. FILE`), so multi-line commands and heredocs
  arrive exactly as written and nothing is left in the terminal's input for the command to read.
- The end of a command is found by a per-command random sentinel, printed by PROMPT_COMMAND and carrying `$?`
  and `$PWD`: `<tok><exit>:<pwd><tok>`. PROMPT_COMMAND runs even when bash abandons a line after Ctrl-C, so an
  interrupted command still ends cleanly. The prompt itself is empty; nothing is matched against a prompt.
- Before the sentinel, PROMPT_COMMAND saves `export -p` to a state file; when the shell dies (`exit`,
  `kill -9 $$`), the next run starts a new bash in the same directory with the same exported variables. A shell
  that exited by itself reports its exit status (`[exit 3, shell restarted]`); one killed by a signal has none.
- Output is read in chunks into a bounded head and tail, so a 50 MB output costs a fixed amount of memory.
- A command blocked reading the terminal (seen in /proc: a foreground process reading fd 0, which is the
  terminal) is interrupted after `input_wait` seconds; a command past its timeout is interrupted too.
  Interrupting is SIGINT to the foreground process group, then SIGKILL to that group; bash itself is killed
  (and respawned) only when the foreground job is bash itself and it ignores SIGINT.
"""

from __future__ import annotations

import os
import platform
import re
import secrets
import select
import shlex
import signal
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from echo_agent import observation as obs
from echo_agent.shell.clean import clean_text, decode
from echo_agent.shell.result import ShellResult

# Environment that makes programs print plain, deterministic text.
PLAIN_ENV = {
    "TERM": "dumb",
    "PAGER": "cat",
    "GIT_PAGER": "cat",
    "MANPAGER": "cat",
    "SYSTEMD_PAGER": "",
    "NO_COLOR": "1",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "GIT_TERMINAL_PROMPT": "0",
}
TERMINAL_SIZE = (50, 160)  # rows, columns: fixed, so `ls` column layout does not depend on the caller
GRACE_S = 1.0  # how long an interrupted job gets to finish before the next, harsher step
_SENTINEL_MAX = 8192  # a sentinel (token, exit code, cwd) is never longer than this
_SENTINEL_BODY = re.compile(rb"(-?\d+):(.*)", re.DOTALL)

# System calls that mean "blocked waiting on the terminal": a read of fd 0, or a select-style call over a single
# descriptor (nfds == 1, which can only be stdin). Per architecture; elsewhere input waits end by timeout.
_READ_SYSCALLS = {"x86_64": {0}, "aarch64": {63}}
_SELECT_SYSCALLS = {"x86_64": {7, 23, 270, 271}, "aarch64": {72, 73}}

_INIT = r"""
stty -echo -onlcr 2>/dev/null
set +o history
unset HISTFILE PROMPT_COMMAND
PS1='' PS2='' PS0=''
__echo_done() {
    local ec=$?
    PS1='' PS2=''  # a command may set a prompt (venv activate does); it would leak into the next output
    export -p > "$__echo_state" 2>/dev/null
    printf '%s%d:%s%s' "$__echo_tok" "$ec" "$PWD" "$__echo_tok"
}
PROMPT_COMMAND=__echo_done
"""


class ShellSession:
    """One long-lived bash; `run` executes a command in it and returns a ShellResult. It does not raise for a
    failing or hanging command: those are observations."""

    def __init__(
        self,
        cwd: str | os.PathLike | None = None,
        env: dict[str, str] | None = None,
        output_cap_bytes: int = 256 * 1024,
        input_wait: float = 1.0,
    ) -> None:
        self.cwd = str(Path(cwd or os.getcwd()).resolve())
        self.output_cap_bytes = output_cap_bytes
        self.input_wait = input_wait
        self._env = {**os.environ, **(env or {}), **PLAIN_ENV}
        self._dir = Path(tempfile.mkdtemp(prefix="echo-agent-shell-", dir=_fast_tmp()))
        self._cmd_file = self._dir / "command.sh"
        self._state_file = self._dir / "exports.sh"
        self._child = None
        self._tty: str | None = None

    # --- lifecycle ---

    def __enter__(self) -> ShellSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._kill_shell()
        for p in (self._cmd_file, self._state_file):
            p.unlink(missing_ok=True)
        if self._dir.exists():
            self._dir.rmdir()

    @property
    def alive(self) -> bool:
        return self._child is not None and self._child.isalive()

    def _start(self) -> None:
        import pexpect

        self._child = pexpect.spawn(
            "bash",
            ["--noprofile", "--norc", "--noediting", "-i"],
            cwd=self.cwd if os.path.isdir(self.cwd) else None,
            env=self._env,
            echo=False,
            encoding=None,
            dimensions=TERMINAL_SIZE,
            preexec_fn=_default_signals,
        )
        self._child.delaybeforesend = None  # pexpect sleeps 50 ms before every send by default
        try:
            self._tty = os.readlink(f"/proc/{self._child.pid}/fd/0")
        except OSError:
            self._tty = None  # no /proc: input waits end by timeout instead
        restore = f". {shlex.quote(str(self._state_file))} 2>/dev/null\n" if self._state_file.exists() else ""
        # Restore before PROMPT_COMMAND exists: its first run overwrites the state file.
        init = (
            f"__echo_state={shlex.quote(str(self._state_file))}\n"
            + restore
            + f"cd -- {shlex.quote(self.cwd)} 2>/dev/null\n"
            + _INIT
        )
        self._child.send(init.encode())
        tok = secrets.token_hex(8)
        self._child.send(f"__echo_tok={tok}; :\n".encode())
        # Discard everything up to the first sentinel (the echo of the init lines before `stty -echo`).
        reader = _OutputReader(tok, head_cap=0, tail_cap=1 << 16)
        deadline = time.monotonic() + 15
        while not reader.match:
            data = self._read(0.1)
            if data is None or time.monotonic() > deadline:
                self._kill_shell()
                raise RuntimeError("bash did not start (is bash installed and on PATH?)")
            reader.feed(data)
        self.cwd = reader.cwd or self.cwd

    # --- running a command ---

    def run(self, command: str, timeout: float = 30.0) -> ShellResult:
        """Run `command` in the session; returns when it finishes, is interrupted, or the shell dies."""
        if not self.alive:
            self._kill_shell()
            self._start()
        started_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        cwd_before = self.cwd
        tok = secrets.token_hex(8)
        self._write_command(command if command.endswith("\n") else command + "\n")
        self._child.send(f"__echo_tok={tok}; . {shlex.quote(str(self._cmd_file))}\n".encode())

        t0 = time.monotonic()
        half = self.output_cap_bytes // 2
        reader = _OutputReader(tok, head_cap=half, tail_cap=self.output_cap_bytes - half)
        interrupted_after: float | None = None
        note: list[str] = []
        blocked_since: float | None = None
        deadline = t0 + timeout
        stage = 0  # 0 running, 1 SIGINT sent, 2 SIGKILL sent to the job
        shell_died = stopped_shell = False
        while not reader.match:
            data = self._read(0.05)
            if data is None:
                shell_died = True
                break
            if data:
                reader.feed(data)
                blocked_since = None
                continue
            now = time.monotonic()
            if stage == 0:
                if self._waiting_for_input():
                    blocked_since = blocked_since or now
                    if now - blocked_since >= self.input_wait and not note:
                        note.append(obs.INPUT_MARKER)
                        deadline = now
                else:
                    blocked_since = None
            if now < deadline:
                continue
            if stage == 0:
                interrupted_after = now - t0
                if not note:
                    note.append(obs.TIMEOUT_MARKER)
                self._signal_foreground(signal.SIGINT)
            elif stage == 1:
                self._signal_foreground(signal.SIGKILL)
            else:  # the job is bash itself and it will not stop: end the shell; the next run respawns it
                shell_died = stopped_shell = True
                break
            stage += 1
            deadline = now + GRACE_S

        duration_ms = int((time.monotonic() - t0) * 1000)
        if shell_died:
            exit_code = self._kill_shell(exited=not stopped_shell)
            status = obs.status_line(exit_code, restarted=True)
        else:
            exit_code, self.cwd = reader.exit_code, reader.cwd
            status = obs.status_line(exit_code, interrupted_after)
        output, truncated = reader.output()
        return ShellResult(
            command=command,
            output=output,
            status=status,
            note="\n".join(note),
            exit_code=exit_code,
            cwd_before=cwd_before,
            cwd_after=self.cwd,
            started_at=started_at,
            duration_ms=duration_ms,
            timed_out=obs.TIMEOUT_MARKER in note,
            truncated=truncated,
            output_bytes=reader.total - reader.sentinel_len,
        )

    # --- internals ---

    def _write_command(self, text: str) -> None:
        fd = os.open(self._cmd_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, text.encode("utf-8", errors="surrogateescape"))
        finally:
            os.close(fd)

    def _read(self, wait: float) -> bytes | None:
        """Up to 64 KiB from the terminal; b"" when nothing came within `wait`; None when the shell is gone."""
        fd = self._child.child_fd
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            return b""
        try:
            data = os.read(fd, 1 << 16)
        except OSError:  # EIO: the other side of the terminal closed
            return None
        return data or None

    def _signal_foreground(self, sig: int) -> None:
        pgrp = _session_pgrp(self._child)
        if pgrp is None or (pgrp == self._child.pid and sig == signal.SIGKILL):
            return  # never SIGKILL the shell's own group here; the next stage ends the shell instead
        try:
            os.killpg(pgrp, sig)
        except ProcessLookupError:
            pass

    def _waiting_for_input(self) -> bool:
        """Is a process of the foreground job blocked reading the terminal?"""
        pgrp = _session_pgrp(self._child)
        machine = platform.machine()
        if pgrp is None or self._tty is None or machine not in _READ_SYSCALLS:
            return False
        for pid in _pids_in_group(pgrp):
            try:
                if os.readlink(f"/proc/{pid}/fd/0") != self._tty:
                    continue
                fields = Path(f"/proc/{pid}/syscall").read_text().split()
            except OSError:
                continue
            if len(fields) < 2 or not fields[0].isdigit():
                continue  # "running", or not readable
            nr, arg0 = int(fields[0]), int(fields[1], 16)
            if (nr in _READ_SYSCALLS[machine] and arg0 == 0) or (nr in _SELECT_SYSCALLS[machine] and arg0 == 1):
                return True
        return False

    def _kill_shell(self, exited: bool = False) -> int | None:
        """SIGKILL the foreground job and bash (bash leads its own session, so its pid is its group).

        `exited`: bash closed the terminal itself; give it a moment to be reaped, and return its exit status
        (None when a signal ended it, or when it is still running and is killed here)."""
        child, self._child = self._child, None
        if child is None:
            return None
        deadline = time.monotonic() + (GRACE_S if exited else 0)
        while child.isalive() and time.monotonic() < deadline:
            time.sleep(0.01)
        status = None if child.isalive() else child.exitstatus
        for pgrp in {_session_pgrp(child), child.pid} - {None}:
            try:
                os.killpg(pgrp, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        child.close(force=True)
        return status


def _fast_tmp() -> str | None:
    """A memory-backed directory for the per-command files when there is one (halves the per-command cost)."""
    for d in (os.environ.get("XDG_RUNTIME_DIR"), "/dev/shm"):
        if d and os.path.isdir(d) and os.access(d, os.W_OK | os.X_OK):
            return d
    return None


def _default_signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ, and ignored signals survive exec: give bash the defaults, so
    `yes | head` ends quietly as it does in a terminal."""
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)


def _session_pgrp(child) -> int | None:
    """The terminal's foreground process group, if it belongs to the shell's session (never ours)."""
    if child is None:
        return None
    try:
        pgrp = os.tcgetpgrp(child.child_fd)
        if pgrp != os.getpgrp() and os.getsid(pgrp) == child.pid:
            return pgrp
    except OSError:
        pass
    return None


def _pids_in_group(pgrp: int) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after the name: state, ppid, pgrp, ...
        if int(fields[2]) == pgrp:
            pids.append(int(name))
    return pids


class _OutputReader:
    """Keeps the first `head_cap` and last `tail_cap` bytes of a stream and finds the sentinel at its end.

    One buffer: its first `head_cap` bytes are the head; when it grows past head + tail + slack, the middle is
    dropped (and counted), so memory stays bounded however much the command prints.
    """

    _SLACK = 1 << 20  # drop the middle in batches, not on every chunk

    def __init__(self, tok: str, head_cap: int, tail_cap: int) -> None:
        self._tok = tok.encode()
        self.head_cap, self.tail_cap = head_cap, tail_cap
        self.buf = bytearray()
        self.dropped = 0  # bytes after the head that were not kept
        self.total = 0
        self.match = False
        self.exit_code: int | None = None
        self.cwd: str | None = None
        self.sentinel_len = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        floor = self.head_cap if self.dropped else 0  # never search inside a head that was cut off
        start = max(floor, len(self.buf) - _SENTINEL_MAX)
        self.buf += data
        if self._find_sentinel(start):
            return
        keep_tail = self.tail_cap + _SENTINEL_MAX
        if len(self.buf) > self.head_cap + keep_tail + self._SLACK:
            cut = len(self.buf) - keep_tail
            del self.buf[self.head_cap : cut]
            self.dropped += cut - self.head_cap

    def _find_sentinel(self, start: int) -> bool:
        """`<tok><exit>:<cwd><tok>`, found with bytes.find (no per-command regex compile)."""
        begin = self.buf.find(self._tok, start)
        while begin >= 0:
            end = self.buf.find(self._tok, begin + len(self._tok))
            if end < 0:
                return False
            m = _SENTINEL_BODY.fullmatch(self.buf, begin + len(self._tok), end)
            if m:
                self.match = True
                self.exit_code, self.cwd = int(m.group(1)), decode(m.group(2))
                self.sentinel_len = len(self.buf) - begin
                del self.buf[begin:]
                return True
            begin = self.buf.find(self._tok, begin + 1)
        return False

    def output(self) -> tuple[str, bool]:
        """(clean text, truncated): head and tail around the elision marker when bytes were dropped."""
        if not self.dropped and len(self.buf) <= self.head_cap + self.tail_cap:
            return clean_text(decode(bytes(self.buf))), False
        head = bytes(self.buf[: self.head_cap])
        rest = self.buf[self.head_cap :]
        tail = bytes(rest[len(rest) - self.tail_cap :]) if self.tail_cap else b""
        kept_head, kept_tail = obs.snap_to_lines(head, tail)
        dropped = self.dropped + len(rest) - len(kept_tail) + len(head) - len(kept_head)
        return obs.join_capped(clean_text(decode(kept_head)), dropped, clean_text(decode(kept_tail))), True
