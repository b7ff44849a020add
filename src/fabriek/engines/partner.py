"""The partner engine: another Fabriek installation, reached through its HTTP API, as a site.

The partner's operator granted this factory an allocation there: a project of the
partner's with its GPU-hours, and an account whose API token this factory holds. Every job
placed here is submitted to the partner's `POST /api/v1/partner/jobs` with that token and
a signed assertion of who submitted it (`domain.partners`): the partner runs it as its own
job, charged to the allocation, and names the person in its audit trail.

Submission is idempotent by this factory's job id (the assertion's `job` claim): a job sent
twice (a retry after an answer that never came, a control plane restarted between
submitting and recording) is one job there. One poll is one `GET /api/v1/partner/jobs` for
every job of this factory at the partner, with each job's state, GPU-seconds, energy
readings and the partner's own figures (energy, carbon in its grid's intensity). Output is
read with the partner's ordinary `GET /api/v1/jobs/ID/logs`, cancels go to its
`POST /api/v1/jobs/ID/cancel`.

A partner that does not answer is a site that is down (`EngineUnavailable`): its jobs wait
or go elsewhere; but a submission that may have arrived unanswered (`EngineUnsure`) keeps its
job for this partner, to be sent again until the partner answers, so it never runs twice. A partner whose API is not `PARTNER_API` is reported by name.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from fabriek.domain.job_states import JobState
from fabriek.domain.partners import (
    ASSERTION_ALG,
    ASSERTION_HEADER,
    PARTNER_API,
    Assertion,
    assertion_for,
    observed_state,
)
from fabriek.engines.base import (
    EngineJob,
    EngineRejected,
    EngineUnavailable,
    EngineUnsure,
    LogStream,
    Observation,
)

# Polls ask for this many jobs at a time (a query string stays well under servers' limits).
_POLL_BATCH = 200
# Idempotent submissions whose answer was lost are sent again this many times at once.
_SUBMIT_TRIES = 3


class AssertionSigner:
    """Signs assertions with this factory's Ed25519 key (a PEM file, read at first use)."""

    def __init__(self, key_file: Path) -> None:
        self.key_file = Path(key_file)
        self._key: OKPKey | None = None

    def sign(self, assertion: Assertion) -> str:
        """The assertion as a compact JWS."""
        if self._key is None:
            try:
                self._key = OKPKey.import_key(self.key_file.read_bytes())
            except (OSError, JoseError, ValueError) as error:
                reason = getattr(error, "strerror", None) or type(error).__name__
                raise EngineUnavailable(
                    f"cannot read this factory's signing key {self.key_file}: {reason}"
                ) from None
        return jwt.encode(
            {"alg": ASSERTION_ALG}, assertion.claims(), self._key, algorithms=[ASSERTION_ALG]
        )


def _read_token(path: Path) -> str:
    try:
        token = Path(path).read_text().strip()
    except OSError as error:
        raise EngineUnavailable(
            f"cannot read the partner's token file {path}: {error.strerror}"
        ) from None
    if not token:
        raise EngineUnavailable(f"the partner's token file {path} is empty")
    return token


