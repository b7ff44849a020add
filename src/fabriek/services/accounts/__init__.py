"""Accounts at the sites: each person's POSIX identity, their SSH keys and the factory's
SSH certificate authority, and the terms of use they accepted."""
