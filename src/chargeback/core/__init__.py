"""The engine: it knows no ecosystem (DESIGN §2)."""
