"""What `echo-agent shell` stores: one `author=human` step per typed command, each in a one-step episode of the
shell's `human` session (docs/architecture.md, "Typed commands").

The terminal loop hands the recorder output and marks (`hooks.MarkParser`) as they come, and never waits for it:
a command's output is resolved (`screen.resolve`) and written by a thread of its own. When the store cannot take
a step (locked past its timeout, full, corrupt), the step goes to a spool file beside the store, a one-line
warning is printed once, and the spool is written first when the store takes steps again, also at the next start.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from echo_agent.config import Settings
from echo_agent.human import screen
from echo_agent.human.hooks import Mark

TASK = "a command typed in the terminal"
"""The task of every human episode: the person's own command, not a request to the agent."""
SPOOL = "shell-spool.jsonl"


@dataclass
class Typed:
    """One finished command, as the recorder hands it to the store."""

    command: str
    output: str
    note: str
    exit_code: int
    cwd_before: str
    cwd_after: str
    started_at: str
    duration_ms: int
    output_bytes: int
    truncated: bool


class _Running:
    def __init__(self, command: str, cwd: str, keep: int) -> None:
        self.command, self.cwd = command, cwd
        self.started_at = datetime.now(UTC).isoformat(timespec="microseconds")
        self.t0 = time.monotonic()
        self.head, self.tail = bytearray(), bytearray()
        self.keep, self.total, self.alt = keep, 0, False

    def add(self, data: bytes) -> None:
        self.total += len(data)
        self.alt = self.alt or screen.full_screen(data)
        room = self.keep - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            del self.tail[:-self.keep]


class Recorder:
    """Turns marks and output into stored steps. `warn(line)` shows a one-line warning to the person."""

    def __init__(self, home: Path, settings: Settings, warn: Callable[[str], None], recording: bool = True) -> None:
        self.home, self.settings, self.warn = home, settings, warn
        self.recording = recording
        self.last_entry: str | None = None
        self.running: _Running | None = None
        self.queue: queue.Queue[Typed | None] = queue.Queue()
        self.session_id: str | None = None
        self.warned = False
        self.written = 0
        self.thread = threading.Thread(target=self._write_loop, name="echo-agent-recorder", daemon=True)
        self.thread.start()

    # --- the terminal loop's side: never blocks ---

    def output(self, data: bytes) -> None:
        if self.running is not None:
            self.running.add(data)

    def mark(self, mark: Mark) -> None:
        if mark.kind == "R":
            self.recording = mark.fields[0] == "1"
            self.running = None
        elif mark.kind == "S":
            entry, command, cwd = mark.fields
            new = entry != self.last_entry  # not in bash's history: not recorded (a leading space, HISTIGNORE)
            self.last_entry = entry
            skip = not self.recording or not new or command[:1].isspace() or not command.strip()
            self.running = None if skip else _Running(command, cwd, self.settings.output_cap_bytes // 2)
        elif mark.kind == "E":
            code, cwd, entry = mark.fields
            if entry:
                self.last_entry = entry
            if (r := self.running) is not None:
                self.running = None
                self.queue.put(self._typed(r, int(code), cwd))

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (at most `timeout` seconds), then stop; the rest waits in the spool."""
        self.queue.put(None)
        self.thread.join(timeout)

    def _typed(self, r: _Running, code: int, cwd_after: str) -> Typed:
        raw = bytes(r.head) + bytes(r.tail)
        output, note = ("", screen.FULL_SCREEN_NOTE) if r.alt else (
            screen.resolve(raw, self.settings.output_cap_bytes), "")
        return Typed(r.command.rstrip("\n"), output, note, code, r.cwd, cwd_after, r.started_at,
                     int((time.monotonic() - r.t0) * 1000), r.total, r.total > len(raw))

    # --- the writer thread ---

    def _write_loop(self) -> None:
        while True:
            item = self.queue.get()
            batch = [] if item is None else [item]
            while not self.queue.empty():
                nxt = self.queue.get()
                if nxt is None:
                    item = None
                else:
                    batch.append(nxt)
            self._write(batch)
            if item is None:
                self._end_session()
                return

    def _end_session(self) -> None:
        from echo_agent.memory.store import TrajectoryStore

        if self.session_id is not None:
            try:
                with TrajectoryStore(self.home / "store.db", settings=self.settings) as store:
                    store.end_session(self.session_id)
            except Exception:  # noqa: BLE001 - an unended session only lacks its end time
                pass

    def _write(self, batch: list[Typed]) -> None:
        spool = self.home / SPOOL
        waiting = self._spooled(spool)
        todo = waiting + batch
        if not todo:
            return
        try:
            self._store(todo)
        except Exception as e:  # noqa: BLE001 - the shell goes on whatever the store does
            if waiting:
                todo = batch  # already in the spool
            why = (str(e).splitlines() or [type(e).__name__])[0][:120]
            try:
                with open(spool, "a") as f:
                    for t in todo:
                        f.write(json.dumps(asdict(t)) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as full:  # nowhere to keep them: said, every time, never silently
                self.warn(f"echo-agent: {len(todo)} command(s) could not be recorded or kept ({why}; {full})")
                return
            self._say_once(f"echo-agent: commands are not being recorded ({why}); they wait in {spool}")
            return
        if waiting:
            spool.unlink(missing_ok=True)

    def _spooled(self, spool: Path) -> list[Typed]:
        """What waits in the spool; a line that is not a spooled step is said once and left there."""
        try:
            lines = spool.read_text().splitlines() if spool.exists() else []
        except (OSError, UnicodeDecodeError) as e:
            self._say_once(f"echo-agent: cannot read {spool} ({e})")
            return []
        out = []
        for line in lines:
            try:
                out.append(Typed(**json.loads(line)))
            except (ValueError, TypeError):
                self._say_once(f"echo-agent: {spool} holds a line that is not a recorded command; fix or move it")
                return []
        return out

    def _say_once(self, line: str) -> None:
        if not self.warned:
            self.warned = True
            self.warn(line)

    def _store(self, todo: list[Typed]) -> None:
        from echo_agent.memory.store import TrajectoryStore
        from echo_agent.observation import status_line
        from echo_agent.records import Author, EpisodeStatus, SessionKind, StepKind
        from echo_agent.shell import ShellResult
        from echo_agent.shell.risk import is_read_only

        with TrajectoryStore(self.home / "store.db", settings=self.settings) as store:
            if self.session_id is None:
                self.session_id = store.start_session(SessionKind.HUMAN, shell=os.environ.get("SHELL"))
            for t in todo:
                episode = store.start_episode(self.session_id, TASK, [])
                result = ShellResult(t.command, t.output, status_line(t.exit_code), t.note, t.exit_code,
                                     t.cwd_before, t.cwd_after, t.started_at, t.duration_ms, False, t.truncated,
                                     t.output_bytes)
                kind = (StepKind.RETRIEVAL if is_read_only(t.command, self.settings.read_only_commands)
                        else StepKind.ACTION)
                store.record_step(episode, reply=None, command=t.command, result=result, author=Author.HUMAN,
                                  kind=kind)
                store.finish_episode(episode, EpisodeStatus.DONE)
                self.written += 1
