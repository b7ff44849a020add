"""The slurmrestd engine: a site that is its own administrative domain, reached only through
its own REST API.

Fabriek holds no munge key of the site, no `SLURM_CONF`, and runs no Slurm command for it.
It holds what the site gave it: the address of its `slurmrestd` and a key to sign JSON Web
Tokens with (the site's `AuthAltParameters=jwt_key=`, HS256). Each submission carries a
token for the job's owner (`sun` = their username at the site), so slurmctld itself runs
the job as that person, charged to the project's Slurm account; watching and cancelling use
a token for the site's operator account. Tokens live for minutes and appear in no answer,
log line or error message.

The API version is pinned (`API_VERSION`, Slurm 22.05's v0.0.38) and checked against what
the site offers before the first call: a site that offers another version is reported by
name, not met with a 404 on every call.

One poll is one `GET /jobs` for every job, as the slurm engine's one squeue; its answer has
squeue's `--json` shape, so the same parser serves both, and everything but listing,
starting and cancelling (tags, idempotent submit, polls, output files) is the engines'
shared `slurm_tagged`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from fabriek.domain.containers import ContainerSupport
from fabriek.domain.slurm_accounting import (
    AccountingFormatError,
    AccountingRecord,
    parse_slurmdb_jobs,
)
from fabriek.engines.base import (
    EngineJob,
    EngineRejected,
    EngineUnavailable,
)
from fabriek.engines.slurm_parse import (
    SlurmJob,
    SlurmOutputError,
    parse_squeue_json,
)
from fabriek.engines.slurm_sbatch import SbatchInputError
from fabriek.engines.slurm_tagged import TaggedSlurmEngine, check_handle
from fabriek.engines.slurm_web import WebPorts, node_address_from_rest
from fabriek.engines.slurmrestd_request import API_VERSION, build_submission

_TOKEN_LIFETIME_S = 300
# Errors slurmctld gives for a job it will never run as asked (not a site that is down).
_REFUSALS = (
    "Invalid account",
    "Invalid user",
    "Invalid partition",
    "Invalid generic resource",
    "Requested node configuration is not available",
    "Requested time limit is invalid",
    "Job violates accounting",
    "Invalid qos",
)
_GONE = ("Invalid job id", "already completed", "Job/step already completing or completed")


class JwtSigner:
    """Makes short-lived tokens for the site's users from the site's HS256 key."""

    def __init__(self, key_file: Path, lifetime_s: int = _TOKEN_LIFETIME_S) -> None:
        self.key_file = Path(key_file)
        self.lifetime_s = lifetime_s
        self._key: OctKey | None = None

    def token_for(self, username: str) -> str:
        """A token that lets slurmrestd act as `username` for the next few minutes."""
        if self._key is None:
            try:
                self._key = OctKey.import_key(self.key_file.read_bytes())
            except (OSError, JoseError, ValueError) as error:
                reason = getattr(error, "strerror", None) or type(error).__name__
                raise EngineUnavailable(
                    f"cannot read the site's JWT key file {self.key_file}: {reason}"
                ) from None
        now = int(time.time())
        claims = {"iat": now, "exp": now + self.lifetime_s, "sun": username}
        return jwt.encode({"alg": "HS256"}, claims, self._key)


class SlurmRestEngine(TaggedSlurmEngine):
    """Runs jobs on a Slurm site through its slurmrestd, as their owners."""

    def __init__(
        self,
        name: str,
        url: str,
        signer: JwtSigner,
        log_dir: Path,
        *,
        operator: str = "slurm",
        tag_prefix: str = "fabriek",
        partition: str | None = None,
        timeout_s: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        transport: httpx.BaseTransport | None = None,
        containers: ContainerSupport | None = None,
        web_ports: WebPorts | None = None,
        node_addresses: Mapping[str, str] | None = None,
    ) -> None:
        """`operator` is the site account that watches and cancels every job (a Slurm
        operator or the SlurmUser); `log_dir` is where output files land, on storage the
        site's nodes and this process share (writable by every user, sticky, like /tmp);
        `containers`: how the site runs jobs in images (None: it runs none); `web_ports`
        and `node_addresses`: where jobs' web apps listen and are reached (`slurm_web`)."""
        self.containers = containers
        super().__init__(
            name, Path(log_dir), tag_prefix=tag_prefix, partition=partition, clock=clock,
            web_ports=web_ports, node_addresses=node_addresses,
        )  # fmt: skip
        self.url = url.rstrip("/")
        self.signer = signer
        self.operator = operator
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, transport=transport)
        self._version_checked = False

    # -- the REST calls ------------------------------------------------------------------

    def _call(
        self, method: str, path: str, user: str, body: Mapping[str, Any] | None = None
    ) -> tuple[dict[str, Any], list[str]]:
        """One call as `user`: the answer and the errors Slurm put in it."""
        self._check_version()
        return self._raw(method, f"/slurm/{API_VERSION}{path}", user, body)

    def _raw(
        self,
        method: str,
        path: str,
        user: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> tuple[dict[str, Any], list[str]]:
        headers = {
            "X-SLURM-USER-NAME": user,
            "X-SLURM-USER-TOKEN": self.signer.token_for(user),
        }
        try:
            answer = self._http.request(method, path, headers=headers, json=body, params=params)
        except httpx.HTTPError as error:
            raise EngineUnavailable(
                f"{self.name}: slurmrestd at {self.url} cannot be reached: {type(error).__name__}"
            ) from None
        if answer.status_code == 404 and not answer.headers.get("content-type", "").startswith(
            "application/json"
        ):
            self._version_checked = False  # the site may have been upgraded: look again
            raise EngineUnavailable(f"{self.name}: slurmrestd has no {path}")
        try:
            data = answer.json()
        except ValueError:
            raise EngineUnavailable(
                f"{self.name}: slurmrestd answered {answer.status_code} without JSON"
            ) from None
        if not isinstance(data, dict):
            raise EngineUnavailable(f"{self.name}: slurmrestd answered an unexpected shape")
        errors = [
            str(e.get("error") or e.get("description") or e)
            + (f" ({e['description']})" if e.get("description") and e.get("error") else "")
            for e in data.get("errors") or []
            if isinstance(e, dict)
        ]
        return data, errors

    def _check_version(self) -> None:
        """Fail clearly when the site does not offer the API version Fabriek speaks."""
        if self._version_checked:
            return
        spec, _ = self._raw("GET", "/openapi/v3", self.operator)
        offered = sorted(
            {
                path.split("/")[2]
                for path in spec.get("paths", {})
                if path.startswith("/slurm/v") and path.count("/") >= 3
            }
        )
        if f"/slurm/{API_VERSION}/job/submit" not in spec.get("paths", {}):
            raise EngineUnavailable(
                f"{self.name}: slurmrestd offers the REST API "
                f"{', '.join(offered) or 'in no version Fabriek knows'}; Fabriek speaks "
                f"{API_VERSION} (Slurm 22.05): load it on the site (slurmrestd -s "
                f"openapi/{API_VERSION}) or run a Fabriek that speaks the site's version"
            )
        self._version_checked = True

    def _unavailable(self, what: str, errors: list[str]) -> EngineUnavailable:
        reason = "; ".join(errors) or "no reason given"
        if "Unspecified error" in reason:
            reason += (
                " (slurmctld refused Fabriek's token, or is down: check the site's JWT key "
                "against its AuthAltParameters)"
            )
        return EngineUnavailable(f"{self.name}: slurmrestd could not {what}: {reason}")

    # -- listing and starting: what the shared engine asks of this one --------------------

    def _list_jobs(self) -> list[SlurmJob]:
        data, errors = self._call("GET", "/jobs", self.operator)
        if errors:
            raise self._unavailable("list the jobs", errors)
        try:
            return parse_squeue_json(data)
        except SlurmOutputError as error:
            raise EngineUnavailable(f"{self.name}: slurmrestd /jobs: {error}") from None

    def _start(self, job: EngineJob) -> str:
        """Submit the job with a token for its owner, charged to its project's account."""
        if job.owner is None:  # the shared submit refuses such a job before it gets here
            raise EngineRejected("the job names no owner")
        try:
            body = build_submission(
                job,
                engine=self.name,
                log_dir=self.log_dir,
                account=job.owner.project,
                tag_prefix=self.tag_prefix,
                partition=self.partition,
                containers=self.containers,
                web_ports=self.web_ports,
            )
        except SbatchInputError as error:
            raise EngineRejected(str(error)) from None
        data, errors = self._call("POST", "/job/submit", job.owner.user, body)
        handle = data.get("job_id")
        if errors or not isinstance(handle, int):
            reason = "; ".join(errors) or "no job id in the answer"
            if any(refusal in reason for refusal in _REFUSALS):
                raise EngineRejected(f"{self.name}: Slurm refused the job: {reason}")
            raise self._unavailable("submit the job", errors)
        return str(handle)

    def _node_address(self, node: str) -> str | None:
        """The node's address, from `GET /node/NAME` as the operator."""
        if not re.fullmatch(r"[A-Za-z0-9._-]+", node):
            return None
        data, errors = self._call("GET", f"/node/{node}", self.operator)
        if errors:
            raise self._unavailable(f"describe node {node}", errors)
        return node_address_from_rest(data)

    # -- accounting: what the site's slurmdbd holds -----------------------------------------

    def read_accounting(self, since: datetime | None) -> list[AccountingRecord]:
        """Every job run the site's accounting holds that was active at or after `since`
        (all when None), finished or not: one `GET /slurmdb/v0.0.38/jobs` as the operator.
        Needs slurmrestd with `-s openapi/dbv0.0.38` and the site's slurmdbd; either missing
        or down is EngineUnavailable, and the harvest tries again later."""
        start = (since or datetime(1970, 1, 2, tzinfo=UTC)).astimezone(UTC)
        path = f"/slurmdb/{API_VERSION}/jobs"
        params = {"start_time": f"{start:%Y-%m-%dT%H:%M:%S}"}
        try:
            data, errors = self._raw("GET", path, self.operator, params=params)
        except EngineUnavailable as error:
            if "has no" in str(error):
                raise EngineUnavailable(
                    f"{self.name}: slurmrestd serves no accounting: load it with "
                    f"-s openapi/{API_VERSION},openapi/db{API_VERSION} (one -s, the plugins "
                    "comma-separated: a second -s replaces the first), and run slurmdbd"
                ) from None
            raise
        # Slurm 22.05 answers a query that matches no job with an error of its own.
        if errors and all("Nothing found" in e for e in errors):
            return []
        if errors:
            raise self._unavailable("read the accounting (is slurmdbd up?)", errors)
        try:
            return parse_slurmdb_jobs(data)
        except AccountingFormatError as error:
            raise EngineUnavailable(f"{self.name}: slurmrestd /slurmdb jobs: {error}") from None

    # -- the rest of the Engine protocol ----------------------------------------------------

    def cancel(self, handle: str) -> None:
        """Cancel the job as the site's operator; one that already ended is not an error."""
        check_handle(handle)
        _, errors = self._call("DELETE", f"/job/{handle}", self.operator)
        if errors and not any(gone in e for e in errors for gone in _GONE):
            raise self._unavailable(f"cancel job {handle}", errors)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()
