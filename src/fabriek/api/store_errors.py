"""When the store cannot answer in time, the API says so: 503 with Retry-After, never a 500
and never a request left waiting (issue 20, point 5).

- no connection came free from the pool within `FABRIEK_DATABASE_POOL_TIMEOUT_S`;
- PostgreSQL cancelled a statement for its statement_timeout, or for its lock_timeout;
- the database does not answer, or dropped the connection (a restart, a failover): the
  pool replaces dead connections by itself (pre-ping), so the same request works again.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from fabriek.api.problems import problem

log = logging.getLogger("fabriek.api")

# Seconds a client should wait before asking again: a busy pool frees up in moments; a
# restarting database takes a little longer.
BUSY_RETRY_S = 2
DOWN_RETRY_S = 5

# PostgreSQL's codes for a statement cancelled (57014: statement_timeout) and for a lock not
# obtained in time (55P03: lock_timeout).
TIMED_OUT = {"57014": "a statement took too long", "55P03": "a lock was not free in time"}


def classify(exc: DBAPIError) -> tuple[str, str, int] | None:
    """(code, detail, Retry-After) for an error of the store that a retry may cure, or None
    for one that it will not (a bug, bad data): that one stays a 500."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate in TIMED_OUT:
        detail = f"the store is busy ({TIMED_OUT[sqlstate]}); try again shortly"
        return "store-timeout", detail, BUSY_RETRY_S
    if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
        detail = "the store is not reachable just now (restarting?); try again shortly"
        return "store-unavailable", detail, DOWN_RETRY_S
    return None


def install(app: FastAPI) -> None:
    """Map the store's time-outs and outages to 503 problem documents with Retry-After."""

    @app.exception_handler(PoolTimeout)
    async def _pool(request: Request, exc: PoolTimeout) -> JSONResponse:
        log.warning("no store connection free for %s %s", request.method, request.url.path)
        detail = "the server is busy: no connection to its store came free in time; try again"
        headers = {"Retry-After": str(BUSY_RETRY_S)}
        return problem(503, detail, request.url.path, "store-busy", headers=headers)

    @app.exception_handler(DBAPIError)
    async def _store(request: Request, exc: DBAPIError) -> JSONResponse:
        known = classify(exc)
        if known is None:
            log.error("unhandled store error on %s %s", request.method, request.url.path,
                      exc_info=exc)  # fmt: skip
            return problem(500, "an internal error occurred; it was logged", request.url.path)
        code, detail, retry = known
        log.warning("%s on %s %s: %s", code, request.method, request.url.path, exc.orig)
        headers = {"Retry-After": str(retry)}
        return problem(503, detail, request.url.path, code, headers=headers)
