"""How risky is a shell command? One classifier for the safety policy and for world-model recall.

Levels, in order: read_only < writes < network < destructive < privileged. A command's level is the highest
level found anywhere in it; `denied` marks the deny list (known catastrophes refused in every mode).

Approach: parse with bashlex (a real bash parser) and walk the AST, so pipelines, lists, subshells, groups,
loops, `$(…)`, backticks, process substitution and redirections are all seen. Each simple command is reduced to
its argv and classified by name: wrappers (`sudo`, `env`, `timeout`, `xargs`, …) are peeled off and their inner
command classified too; script strings (`bash -c`, `sh -c`, `su -c`, `eval`) are parsed recursively; a few
commands (`git`, `find`, `sed`, `awk`, package managers, …) are classified by their subcommands and flags.
The deny list is checked on every argv, whatever else the command is.

Where things live: this module holds the public API, the AST walker and the deny list; risk_commands.py holds
the rules for commands classified by their arguments (find, sed, awk, curl, package managers, …), risk_git.py
the rules for git, risk_argv.py the argv parsing helpers they share; risk_tables.py holds the levels and the
command-name tables.

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
from collections.abc import Iterable
from dataclasses import dataclass

import bashlex

from echo_agent.shell.risk_argv import parse_options, short_flags
from echo_agent.shell.risk_commands import HANDLERS, package_manager
from echo_agent.shell.risk_tables import (
    CODE_RUNNERS,
    DASH_H_IS_NOT_HELP,
    DESTRUCTIVE,
    DESTRUCTIVE_COMMANDS,
    DOWNLOADERS,
    HARMLESS_DEVICES,
    HELP_FLAGS,
    INTERPRETERS,
    LEVELS,
    NETWORK,
    NETWORK_COMMANDS,
    PACKAGE_MANAGERS,
    PRIVILEGED,
    PRIVILEGED_COMMANDS,
    READ_ONLY,
    READ_ONLY_COMMANDS,
    SHELL_KEYWORDS,
    SHELL_STATE,
    SHELLS,
    WRAPPERS,
    WRITE_COMMANDS,
    WRITES,
)

__all__ = [
    "DESTRUCTIVE",
    "LEVELS",
    "NETWORK",
    "PRIVILEGED",
    "READ_ONLY",
    "READ_ONLY_COMMANDS",
    "WRITES",
    "Risk",
    "classify",
    "is_read_only",
]

_RANK = {level: rank for rank, level in enumerate(LEVELS)}


@dataclass(frozen=True)
class Risk:
    level: str
    """One of LEVELS: the highest level found over all parts of the command."""
    reasons: tuple[str, ...]
    """Short human-readable reasons, deny-list reasons first, then the most serious."""
    denied: bool
    """True for the deny list: refused in every mode, even with --yes."""

    @property
    def phrase(self) -> str:
        """What the level says of the command, to follow "This command": "is destructive", "writes files"."""
        return _PHRASES[self.level]


_PHRASES = {READ_ONLY: "only reads", WRITES: "writes files", NETWORK: "uses the network",
            DESTRUCTIVE: "is destructive", PRIVILEGED: "needs privileges"}


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
_BLOCK_DEVICE = re.compile(
    r"/dev/(sd[a-z]|hd[a-z]|vd[a-z]|xvd[a-z]|nvme\d|mmcblk\d|disk\d|dm-\d|md\d|mapper/|loop\d)"
)
_WRITE_REDIRECTS = frozenset({">", ">>", ">|", "&>", "&>>", "<>", ">&"})
_MAX_DEPTH = 8


def _is_catastrophic_target(path: str) -> bool:
    """`/`, `/*`, `~`, `$HOME/`, or a top-level system directory such as /etc."""
    path = re.sub(r"(/\*|/\.|/)+$", "", path) or "/"
    return path in _SYSTEM_DIRS or path in _HOME


def _is_recursive(args: list[str]) -> bool:
    return "--recursive" in args or any(c in short_flags(args) for c in "rR")


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
        a.startswith("of=/dev/") and a[3:] not in HARMLESS_DEVICES and not a.startswith("of=/dev/fd/")
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


def _drop_assignments(args: list[str]) -> list[str]:
    i = 0
    while i < len(args) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", args[i]):
        i += 1
    return args[i:]


def _unwrap(name: str, args: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """A wrapper's options and the command it runs (empty when it runs none)."""
    options, rest = parse_options(args, WRAPPERS[name][0])
    if name in ("sudo", "doas", "env"):
        rest = _drop_assignments(rest)
    if name == "timeout":
        rest = rest[1:]
    return options, rest


