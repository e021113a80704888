"""The agent's D-Bus API (org.minormode.Agent1)."""
