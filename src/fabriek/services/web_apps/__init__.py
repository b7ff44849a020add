"""Web apps that jobs serve: the proxy's side (who may open one, where it listens), its
per-job secret, and stopping idle ones."""
