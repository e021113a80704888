"""The running agent: its state machine, trusted clock, settings and services (README.md)."""
