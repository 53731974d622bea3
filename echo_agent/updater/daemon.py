"""The background updater: one per home, at low priority, running a cycle when enough new terminal output has
accumulated and no episode is running.

Files in the home: `updater.pid` (the daemon's pid), `updater.daemon.lock` (an flock the daemon holds while it
lives, so a stale pid file is recognised), `updater.log` (what it did). A daemon killed mid-training promotes
nothing; the next cycle cleans up after it (see cycle.py).

    python -m echo_agent.updater.daemon --home DIR   (what `echo-agent updater start` runs)
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from echo_agent.errors import UpdateBusy, UpdaterError

if TYPE_CHECKING:
    from echo_agent.memory.store import TrajectoryStore

CHARS_PER_TOKEN = 4  # rough size of a token of terminal output, for the "enough new output" check


@dataclass
class DaemonStatus:
    running: bool
    pid: int | None
    log: Path
    pending_env_tokens: int | None = None


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
    return DaemonStatus(running, pid, log)


def start(home: Path, interval: float = 60.0, min_new_tokens: int = 2000, max_minutes: float | None = None) -> int:
    """Start the daemon for `home` in the background; returns its pid. Raises UpdaterError if one runs."""
    st = status(home)
    if st.running:
        raise UpdaterError(f"the updater is already running for {home} (pid {st.pid}); "
                           "`echo-agent updater stop` stops it")
    home.mkdir(parents=True, exist_ok=True)
    _, _, log = _paths(home)
    args = [sys.executable, "-m", "echo_agent.updater.daemon", "--home", str(home), "--interval", str(interval),
            "--min-new-tokens", str(min_new_tokens)]
    if max_minutes is not None:
        args += ["--max-minutes", str(max_minutes)]
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
    """Rough count of env tokens recorded since the adapter in use was trained."""
    from echo_agent.memory.queries import pending_output_chars
    from echo_agent.updater.registry import current_adapter_row

    row = current_adapter_row(store)
    since = row["trained_through_seq"] if row else 0
    return pending_output_chars(store, since) // CHARS_PER_TOKEN


def log_line(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}", flush=True)


def serve(home: Path, interval: float, min_new_tokens: int, max_minutes: float | None) -> None:
    """The daemon's loop (runs in the background process)."""
    from transformers.utils import logging as hf_logging

    from echo_agent.config import Settings
    from echo_agent.memory.store import TrajectoryStore
    from echo_agent.updater.cycle import CycleStatus, run_cycle
    from echo_agent.updater.train import TrainConfig

    pid_path, lock_path, _ = _paths(home)
    lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log_line("another updater holds the lock; exiting")
        return
    os.nice(10)
    pid_path.write_text(str(os.getpid()))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log_line(f"updater started (pid {os.getpid()}, every {interval:.0f} s, at {min_new_tokens} new env tokens)")
    hf_logging.disable_progress_bar()  # the log is a file: no bars drawn with carriage returns
    settings = Settings.load(home)
    too_little = None  # the pending count at which a cycle last found too little to train on: not retried
    try:
        while True:
            with TrajectoryStore(home / "store.db", settings=settings) as store:
                pending = pending_env_tokens(store)
                running = store.running_episodes()
                if pending >= min_new_tokens and not running and pending != too_little:
                    log_line(f"{pending} new env tokens; starting a cycle")
                    try:
                        cfg = TrainConfig.from_settings(settings, max_minutes=max_minutes)
                        report = run_cycle(store, settings, home=home, cfg=cfg, wait=False)
                        log_line(f"cycle {report.status}: {report.message}")
                        idle = report.status in (CycleStatus.NOTHING_NEW, CycleStatus.NO_HELDOUT)
                        too_little = pending if idle else None
                    except UpdateBusy as e:
                        log_line(f"skipped: {e}")
            time.sleep(interval)
    finally:
        pid_path.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="echo-agent background updater (use `echo-agent updater start`)")
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--min-new-tokens", type=int, default=2000)
    parser.add_argument("--max-minutes", type=float, default=None)
    args = parser.parse_args()
    serve(args.home, args.interval, args.min_new_tokens, args.max_minutes)


if __name__ == "__main__":
    main()
