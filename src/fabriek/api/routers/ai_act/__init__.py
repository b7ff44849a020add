"""The AI Act routes: AI models (registry, ledger, projections, documentation), AI systems
and their risk classification, regulatory sandboxes."""
