"""The background updater: one per home, at idle priority, running a cycle when enough new terminal output has
accumulated, no episode is running and (with a window) the clock is inside its window.

Files in the home: `updater.pid` (the daemon's pid), `updater.daemon.lock` (an flock the daemon holds while it
lives, so a stale pid file is recognised; started by hand or by an installed service, the lock decides which one
runs), `updater.state.json` (its window and when it looks next, for `updater status`), `updater.log` (what it
did), `updater-report.txt` (the summary of the latest window's cycles, rewritten after each cycle). A daemon
killed mid-training promotes nothing; the next cycle records and cleans up after it (see cycle.py).

Training stays out of the way: the process runs at idle CPU and I/O priority, its torch threads leave one core,
and a cycle yields (stops at the next optimizer step, promotes nothing) when an agent episode starts. At the end
of the window, training stops as with `--max-minutes` and the candidate is evaluated.

    python -m echo_agent.updater.daemon --home DIR   (what `echo-agent updater start` and the service run)
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from echo_agent.errors import EchoAgentError, UpdaterError
from echo_agent.files import atomic_write_text
from echo_agent.updater.schedule import Window

if TYPE_CHECKING:
    from echo_agent.memory.store import TrajectoryStore

CHARS_PER_TOKEN = 4  # rough size of a token of terminal output, for the "enough new output" check


REPORT_FILE = "updater-report.txt"
STATE_FILE = "updater.state.json"


@dataclass
class DaemonStatus:
    running: bool
    pid: int | None
    log: Path
    state: dict[str, Any] | None = None
    """What the running daemon wrote of itself: window, interval, min_new_tokens, next_check."""


def _paths(home: Path) -> tuple[Path, Path, Path]:
    return home / "updater.pid", home / "updater.daemon.lock", home / "updater.log"


def _locked(lock_path: Path) -> bool:
    """Is the daemon lock held by a live process?"""
    if not lock_path.exists():
        return False
    fd = os.open(lock_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def status(home: Path) -> DaemonStatus:
    pid_path, lock_path, log = _paths(home)
    running = _locked(lock_path)
    pid = int(pid_path.read_text()) if running and pid_path.exists() else None
    state = None
    if running and (home / STATE_FILE).exists():
        try:
            state = json.loads((home / STATE_FILE).read_text())
        except (OSError, ValueError):
            state = None
    return DaemonStatus(running, pid, log, state)


def daemon_args(home: Path, interval: float = 60.0, min_new_tokens: int = 2000, max_minutes: float | None = None,
                window: Window | None = None, budget_minutes: float | None = None) -> list[str]:
    """The command line that runs the daemon in the foreground (what `start` spawns and a service runs)."""
    args = [sys.executable, "-m", "echo_agent.updater.daemon", "--home", str(home), "--interval", str(interval),
            "--min-new-tokens", str(min_new_tokens)]
    if max_minutes is not None:
        args += ["--max-minutes", str(max_minutes)]
    if window is not None:
        args += ["--window", str(window)]
    if budget_minutes is not None:
        args += ["--budget-minutes", str(budget_minutes)]
    return args


def start(home: Path, interval: float = 60.0, min_new_tokens: int = 2000, max_minutes: float | None = None,
          window: Window | None = None, budget_minutes: float | None = None) -> int:
    """Start the daemon for `home` in the background; returns its pid. Raises UpdaterError if one runs."""
    st = status(home)
    if st.running:
        raise UpdaterError(f"the updater is already running for {home} (pid {st.pid}); "
                           "`echo-agent updater stop` stops it")
    home.mkdir(parents=True, exist_ok=True)
    _, _, log = _paths(home)
    args = daemon_args(home, interval, min_new_tokens, max_minutes, window, budget_minutes)
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                                env={**os.environ, "ECHO_AGENT_HOME": str(home)})
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # wait until it holds its lock (or died)
        if status(home).running:
            return proc.pid
        if proc.poll() is not None:
            raise UpdaterError(f"the updater exited at once (status {proc.returncode}); see {log}")
        time.sleep(0.05)
    raise UpdaterError(f"the updater did not start within 15 s; see {log}")


def stop(home: Path, timeout: float = 10.0) -> bool:
    """Stop the daemon (SIGTERM, then SIGKILL); False when none was running."""
    st = status(home)
    if not st.running or st.pid is None:
        return False
    os.kill(st.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not status(home).running:
            return True
        time.sleep(0.05)
    os.kill(st.pid, signal.SIGKILL)
    while status(home).running:
        time.sleep(0.05)
    return True


def pending_env_tokens(store: TrajectoryStore) -> int:
    """Rough count of the env tokens the adapter in use has not trained on (`queries.pending_steps`)."""
    from echo_agent.memory.queries import pending_output_chars
    from echo_agent.updater.registry import current_adapter_row

    row = current_adapter_row(store)
    since = row["trained_through_seq"] if row else 0
    return pending_output_chars(store, since, row["id"] if row else None) // CHARS_PER_TOKEN


def log_line(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}", flush=True)


def stay_out_of_the_way() -> str:
    """Idle CPU and I/O priority for this process (and the threads it starts later); says what it got."""
    import psutil

    got = []
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        got.append("idle CPU scheduling")
    except (AttributeError, OSError):
        os.nice(19)
        got.append("nice 19")
    try:
        psutil.Process().ionice(psutil.IOPRIO_CLASS_IDLE)
        got.append("idle I/O")
    except (AttributeError, OSError, psutil.Error):
        got.append("normal I/O (idle I/O priority is not available here)")
    return ", ".join(got)


def training_threads() -> int:
    """Torch threads for training in the background: one core left for the user."""
    return max(1, (os.cpu_count() or 1) - 1)


def serve(home: Path, interval: float, min_new_tokens: int, max_minutes: float | None,
          window: Window | None = None, budget_minutes: float | None = None) -> None:
    """The daemon's loop (runs in the background process, or under the installed service)."""
    pid_path, lock_path, _ = _paths(home)
    home.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log_line("another updater holds the lock for this home; exiting")
        return
    pid_path.write_text(str(os.getpid()))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        priority = stay_out_of_the_way()
        import torch
        from transformers.utils import logging as hf_logging

        from echo_agent.config import Settings

        torch.set_num_threads(training_threads())
        log_line(f"updater started (pid {os.getpid()}, every {interval:.0f} s, at {min_new_tokens} new env tokens, "
                 f"{'window ' + str(window) if window else 'any time'}; {priority}, {torch.get_num_threads()} "
                 "torch threads)")
        hf_logging.disable_progress_bar()  # the log is a file: no bars drawn with carriage returns
        loop = Loop(home, Settings.load(home, cycle_budget_minutes=budget_minutes), interval, min_new_tokens, max_minutes, window)
        while True:
            time.sleep(loop.once())
    finally:
        pid_path.unlink(missing_ok=True)
        (home / STATE_FILE).unlink(missing_ok=True)

