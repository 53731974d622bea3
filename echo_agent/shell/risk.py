"""How risky is a shell command? One classifier for the safety policy and for world-model recall.

Levels, in order: read_only < writes < network < destructive < privileged. A command's level is the highest
level found anywhere in it; `denied` marks the deny list (known catastrophes refused in every mode).

Approach: parse with bashlex (a real bash parser) and walk the AST, so pipelines, lists, subshells, groups,
loops, `$(…)`, backticks, process substitution and redirections are all seen. Each simple command is reduced to
its argv and classified by name: wrappers (`sudo`, `env`, `timeout`, `xargs`, …) are peeled off and their inner
command classified too; script strings (`bash -c`, `sh -c`, `su -c`, `eval`) are parsed recursively; a few
commands (`git`, `find`, `sed`, `awk`, package managers, …) are classified by their subcommands and flags.
The deny list is checked on every argv, whatever else the command is.

Where things live: this module holds the public API (`Risk`, `classify`, `is_read_only`); risk_walk.py the
walk over the AST that collects findings; risk_parse.py the bashlex parsing and argv helpers (wrappers peeled
off); risk_deny.py the deny list; risk_commands.py the rules for commands classified by their arguments (find,
sed, awk, curl, package managers, …) and risk_git.py those for git, with risk_argv.py the helpers they share;
risk_tables.py holds the levels and the command-name tables.

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

from collections.abc import Iterable
from dataclasses import dataclass, replace

from echo_agent.shell.risk_tables import (
    DESTRUCTIVE,
    LEVELS,
    NETWORK,
    PRIVILEGED,
    READ_ONLY,
    READ_ONLY_COMMANDS,
    WRITES,
)
from echo_agent.shell.risk_walk import Analysis, Finding

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
    only_unknown: tuple[str, ...] = ()
    """The programs the classifier does not know, in order, when they are all that makes the command more than
    read-only (no redirection, no known writer, nothing denied); else empty."""

    @property
    def phrase(self) -> str:
        """What the level says of the command, to follow "This command": "is destructive", "writes files"."""
        return _PHRASES[self.level]


_PHRASES = {READ_ONLY: "only reads", WRITES: "writes files", NETWORK: "uses the network",
            DESTRUCTIVE: "is destructive", PRIVILEGED: "needs privileges"}


def classify(command: str, extra_read_only: Iterable[str] = ()) -> Risk:
    """The risk of running `command` in bash; never raises.

    `extra_read_only` names more read-only commands (or word prefixes such as "kubectl get").
    """
    analysis = Analysis(extra_read_only)
    try:
        analysis.script(command)
    except Exception as error:  # noqa: BLE001 - the safety path must fail closed, never crash the agent
        analysis.add(WRITES, f"could not analyse ({type(error).__name__})")
    risk = risk_of(analysis.findings)
    above = sum(f[0] != READ_ONLY for f in analysis.findings)
    if analysis.unknown and above == len(analysis.unknown):  # each unknown program is one finding
        risk = replace(risk, only_unknown=tuple(dict.fromkeys(analysis.unknown)))
    return risk


def risk_of(findings: list[Finding]) -> Risk:
    """The command's risk from every finding: the highest level; deny-list reasons first, then the most
    serious (read-only reasons only when nothing else was found)."""
    findings = findings or [(READ_ONLY, "empty command", False)]
    level = max((f[0] for f in findings), key=_RANK.__getitem__)
    if level != READ_ONLY:
        findings = [f for f in findings if f[0] != READ_ONLY]
    ordered = sorted(findings, key=lambda f: (not f[2], -_RANK[f[0]]))
    reasons = tuple(dict.fromkeys(f[1] for f in ordered))
    return Risk(level, reasons, any(f[2] for f in findings))


def is_read_only(command: str, extra_read_only: Iterable[str] = ()) -> bool:
    """True when `command` only reads: a retrieval the agent may answer from recall."""
    risk = classify(command, extra_read_only)
    return risk.level == READ_ONLY and not risk.denied
