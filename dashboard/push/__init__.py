"""Wake-ups: an in-process hub of topics, and PostgreSQL LISTEN/NOTIFY between processes.
A wake-up is only a hint: whoever wakes re-reads the database."""