class PartnerEngine:
    """Runs jobs at a partner factory, as jobs of the allocation it granted this one."""

    def __init__(
        self,
        name: str,
        url: str,
        token_file: Path,
        project: str,
        factory: str,
        partner: str,
        signer: AssertionSigner,
        *,
        timeout_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """`project` is the partner's project of the allocation; `factory` this factory's
        name as the partner knows it (its partners file), `partner` the partner's own name
        (the assertion's audience)."""
        self.name = name
        self.url = url.rstrip("/")
        self.token_file = Path(token_file)
        self.project = project
        self.factory = factory
        self.partner = partner
        self.signer = signer
        self.clock = clock
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, transport=transport)
        self._api_checked = False

    # -- the HTTP calls --------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        token = _read_token(self.token_file)
        try:
            return self._http.request(
                method, path, content=content, params=params,
                headers={"Authorization": f"Bearer {token}", **(headers or {})},
            )  # fmt: skip
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise EngineUnavailable(self._silent(exc)) from None
        except httpx.HTTPError as exc:
            # The request may have arrived: a submission is then of unknown outcome.
            raise EngineUnsure(self._silent(exc)) from None

    def _silent(self, exc: Exception) -> str:
        return f"partner factory {self.name} at {self.url} does not answer: {type(exc).__name__}"

    def _check_api(self) -> None:
        """Before the first call: the partner speaks this factory's partner API."""
        if self._api_checked:
            return
        answer = self._request("GET", "/api/v1/partner")
        if answer.status_code == 404:
            raise EngineUnavailable(
                f"partner factory {self.name} offers no partner API; this factory speaks "
                f"{PARTNER_API}"
            )
        body = self._json(answer, "asking for its partner API")
        offered = body.get("api")
        if offered != PARTNER_API:
            raise EngineUnavailable(
                f"partner factory {self.name} offers the partner API {offered}; this factory "
                f"speaks {PARTNER_API}"
            )
        self._api_checked = True

    def _json(self, answer: httpx.Response, doing: str) -> dict[str, Any]:
        """The answer's JSON body; a refusal or a server error said in words."""
        if answer.status_code in (401, 403):
            raise EngineUnavailable(
                f"partner factory {self.name} refused this factory's token while {doing}: "
                f"{_detail(answer)}"
            )
        if answer.status_code == 429 or answer.status_code >= 500:
            raise EngineUnavailable(
                f"partner factory {self.name} answered {answer.status_code} while {doing}: "
                f"{_detail(answer)}"
            )
        if answer.status_code >= 400:
            raise EngineRejected(f"partner factory {self.name}: {_detail(answer)}")
        try:
            body = answer.json()
        except ValueError:
            raise EngineUnavailable(
                f"partner factory {self.name} answered something that is not JSON while {doing}"
            ) from None
        if not isinstance(body, dict):
            raise EngineUnavailable(f"partner factory {self.name} answered an unexpected shape")
        return body

    # -- the engine protocol ----------------------------------------------------------------

    def submit(self, job: EngineJob) -> str:
        """Submit `job` with a signed assertion naming its owner; the partner's job id.
        Idempotent per `job.job_id` at the partner."""
        if job.owner is None:
            raise EngineRejected("a job for a partner factory needs its owner, to name them")
        if job.datasets_dir is not None:
            raise EngineRejected("datasets do not travel to partner factories")
        try:
            self._check_api()
        except EngineUnsure as exc:  # nothing of the job was sent yet
            raise EngineUnavailable(str(exc)) from None
        body = json.dumps(_draft(job, self.project), sort_keys=True).encode()
        last: EngineUnavailable | None = None
        maybe_there = False
        for _ in range(_SUBMIT_TRIES):
            assertion = assertion_for(
                self.factory, self.partner, job.owner.user, job.job_id, body, int(self.clock())
            )
            headers = {
                ASSERTION_HEADER: self.signer.sign(assertion),
                "Content-Type": "application/json",
            }
            try:
                answer = self._request(
                    "POST", "/api/v1/partner/jobs", content=body, headers=headers
                )
                found = self._json(answer, f"submitting job {job.job_id}")
            except EngineUnavailable as exc:
                last = exc  # sent again with the same key: never a second job there
                maybe_there = maybe_there or isinstance(exc, EngineUnsure)
                continue
            return str(int(found["id"]))
        assert last is not None
        if maybe_there:  # it may run there: the dispatcher keeps it for this site
            raise EngineUnsure(str(last))
        raise last

    def poll(self, handles: Mapping[int, str]) -> dict[int, Observation]:
        """Every job's state, usage and energy at the partner; one the partner does not
        know is LOST with a reason."""
        self._check_api()
        seen: dict[int, Observation] = {}
        ids = sorted(handles)
        for i in range(0, len(ids), _POLL_BATCH):
            batch = ids[i : i + _POLL_BATCH]
            answer = self._request(
                "GET", "/api/v1/partner/jobs", params=[("job", j) for j in batch]
            )
            body = self._json(answer, "polling its jobs")
            known = {int(item["job"]): item for item in body.get("items", [])}
            for job_id in batch:
                item = known.get(job_id)
                seen[job_id] = (
                    _observation(job_id, handles[job_id], item)
                    if item is not None
                    else Observation(
                        job_id, handles[job_id], JobState.LOST,
                        reason=f"partner factory {self.name} no longer knows the job",
                    )
                )  # fmt: skip
        return seen

    def cancel(self, handle: str) -> None:
        """Cancel at the partner; a job that already ended there is not an error."""
        self._check_api()
        answer = self._request("POST", f"/api/v1/jobs/{int(handle)}/cancel")
        if answer.status_code in (404, 409):
            return
        self._json(answer, "cancelling a job")

    def read_log(
        self, handle: str, stream: LogStream, offset: int = 0, limit: int = 1 << 20
    ) -> bytes:
        """The job's output at the partner, from `offset`."""
        answer = self._request(
            "GET",
            f"/api/v1/jobs/{int(handle)}/logs",
            params={"stream": stream.value, "offset": offset},
        )
        if answer.status_code >= 400:
            self._json(answer, "reading a job's output")
        return answer.content[:limit]

    def known_jobs(self) -> dict[int, str]:
        """Every job of this factory the partner holds (this factory's id -> handle)."""
        self._check_api()
        body = self._json(self._request("GET", "/api/v1/partner/jobs"), "listing its jobs")
        return {int(item["job"]): str(item["id"]) for item in body.get("items", [])}


