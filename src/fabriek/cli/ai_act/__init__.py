"""EU AI Act commands: models (`fabriek models`), AI systems and their classification
(`fabriek ai-systems`, `fabriek classify`) and regulatory sandboxes (`fabriek sandbox`)."""
