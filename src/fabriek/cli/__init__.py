"""The `fabriek` command line: thin commands over the SDK."""
