"""Plugin protocols, discovery and the registry (seed: "Plugin System")."""
