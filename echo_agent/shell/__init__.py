"""The persistent shell (pexpect), output cleaning, and the risk classifier."""

from echo_agent.shell.result import ShellResult
from echo_agent.shell.session import ShellSession

__all__ = ["ShellResult", "ShellSession"]
