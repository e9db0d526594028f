"""The daemon: scheduler, signals, HTTP endpoints (DESIGN §9)."""
