"""The guardian dashboard server: accounts, families, pairing with consent, sealed storage,
the device sync API and push. It never imports `agent`; it imports `protocol`, and it never
holds a key that opens a child's data or signs a rule (README.md, API.md)."""
