"""Datasets: register, upload and download versions (streamed; encrypted at rest), grant and
revoke other projects' access, delete (crypto-shredding); and rotate organisation keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from fabriek.api.context import Caller, Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.api.schemas import PageOut, paging
from fabriek.domain.datasets import (
    Dataset,
    DatasetDraft,
    DatasetGrant,
    DatasetVersion,
    GrantDraft,
    KeyRotation,
    OrganisationKey,
)
from fabriek.domain.errors import InvalidInput
from fabriek.services.datasets import deletion, grants, keys, terms, upload
from fabriek.services.datasets.download import open_download
from fabriek.services.datasets.vault import Vault
from fabriek.services.paging import PageRequest

router = APIRouter(prefix=f"{API_PREFIX}/datasets", tags=["datasets"])
keys_router = APIRouter(prefix=f"{API_PREFIX}/organisation-keys", tags=["datasets"])

ProjectRef = Annotated[str, Path(description="the owning project, by name or id")]
Name = Annotated[str, Path(description="the dataset's name in its project")]


def vault(request: Request, ctx: Ctx) -> Vault:
    """The app's vault (`create_app` makes it; built here for an app made otherwise)."""
    found = getattr(request.app.state, "vault", None)
    if not isinstance(found, Vault):
        found = Vault.from_settings(ctx.settings)
        request.app.state.vault = found
    return found


TheVault = Annotated[Vault, Depends(vault)]


@router.get("", response_model=PageOut[Dataset])
def list_datasets(
    db: Db,
    who: Caller,
    page: Annotated[PageRequest, Depends(paging)],
    project: Annotated[str | None, Query(description="only the datasets this project owns")] = None,
    name: Annotated[str | None, Query(description="only datasets of this name")] = None,
) -> PageOut[Dataset]:
    """The datasets of the caller's projects and those granted to them (all, for admins),
    each with its latest version."""
    return PageOut.of(terms.list_datasets(db, who, page, project, name))


@router.post("", response_model=Dataset, status_code=status.HTTP_201_CREATED)
def register_dataset(body: DatasetDraft, db: Db, who: Caller, ctx: Ctx) -> Dataset:
    """Register a dataset of one of the caller's projects, with its terms; upload its data
    as versions after."""
    return terms.register(db, who, ctx.clock(), body)


@router.get("/{project}/{name}", response_model=Dataset)
def get_dataset(project: ProjectRef, name: Name, db: Db, who: Caller) -> Dataset:
    """One dataset with its versions (newest first) and, for its owners, its grants."""
    return terms.get_dataset(db, who, project, name)


@router.delete("/{project}/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_dataset(
    project: ProjectRef, name: Name, db: Db, who: Caller, ctx: Ctx, store: TheVault
) -> Response:
    """Delete the dataset and every version: their data keys are destroyed, so no copy of
    the ciphertext can be read again (owner's principal investigator, or an admin)."""
    deletion.delete_dataset(db, store, who, ctx.clock(), project, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _body(request: Request) -> AsyncIterator[bytes]:
    try:
        async for piece in request.stream():
            if piece:
                yield piece
    except ClientDisconnect:
        raise InvalidInput(
            "the upload was cut off before its end; nothing was kept: push again"
        ) from None


@router.post(
    "/{project}/{name}/versions",
    response_model=DatasetVersion,
    status_code=status.HTTP_201_CREATED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
            "description": "the data, as raw bytes (streamed; any length within the quota)",
        }
    },
)
async def upload_version(
    project: ProjectRef,
    name: Name,
    request: Request,
    who: Caller,
    ctx: Ctx,
    store: TheVault,
    sha256: Annotated[
        str,
        Header(
            alias="X-Content-SHA256",
            pattern=r"^[0-9a-fA-F]{64}$",
            description="SHA-256 of the data (hex); the upload is kept only if it matches",
        ),
    ],
    content_length: Annotated[int | None, Header(ge=0)] = None,
) -> DatasetVersion:
    """Upload a new version of the dataset (members of the owning project). The body is
    encrypted as it arrives; a SHA-256 mismatch, a cut-off body or an upload beyond the
    project's quota leaves nothing behind."""
    return await upload.upload_version(
        ctx.sessions, store, who, ctx.clock, project, name, sha256.lower(), content_length,
        _body(request),
    )  # fmt: skip


@router.get(
    "/{project}/{name}/content",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download(
    project: ProjectRef,
    name: Name,
    db: Db,
    who: Caller,
    ctx: Ctx,
    store: TheVault,
    version: Annotated[int | None, Query(ge=1, description="default: the latest")] = None,
) -> StreamingResponse:
    """The data of a version, decrypted as it streams (owning and granted projects'
    members). `X-Content-SHA256` carries its SHA-256 for the client to check at the end."""
    found = open_download(db, store, who, ctx.clock(), project, name, version)
    return StreamingResponse(
        found.chunks,
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(found.size_bytes),
            "X-Content-SHA256": found.sha256,
            "X-Dataset-Version": str(found.number),
            "Content-Disposition": f'attachment; filename="{found.dataset}"',
        },
    )


@router.delete("/{project}/{name}/versions/{number}", status_code=status.HTTP_204_NO_CONTENT)
def delete_version(
    project: ProjectRef, name: Name, number: int, db: Db, who: Caller, ctx: Ctx, store: TheVault
) -> Response:
    """Delete one version: its data key is destroyed, then its ciphertext."""
    deletion.delete_version(db, store, who, ctx.clock(), project, name, number)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{project}/{name}/grants", response_model=DatasetGrant, status_code=status.HTTP_201_CREATED
)
def grant(
    project: ProjectRef, name: Name, body: GrantDraft, db: Db, who: Caller, ctx: Ctx
) -> DatasetGrant:
    """Let another project's members read the dataset (owner's principal investigator or
    an admin; a project of another organisation only with the owner's explicit consent)."""
    return grants.grant(db, who, ctx.clock(), project, name, body)


@router.delete("/{project}/{name}/grants/{grantee}", status_code=status.HTTP_204_NO_CONTENT)
def revoke(
    project: ProjectRef, name: Name, grantee: str, db: Db, who: Caller, ctx: Ctx
) -> Response:
    """Withdraw a project's grant."""
    grants.revoke(db, who, ctx.clock(), project, name, grantee)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@keys_router.get("", response_model=list[OrganisationKey])
def list_keys(db: Db, who: Caller) -> list[OrganisationKey]:
    """Key versions of the organisations the caller may rotate (history only: key material
    never leaves the server)."""
    return keys.list_keys(db, who)


@keys_router.post("/{organisation_id}/rotate", response_model=KeyRotation)
def rotate_key(organisation_id: int, db: Db, who: Caller, ctx: Ctx, store: TheVault) -> KeyRotation:
    """Rotate an organisation's key: a new version wraps every data key, the old one is
    destroyed; no data is re-encrypted (admins, the organisation's principal investigators)."""
    return keys.rotate_key(db, store, who, ctx.clock(), organisation_id)
