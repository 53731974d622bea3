"""Rules for the commands whose risk depends on their arguments, for the risk classifier (risk.py).

Each handler takes the analysis in progress, the command name and its arguments, and records findings with
`add`; handlers for commands that run other commands (`find -exec`, `su -c`, `eval`) hand those back through
`argv` and `script`. `HANDLERS` maps a command name to its handler; `package_manager` covers apt, pip, npm and
the rest of `PACKAGE_MANAGERS`. git has a module of its own (risk_git.py); the analysis type and the argv
parsing helpers are in risk_argv.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from echo_agent.shell.risk_argv import Findings, Handler, program_and_operands, short_flags
from echo_agent.shell.risk_git import git
from echo_agent.shell.risk_tables import (
    DESTRUCTIVE,
    DPKG_QUERIES,
    HARMLESS_DEVICES,
    IP_CHANGES,
    NETWORK,
    PACKAGE_MANAGERS,
    PRIVILEGED,
    READ_ONLY,
    SYSTEMCTL_READS,
    WRITES,
)

# --- package managers ------------------------------------------------------------------------------------


def package_manager(a: Findings, name: str, args: list[str]) -> None:
    """Classify a package manager by its subcommand (the first non-option argument) in PACKAGE_MANAGERS."""
    pm = PACKAGE_MANAGERS[name]
    sub = next((arg for arg in args if not arg.startswith("-")), "")
    if not sub:
        if name == "yarn" and not args:
            sub = "install"
        else:
            a.add(READ_ONLY, f"{name} alone prints help")
            return
    if sub in pm.reads:
        a.add(READ_ONLY, f"{name} {sub} only reads")
    elif sub in pm.queries:
        a.add(NETWORK, f"{name} {sub} queries a package index")
    elif sub in pm.installs:
        a.add(WRITES, f"{name} {sub} changes installed packages")
        a.add(NETWORK, f"{name} {sub} downloads packages")
    elif sub in pm.removes:
        a.add(WRITES, f"{name} {sub} changes installed packages")
    else:
        a.add(WRITES, f"unknown {name} subcommand '{sub}'")


# --- commands classified by their arguments ---------------------------------------------------------------


def _sudo_like_su(a: Findings, name: str, args: list[str]) -> None:
    a.add(PRIVILEGED, f"{name} runs as another user")
    for i, arg in enumerate(args):
        if arg in ("-c", "--command") and i + 1 < len(args):
            a.script(args[i + 1])
        elif arg.startswith("--command="):
            a.script(arg.split("=", 1)[1])


def _eval(a: Findings, name: str, args: list[str]) -> None:
    a.script(" ".join(args))


def _source(a: Findings, name: str, args: list[str]) -> None:
    a.add(WRITES, f"{name} runs {args[0] if args else 'a file'} in this shell")


def _find(a: Findings, name: str, args: list[str]) -> None:
    a.add(READ_ONLY, "find only reads")
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-delete":
            a.add(DESTRUCTIVE, "find -delete deletes files")
        elif arg in ("-exec", "-execdir", "-ok", "-okdir"):
            end = next((j for j in range(i + 1, len(args)) if args[j] in (";", "+")), len(args))
            inner = args[i + 1 : end]
            if inner:
                a.argv(inner)
            else:
                a.add(WRITES, f"find {arg} without a command")
            i = end
        elif arg in ("-fprint", "-fprint0", "-fprintf", "-fls"):
            a.add(WRITES, f"find {arg} writes a file")
        i += 1


_SED_WRITING_SCRIPT = re.compile(r"(?:^|[;{}\n/0-9$])\s*[wWe](?:\s|;|$)")


def _sed(a: Findings, name: str, args: list[str]) -> None:
    options, operands = program_and_operands(args, frozenset({"-e", "-f", "-l", "--expression", "--file"}))
    scripts = [value for option, value in options if option in ("-e", "--expression")]
    scripts += [option[2:] for option, _ in options if option.startswith("-e") and len(option) > 2]
    if not any(
        option in ("-e", "--expression", "-f", "--file") or option.startswith("-e") for option, _ in options
    ):
        scripts += operands[:1]
    for option, _ in options:
        letters = option[1:].split("e", 1)[0].split("f", 1)[0] if not option.startswith("--") else ""
        if option.startswith("--in-place") or "i" in letters:
            a.add(WRITES, "sed -i edits files in place")
        if option in ("-f", "--file") or option.startswith("--file="):
            a.add(WRITES, "sed runs a script file")
    if any(_SED_WRITING_SCRIPT.search(script) for script in scripts):
        a.add(WRITES, "sed script writes files or runs commands")
    a.add(READ_ONLY, "sed only reads")


def _awk(a: Findings, name: str, args: list[str]) -> None:
    options, operands = program_and_operands(args, frozenset({"-F", "-v", "-f", "-i", "-e", "--source"}))
    programs = [value for option, value in options if option in ("-e", "--source")]
    if any(option == "-f" or option.startswith("--file") for option, _ in options):
        a.add(WRITES, f"{name} runs a program file")
    elif not programs:
        programs = operands[:1]
    if any(option == "-i" and value == "inplace" for option, value in options):
        a.add(WRITES, f"{name} -i inplace edits files")
    if any(re.search(r"system\s*\(|>|\|", program) for program in programs):
        a.add(WRITES, f"{name} program may write files or run commands")
    a.add(READ_ONLY, f"{name} only reads")


def _tee(a: Findings, name: str, args: list[str]) -> None:
    files = [arg for arg in args if not arg.startswith("-")]
    written = [f for f in files if f not in HARMLESS_DEVICES]
    if written:
        a.add(WRITES, f"tee writes {written[0]}")
    else:
        a.add(READ_ONLY, "tee only copies to its output")


def _curl(a: Findings, name: str, args: list[str]) -> None:
    a.add(NETWORK, "curl uses the network")
    for i, arg in enumerate(args):
        following = args[i + 1] if i + 1 < len(args) else ""
        if arg in ("-O", "--remote-name", "--remote-name-all", "-J", "--remote-header-name") or (
            not arg.startswith("--") and arg.startswith("-") and "O" in arg
        ):
            a.add(WRITES, "curl -O writes a file")
        elif arg in ("-o", "--output", "-D", "--dump-header", "-c", "--cookie-jar") or (
            not arg.startswith("--") and arg.startswith("-") and arg.endswith("o")
        ):
            if following not in ("-", *HARMLESS_DEVICES):
                a.add(WRITES, f"curl {arg} writes {following}")
        elif arg.startswith("--output="):
            a.add(WRITES, f"curl writes {arg.split('=', 1)[1]}")


def _wget(a: Findings, name: str, args: list[str]) -> None:
    a.add(NETWORK, "wget uses the network")
    target = None
    for i, arg in enumerate(args):
        if arg == "--spider":
            target = "-"
        elif arg in ("-O", "--output-document"):
            target = args[i + 1] if i + 1 < len(args) else ""
        elif arg.startswith("--output-document="):
            target = arg.split("=", 1)[1]
        elif not arg.startswith("--") and arg.startswith("-") and "O" in arg:
            target = arg.split("O", 1)[1] or (args[i + 1] if i + 1 < len(args) else "")
        elif arg in ("-o", "--output-file", "-a", "--append-output"):
            a.add(WRITES, "wget writes a log file")
    if target not in ("-", *HARMLESS_DEVICES):
        a.add(WRITES, f"wget writes {target or 'the downloaded file'}")


def _rsync(a: Findings, name: str, args: list[str]) -> None:
    operands = [arg for arg in args if not arg.startswith("-")]
    if any(arg.startswith("rsync://") or re.match(r"^[^/]*:", arg) for arg in operands):
        a.add(NETWORK, f"{name} copies to or from another host")
    a.add(WRITES, f"{name} writes files")
    if name == "rsync" and any(
        arg.startswith("--delete") or arg.startswith("--remove-source") for arg in args
    ):
        a.add(DESTRUCTIVE, "rsync --delete deletes files")


def _when(condition: Callable[[list[str]], bool], level: str, reason: str, otherwise: str) -> Handler:
    """A handler for a read-only command that some arguments make riskier."""

    def handler(a: Findings, name: str, args: list[str]) -> None:
        if condition(args):
            a.add(level, f"{name} {reason}")
        else:
            a.add(READ_ONLY, f"{name} {otherwise}")

    return handler


def _operands(args: list[str]) -> list[str]:
    return [arg for arg in args if not arg.startswith("-")]


def _has(*flags: str) -> Callable[[list[str]], bool]:
    return lambda args: any(
        arg in flags or any(arg.startswith(f + "=") for f in flags if f.startswith("--")) for arg in args
    )


def _systemctl_reads(args: list[str]) -> bool:
    operands = _operands(args)
    return not operands or operands[0] in SYSTEMCTL_READS


def _systemctl(a: Findings, name: str, args: list[str]) -> None:
    if _systemctl_reads(args):
        a.add(READ_ONLY, "systemctl only reads")
    elif "--user" in args:
        a.add(WRITES, "systemctl --user changes user services")
    else:
        a.add(PRIVILEGED, "systemctl changes system services")


def _tar_lists(args: list[str]) -> bool:
    """`tar -tf`, `tar tf` (old style: the first argument is the options), `tar --list`."""
    old_style = args[0] if args and not args[0].startswith("-") else ""
    return "--list" in args or "t" in old_style or "t" in short_flags(args)


def _date_sets_clock(args: list[str]) -> bool:
    options, operands = program_and_operands(
        args, frozenset({"-d", "--date", "-r", "--reference", "-f", "--file"})
    )
    return any(option in ("-s", "--set") or option.startswith("--set=") for option, _ in options) or any(
        not operand.startswith("+") for operand in operands
    )


def _scp(a: Findings, name: str, args: list[str]) -> None:
    a.add(NETWORK, "scp copies between hosts")
    a.add(WRITES, "scp writes files")


def _npx(a: Findings, name: str, args: list[str]) -> None:
    a.add(NETWORK, "npx downloads a package")
    a.add(WRITES, "npx runs a package")


def _crontab(a: Findings, name: str, args: list[str]) -> None:
    if args == ["-l"]:
        a.add(READ_ONLY, "crontab -l only reads")
    elif "-r" in args:
        a.add(DESTRUCTIVE, "crontab -r deletes the crontab")
    else:
        a.add(WRITES, "crontab changes scheduled jobs")


HANDLERS: dict[str, Handler] = {
    "su": _sudo_like_su,
    "eval": _eval,
    "source": _source,
    ".": _source,
    "find": _find,
    "sed": _sed,
    **dict.fromkeys(("awk", "gawk", "mawk", "nawk"), _awk),
    "tee": _tee,
    "git": git,
    "curl": _curl,
    "wget": _wget,
    "rsync": _rsync,
    "scp": _scp,
    "systemctl": _systemctl,
    "service": _when(
        lambda args: not ({"--status-all"} & set(args) or args[1:2] == ["status"]),
        PRIVILEGED,
        "changes system services",
        "only reads",
    ),
    "mount": _when(bool, PRIVILEGED, "attaches filesystems", "alone lists mounts"),
    "ip": _when(
        lambda args: bool(IP_CHANGES & set(args)), PRIVILEGED, "changes network settings", "only reads"
    ),
    "sysctl": _when(
        lambda args: "-w" in args or any("=" in arg for arg in args),
        PRIVILEGED,
        "changes kernel settings",
        "only reads",
    ),
    "hostname": _when(
        lambda args: bool(_operands(args)) or "-F" in args, PRIVILEGED, "renames the machine", "only reads"
    ),
    "date": _when(_date_sets_clock, PRIVILEGED, "sets the clock", "only reads"),
    "dmesg": _when(
        _has("-c", "-C", "--clear", "-D", "-E", "--console-off", "--console-on"),
        PRIVILEGED,
        "changes the kernel log",
        "only reads",
    ),
    "journalctl": _when(
        lambda args: any(arg.startswith(("--vacuum", "--rotate", "--flush", "--relinquish")) for arg in args),
        PRIVILEGED,
        "changes the journal",
        "only reads",
    ),
    "sort": _when(
        lambda args: any(
            arg.startswith("--output") or (arg.startswith("-") and not arg.startswith("--") and "o" in arg)
            for arg in args
        ),
        WRITES,
        "-o writes a file",
        "only reads",
    ),
    "uniq": _when(lambda args: len(_operands(args)) >= 2, WRITES, "writes its output file", "only reads"),
    "xxd": _when(lambda args: len(_operands(args)) >= 2, WRITES, "writes its output file", "only reads"),
    "tree": _when(_has("-o"), WRITES, "-o writes a file", "only reads"),
    "rg": _when(
        lambda args: any(arg.startswith("--pre") for arg in args),
        WRITES,
        "--pre runs a command",
        "only reads",
    ),
    "top": _when(
        lambda args: "-b" not in args and "b" not in short_flags(args),
        WRITES,
        "is interactive (use top -b -n1)",
        "only reads",
    ),
    "kill": _when(
        lambda args: args not in (["-l"], ["-L"]), DESTRUCTIVE, "stops processes", "only lists signals"
    ),
    "crontab": _crontab,
    "tar": _when(lambda args: not _tar_lists(args), WRITES, "writes files", "-t only lists"),
    "unzip": _when(
        lambda args: not ({"-l", "-v", "-Z", "-t"} & set(args)), WRITES, "writes files", "only lists"
    ),
    "dpkg": _when(
        lambda args: not DPKG_QUERIES & set(args), WRITES, "changes installed packages", "only reads"
    ),
    "rpm": _when(
        lambda args: not args or not args[0].startswith("-q"),
        WRITES,
        "changes installed packages",
        "-q only reads",
    ),
    "pacman": _when(
        lambda args: not (args and (args[0].startswith("-Q") or re.fullmatch(r"-S[silgq]+", args[0]))),
        NETWORK,
        "changes installed packages",
        "only queries",
    ),
    "npx": _npx,
}
