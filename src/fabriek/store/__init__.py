"""Tables, repositories and migrations: the store is the truth."""
