"""Parsing for the risk classifier: bashlex's AST (with workarounds for what it rejects), and the argv of the
simple commands inside it, with wrappers (`sudo`, `env`, `timeout`, …) peeled off."""

from __future__ import annotations

import re

import bashlex

from echo_agent.shell.risk_argv import parse_options, short_flags
from echo_agent.shell.risk_tables import DOWNLOADERS, INTERPRETERS, SHELLS, WRAPPERS

MAX_DEPTH = 8
"""How deeply wrappers and nested scripts are followed before the classifier gives up (fails closed)."""


def command_name(word: str) -> str | None:
    """The name to look up for argv[0]; None when it is computed at run time (`$CMD`, `$(…)`)."""
    if not word or "$" in word or "`" in word:
        return None
    if word.startswith("/"):
        return word.rsplit("/", 1)[-1] or None
    return word


def drop_assignments(args: list[str]) -> list[str]:
    i = 0
    while i < len(args) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", args[i]):
        i += 1
    return args[i:]


def unwrap(name: str, args: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """A wrapper's options and the command it runs (empty when it runs none)."""
    options, rest = parse_options(args, WRAPPERS[name][0])
    if name in ("sudo", "doas", "env"):
        rest = drop_assignments(rest)
    if name == "timeout":
        rest = rest[1:]
    return options, rest


def effective_argv(argv: list[str]) -> list[str]:
    """argv with wrappers peeled off (`sudo env X=1 bash` -> `bash`)."""
    for _ in range(MAX_DEPTH):
        name = command_name(argv[0]) if argv else None
        if name not in WRAPPERS:
            break
        argv = unwrap(name, argv[1:])[1]
    return argv


def reads_program_from_stdin(argv: list[str]) -> bool:
    """`sh`, `bash -s`, `python -` run what arrives on stdin; `python -c …`, `bash script.sh` do not."""
    name = command_name(argv[0]) if argv else None
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


def parse(text: str) -> list[bashlex.ast.node] | None:
    """bashlex's AST, or None when it cannot parse the text (it raises many exception types, so catch all)."""
    for attempt in (text, bashlex_workarounds(text)):
        try:
            nodes = bashlex.parse(attempt)
        except Exception:  # noqa: BLE001 - ParsingError, NotImplementedError, AttributeError, RecursionError, …
            continue
        if all(isinstance(node, bashlex.ast.node) for node in nodes):
            return nodes
    return None


def bashlex_workarounds(text: str) -> str:
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


def simple_commands(node: bashlex.ast.node) -> list[list[str]]:
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


def runs_downloader(word: bashlex.ast.node) -> bool:
    """Whether a word's `$(…)`/`<(…)` parts run curl, wget or fetch."""
    return any(
        argv and command_name(argv[0]) in DOWNLOADERS
        for part in getattr(word, "parts", None) or []
        for argv in map(effective_argv, simple_commands(part))
    )
