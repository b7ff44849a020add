"""Model endpoints: a project's model served by replicas (service jobs) behind Fabriek's
OpenAI-compatible gateway, with project API keys, metering and scale to zero."""
