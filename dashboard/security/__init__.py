"""Authentication pieces: password hashing, back-off and rate limits, tokens."""
