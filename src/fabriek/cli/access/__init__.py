"""Access commands: tracks, calls, proposals, reviews and final reports, and the allocations
and budgets a decision grants."""
