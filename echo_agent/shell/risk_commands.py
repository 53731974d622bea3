"""Rules for the commands whose risk depends on their arguments, for the risk classifier (risk.py).

Each handler takes the analysis in progress, the command name and its arguments, and records findings with
`add`; handlers for commands that run other commands (`find -exec`, `su -c`, `eval`) hand those back through
`argv` and `script`. `HANDLERS` maps a command name to its handler; `package_manager` covers apt, pip, npm and
the rest of `PACKAGE_MANAGERS`. The argv parsing helpers shared with risk.py live here too.

This module does not import risk.py: the analysis reaches the handlers as a `Findings` object.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Protocol

from echo_agent.shell.risk_tables import (
    DESTRUCTIVE,
    DPKG_QUERIES,
    GIT_GLOBAL_VALUE_OPTIONS,
    GIT_READ_ONLY,
    GIT_WRITES,
    HARMLESS_DEVICES,
    IP_CHANGES,
    NETWORK,
    PACKAGE_MANAGERS,
    PRIVILEGED,
    READ_ONLY,
    SYSTEMCTL_READS,
    WRITES,
)


class Findings(Protocol):
    """What a handler may do with the analysis in progress (risk._Analysis)."""

    def add(self, level: str, reason: str, denied: bool = False) -> None:
        """Record one finding."""

    def script(self, text: str) -> None:
        """Classify a bash script string (`su -c`, `eval`)."""

    def argv(self, argv: list[str]) -> None:
        """Classify one simple command (`find -exec`)."""


Handler = Callable[[Findings, str, list[str]], None]


# --- argv helpers ----------------------------------------------------------------------------------------


def short_flags(args: Iterable[str]) -> str:
    """The letters of every short-option cluster (`-rf -v` -> "rfv")."""
    return "".join(a[1:] for a in args if a.startswith("-") and not a.startswith("--"))


def parse_options(args: list[str], takes_value: frozenset[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """Leading options as (option, value) pairs, and the arguments after them."""
    options: list[tuple[str, str]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return options, args[i + 1 :]
        if not arg.startswith("-") or arg == "-":
            break
        if arg in takes_value and i + 1 < len(args):
            options.append((arg, args[i + 1]))
            i += 2
        else:
            options.append((arg, ""))
            i += 1
    return options, args[i:]


def program_and_operands(
    args: list[str], takes_value: frozenset[str]
) -> tuple[list[tuple[str, str]], list[str]]:
    """Options anywhere on the line (sed, awk style) and the remaining operands."""
    options: list[tuple[str, str]] = []
    operands: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            operands.extend(args[i + 1 :])
            break
        if arg.startswith("-") and arg != "-":
            if arg in takes_value and i + 1 < len(args):
                options.append((arg, args[i + 1]))
                i += 1
            else:
                options.append((arg, ""))
        else:
            operands.append(arg)
        i += 1
    return options, operands


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


def _git(a: Findings, name: str, args: list[str]) -> None:
    _, rest = parse_options(args, GIT_GLOBAL_VALUE_OPTIONS)
    if not rest:
        a.add(READ_ONLY, "git alone prints help")
        return
    sub, args = rest[0], rest[1:]
    handler = _GIT_SUBCOMMANDS.get(sub)
    if handler:
        handler(a, sub, args)
    elif sub in GIT_READ_ONLY:
        if any(arg.startswith("--output") for arg in args):
            a.add(WRITES, f"git {sub} --output writes a file")
        a.add(READ_ONLY, f"git {sub} only reads")
    elif sub in GIT_WRITES:
        a.add(WRITES, f"git {sub} changes the repository")
    else:
        a.add(WRITES, f"unknown git subcommand '{sub}'")


def _git_branch(a: Findings, sub: str, args: list[str]) -> None:
    flags = set(args)
    force = bool(flags & {"-f", "--force"})
    if "-D" in flags or (flags & {"-d", "--delete"} and force):
        a.add(DESTRUCTIVE, "git branch -D deletes a branch")
    elif (
        flags
        & {
            "-d",
            "--delete",
            "-m",
            "-M",
            "-c",
            "-C",
            "--move",
            "--copy",
            "--unset-upstream",
            "--edit-description",
            "-u",
            "--set-upstream-to",
        }
        or force
        or any(arg.startswith("--set-upstream-to=") for arg in args)
    ):
        a.add(WRITES, "git branch changes branches")
    else:
        _, operands = program_and_operands(
            args,
            frozenset(
                {
                    "--contains",
                    "--no-contains",
                    "--merged",
                    "--no-merged",
                    "--points-at",
                    "--sort",
                    "--format",
                }
            ),
        )
        if operands and not flags & {"--list", "-l"}:
            a.add(WRITES, "git branch creates a branch")
        else:
            a.add(READ_ONLY, "git branch only lists")


def _git_remote(a: Findings, sub: str, args: list[str]) -> None:
    if not args or args[0] in ("-v", "--verbose", "show", "get-url"):
        a.add(READ_ONLY, "git remote only lists")
    elif args[0] == "update":
        a.add(NETWORK, "git remote update fetches")
    else:
        a.add(WRITES, "git remote changes remotes")


def _git_config(a: Findings, sub: str, args: list[str]) -> None:
    options, operands = program_and_operands(
        args, frozenset({"-f", "--file", "--blob", "--type", "--default", "--comment"})
    )
    flags = {option.split("=", 1)[0] for option, _ in options}
    writing = {
        "--unset",
        "--unset-all",
        "--add",
        "--replace-all",
        "--rename-section",
        "--remove-section",
        "--edit",
        "-e",
    }
    reading = {"--get", "--get-all", "--get-regexp", "--get-urlmatch", "--list", "-l"}
    if flags & writing or (
        operands and operands[0] in ("set", "unset", "edit", "rename-section", "remove-section")
    ):
        a.add(WRITES, "git config changes settings")
    elif flags & reading or (operands and operands[0] in ("get", "list")) or len(operands) == 1:
        a.add(READ_ONLY, "git config only reads")
    else:
        a.add(WRITES, "git config changes settings")


def _git_tag(a: Findings, sub: str, args: list[str]) -> None:
    if not args or {"-l", "--list"} & set(args) or all(arg.startswith("-n") for arg in args):
        a.add(READ_ONLY, "git tag only lists")
    else:
        a.add(WRITES, "git tag creates or deletes tags")


def _git_stash(a: Findings, sub: str, args: list[str]) -> None:
    action = args[0] if args else "push"
    if action in ("list", "show"):
        a.add(READ_ONLY, f"git stash {action} only reads")
    elif action in ("drop", "clear"):
        a.add(DESTRUCTIVE, f"git stash {action} discards stashed changes")
    else:
        a.add(WRITES, "git stash changes the working tree")


def _git_reset(a: Findings, sub: str, args: list[str]) -> None:
    if {"--hard", "--merge", "--keep"} & set(args):
        a.add(DESTRUCTIVE, "git reset --hard discards local changes")
    else:
        a.add(WRITES, "git reset moves the branch")


def _git_clean(a: Findings, sub: str, args: list[str]) -> None:
    if "--force" in args or "f" in short_flags(args):
        a.add(DESTRUCTIVE, "git clean -f deletes untracked files")
    elif {"-n", "--dry-run"} & set(args):
        a.add(READ_ONLY, "git clean -n only lists")
    else:
        a.add(WRITES, "git clean may delete untracked files")


def _git_checkout(a: Findings, sub: str, args: list[str]) -> None:
    if {"--", ".", "-f", "--force"} & set(args):
        a.add(DESTRUCTIVE, "git checkout discards local changes")
    else:
        a.add(WRITES, "git checkout switches branches or files")


def _git_restore(a: Findings, sub: str, args: list[str]) -> None:
    staged_only = {"--staged", "-S"} & set(args) and not {"--worktree", "-W"} & set(args)
    if staged_only:
        a.add(WRITES, "git restore --staged unstages changes")
    else:
        a.add(DESTRUCTIVE, "git restore discards local changes")


def _git_push(a: Findings, sub: str, args: list[str]) -> None:
    a.add(NETWORK, "git push uploads commits")
    forced = {"--force", "-f", "--mirror", "--delete", "-d", "--force-if-includes"} & set(args)
    if forced or any(arg.startswith("--force-with-lease") or arg.startswith("+") for arg in args):
        a.add(DESTRUCTIVE, "git push --force rewrites remote history")


def _git_network(a: Findings, sub: str, args: list[str]) -> None:
    a.add(NETWORK, f"git {sub} uses the network")
    if sub in ("clone", "pull"):
        a.add(WRITES, f"git {sub} writes files")


def _git_submodule(a: Findings, sub: str, args: list[str]) -> None:
    action = args[0] if args else "status"
    if action in ("status", "summary"):
        a.add(READ_ONLY, f"git submodule {action} only reads")
    elif action in ("update", "sync"):
        a.add(NETWORK, "git submodule update uses the network")
        a.add(WRITES, "git submodule update writes files")
    else:
        a.add(WRITES, "git submodule changes submodules")


_GIT_SUBCOMMANDS: dict[str, Handler] = {
    "branch": _git_branch,
    "remote": _git_remote,
    "config": _git_config,
    "tag": _git_tag,
    "stash": _git_stash,
    "reset": _git_reset,
    "clean": _git_clean,
    "checkout": _git_checkout,
    "restore": _git_restore,
    "push": _git_push,
    "submodule": _git_submodule,
    **dict.fromkeys(("fetch", "clone", "pull", "ls-remote"), _git_network),
}


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
    "git": _git,
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
