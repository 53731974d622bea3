"""How risky is a shell command? One classifier for the safety policy and for world-model recall.

Levels, in order: read_only < writes < network < destructive < privileged. A command's level is the highest
level found anywhere in it; `denied` marks the deny list (known catastrophes refused in every mode).

Approach: parse with bashlex (a real bash parser) and walk the AST, so pipelines, lists, subshells, groups,
loops, `$(…)`, backticks, process substitution and redirections are all seen. Each simple command is reduced to
its argv and classified by name: wrappers (`sudo`, `env`, `timeout`, `xargs`, …) are peeled off and their inner
command classified too; script strings (`bash -c`, `sh -c`, `su -c`, `eval`) are parsed recursively; a few
commands (`git`, `find`, `sed`, `awk`, package managers, …) are classified by their subcommands and flags.
The deny list is checked on every argv, whatever else the command is.

The classifier fails closed: an unknown command is `writes` ("unknown command 'X'"), and a string bashlex cannot
parse is `writes` ("could not parse"). An unparseable string is still scanned word by word, so `rm -rf /` hidden
in a construct bashlex lacks (`case`, `[[ … ]]`, `$((…))`, `select`, `coproc`) is still denied.

Decisions worth knowing:
- `cd`/`pushd`/`popd`, `export`, `read` and plain assignments (`X=1`, `a=(x y)`) are read_only: they change
  only the shell's own state, never files. (`set`, `unset`, `alias` are not: they can break or subvert the
  persistent shell.)
- `X --help`, `X -h`, `X --version` (the only argument) are read_only for any X, except `-h` for
  shutdown/halt/poweroff/reboot (where it means "halt") and for sh/bash/dash/ksh (where it is a shell option).
- `tee` with no file or only /dev/null, /dev/stdout, /dev/stderr is read_only; any other file is `writes`.
- Package installs are writes + network (level network); removals are writes.
- Names in `extra_read_only` (a name, or a word prefix such as "kubectl get") are trusted as given; redirections
  and the deny list still apply, and commands that run other commands (sudo, env, xargs, shells, eval, su)
  cannot be declared read-only.
- A function definition is `writes` (it changes what later names mean), and its body is checked too.
- The body of a heredoc is checked for `$(…)`/backticks, quoted delimiter or not (bashlex cannot tell them apart
  after the rewrite below), so a quoted heredoc holding backticks may come out `writes`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

import bashlex

READ_ONLY = "read_only"
WRITES = "writes"
NETWORK = "network"
DESTRUCTIVE = "destructive"
PRIVILEGED = "privileged"
LEVELS = (READ_ONLY, WRITES, NETWORK, DESTRUCTIVE, PRIVILEGED)
_RANK = {level: rank for rank, level in enumerate(LEVELS)}


@dataclass(frozen=True)
class Risk:
    level: str
    """One of LEVELS: the highest level found over all parts of the command."""
    reasons: tuple[str, ...]
    """Short human-readable reasons, deny-list reasons first, then the most serious."""
    denied: bool
    """True for the deny list: refused in every mode, even with --yes."""


# --- command tables ---------------------------------------------------------------------------------------

READ_ONLY_COMMANDS = frozenset(
    """
    ls cat head tail less more grep egrep fgrep zgrep rg ag stat file wc du df pwd echo printf which type whereis
    whoami id uname env printenv ps free uptime lsblk lscpu lsusb lspci lsof realpath readlink basename dirname
    cut tr jq diff cmp md5sum sha1sum sha224sum sha256sum sha384sum sha512sum b2sum cksum true false test [ :
    column nl od hexdump strings cd pushd popd export sleep zcat bzcat xzcat nproc arch groups who w tty locale
    getconf getent seq rev tac paste join comm fold fmt expr findmnt ss netstat pgrep pidof vmstat iostat base64
    cal man whatis apropos locate apt-cache dpkg-query lsattr getfacl hostnamectl timedatectl read
    """.split()
)
_SHELL_STATE = frozenset({"cd", "pushd", "popd", "export", "read"})

_DESTRUCTIVE = {
    "rm": "rm deletes files",
    "rmdir": "rmdir deletes directories",
    "unlink": "unlink deletes a file",
    "shred": "shred destroys file contents",
    "truncate": "truncate cuts files short",
    "dd": "dd writes raw data",
    "kill": "kill stops processes",
    "pkill": "pkill stops processes",
    "killall": "killall stops processes",
    "shutdown": "shutdown powers off the machine",
    "reboot": "reboot restarts the machine",
    "halt": "halt stops the machine",
    "poweroff": "poweroff powers off the machine",
    "wipefs": "wipefs erases filesystem signatures",
    "fdisk": "fdisk edits partition tables",
    "sfdisk": "sfdisk edits partition tables",
    "parted": "parted edits partition tables",
    "mkswap": "mkswap formats a swap area",
}
_PRIVILEGED = {
    name: f"{name} changes the system"
    for name in """chroot useradd userdel usermod groupadd groupdel passwd chpasswd visudo insmod rmmod modprobe
    iptables ip6tables nft ufw swapon swapoff""".split()
} | {"umount": "umount detaches filesystems"}
_NETWORK = {
    name: f"{name} uses the network"
    for name in """ssh sftp telnet ftp nc ncat netcat ping ping6 dig nslookup host traceroute tracepath mtr whois
    nmap http https""".split()
}
_WRITES = {
    name: f"{name} modifies files"
    for name in "mkdir touch cp mv ln install chmod chown chgrp zip gzip gunzip bzip2 xz unxz make patch mkfifo".split()
}
_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "fish"})
_INTERPRETERS = frozenset({"python", "python2", "python3", "perl", "ruby", "node", "php"})
_CODE_RUNNERS = _SHELLS | _INTERPRETERS | {"eval", "source", "."}
_DOWNLOADERS = frozenset({"curl", "wget", "fetch"})
_HELP_FLAGS = frozenset({"--help", "-h", "--version"})
_DASH_H_IS_NOT_HELP = frozenset({"shutdown", "halt", "poweroff", "reboot", "sh", "bash", "dash", "ksh"})
_SHELL_KEYWORDS = frozenset(
    "if then else elif fi do done while until for in case esac select function time coproc ! [[ ]] { }".split()
)

# Wrappers run another command: name -> (options that take a value, what the wrapper itself adds).
_WRAPPERS: dict[str, tuple[frozenset[str], tuple[str, str] | None]] = {
    "sudo": (
        frozenset("-u -g -C -D -p -r -t -U -T -h --user --group --prompt --chdir".split()),
        (PRIVILEGED, "sudo runs as root"),
    ),
    "doas": (frozenset({"-u", "-C"}), (PRIVILEGED, "doas runs as root")),
    "env": (frozenset({"-u", "--unset", "-C", "--chdir", "-S", "--split-string"}), None),
    "nice": (frozenset({"-n", "--adjustment"}), None),
    "timeout": (frozenset({"-s", "--signal", "-k", "--kill-after"}), None),
    "nohup": (frozenset(), (WRITES, "nohup writes nohup.out")),
    "stdbuf": (frozenset({"-i", "-o", "-e", "--input", "--output", "--error"}), None),
    "time": (frozenset({"-f", "--format", "-o", "--output"}), None),
    "command": (frozenset(), None),
    "builtin": (frozenset(), None),
    "exec": (frozenset({"-a"}), None),
    "xargs": (
        frozenset("-a -d -E -I -L -n -P -s --arg-file --delimiter --max-args --max-procs".split()),
        None,
    ),
}


class _PackageManager(NamedTuple):
    reads: frozenset[str]  # local queries
    queries: frozenset[str]  # queries of a remote index
    installs: frozenset[str]  # download and change installed packages
    removes: frozenset[str]  # change installed packages, no download


def _pm(reads: str, queries: str, installs: str, removes: str) -> _PackageManager:
    return _PackageManager(*(frozenset(words.split()) for words in (reads, queries, installs, removes)))


_APT_INSTALLS = "install upgrade full-upgrade dist-upgrade update reinstall build-dep source download"
_APT_REMOVES = "remove purge autoremove autopurge clean autoclean"
_DNF = _pm(
    "list info repolist provides whatprovides deplist history",
    "search check-update",
    "install upgrade update reinstall downgrade makecache groupinstall",
    "remove erase autoremove clean",
)
_PACKAGE_MANAGERS = {
    "apt": _pm("list show policy depends rdepends showsrc", "search changelog", _APT_INSTALLS, _APT_REMOVES),
    "apt-get": _pm("check", "changelog", _APT_INSTALLS, _APT_REMOVES),
    "dnf": _DNF,
    "yum": _DNF,
    "brew": _pm(
        "list ls info config doctor deps leaves --prefix --cellar --repository",
        "search outdated",
        "install upgrade update reinstall tap fetch",
        "uninstall remove rm untap cleanup autoremove",
    ),
    "pip": _pm(
        "list show freeze check help debug inspect", "search index", "install download wheel", "uninstall"
    ),
    "npm": _pm(
        "ls list ll la help root prefix explain why query",
        "view info show search outdated audit",
        "install i ci add update up upgrade link",
        "uninstall remove rm un r prune dedupe",
    ),
    "yarn": _pm("list why bin", "info outdated", "add install upgrade up dlx", "remove"),
    "pnpm": _pm(
        "ls list why root bin", "outdated", "add install i update up dlx", "remove rm uninstall prune"
    ),
    "cargo": _pm(
        "tree metadata locate-project pkgid read-manifest verify-project",
        "search info",
        "install add update fetch",
        "uninstall remove",
    ),
    "gem": _pm("list info contents env which help spec", "search", "install update", "uninstall cleanup"),
}
_PACKAGE_MANAGERS["pip3"] = _PACKAGE_MANAGERS["pip"]

_GIT_READ_ONLY = frozenset(
    """status log show diff rev-parse ls-files ls-tree blame annotate describe shortlog grep cat-file rev-list
    show-ref show-branch merge-base name-rev check-ignore count-objects whatchanged help version var
    for-each-ref cherry range-diff diff-tree diff-files diff-index""".split()
)
_GIT_WRITES = frozenset(
    """add commit switch merge rebase cherry-pick revert mv rm init am apply notes worktree gc prune mergetool
    bisect sparse-checkout maintenance update-index""".split()
)
_GIT_GLOBAL_VALUE_OPTIONS = frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace"})

# --- deny-list helpers -----------------------------------------------------------------------------------

_FORK_BOMB = re.compile(r"(?P<f>[\w:.-]+)\s*\(\s*\)\s*\{\s*(?P=f)\s*\|\s*(?P=f)\s*&?\s*;?\s*\}\s*;?\s*(?P=f)")
_PIPED_DOWNLOAD = re.compile(
    r"\b(?:curl|wget|fetch)\b[^;\n]*\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:env\s+)?"
    r"(?:(?:ba|z|da|k)?sh|fish|python[23]?|perl|ruby|node)\b"
)
_SYSTEM_DIRS = frozenset(
    "/ /bin /boot /dev /etc /home /lib /lib64 /opt /proc /root /sbin /srv /sys /usr /var".split()
)
_HOME = frozenset({"~", "$HOME", "${HOME}"})
_HARMLESS_DEVICES = frozenset(
    {"/dev/null", "/dev/zero", "/dev/stdout", "/dev/stderr", "/dev/stdin", "/dev/tty"}
)
_BLOCK_DEVICE = re.compile(
    r"/dev/(sd[a-z]|hd[a-z]|vd[a-z]|xvd[a-z]|nvme\d|mmcblk\d|disk\d|dm-\d|md\d|mapper/|loop\d)"
)
_WRITE_REDIRECTS = frozenset({">", ">>", ">|", "&>", "&>>", "<>", ">&"})
_MAX_DEPTH = 8


def _is_catastrophic_target(path: str) -> bool:
    """`/`, `/*`, `~`, `$HOME/`, or a top-level system directory such as /etc."""
    path = re.sub(r"(/\*|/\.|/)+$", "", path) or "/"
    return path in _SYSTEM_DIRS or path in _HOME


def _short_flags(args: Iterable[str]) -> str:
    """The letters of every short-option cluster (`-rf -v` -> "rfv")."""
    return "".join(a[1:] for a in args if a.startswith("-") and not a.startswith("--"))


def _is_recursive(args: list[str]) -> bool:
    return "--recursive" in args or any(c in _short_flags(args) for c in "rR")


def _deny_reason(name: str, args: list[str]) -> str | None:
    """The deny-list entry this argv matches, if any."""
    shown = " ".join([name, *args])[:80]
    operands = [a for a in args if not a.startswith("-")]
    if (
        name == "rm"
        and _is_recursive(args)
        and ("--no-preserve-root" in args or any(_is_catastrophic_target(a) for a in operands))
    ):
        return shown
    if (name.startswith("mkfs") or name == "mke2fs") and operands:
        return shown
    if name == "dd" and any(
        a.startswith("of=/dev/") and a[3:] not in _HARMLESS_DEVICES and not a.startswith("of=/dev/fd/")
        for a in args
    ):
        return shown
    if (
        name in ("chmod", "chown", "chgrp")
        and _is_recursive(args)
        and any(_is_catastrophic_target(a) for a in operands[1:])
    ):
        return shown
    return None


# --- small argv helpers ----------------------------------------------------------------------------------


def _command_name(word: str) -> str | None:
    """The name to look up for argv[0]; None when it is computed at run time (`$CMD`, `$(…)`)."""
    if not word or "$" in word or "`" in word:
        return None
    if word.startswith("/"):
        return word.rsplit("/", 1)[-1] or None
    return word


def _parse_options(args: list[str], takes_value: frozenset[str]) -> tuple[list[tuple[str, str]], list[str]]:
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


def _drop_assignments(args: list[str]) -> list[str]:
    i = 0
    while i < len(args) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", args[i]):
        i += 1
    return args[i:]


def _unwrap(name: str, args: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """A wrapper's options and the command it runs (empty when it runs none)."""
    options, rest = _parse_options(args, _WRAPPERS[name][0])
    if name in ("sudo", "doas", "env"):
        rest = _drop_assignments(rest)
    if name == "timeout":
        rest = rest[1:]
    return options, rest


def _effective_argv(argv: list[str]) -> list[str]:
    """argv with wrappers peeled off (`sudo env X=1 bash` -> `bash`)."""
    for _ in range(_MAX_DEPTH):
        name = _command_name(argv[0]) if argv else None
        if name not in _WRAPPERS:
            break
        argv = _unwrap(name, argv[1:])[1]
    return argv


def _reads_program_from_stdin(argv: list[str]) -> bool:
    """`sh`, `bash -s`, `python -` run what arrives on stdin; `python -c …`, `bash script.sh` do not."""
    name = _command_name(argv[0]) if argv else None
    if name not in _SHELLS and name not in _INTERPRETERS:
        return False
    args = argv[1:]
    if name in _SHELLS and ("-s" in args or "s" in _short_flags(args)):
        return True
    if any(a in ("-c", "-e", "-m", "-E", "--eval", "--command") for a in args) or (
        name in _SHELLS and "c" in _short_flags(args)
    ):
        return False
    operands = [a for a in args if not a.startswith("-") or a == "-"]
    return not operands or operands[0] == "-"


def _program_and_operands(
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


# --- the analysis ----------------------------------------------------------------------------------------


class _Analysis:
    """Collects (level, reason, denied) findings while walking one command string."""

    def __init__(self, extra_read_only: Iterable[str]) -> None:
        self.findings: list[tuple[str, str, bool]] = []
        self.extra = [entry.split() for entry in extra_read_only if entry.split()]
        self.depth = 0

    def declared_read_only(self, name: str, argv: list[str]) -> bool:
        """Whether the user declared this command read-only; commands that run other commands never are."""
        if name in _WRAPPERS or name in _CODE_RUNNERS or name == "su":
            return False
        return any(
            argv[: len(entry)] == entry or [name, *argv[1:]][: len(entry)] == entry for entry in self.extra
        )

    def add(self, level: str, reason: str, denied: bool = False) -> None:
        self.findings.append((level, reason, denied))

    def deny(self, level: str, what: str) -> None:
        self.add(level, f"on the deny list: {what}", denied=True)

    def risk(self) -> Risk:
        findings = self.findings or [(READ_ONLY, "empty command", False)]
        level = max((f[0] for f in findings), key=_RANK.__getitem__)
        if level != READ_ONLY:
            findings = [f for f in findings if f[0] != READ_ONLY]
        ordered = sorted(findings, key=lambda f: (not f[2], -_RANK[f[0]]))
        reasons = tuple(dict.fromkeys(f[1] for f in ordered))
        return Risk(level, reasons, any(f[2] for f in findings))

    # --- strings ---

    def script(self, text: str) -> None:
        """Classify a bash script string (the top level, `bash -c`, `eval`, `su -c`)."""
        if self.depth >= _MAX_DEPTH:
            self.add(WRITES, "commands nested too deeply to check")
            return
        if _FORK_BOMB.search(text):
            self.deny(DESTRUCTIVE, "fork bomb")
        if all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()):
            return  # empty, or comments only: nothing runs
        nodes = _parse(text)
        self.depth += 1
        try:
            if nodes is None:
                self.unparsed(text)
            else:
                for node in nodes:
                    self.walk(node)
        finally:
            self.depth -= 1

    def unparsed(self, text: str) -> None:
        """Fail closed on text bashlex rejects, but still look at its words for anything worse than writes."""
        self.add(WRITES, "could not parse")
        if _PIPED_DOWNLOAD.search(text):
            self.deny(DESTRUCTIVE, "downloaded code piped to an interpreter")
        for segment in re.split(r"[;&|()\n`]|\$\(|<\(|>\(", text):
            try:
                words = shlex.split(segment)
            except ValueError:
                words = segment.split()
            while words and words[0] in _SHELL_KEYWORDS:
                words = words[1:]
            words = _drop_assignments(words)
            if words:
                self.argv(words)

    # --- the AST ---

    def walk(self, node: bashlex.ast.node) -> None:
        kind = node.kind
        if kind == "command":
            self.command(node)
        elif kind == "pipeline":
            self.pipeline(node)
        elif kind == "function":
            self.add(WRITES, "defines a shell function")
            for part in node.parts[1:]:
                self.walk(part)
        elif kind in ("commandsubstitution", "processsubstitution"):
            self.walk(node.command)
        elif kind == "parameter":
            self.parameter(node)
        elif kind == "redirect":
            self.redirect(node)
        else:  # list, compound, if, for, while, until, word, assignment, reserved words, operators
            for child in list(getattr(node, "parts", None) or []) + list(getattr(node, "list", None) or []):
                self.walk(child)

    def parameter(self, node: bashlex.ast.node) -> None:
        # bashlex leaves `${x:-$(cmd)}` unparsed inside the parameter's text.
        value = getattr(node, "value", "") or ""
        starts = [i for i in (value.find("$("), value.find("`")) if i >= 0]
        if starts:
            self.script("echo " + value[min(starts) :])

    def command(self, node: bashlex.ast.node) -> None:
        words = [p for p in node.parts if p.kind == "word"]
        for part in node.parts:
            if part.kind in ("word", "assignment"):
                for sub in getattr(part, "parts", None) or []:
                    self.walk(sub)
            elif part.kind == "redirect":
                self.redirect(part)
        argv = [w.word for w in words]
        if not argv:
            self.add(READ_ONLY, "assignment changes only shell variables")
            return
        if words[0].parts and _runs_downloader(words[0]):
            self.deny(DESTRUCTIVE, "runs downloaded code")
        effective = _effective_argv(argv)
        if (
            effective
            and _command_name(effective[0]) in _CODE_RUNNERS
            and any(_runs_downloader(w) for w in words)
        ):
            self.deny(DESTRUCTIVE, f"{effective[0]} runs downloaded code")
        self.argv(argv)

    def pipeline(self, node: bashlex.ast.node) -> None:
        stages = [p for p in node.parts if p.kind not in ("pipe", "reservedword")]
        downloaded = False
        for stage in stages:
            argvs = [_effective_argv(argv) for argv in _simple_commands(stage)]
            if downloaded and any(_reads_program_from_stdin(argv) for argv in argvs):
                self.deny(DESTRUCTIVE, "downloaded code piped to an interpreter")
            downloaded = downloaded or any(argv and _command_name(argv[0]) in _DOWNLOADERS for argv in argvs)
            self.walk(stage)

    def redirect(self, node: bashlex.ast.node) -> None:
        heredoc = getattr(node, "heredoc", None)
        if heredoc is not None:
            # bash expands `$(…)` in an unquoted heredoc's body, and bashlex leaves the body as text.
            for line in heredoc.value.splitlines():
                if "$(" in line or "`" in line:
                    self.script("echo " + line)
        target = node.output
        if not isinstance(target, bashlex.ast.node):
            return  # a file descriptor: 2>&1, >&2
        for sub in getattr(target, "parts", None) or []:
            self.walk(sub)
        if node.type not in _WRITE_REDIRECTS:
            return
        path = target.word
        if path in _HARMLESS_DEVICES or path.startswith("/dev/fd/"):
            return
        if _BLOCK_DEVICE.match(path):
            self.deny(DESTRUCTIVE, f"redirection {node.type} writes block device {path}")
        else:
            self.add(WRITES, f"redirection {node.type} writes {path}")

    # --- one simple command ---

    def argv(self, argv: list[str]) -> None:
        name = _command_name(argv[0])
        args = argv[1:]
        if name is None:
            self.add(
                WRITES,
                f"command name computed at run time: {argv[0][:40]}" if argv[0] else "empty command name",
            )
            return
        deny = _deny_reason(name, args)
        if deny:
            self.deny(DESTRUCTIVE, deny)
        if (
            len(args) == 1
            and args[0] in _HELP_FLAGS
            and not (args[0] == "-h" and name in _DASH_H_IS_NOT_HELP)
        ):
            self.add(READ_ONLY, f"{name} {args[0]} only prints")
        elif self.declared_read_only(name, argv):
            self.add(READ_ONLY, f"{name} declared read-only")
        elif name in _HANDLERS:
            _HANDLERS[name](self, name, args)
        elif name in _WRAPPERS:
            self.wrapper(name, args)
        elif name in _PACKAGE_MANAGERS:
            self.package_manager(name, args)
        elif name in READ_ONLY_COMMANDS:
            self.add(READ_ONLY, _read_only_reason(name))
        elif name.startswith("mkfs") or name == "mke2fs":
            self.add(DESTRUCTIVE, f"{name} formats a filesystem")
        elif name in _DESTRUCTIVE:
            self.add(DESTRUCTIVE, _DESTRUCTIVE[name])
        elif name in _PRIVILEGED:
            self.add(PRIVILEGED, _PRIVILEGED[name])
        elif name in _NETWORK:
            self.add(NETWORK, _NETWORK[name])
        elif name in _WRITES:
            self.add(WRITES, _WRITES[name])
        elif name in _INTERPRETERS:
            self.interpreter(name, args)
        elif name in _SHELLS:
            self.shell(name, args)
        else:
            self.add(WRITES, f"unknown command '{name}'")

    def wrapper(self, name: str, args: list[str]) -> None:
        options, inner = _unwrap(name, args)
        note = _WRAPPERS[name][1]
        if note:
            self.add(*note)
        flags = {option for option, _ in options}
        if name == "env":
            for option, value in options:
                if option in ("-S", "--split-string"):
                    self.script(value)
        if name == "time" and flags & {"-o", "--output"}:
            self.add(WRITES, "time -o writes a file")
        if name == "command" and flags & {"-v", "-V"}:
            self.add(READ_ONLY, "command -v looks up a name")
        elif name == "xargs":
            self.argv(inner or ["echo"])
        elif inner:
            self.argv(inner)
        elif name == "env":
            self.add(READ_ONLY, "env only prints the environment")
        elif not note:
            self.add(READ_ONLY, f"{name} alone runs nothing")

    def shell(self, name: str, args: list[str]) -> None:
        options, operands = _parse_options(args, frozenset({"-o", "+o", "-O", "+O"}))
        if any(
            option.startswith("-") and not option.startswith("--") and "c" in option for option, _ in options
        ):
            if operands:
                self.script(operands[0])
            else:
                self.add(WRITES, f"{name} -c without a command")
        elif operands:
            self.add(WRITES, f"{name} runs the script {operands[0]}")
        else:
            self.add(WRITES, f"{name} runs commands from its input")

    def interpreter(self, name: str, args: list[str]) -> None:
        if name.startswith("python") and args[:2] == ["-m", "pip"]:
            self.package_manager("pip", args[2:])
        else:
            self.add(WRITES, f"{name} runs code")

    def package_manager(self, name: str, args: list[str]) -> None:
        pm = _PACKAGE_MANAGERS[name]
        sub = next((a for a in args if not a.startswith("-")), "")
        if not sub:
            if name == "yarn" and not args:
                sub = "install"
            else:
                self.add(READ_ONLY, f"{name} alone prints help")
                return
        if sub in pm.reads:
            self.add(READ_ONLY, f"{name} {sub} only reads")
        elif sub in pm.queries:
            self.add(NETWORK, f"{name} {sub} queries a package index")
        elif sub in pm.installs:
            self.add(WRITES, f"{name} {sub} changes installed packages")
            self.add(NETWORK, f"{name} {sub} downloads packages")
        elif sub in pm.removes:
            self.add(WRITES, f"{name} {sub} changes installed packages")
        else:
            self.add(WRITES, f"unknown {name} subcommand '{sub}'")


def _read_only_reason(name: str) -> str:
    if name in _SHELL_STATE:
        return f"{name} changes only shell state"
    return f"{name} only reads"


def _parse(text: str) -> list[bashlex.ast.node] | None:
    """bashlex's AST, or None when it cannot parse the text (it raises many exception types, so catch all)."""
    for attempt in (text, _bashlex_workarounds(text)):
        try:
            nodes = bashlex.parse(attempt)
        except Exception:  # noqa: BLE001 - ParsingError, NotImplementedError, AttributeError, RecursionError, …
            continue
        if all(isinstance(node, bashlex.ast.node) for node in nodes):
            return nodes
    return None


def _bashlex_workarounds(text: str) -> str:
    """Rewrite common constructs bashlex rejects into ones it accepts that carry the same risk, for a second try.

    A quoted heredoc delimiter (`<<'EOF'`) is unquoted (bashlex never parses heredoc bodies anyway); the `time`
    keyword at the start of a pipeline is dropped (it only measures); `[[ … ]]` becomes `[ … ]`; an arithmetic
    expansion without commands inside (`$((i + 1))`) becomes a plain number; an array assignment without
    commands inside (`a=(x y)`) becomes a plain assignment.
    """
    text = re.sub(r"<<(-?)\s*(['\"])([^'\"\s]+)\2", r"<<\1\3", text)
    text = re.sub(r"<<(-?)\s*\\(\w+)", r"<<\1\2", text)
    text = re.sub(r"(^|[;&|(){}\n])(\s*)time(?:\s+-p)?(?=\s)", r"\1\2", text)
    text = re.sub(r"(?<![^\s;&|(!])\[\[(?=\s)", "[", text)
    text = re.sub(r"(?<=\s)\]\](?=$|[\s;&|)])", "]", text)
    plain = r"(?:[^()`$]|\$(?=[\w{]))"  # anything but a command substitution
    text = re.sub(rf"(?<![^\s;&|(])([A-Za-z_]\w*\+?=)\({plain}*\)", r"\1_", text)
    return re.sub(rf"\$\(\((?:{plain}|\({plain}*\))*\)\)", "0", text)


def _simple_commands(node: bashlex.ast.node) -> list[list[str]]:
    """The argv of every simple command in a subtree, substitutions included."""
    found: list[list[str]] = []

    def visit(n: bashlex.ast.node) -> None:
        if n.kind == "command":
            argv = [p.word for p in n.parts if p.kind == "word"]
            if argv:
                found.append(argv)
        for attr in ("parts", "list"):
            for child in getattr(n, attr, None) or []:
                visit(child)
        for attr in ("command", "output"):
            child = getattr(n, attr, None)
            if isinstance(child, bashlex.ast.node):
                visit(child)

    visit(node)
    return found


def _runs_downloader(word: bashlex.ast.node) -> bool:
    """Whether a word's `$(…)`/`<(…)` parts run curl, wget or fetch."""
    return any(
        argv and _command_name(argv[0]) in _DOWNLOADERS
        for part in getattr(word, "parts", None) or []
        for argv in map(_effective_argv, _simple_commands(part))
    )


# --- commands classified by their arguments ---------------------------------------------------------------

_Handler = Callable[[_Analysis, str, list[str]], None]


def _sudo_like_su(a: _Analysis, name: str, args: list[str]) -> None:
    a.add(PRIVILEGED, f"{name} runs as another user")
    for i, arg in enumerate(args):
        if arg in ("-c", "--command") and i + 1 < len(args):
            a.script(args[i + 1])
        elif arg.startswith("--command="):
            a.script(arg.split("=", 1)[1])


def _eval(a: _Analysis, name: str, args: list[str]) -> None:
    a.script(" ".join(args))


def _source(a: _Analysis, name: str, args: list[str]) -> None:
    a.add(WRITES, f"{name} runs {args[0] if args else 'a file'} in this shell")


def _find(a: _Analysis, name: str, args: list[str]) -> None:
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


def _sed(a: _Analysis, name: str, args: list[str]) -> None:
    options, operands = _program_and_operands(args, frozenset({"-e", "-f", "-l", "--expression", "--file"}))
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


def _awk(a: _Analysis, name: str, args: list[str]) -> None:
    options, operands = _program_and_operands(args, frozenset({"-F", "-v", "-f", "-i", "-e", "--source"}))
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


def _tee(a: _Analysis, name: str, args: list[str]) -> None:
    files = [arg for arg in args if not arg.startswith("-")]
    written = [f for f in files if f not in _HARMLESS_DEVICES]
    if written:
        a.add(WRITES, f"tee writes {written[0]}")
    else:
        a.add(READ_ONLY, "tee only copies to its output")


def _git(a: _Analysis, name: str, args: list[str]) -> None:
    _, rest = _parse_options(args, _GIT_GLOBAL_VALUE_OPTIONS)
    if not rest:
        a.add(READ_ONLY, "git alone prints help")
        return
    sub, args = rest[0], rest[1:]
    handler = _GIT_SUBCOMMANDS.get(sub)
    if handler:
        handler(a, sub, args)
    elif sub in _GIT_READ_ONLY:
        if any(arg.startswith("--output") for arg in args):
            a.add(WRITES, f"git {sub} --output writes a file")
        a.add(READ_ONLY, f"git {sub} only reads")
    elif sub in _GIT_WRITES:
        a.add(WRITES, f"git {sub} changes the repository")
    else:
        a.add(WRITES, f"unknown git subcommand '{sub}'")


def _git_branch(a: _Analysis, sub: str, args: list[str]) -> None:
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
        _, operands = _program_and_operands(
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


def _git_remote(a: _Analysis, sub: str, args: list[str]) -> None:
    if not args or args[0] in ("-v", "--verbose", "show", "get-url"):
        a.add(READ_ONLY, "git remote only lists")
    elif args[0] == "update":
        a.add(NETWORK, "git remote update fetches")
    else:
        a.add(WRITES, "git remote changes remotes")


def _git_config(a: _Analysis, sub: str, args: list[str]) -> None:
    options, operands = _program_and_operands(
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


def _git_tag(a: _Analysis, sub: str, args: list[str]) -> None:
    if not args or {"-l", "--list"} & set(args) or all(arg.startswith("-n") for arg in args):
        a.add(READ_ONLY, "git tag only lists")
    else:
        a.add(WRITES, "git tag creates or deletes tags")


def _git_stash(a: _Analysis, sub: str, args: list[str]) -> None:
    action = args[0] if args else "push"
    if action in ("list", "show"):
        a.add(READ_ONLY, f"git stash {action} only reads")
    elif action in ("drop", "clear"):
        a.add(DESTRUCTIVE, f"git stash {action} discards stashed changes")
    else:
        a.add(WRITES, "git stash changes the working tree")


def _git_reset(a: _Analysis, sub: str, args: list[str]) -> None:
    if {"--hard", "--merge", "--keep"} & set(args):
        a.add(DESTRUCTIVE, "git reset --hard discards local changes")
    else:
        a.add(WRITES, "git reset moves the branch")


def _git_clean(a: _Analysis, sub: str, args: list[str]) -> None:
    if "--force" in args or "f" in _short_flags(args):
        a.add(DESTRUCTIVE, "git clean -f deletes untracked files")
    elif {"-n", "--dry-run"} & set(args):
        a.add(READ_ONLY, "git clean -n only lists")
    else:
        a.add(WRITES, "git clean may delete untracked files")


def _git_checkout(a: _Analysis, sub: str, args: list[str]) -> None:
    if {"--", ".", "-f", "--force"} & set(args):
        a.add(DESTRUCTIVE, "git checkout discards local changes")
    else:
        a.add(WRITES, "git checkout switches branches or files")


def _git_restore(a: _Analysis, sub: str, args: list[str]) -> None:
    staged_only = {"--staged", "-S"} & set(args) and not {"--worktree", "-W"} & set(args)
    if staged_only:
        a.add(WRITES, "git restore --staged unstages changes")
    else:
        a.add(DESTRUCTIVE, "git restore discards local changes")


def _git_push(a: _Analysis, sub: str, args: list[str]) -> None:
    a.add(NETWORK, "git push uploads commits")
    forced = {"--force", "-f", "--mirror", "--delete", "-d", "--force-if-includes"} & set(args)
    if forced or any(arg.startswith("--force-with-lease") or arg.startswith("+") for arg in args):
        a.add(DESTRUCTIVE, "git push --force rewrites remote history")


def _git_network(a: _Analysis, sub: str, args: list[str]) -> None:
    a.add(NETWORK, f"git {sub} uses the network")
    if sub in ("clone", "pull"):
        a.add(WRITES, f"git {sub} writes files")


def _git_submodule(a: _Analysis, sub: str, args: list[str]) -> None:
    action = args[0] if args else "status"
    if action in ("status", "summary"):
        a.add(READ_ONLY, f"git submodule {action} only reads")
    elif action in ("update", "sync"):
        a.add(NETWORK, "git submodule update uses the network")
        a.add(WRITES, "git submodule update writes files")
    else:
        a.add(WRITES, "git submodule changes submodules")


_GIT_SUBCOMMANDS: dict[str, _Handler] = {
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


def _curl(a: _Analysis, name: str, args: list[str]) -> None:
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
            if following not in ("-", *_HARMLESS_DEVICES):
                a.add(WRITES, f"curl {arg} writes {following}")
        elif arg.startswith("--output="):
            a.add(WRITES, f"curl writes {arg.split('=', 1)[1]}")


def _wget(a: _Analysis, name: str, args: list[str]) -> None:
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
    if target not in ("-", *_HARMLESS_DEVICES):
        a.add(WRITES, f"wget writes {target or 'the downloaded file'}")


def _rsync(a: _Analysis, name: str, args: list[str]) -> None:
    operands = [arg for arg in args if not arg.startswith("-")]
    if any(arg.startswith("rsync://") or re.match(r"^[^/]*:", arg) for arg in operands):
        a.add(NETWORK, f"{name} copies to or from another host")
    a.add(WRITES, f"{name} writes files")
    if name == "rsync" and any(
        arg.startswith("--delete") or arg.startswith("--remove-source") for arg in args
    ):
        a.add(DESTRUCTIVE, "rsync --delete deletes files")


def _when(condition: Callable[[list[str]], bool], level: str, reason: str, otherwise: str) -> _Handler:
    """A handler for a read-only command that some arguments make riskier."""

    def handler(a: _Analysis, name: str, args: list[str]) -> None:
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
    return not operands or operands[0] in _SYSTEMCTL_READS


def _systemctl(a: _Analysis, name: str, args: list[str]) -> None:
    if _systemctl_reads(args):
        a.add(READ_ONLY, "systemctl only reads")
    elif "--user" in args:
        a.add(WRITES, "systemctl --user changes user services")
    else:
        a.add(PRIVILEGED, "systemctl changes system services")


def _tar_lists(args: list[str]) -> bool:
    """`tar -tf`, `tar tf` (old style: the first argument is the options), `tar --list`."""
    old_style = args[0] if args and not args[0].startswith("-") else ""
    return "--list" in args or "t" in old_style or "t" in _short_flags(args)


def _date_sets_clock(args: list[str]) -> bool:
    options, operands = _program_and_operands(
        args, frozenset({"-d", "--date", "-r", "--reference", "-f", "--file"})
    )
    return any(option in ("-s", "--set") or option.startswith("--set=") for option, _ in options) or any(
        not operand.startswith("+") for operand in operands
    )


def _scp(a: _Analysis, name: str, args: list[str]) -> None:
    a.add(NETWORK, "scp copies between hosts")
    a.add(WRITES, "scp writes files")


def _npx(a: _Analysis, name: str, args: list[str]) -> None:
    a.add(NETWORK, "npx downloads a package")
    a.add(WRITES, "npx runs a package")


def _crontab(a: _Analysis, name: str, args: list[str]) -> None:
    if args == ["-l"]:
        a.add(READ_ONLY, "crontab -l only reads")
    elif "-r" in args:
        a.add(DESTRUCTIVE, "crontab -r deletes the crontab")
    else:
        a.add(WRITES, "crontab changes scheduled jobs")


_IP_CHANGES = frozenset("add del delete set flush change replace append exec prepend".split())
_SYSTEMCTL_READS = frozenset(
    """status show cat list-units list-unit-files list-timers list-sockets list-dependencies is-active is-enabled
    is-failed is-system-running get-default""".split()
)
_DPKG_QUERIES = frozenset(
    "-l -L -s -S -p -c -I --list --listfiles --status --search --print-architecture --contents --info".split()
)

_HANDLERS: dict[str, _Handler] = {
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
        lambda args: bool(_IP_CHANGES & set(args)), PRIVILEGED, "changes network settings", "only reads"
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
        lambda args: "-b" not in args and "b" not in _short_flags(args),
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
        lambda args: not _DPKG_QUERIES & set(args), WRITES, "changes installed packages", "only reads"
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


# --- public API --------------------------------------------------------------------------------------------


def classify(command: str, extra_read_only: Iterable[str] = ()) -> Risk:
    """The risk of running `command` in bash; never raises.

    `extra_read_only` names more read-only commands (or word prefixes such as "kubectl get").
    """
    analysis = _Analysis(extra_read_only)
    try:
        analysis.script(command)
    except Exception as error:  # noqa: BLE001 - the safety path must fail closed, never crash the agent
        analysis.add(WRITES, f"could not analyse ({type(error).__name__})")
    return analysis.risk()


def is_read_only(command: str, extra_read_only: Iterable[str] = ()) -> bool:
    """True when `command` only reads: a retrieval the agent may answer from recall."""
    risk = classify(command, extra_read_only)
    return risk.level == READ_ONLY and not risk.denied
