"""The access routes: calls, proposals and their reviews, allocations and their budgets."""
