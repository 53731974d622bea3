"""The walk over a command's bash AST that collects the risk findings (`classify` in risk.py is the API).

Each simple command is reduced to its argv and classified by name (risk_tables.py); commands classified by
their arguments have handlers (risk_commands.py, risk_git.py); script strings (`bash -c`, `eval`, `su -c`) are
parsed and walked recursively; redirections, substitutions and heredocs are looked into. Every finding is a
(level, reason, denied) triple.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable

import bashlex

from echo_agent.shell.risk_argv import parse_options
from echo_agent.shell.risk_commands import HANDLERS, package_manager
from echo_agent.shell.risk_deny import BLOCK_DEVICE, FORK_BOMB, PIPED_DOWNLOAD, deny_reason
from echo_agent.shell.risk_parse import (
    MAX_DEPTH,
    command_name,
    drop_assignments,
    effective_argv,
    parse,
    reads_program_from_stdin,
    runs_downloader,
    simple_commands,
    unwrap,
)
from echo_agent.shell.risk_tables import (
    CODE_RUNNERS,
    DASH_H_IS_NOT_HELP,
    DESTRUCTIVE,
    DESTRUCTIVE_COMMANDS,
    DOWNLOADERS,
    HARMLESS_DEVICES,
    HELP_FLAGS,
    INTERPRETERS,
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

Finding = tuple[str, str, bool]
"""(level, reason, denied)."""
_WRITE_REDIRECTS = frozenset({">", ">>", ">|", "&>", "&>>", "<>", ">&"})


class Analysis:
    """Collects (level, reason, denied) findings while walking one command string."""

    def __init__(self, extra_read_only: Iterable[str]) -> None:
        self.findings: list[Finding] = []
        self.unknown: list[str] = []  # programs found by name in no table, each also a finding
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

    # --- strings ---

    def script(self, text: str) -> None:
        """Classify a bash script string (the top level, `bash -c`, `eval`, `su -c`)."""
        if self.depth >= MAX_DEPTH:
            self.add(WRITES, "commands nested too deeply to check")
            return
        if FORK_BOMB.search(text):
            self.deny(DESTRUCTIVE, "fork bomb")
        if all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()):
            return  # empty, or comments only: nothing runs
        nodes = parse(text)
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
        if PIPED_DOWNLOAD.search(text):
            self.deny(DESTRUCTIVE, "downloaded code piped to an interpreter")
        for segment in re.split(r"[;&|()\n`]|\$\(|<\(|>\(", text):
            try:
                words = shlex.split(segment)
            except ValueError:
                words = segment.split()
            while words and words[0] in SHELL_KEYWORDS:
                words = words[1:]
            words = drop_assignments(words)
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
        if words[0].parts and runs_downloader(words[0]):
            self.deny(DESTRUCTIVE, "runs downloaded code")
        effective = effective_argv(argv)
        if (
            effective
            and command_name(effective[0]) in CODE_RUNNERS
            and any(runs_downloader(w) for w in words)
        ):
            self.deny(DESTRUCTIVE, f"{effective[0]} runs downloaded code")
        self.argv(argv)

    def pipeline(self, node: bashlex.ast.node) -> None:
        stages = [p for p in node.parts if p.kind not in ("pipe", "reservedword")]
        downloaded = False
        for stage in stages:
            argvs = [effective_argv(argv) for argv in simple_commands(stage)]
            if downloaded and any(reads_program_from_stdin(argv) for argv in argvs):
                self.deny(DESTRUCTIVE, "downloaded code piped to an interpreter")
            downloaded = downloaded or any(argv and command_name(argv[0]) in DOWNLOADERS for argv in argvs)
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
        if BLOCK_DEVICE.match(path):
            self.deny(DESTRUCTIVE, f"redirection {node.type} writes block device {path}")
        else:
            self.add(WRITES, f"redirection {node.type} writes {path}")

    # --- one simple command ---

    def argv(self, argv: list[str]) -> None:
        name = command_name(argv[0])
        args = argv[1:]
        if name is None:
            self.add(
                WRITES,
                f"command name computed at run time: {argv[0][:40]}" if argv[0] else "empty command name",
            )
            return
        deny = deny_reason(name, args)
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
            self.unknown.append(name)
            self.add(WRITES, f"unknown command '{name}'")

    def wrapper(self, name: str, args: list[str]) -> None:
        options, inner = unwrap(name, args)
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