def _detail(answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return f"HTTP {answer.status_code}"
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return str(body["detail"])[:300]
    return f"HTTP {answer.status_code}"


def _draft(job: EngineJob, project: str) -> dict[str, Any]:
    """The partner's job draft for `job`, charged to the allocation's project there."""
    spec = job.spec
    draft: dict[str, Any] = {
        "project": project,
        "name": spec.name,
        "gpus": spec.gpus,
        "nodes": spec.nodes,
        "cpus": spec.cpus,
        "memory_gb": spec.memory_gb,
        "time_limit": spec.time_limit_s,
        "environment": dict(spec.environment),
        "preemptible": spec.preemptible,
    }
    if spec.command is not None:
        draft["command"] = list(spec.command)
    if spec.script is not None:
        draft["script"] = spec.script
    if spec.gpu_type:
        draft["gpu_type"] = spec.gpu_type
    if spec.working_dir:
        draft["working_dir"] = spec.working_dir
    return draft


def _when(text: object) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) else None


def _observation(job_id: int, handle: str, item: Mapping[str, Any]) -> Observation:
    """What the partner says of one job, as this factory's dispatcher reads it. The
    partner's own figures travel in the readings under "partner" (metering reads only the
    counters), so this factory keeps what the partner charged and emitted."""
    state = observed_state(JobState(item["state"]))
    readings = [dict(r) for r in item.get("energy_readings") or []]
    usage = item.get("usage")
    if isinstance(usage, dict) and state not in (JobState.PENDING, JobState.RUNNING):
        readings.append({"partner": dict(usage)})
    gpu_seconds = float(item.get("gpu_seconds") or 0.0)
    reason = item.get("reason")
    return Observation(
        job_id,
        handle,
        state,
        reason=str(reason) if reason else None,
        exit_code=item.get("exit_code"),
        started_at=_when(item.get("started_at")),
        ended_at=_when(item.get("ended_at")),
        gpu_seconds={"partner": gpu_seconds} if gpu_seconds else {},
        energy_readings=tuple(readings),
    )
