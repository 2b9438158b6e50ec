"""PostgreSQL servers beyond the system's 15 (filled in by the real-servers work)."""
