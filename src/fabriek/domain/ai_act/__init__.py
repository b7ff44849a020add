"""The EU AI Act, as pure rules over typed values: AI models (their vocabulary, the rules
read from `fabriek/config/ai_act.toml`, compute estimates, lineage, the compute lines a
version may cross, the API's shapes), a model version's compute and energy ledger and its
documentation; AI systems and the risk classification walked through the rule book of
`fabriek/config/ai_act_rules.toml`; and regulatory sandboxes.

Nothing here reads a file or a clock: moments come in as arguments.
"""
