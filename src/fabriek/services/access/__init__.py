"""Access to the factory: calls for proposals on the configured tracks, proposals on their
path from draft to decision, reviews, allocations of GPU-hours and their budgets."""
