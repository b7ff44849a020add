"""The support centre's API, one router for the capability: tickets and their e-mail and
reports (`/api/v1/support`), the expertise network (`/api/v1/skills`, `/experts`,
`/expertise-requests`) and the knowledge base (`/api/v1/kb`)."""

from fastapi import APIRouter

from fabriek.api.routers.support import expertise, knowledge, tickets

router = APIRouter()
for _part in (expertise, knowledge, tickets):
    router.include_router(_part.router)
