"""`echo-agent updater install / uninstall`: the background updater as a systemd user service, or a crontab entry
where systemd's user instance is not reachable.

What `install` wrote is recorded in `<home>/updater.install.json` (the unit file's path, or the crontab line), and
`uninstall` removes exactly that. Nothing is left half-installed: every check (window, writable home, an earlier
install, a unit file that echo-agent did not write) runs before anything is written, and a failing step undoes
the steps before it. The service runs the daemon in the foreground (`daemon.daemon_args`); the daemon's lock
keeps one per home, whether the service or `updater start` got there first. A crontab entry starts it every ten
minutes, and every start but the first exits at once on that lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from echo_agent.errors import UpdaterError
from echo_agent.files import atomic_write_text
from echo_agent.updater import daemon
from echo_agent.updater.schedule import Window

MANIFEST = "updater.install.json"
CRON_SCHEDULE = "*/10 * * * *"
PASSED_ENV = ("ECHO_AGENT_HOME", "ECHO_AGENT_CACHE", "ECHO_AGENT_MODEL", "XDG_DATA_HOME", "XDG_CACHE_HOME", "HF_HOME")
"""Environment the daemon needs to find the same home, cache and model as the shell that installed it."""


@dataclass
class Plan:
    """What `install` writes (or, with --dry-run, would write)."""

    kind: str
    """"systemd" or "cron"."""
    text: str
    """The unit file, or the crontab line."""
    path: Path | None = None
    """The unit file's path (systemd)."""
    unit: str = ""
    notes: list[str] = field(default_factory=list)


def unit_name(home: Path) -> str:
    """`echo-agent-updater.service` for the default home; other homes get a suffix of their path's hash."""
    from echo_agent.config import default_home_dir

    is_default = home.resolve() == default_home_dir().resolve()
    suffix = "" if is_default else "-" + hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:8]
    return f"echo-agent-updater{suffix}.service"


def _environment(home: Path) -> dict[str, str]:
    env = {k: os.environ[k] for k in PASSED_ENV if os.environ.get(k)}
    env["ECHO_AGENT_HOME"] = str(home)
    return env


def systemd_quote(word: str, command: bool = False) -> str:
    """One word of a unit file's Environment= (or, with `command`, ExecStart=): double-quoted, with `\\`, `"` and
    `%` (a specifier) escaped, and `$` (a variable, in a command line only) too, so any path survives."""
    if "\n" in word:
        raise UpdaterError(f"a path with a newline cannot go into a unit file: {word!r}")
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return '"' + (escaped.replace("$", "$$") if command else escaped) + '"'


def unit_text(home: Path, window: Window | None, interval: float, min_new_tokens: int) -> str:
    args = daemon.daemon_args(home, interval, min_new_tokens, None, window)
    env = "\n".join(f"Environment={systemd_quote(f'{k}={v}')}" for k, v in _environment(home).items())
    return f"""[Unit]
Description=echo-agent background updater for {str(home).replace("%", "%%")}

[Service]
Type=simple
ExecStart={' '.join(systemd_quote(a, command=True) for a in args)}
{env}
Nice=19
CPUSchedulingPolicy=idle
IOSchedulingClass=idle
Restart=on-failure
RestartSec=60

[Install]
WantedBy=default.target
"""


def cron_line(home: Path, window: Window | None, interval: float, min_new_tokens: int) -> str:
    args = daemon.daemon_args(home, interval, min_new_tokens, None, window)
    env = " ".join(shlex.quote(f"{k}={v}") for k, v in _environment(home).items())
    log = shlex.quote(str(home / "updater.log"))
    return f"{CRON_SCHEDULE} {env} {shlex.join(args)} >> {log} 2>&1 {marker(home)}"


def marker(home: Path) -> str:
    return f"# echo-agent updater for {home}"


def _run(args: list[str], **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, **kw)


def systemd_user_available() -> bool:
    """Can this user talk to their systemd user instance?"""
    if shutil.which("systemctl") is None:
        return False
    try:
        return _run(["systemctl", "--user", "show-environment"]).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def unit_dir() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "systemd" / "user"


def lingering() -> bool | None:
    """Does systemd keep this user's services running after logout? None when it cannot be told."""
    if shutil.which("loginctl") is None:
        return None
    user = os.environ.get("USER") or str(os.getuid())
    try:
        out = _run(["loginctl", "show-user", user, "--property=Linger", "--value"])
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {"yes": True, "no": False}.get(out.stdout.strip()) if out.returncode == 0 else None


def plan(home: Path, window: Window | None, interval: float = 60.0, min_new_tokens: int = 2000,
         kind: str | None = None) -> Plan:
    """What install would write here: a systemd unit where the user instance answers, else a crontab line."""
    kind = kind or ("systemd" if systemd_user_available() else "cron" if shutil.which("crontab") else "")
    if kind == "systemd":
        name = unit_name(home)
        return Plan("systemd", unit_text(home, window, interval, min_new_tokens), unit_dir() / name, name)
    if kind == "cron":
        return Plan("cron", cron_line(home, window, interval, min_new_tokens))
    raise UpdaterError("neither a systemd user instance nor crontab is available here: run `echo-agent updater "
                       "start` yourself (from your shell's startup file, say)")


