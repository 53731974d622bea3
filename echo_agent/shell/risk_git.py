"""Risk rules for git: classified by subcommand, then by the flags that make a subcommand write, delete or
reach the network (`git branch -D`, `git push --force`, `git clean -f`, `git fetch`).

`git` is the handler; unknown subcommands are `writes` (the classifier fails closed).
"""

from __future__ import annotations

from echo_agent.shell.risk_argv import Findings, Handler, parse_options, program_and_operands, short_flags
from echo_agent.shell.risk_tables import (
    DESTRUCTIVE,
    GIT_GLOBAL_VALUE_OPTIONS,
    GIT_READ_ONLY,
    GIT_WRITES,
    NETWORK,
    READ_ONLY,
    WRITES,
)


def git(a: Findings, name: str, args: list[str]) -> None:
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
