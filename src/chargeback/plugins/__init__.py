"""Built-in ecosystem plugins, discovered by scanning this package (DESIGN §6)."""
