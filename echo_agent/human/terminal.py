"""`echo-agent shell`: the user's interactive bash under a pseudo-terminal this process owns.

Bytes the person types go to bash unchanged; bytes bash writes go to the person's terminal, less the marks
(`hooks.py`), and to the `Recorder`. The person's terminal is in raw mode while the shell runs (so keys, job
control and full-screen programs behave as in bash itself) and is restored on every way out this process can see:
exit, an exception, SIGTERM, SIGHUP. A window resize is passed to the pseudo-terminal, which signals bash's
foreground job. The shell's exit status is this process's.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pty
import select
import shutil
import signal
import sys
import termios
import tty
from pathlib import Path

from echo_agent.config import Settings
from echo_agent.errors import EchoAgentError
from echo_agent.human.hooks import RC, Mark, MarkParser
from echo_agent.human.recorder import Recorder

NESTED = "ECHO_AGENT_SHELL"
"""Set inside `echo-agent shell`: a second one inside it is refused."""


class ShellRefused(EchoAgentError):
    """Why `echo-agent shell` does not start (one line)."""


def user_shell() -> str:
    """The bash to run. Raises ShellRefused inside `echo-agent shell`, or for a login shell other than bash."""
    if os.environ.get(NESTED):
        raise ShellRefused("already inside `echo-agent shell`: its commands are recorded there")
    login = os.environ.get("SHELL", "")
    name = Path(login).name
    if name and name not in ("bash", "sh"):
        raise ShellRefused(f"your shell is {name}: only bash is recorded for now (run `echo-agent shell` from "
                           "bash, or set SHELL=/bin/bash)")
    bash = login if name == "bash" else shutil.which("bash")
    if not bash:
        raise ShellRefused("bash was not found on PATH")
    return bash


def _window_size(fd: int) -> bytes | None:
    try:
        return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None


def run(home: Path, settings: Settings, record: bool = True, bash: str | None = None) -> int:
    """Run the shell until it exits; returns its exit status."""
    bash = bash or user_shell()
    home.mkdir(parents=True, exist_ok=True)
    rc = home / "shell-rc.bash"
    rc.write_text(RC)
    user_rc = Path(os.environ.get("HOME", "~")).expanduser() / ".bashrc"
    env = {**os.environ, NESTED: "1", "ECHO_AGENT_USER_RC": str(user_rc), "ECHO_AGENT_RECORDING": str(int(record))}
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    size = _window_size(stdin)
    pid, master = pty.fork()
    if pid == 0:  # the child: bash on the pseudo-terminal
        try:
            if size:
                fcntl.ioctl(0, termios.TIOCSWINSZ, size)
            os.execve(bash, [bash, "--rcfile", str(rc), "-i"], env)
        finally:
            os._exit(127)

    def say(line: str) -> None:
        os.write(stdout, ("\r\n" + line + "\r\n").encode())

    recorder = Recorder(home, settings, say, recording=record)
    saved = termios.tcgetattr(stdin) if os.isatty(stdin) else None

    def restore(*_: object) -> None:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSAFLUSH, saved)

    def resize(*_: object) -> None:
        if (now := _window_size(stdin)) is not None:
            fcntl.ioctl(master, termios.TIOCSWINSZ, now)

    def leave(signum: int, _frame: object) -> None:
        restore()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGHUP)
        raise SystemExit(128 + signum)

    old = {s: signal.signal(s, h) for s, h in ((signal.SIGWINCH, resize), (signal.SIGTERM, leave),
                                                (signal.SIGHUP, leave))}
    parser = MarkParser()
    try:
        if saved is not None:
            tty.setraw(stdin)
        _pump(master, stdin, stdout, parser, recorder)
    finally:
        restore()
        for s, h in old.items():
            signal.signal(s, h)
        recorder.close()
        os.close(master)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _pump(master: int, stdin: int, stdout: int, parser: MarkParser, recorder: Recorder) -> None:
    """Copy both ways until the shell's side closes."""
    watch = [master, stdin]
    while True:
        try:
            ready, _, _ = select.select(watch, [], [])
        except InterruptedError:
            continue
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError as e:
                if e.errno == errno.EIO:  # the shell exited
                    return
                raise
            if not data:
                return
            shown = []
            for part in parser.feed(data):
                if isinstance(part, Mark):
                    recorder.mark(part)
                else:
                    shown.append(part)
                    recorder.output(part)
            if shown:
                _write_all(stdout, b"".join(shown))
        if stdin in ready:
            data = os.read(stdin, 65536)
            if not data:  # the person's side closed: bash sees end of input
                watch = [master]
                _write_all(master, b"\x04")
                continue
            _write_all(master, data)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            n = os.write(fd, data)
        except InterruptedError:
            continue
        data = data[n:]