class Loop:
    """One look at the store per call (`once`), which runs a cycle when it is time; returns the seconds to sleep."""

    def __init__(self, home: Path, settings: Any, interval: float, min_new_tokens: int, max_minutes: float | None,
                 window: Window | None) -> None:
        self.home, self.settings, self.interval = home, settings, interval
        self.min_new_tokens, self.max_minutes, self.window = min_new_tokens, max_minutes, window
        self.too_little: int | None = None  # the pending count at which a cycle last found too little: not retried
        self.cycles_since: str | None = None  # start of the window (or run) the report covers

    def state(self, next_check: datetime, why: str) -> None:
        atomic_write_text(self.home / STATE_FILE, json.dumps({
            "pid": os.getpid(), "window": str(self.window) if self.window else None, "interval": self.interval,
            "min_new_tokens": self.min_new_tokens, "max_minutes": self.max_minutes,
            "budget_minutes": self.settings.cycle_budget_minutes,
            "next_check": next_check.isoformat(timespec="seconds"), "waiting_for": why}, indent=2))

    def once(self) -> float:
        from echo_agent.memory.store import TrajectoryStore, now

        t = datetime.now()
        if self.window is not None and not self.window.contains(t):
            opens = self.window.next_start(t)
            self.cycles_since = None  # the report of the window that closed stays; the next one starts afresh
            self.state(opens, f"the window {self.window}")
            return max(1.0, min(self.interval, (opens - t).total_seconds()))
        if self.cycles_since is None:
            self.cycles_since = now()
        with TrajectoryStore(self.home / "store.db", settings=self.settings) as store:
            pending = pending_env_tokens(store)
            busy = store.running_episodes()
            if pending < self.min_new_tokens or busy or pending == self.too_little:
                why = ("an agent episode to end" if busy else
                       f"{self.min_new_tokens} new env tokens (~{pending} now)")
                self.state(t + timedelta(seconds=self.interval), why)
                return self.interval
            self.state(t, "a cycle running now")
            log_line(f"{pending} new env tokens; starting a cycle")
            self.run(store, pending, t)
        self.write_report()
        return self.interval

    def run(self, store: TrajectoryStore, pending: int, t: datetime) -> None:
        from echo_agent.updater.cycle import CycleStatus, run_cycle
        from echo_agent.updater.train import TrainConfig

        limits = [m for m in (self.max_minutes, self.window.minutes_left(t) if self.window else None) if m is not None]

        asked: list[Any] = [0.0, None]  # when the store was last asked, and its answer (at most twice a second)

        def interrupt() -> str | None:
            if time.monotonic() - asked[0] >= 0.5:
                asked[:] = [time.monotonic(), "an agent episode started" if store.running_episodes() else None]
            return asked[1]

        try:
            cfg = TrainConfig.from_settings(self.settings, max_minutes=min(limits) if limits else None)
            report = run_cycle(store, self.settings, home=self.home, cfg=cfg, wait=False, interrupt=interrupt,
                               trigger="daemon")
            log_line(f"cycle {report.status}: {report.message}")
            idle = report.status in (CycleStatus.NOTHING_NEW, CycleStatus.NO_HELDOUT)
            self.too_little = pending if idle else None
        except EchoAgentError as e:  # busy lock or store, a full disk: recorded by the cycle; try again later
            log_line(f"cycle not finished: {e}")

    def write_report(self) -> None:
        """The summary of the cycles since the window opened (or the daemon started), rewritten after each cycle."""
        from echo_agent.memory.store import TrajectoryStore
        from echo_agent.updater.report import build, render_text

        with TrajectoryStore(self.home / "store.db", settings=self.settings) as store:
            text = render_text(build(store, since=self.cycles_since))
        atomic_write_text(self.home / REPORT_FILE, text)


def main() -> None:
    parser = argparse.ArgumentParser(description="echo-agent background updater (use `echo-agent updater start`)")
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--min-new-tokens", type=int, default=2000)
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--window", default=None, help="HH:MM-HH:MM: train only inside this daily window")
    parser.add_argument("--budget-minutes", type=float, default=None, help="a cycle's budget (cycle_budget_minutes)")
    args = parser.parse_args()
    try:
        window = Window.parse(args.window) if args.window else None
    except UpdaterError as e:
        parser.error(str(e))
    serve(args.home, args.interval, args.min_new_tokens, args.max_minutes, window, args.budget_minutes)


if __name__ == "__main__":
    main()
