"""D-Bus helpers shared by the agent (its services, the logind adapter, the CLI) and the
child's session helper: calls with a timeout, signal matches, caller identity, and
background tasks for signal handlers."""
