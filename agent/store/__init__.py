"""Durable state: SQLite (WAL) for usage, grants and the clock watermark."""
