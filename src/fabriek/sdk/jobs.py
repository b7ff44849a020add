"""Jobs: submit, list like squeue, look at, cancel, and read their output."""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from fabriek.sdk.core import Listing, SubClient

if TYPE_CHECKING:
    from fabriek.domain.jobs import Job, JobDraft, JobEvent


def _job() -> type[Job]:
    # The job's models import Pydantic (50-100 ms): imported when a method needs them, so that
    # `rows` (what `fabriek jobs` shows) starts without it.
    from fabriek.domain.jobs import Job

    return Job


class JobsClient(SubClient):
    """`client.jobs`: the work that runs on the factory's GPUs."""

    def submit(self, draft: JobDraft) -> Job:
        """Queue a job."""
        return _job().model_validate(self._core.post("/jobs", draft))

    def list(
        self,
        limit: int = 100,
        offset: int = 0,
        states: Sequence[str] | None = None,
        **filters: Any,
    ) -> Listing[Job]:
        """The jobs one can see, newest first; filters: project, site, user."""
        return self._core.listing(_job(), "/jobs", _listing_params(limit, offset, states, filters))

    def rows(
        self,
        limit: int = 100,
        offset: int = 0,
        states: Sequence[str] | None = None,
        **filters: Any,
    ) -> Listing[dict[str, Any]]:
        """The same listing as `list`, each job a plain JSON object as the API sent it (the
        fields of `Job`, times as ISO 8601 text): for a caller that only shows them."""
        return self._core.rows("/jobs", _listing_params(limit, offset, states, filters))

    def get(self, job_id: int) -> Job:
        """One job."""
        return _job().model_validate(self._core.get(f"/jobs/{job_id}"))

    def events(self, job_id: int) -> builtins.list[JobEvent]:
        """A job's history: each change of state and why."""
        from fabriek.domain.jobs import JobEvent

        return self._core.items(JobEvent, f"/jobs/{job_id}/events")

    def cancel(self, job_id: int) -> Job:
        """Cancel a job, as scancel does."""
        return _job().model_validate(self._core.post(f"/jobs/{job_id}/cancel"))

    def logs(self, job_id: int, stream: str = "stdout", offset: int = 0) -> bytes:
        """A chunk of a job's output from `offset` on (empty when there is no more)."""
        params = {"stream": stream, "offset": offset}
        return self._core.request("GET", f"/jobs/{job_id}/logs", params=params).content

    def follow_logs(self, job_id: int, stream: str = "stdout") -> Iterator[bytes]:
        """The job's output as it comes, until the job ends."""
        params = {"stream": stream, "follow": "true"}
        with self._core.stream(f"/jobs/{job_id}/logs", params, timeout=None) as response:
            yield from response.iter_bytes()

    def web_app_url(self, job_id: int, path: str = "") -> str:
        """Where a job's web app opens in a browser: under the portal, at `/apps/<id>/`."""
        return f"{self._core.url}/apps/{job_id}/{path}"

    def web_app_status(self, job_id: int, path: str = "") -> int:
        """The status of a GET of the job's web app through Fabriek's proxy: 200 (or the
        app's own) once it answers, 409 while the job waits, 503 while the app starts."""
        return self._core.outside_api("GET", f"/apps/{job_id}/{path}").status_code


def _listing_params(
    limit: int, offset: int, states: Sequence[str] | None, filters: dict[str, Any]
) -> dict[str, Any]:
    return {"limit": limit, "offset": offset, "state": list(states or []) or None, **filters}
