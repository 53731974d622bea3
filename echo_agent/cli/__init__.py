"""The echo-agent command line: a thin layer over the library (see `app.py` for where each command lives)."""

from echo_agent.cli.app import app, main

__all__ = ["app", "main"]
