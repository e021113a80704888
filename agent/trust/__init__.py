"""Guardian trust on the device: the family keyring, signed rules and decisions, pairing.

See README.md. Pure verification lives in the `protocol` package; this package stores what
the device must remember (`store`), opens and applies what the guardians send (`inbox`,
`effects`), and runs the device's side of pairing (`pairing`).
"""
