"""The child's session helper: the agent's voice inside the child's desktop session."""
