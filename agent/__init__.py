"""minormode: the on-device minor mode agent."""

__version__ = "0.1.0"
