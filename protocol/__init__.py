"""What the device, the guardian's app and the dashboard share: PROTOCOL.md, implemented.

Depends on `cryptography` alone, so the agent and the dashboard can both import it without
importing each other. Modules: `encoding` (bytes, strict JSON), `keys` (key bundles, ids),
`envelope` (signed messages), `keyring` (the family's guardians and devices), `sealing`
(multi-recipient HPKE), `messages` (payload values), `compose` (sign and seal), `accept`
(what a device accepts), `pairing` (the two sides' state machines and the SAS), `guardian`
(a reference guardian client), `journal` (the journal's wire format and the server's check of
an upload), `server` (what the dashboard signs, and the device's log-in message).
"""

PROTOCOL_VERSION = "1.1"
