"""Use cases: the only code that touches the store and the engines."""
