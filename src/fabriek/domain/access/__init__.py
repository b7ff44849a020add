"""Access to the factory: the tracks and their rules, calls for proposals, a proposal's path
from draft to decision, and the GPU-hour budgets of the allocations it creates.

Pure: no I/O and no clock reads. Every moment comes in as an argument."""
