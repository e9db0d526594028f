"""Storage: the backend protocol and the SQLite implementation (DESIGN §7)."""
