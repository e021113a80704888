"""minormodectl, the device's command line (agent/cli/README.md)."""

from agent.cli.main import main

__all__ = ["main"]
