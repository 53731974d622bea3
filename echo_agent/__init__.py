"""echo-agent: a terminal assistant that learns the machine it works on."""

__version__ = "0.1.0"
