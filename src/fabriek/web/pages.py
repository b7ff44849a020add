"""Portal pages. The public ones need no sign-in."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from fabriek import __version__
from fabriek.api.context import Db
from fabriek.domain.gpus import GPU_TYPES
from fabriek.services.overview import factory_overview

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals.update(version=__version__, gpu_types=GPU_TYPES)


def portal_router() -> APIRouter:
    """The portal's routes; static files are mounted by `mount_static`."""
    router = APIRouter(include_in_schema=False)

    @router.get("/", response_class=HTMLResponse)
    def home(request: Request, db: Db) -> HTMLResponse:
        """The factory at a glance, for everyone."""
        overview = factory_overview(db)
        return templates.TemplateResponse(
            request, "index.html", {"overview": overview, "page_title": "The factory at a glance"}
        )

    return router


def static_files() -> StaticFiles:
    return StaticFiles(directory=HERE / "static")