def installed(home: Path) -> dict[str, Any] | None:
    path = home / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise UpdaterError(f"{path} is not valid JSON ({e}); remove what it names by hand, then the file") from e


def _check_home(home: Path) -> None:
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UpdaterError(f"cannot create the home {home} ({e.strerror or e}); nothing was installed") from e
    if not os.access(home, os.W_OK):
        raise UpdaterError(f"the home {home} is not writable; nothing was installed")


def install(home: Path, p: Plan) -> list[str]:
    """Write and enable what `p` says; returns what to tell the user. Raises UpdaterError, leaving nothing."""
    _check_home(home)
    if (done := installed(home)) is not None:
        raise UpdaterError(f"the updater is already installed for {home} ({described(done)}); "
                           "`echo-agent updater uninstall` first")
    manifest: dict[str, Any] = {"kind": p.kind}
    if p.kind == "systemd":
        assert p.path is not None
        if p.path.exists():
            raise UpdaterError(f"{p.path} exists and echo-agent has no record of writing it; remove it or "
                               "disable it first, then install again")
        atomic_write_text(p.path, p.text)
        steps = [["systemctl", "--user", "daemon-reload"], ["systemctl", "--user", "enable", "--now", p.unit]]
        for args in steps:
            out = _run(args)
            if out.returncode != 0:
                _undo_systemd(p.path, p.unit)
                raise UpdaterError(f"`{shlex.join(args)}` failed ({(out.stderr or out.stdout).strip()[:200]}); "
                                   "nothing was installed")
        manifest.update(unit=p.unit, path=str(p.path))
    else:
        current = _crontab()
        _set_crontab(current.rstrip("\n") + ("\n" if current.strip() else "") + p.text + "\n")
        manifest.update(line=p.text)
    try:
        atomic_write_text(home / MANIFEST, json.dumps(manifest, indent=2))
    except OSError as e:
        uninstall_what(home, manifest)
        raise UpdaterError(f"cannot record the install in {home / MANIFEST} ({e.strerror}); nothing was "
                           "installed") from e
    said = [f"installed: {described(manifest)}"]
    if p.kind == "systemd":
        said.append(f"the unit: {p.path}; its log: {home / 'updater.log'} and `journalctl --user -u {p.unit}`")
        linger = lingering()
        if linger is False:
            said.append("systemd stops your user services when you log out: `loginctl enable-linger` keeps the "
                        "updater running (and starting at boot)")
        elif linger is None:
            said.append("could not tell whether lingering is on: without it (`loginctl enable-linger`) the "
                        "updater stops when you log out")
    else:
        said.append(f"the crontab line starts the updater every ten minutes when it is not running; log: "
                    f"{home / 'updater.log'}")
    return said


def described(manifest: dict[str, Any]) -> str:
    if manifest.get("kind") == "systemd":
        return f"systemd user unit {manifest.get('unit')} at {manifest.get('path')}"
    return "a crontab entry"


def _undo_systemd(path: Path, unit: str) -> None:
    _run(["systemctl", "--user", "disable", "--now", unit])
    path.unlink(missing_ok=True)
    _run(["systemctl", "--user", "daemon-reload"])


def _crontab() -> str:
    out = _run(["crontab", "-l"])
    if out.returncode != 0:
        if "no crontab" in (out.stderr + out.stdout).lower():
            return ""
        raise UpdaterError(f"`crontab -l` failed ({out.stderr.strip()[:200]}); nothing was changed")
    return out.stdout


def _set_crontab(text: str) -> None:
    out = _run(["crontab", "-"], input=text)
    if out.returncode != 0:
        raise UpdaterError(f"`crontab -` failed ({out.stderr.strip()[:200]}); the crontab was not changed")


def uninstall_what(home: Path, manifest: dict[str, Any]) -> None:
    if manifest.get("kind") == "systemd":
        _undo_systemd(Path(manifest["path"]), manifest["unit"])
    elif manifest.get("kind") == "cron":
        lines = _crontab().splitlines()
        kept = [line for line in lines if line != manifest["line"]]
        if len(kept) != len(lines):
            _set_crontab("\n".join(kept) + ("\n" if kept else ""))


def uninstall(home: Path) -> list[str]:
    """Stop the daemon and remove what install wrote; returns what to tell the user."""
    manifest = installed(home)
    if manifest is None:
        stopped = daemon.stop(home)
        return [f"the updater is not installed for {home}" + ("; the running updater was stopped" if stopped
                                                              else "")]
    uninstall_what(home, manifest)
    stopped = daemon.stop(home)  # a cron-started or hand-started daemon; systemd stopped its own
    (home / MANIFEST).unlink()
    return [f"removed {described(manifest)}" + ("; the running updater was stopped" if stopped else "")]
