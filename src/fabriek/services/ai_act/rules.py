"""The AI Act's rules for models as shipped (`fabriek/config/ai_act.toml`), read once per
process."""

from __future__ import annotations

from functools import lru_cache

from fabriek.domain.ai_act.model_rules import AiActRules, parse_ai_act_rules
from fabriek.services.config_files import load_config_file


@lru_cache(maxsize=1)
def ai_act_rules() -> AiActRules:
    """The shipped AI Act rules (`fabriek/config/ai_act.toml`), checked once per process.
    A broken file is an InvalidInput naming the entry at fault."""
    return load_config_file(None, "ai_act.toml", "AI Act rules", parse_ai_act_rules)
