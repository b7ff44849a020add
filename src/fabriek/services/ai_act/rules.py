"""The AI Act's rules for models as shipped (`fabriek/config/ai_act.toml`), read once per
process."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources

from fabriek.domain.ai_act.model_rules import AiActRules, parse_ai_act_rules
from fabriek.domain.errors import InvalidInput


@lru_cache(maxsize=1)
def ai_act_rules() -> AiActRules:
    """The shipped AI Act rules (`fabriek/config/ai_act.toml`), checked once per process.
    A broken file is an InvalidInput naming the entry at fault."""
    text = resources.files("fabriek.config").joinpath("ai_act.toml").read_text()
    try:
        return parse_ai_act_rules(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValueError) as bad:
        raise InvalidInput(f"the shipped ai_act.toml: {bad}") from None
