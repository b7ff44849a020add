"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from fabriek import __version__
from fabriek.api.context import Caller, Ctx
from fabriek.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up."""
    return Health(status="ok", version=__version__)


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(ctx: Ctx) -> Response:
    """The process can serve: the database answers."""
    try:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means not ready; the reason goes to the body
        body = Health(status="unavailable", database=str(exc).splitlines()[0], version=__version__)
        return JSONResponse(body.model_dump(), status_code=503)
    return JSONResponse(Health(status="ok", database="ok", version=__version__).model_dump())


@router.get("/metrics", response_class=Response)
def metrics(request: Request, _who: Caller) -> Response:
    """Prometheus exposition of request counts and latencies (needs a token)."""
    body = request.app.state.metrics.exposition()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
