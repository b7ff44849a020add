"""The OpenAI-compatible gateway under `/v1`: a raw ASGI application (no dependency
injection, no request models) so that the hot path stays a few dictionary look-ups."""
