"""The session layer: logind, the enforcer, the display watch and Agent1, in one object."""
