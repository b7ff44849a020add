"""The HTTP API: FastAPI routers, authentication, errors as RFC 9457 problem documents."""
