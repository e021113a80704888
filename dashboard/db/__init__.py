"""The dashboard's storage: one SQLAlchemy Core schema, SQLite (WAL) or PostgreSQL."""
