"""Support commands: tickets (`fabriek support`), the expertise network (`fabriek experts`)
and the knowledge base (`fabriek kb`)."""