def _effective_argv(argv: list[str]) -> list[str]:
    """argv with wrappers peeled off (`sudo env X=1 bash` -> `bash`)."""
    for _ in range(_MAX_DEPTH):
        name = _command_name(argv[0]) if argv else None
        if name not in WRAPPERS:
            break
        argv = _unwrap(name, argv[1:])[1]
    return argv


def _reads_program_from_stdin(argv: list[str]) -> bool:
    """`sh`, `bash -s`, `python -` run what arrives on stdin; `python -c …`, `bash script.sh` do not."""
    name = _command_name(argv[0]) if argv else None
    if name not in SHELLS and name not in INTERPRETERS:
        return False
    args = argv[1:]
    if name in SHELLS and ("-s" in args or "s" in short_flags(args)):
        return True
    if any(a in ("-c", "-e", "-m", "-E", "--eval", "--command") for a in args) or (
        name in SHELLS and "c" in short_flags(args)
    ):
        return False
    operands = [a for a in args if not a.startswith("-") or a == "-"]
    return not operands or operands[0] == "-"


# --- the analysis ----------------------------------------------------------------------------------------


class _Analysis:
    """Collects (level, reason, denied) findings while walking one command string."""

    def __init__(self, extra_read_only: Iterable[str]) -> None:
        self.findings: list[tuple[str, str, bool]] = []
        self.extra = [entry.split() for entry in extra_read_only if entry.split()]
        self.depth = 0

    def declared_read_only(self, name: str, argv: list[str]) -> bool:
        """Whether the user declared this command read-only; commands that run other commands never are."""
        if name in WRAPPERS or name in CODE_RUNNERS or name == "su":
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
            while words and words[0] in SHELL_KEYWORDS:
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
            and _command_name(effective[0]) in CODE_RUNNERS
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
            downloaded = downloaded or any(argv and _command_name(argv[0]) in DOWNLOADERS for argv in argvs)
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
        if path in HARMLESS_DEVICES or path.startswith("/dev/fd/"):
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
        if len(args) == 1 and args[0] in HELP_FLAGS and not (args[0] == "-h" and name in DASH_H_IS_NOT_HELP):
            self.add(READ_ONLY, f"{name} {args[0]} only prints")
        elif self.declared_read_only(name, argv):
            self.add(READ_ONLY, f"{name} declared read-only")
        elif name in HANDLERS:
            HANDLERS[name](self, name, args)
        elif name in WRAPPERS:
            self.wrapper(name, args)
        elif name in PACKAGE_MANAGERS:
            package_manager(self, name, args)
        elif name in READ_ONLY_COMMANDS:
            self.add(READ_ONLY, _read_only_reason(name))
        elif name.startswith("mkfs") or name == "mke2fs":
            self.add(DESTRUCTIVE, f"{name} formats a filesystem")
        elif name in DESTRUCTIVE_COMMANDS:
            self.add(DESTRUCTIVE, DESTRUCTIVE_COMMANDS[name])
        elif name in PRIVILEGED_COMMANDS:
            self.add(PRIVILEGED, PRIVILEGED_COMMANDS[name])
        elif name in NETWORK_COMMANDS:
            self.add(NETWORK, NETWORK_COMMANDS[name])
        elif name in WRITE_COMMANDS:
            self.add(WRITES, WRITE_COMMANDS[name])
        elif name in INTERPRETERS:
            self.interpreter(name, args)
        elif name in SHELLS:
            self.shell(name, args)
        else:
            self.add(WRITES, f"unknown command '{name}'")

    def wrapper(self, name: str, args: list[str]) -> None:
        options, inner = _unwrap(name, args)
        note = WRAPPERS[name][1]
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
        options, operands = parse_options(args, frozenset({"-o", "+o", "-O", "+O"}))
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
            package_manager(self, "pip", args[2:])
        else:
            self.add(WRITES, f"{name} runs code")


def _read_only_reason(name: str) -> str:
    if name in SHELL_STATE:
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
        argv and _command_name(argv[0]) in DOWNLOADERS
        for part in getattr(word, "parts", None) or []
        for argv in map(_effective_argv, _simple_commands(part))
    )


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
