"""The HTTP core every sub-client shares: one httpx connection, problem documents as
ApiError, listings as typed pages, and drafts validated here before they are sent."""

from __future__ import annotations

import ssl
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeGuard, TypeVar

import httpx

from fabriek.domain.errors import FieldProblem, InvalidInput
from fabriek.sdk.errors import ApiError, ApiUnreachable

if TYPE_CHECKING:
    # Only for types: at run time Pydantic is imported by the models a caller uses, so
    # that a command which only lists (`fabriek jobs`) never pays its import (50-100 ms).
    from pydantic import BaseModel

M = TypeVar("M", bound="BaseModel")
T = TypeVar("T")

API = "/api/v1"

# Transfers of several GiB: the server may take a while after the last byte (fsync, commit).
TRANSFER_TIMEOUT = httpx.Timeout(30.0, read=600.0, write=600.0)


@dataclass(frozen=True)
class Listing(Generic[T]):
    """One page of a listing and how many there are in all."""

    items: list[T]
    total: int


def validated(model: type[M], fields: Mapping[str, Any]) -> M:
    """A draft built from loose fields (a command line's options), or InvalidInput worded
    as the API words a 422 (`field: message; ...`), so a mistake reads the same whether
    this side or the server finds it."""
    from pydantic import ValidationError

    try:
        return model.model_validate(dict(fields))
    except ValidationError as exc:
        # A rule on the whole draft has no field: the API names it `body`, and so do we.
        problems = [
            FieldProblem(".".join(str(p) for p in e["loc"]) or "body", e["msg"])
            for e in exc.errors()
        ]
        detail = "; ".join(f"{p.field}: {p.message}" for p in problems)
        raise InvalidInput(detail, problems) from None


def is_model(value: object) -> TypeGuard[BaseModel]:
    """Whether VALUE is a Pydantic model; without importing Pydantic, since no model can
    exist before something else has."""
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(value, pydantic.BaseModel)


def body_of(draft: BaseModel) -> Any:
    """A draft as JSON: only the fields that were given, so the server's defaults apply to
    the rest exactly as when the same fields are sent by hand."""
    return draft.model_dump(mode="json", by_alias=True, exclude_unset=True)


def problem_of(response: httpx.Response) -> ApiError:
    """The ApiError a 4xx/5xx answer stands for (its body read already)."""
    try:
        body = response.json()
        detail = str(body.get("detail") or body.get("title") or response.reason_phrase)
        errors = body.get("errors")
    except (ValueError, AttributeError):
        detail, errors = f"{response.status_code} {response.reason_phrase}", None
    return ApiError(response.status_code, detail, errors)


THROTTLED_WAIT_S = 120.0
"""How long in all a request waits out the server's rate limits before the 429 is raised."""


def throttled_for(response: httpx.Response) -> float | None:
    """Seconds to wait before sending a refused request again: a 429's `Retry-After`; None
    for any other answer (or a 429 without a usable one)."""
    if response.status_code != 429:
        return None
    try:
        wait = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return wait if 0 <= wait <= THROTTLED_WAIT_S else None


def tls_for(url: str) -> ssl.SSLContext | bool:
    """How the client verifies TLS for a server at `url`: with the default certificate store
    for https (httpx's own), and for plain http with a TLS context that trusts nothing. A
    plain-HTTP server needs no certificate store, and loading it costs every CLI command
    about 25 ms; should a connection to it turn to TLS after all (a proxy), it fails
    verification rather than going unchecked."""
    if url.lower().startswith("http://"):
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return True


class HttpCore:
    """One connection to one server with one token; paths are relative to `/api/v1`."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=timeout,
            transport=transport,
            verify=tls_for(self.url),
        )

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request; raise ApiError with the problem's detail on any 4xx/5xx. A 429
        (a rate limit: the server did nothing with the request) is sent again after its
        `Retry-After`, for up to `THROTTLED_WAIT_S` in all."""
        # A body read from a file or a stream cannot be sent twice: its 429 is raised.
        content = kwargs.get("content")
        replayable = "files" not in kwargs and (content is None or isinstance(content, bytes))
        waited = 0.0
        while True:
            try:
                response = self._http.request(method, f"{API}{path}", **kwargs)
            except httpx.TransportError as exc:
                raise ApiUnreachable(f"cannot reach Fabriek at {self.url}: {exc}") from None
            wait = throttled_for(response)
            if wait is None or not replayable or waited + wait > THROTTLED_WAIT_S:
                break
            time.sleep(wait)
            waited += wait
        if response.status_code >= 400:
            raise problem_of(response)
        return response

    def outside_api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request to a path of the server outside `/api/v1` (a job's web app through
        Fabriek's proxy), with the same token; its answer, whatever its status."""
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiUnreachable(f"cannot reach Fabriek at {self.url}: {exc}") from None

    @contextmanager
    def stream(
        self,
        path: str,
        params: Mapping[str, Any],
        timeout: httpx.Timeout | float | None,
    ) -> Iterator[httpx.Response]:
        """A GET whose body is read as it comes (logs being written, a dataset's bytes)."""
        try:
            with self._http.stream(
                "GET", f"{API}{path}", params=dict(params), timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise problem_of(response)
                yield response
        except httpx.TransportError as exc:
            raise ApiUnreachable(f"lost the connection to {self.url}: {exc}") from None

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        return self.request("GET", path, params=clean).json()

    def post(self, path: str, body: BaseModel | Mapping[str, Any] | None = None) -> Any:
        return self.send("POST", path, body)

    def send(self, method: str, path: str, body: BaseModel | Mapping[str, Any] | None) -> Any:
        """A JSON body (a draft, or the few fields of an action) sent; the JSON answer."""
        payload = body_of(body) if is_model(body) else dict(body or {})
        return self.request(method, path, json=payload).json()

    def listing(self, model: type[M], path: str, params: Mapping[str, Any]) -> Listing[M]:
        page = self.rows(path, params)
        return Listing([model.model_validate(i) for i in page.items], page.total)

    def rows(self, path: str, params: Mapping[str, Any]) -> Listing[dict[str, Any]]:
        """A listing's items as the API sent them, plain JSON objects: for a caller that only
        shows them, which then never imports Pydantic."""
        body = self.get(path, params)
        return Listing(list(body["items"]), body["total"])

    def items(self, model: type[M], path: str, params: Mapping[str, Any] | None = None) -> list[M]:
        """A bare JSON array of one kind of value."""
        return [model.model_validate(i) for i in self.get(path, params)]


class SubClient:
    """The base of each capability's sub-client: they share their client's core."""

    def __init__(self, core: HttpCore) -> None:
        self._core = core
