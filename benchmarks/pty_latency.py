"""Typing latency that `echo-agent shell` adds: a keystroke written to the pseudo-terminal until its echo is read
back, through `echo-agent shell` and through plain bash under the same harness, in one run.

    .venv/bin/python benchmarks/pty_latency.py [--keys 400] [--rounds 3]

Each round starts both shells (bash with the same rc file: a plain prompt) under a pseudo-terminal, waits for the
prompt, then types `--keys` letters one at a time, each written when the previous one's echo came back (Ctrl-U
clears the line every 50 keys), alternating the two shells round by round.

    RESULT median_ms=… p99_ms=… bash_median_ms=… bash_p99_ms=… added_ms=…

`added_ms` is the median through `echo-agent shell` minus the bash median. Target: added_ms ≤ 2.
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pexpect

ECHO_AGENT = str(Path(sys.executable).parent / "echo-agent")


def spawn(kind: str, home: Path, user: Path) -> pexpect.spawn:
    env = {**os.environ, "ECHO_AGENT_HOME": str(home), "HOME": str(user), "SHELL": "/bin/bash", "TERM": "xterm"}
    env.pop("ECHO_AGENT_SHELL", None)
    if kind == "echo-agent":
        child = pexpect.spawn(ECHO_AGENT, ["shell"], env=env, dimensions=(30, 100))
        child.expect_exact("(rec) me$ ", timeout=30)
    else:
        child = pexpect.spawn("/bin/bash", ["--rcfile", str(user / ".bashrc"), "-i"], env=env, dimensions=(30, 100))
        child.expect_exact("me$ ", timeout=30)
    time.sleep(0.3)
    return child


def keystrokes(child: pexpect.spawn, n: int) -> list[float]:
    fd = child.child_fd
    out = []
    for i in range(n):
        if i and i % 50 == 0:
            os.write(fd, b"\x15")  # Ctrl-U: clear the line
            time.sleep(0.05)
            while select.select([fd], [], [], 0.05)[0]:
                os.read(fd, 65536)
        t0 = time.perf_counter()
        os.write(fd, b"a")
        seen = b""
        while b"a" not in seen:
            if not select.select([fd], [], [], 5)[0]:
                raise SystemExit("no echo within 5 s")
            seen += os.read(fd, 65536)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="echo-pty-latency-"))
    user = root / "user"
    user.mkdir()
    (user / ".bashrc").write_text("PS1='me$ '\n")
    times: dict[str, list[float]] = {"echo-agent": [], "bash": []}
    for r in range(args.rounds):
        for kind in (("echo-agent", "bash") if r % 2 == 0 else ("bash", "echo-agent")):
            child = spawn(kind, root / f"home{r}", user)
            got = keystrokes(child, args.keys)
            child.sendline("")
            child.sendline("exit")
            child.expect(pexpect.EOF, timeout=30)
            times[kind] += got
            print(f"round {r + 1} {kind}: median {statistics.median(got):.3f} ms, p99 {pct(got, 0.99):.3f} ms",
                  flush=True)
    ea, bash = times["echo-agent"], times["bash"]
    print(f"\n{'through':>12} {'keys':>6} {'median ms':>10} {'p99 ms':>8}")
    for kind, xs in times.items():
        print(f"{kind:>12} {len(xs):>6} {statistics.median(xs):>10.3f} {pct(xs, 0.99):>8.3f}")
    print(f"RESULT median_ms={statistics.median(ea):.3f} p99_ms={pct(ea, 0.99):.3f} "
          f"bash_median_ms={statistics.median(bash):.3f} bash_p99_ms={pct(bash, 0.99):.3f} "
          f"added_ms={statistics.median(ea) - statistics.median(bash):.3f}")


if __name__ == "__main__":
    main()
