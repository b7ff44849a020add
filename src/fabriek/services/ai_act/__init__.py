"""Use cases of the EU AI Act: the AI model registry (models, versions and their lineage),
the compute and energy ledger of a version, jobs linked to a model and the lines they
cross, projections of planned compute, the documentation; AI systems and their risk
classification; regulatory sandboxes.

Nothing here is kept as a running total: a ledger is summed from the store (the charges
ledger's runs, running jobs, the jobs' reports and energy records) whenever it is asked
for, so it cannot drift from what the jobs did.
"""
