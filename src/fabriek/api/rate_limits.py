"""Rate limits on the API, the portal and sign-in (429 with `Retry-After`), per token and
per client address (the rule: `fabriek.domain.rate_limits`).

Four limits, each off when its rate is 0:
- every request of a token (the `Authorization` header's or the portal's cookie);
- the writes of a token (POST, PUT, PATCH, DELETE: submissions among them), a tighter one,
  so that one account flooding submissions is throttled and nobody else waits for it;
- every request from one client address, whatever its tokens (a flood of anonymous or
  many-token requests);
- failed sign-ins from one client address: a credential the server refused (401, on the
  API, the gateway or the portal's sign-in form). Past it, a credential from that address
  that has not been seen to work is refused unchecked until the limit refills, so tokens
  cannot be guessed at speed; tokens that worked from anywhere are served as before.

The counts are this process's own (in memory, bounded): with several servers behind a load
balancer, a caller gets each limit once per server. Health, readiness and `/metrics` are
never limited. The model gateway (`/v1`) has its own limits per endpoint key and is counted
here only for failed credentials.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fabriek.api.problems import problem
from fabriek.domain.identity import tokens as token_format
from fabriek.domain.rate_limits import Rate, admit, is_idle, peek, retry_after_header
from fabriek.services.identity.tokens import collect_proofs, proof_key
from fabriek.settings import Settings

EXEMPT = ("/healthz", "/readyz", "/metrics", "/static/")
GATEWAY = "/v1/"
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SIGN_IN = "/signin"
KNOWN_FOR_S = 24 * 3600.0
TOKEN_COOKIE = f"{token_format.COOKIE}=".encode()


@dataclass(frozen=True)
class Limits:
    """The four limits (None: off), as the settings give them."""

    token: Rate | None
    token_writes: Rate | None
    address: Rate | None
    failed_signins: Rate | None

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        """The limits the settings set (a rate of 0 turns its limit off)."""

        def rate(per_s: float, burst: int) -> Rate | None:
            return Rate(per_s, burst) if per_s > 0 else None

        return cls(
            token=rate(settings.rate_limit_token_per_s, settings.rate_limit_token_burst),
            token_writes=rate(
                settings.rate_limit_token_writes_per_s, settings.rate_limit_token_writes_burst
            ),
            address=rate(settings.rate_limit_address_per_s, settings.rate_limit_address_burst),
            failed_signins=rate(
                settings.rate_limit_failed_signins_per_min / 60,
                settings.rate_limit_failed_signins_burst,
            ),
        )


class CallerTable:
    """The state (`tat`) of each caller under one limit, bounded: callers whose state lies in
    the past are forgotten (they count as never seen), and past `max_callers` the least
    recently seen go first."""

    def __init__(self, rate: Rate, max_callers: int = 100_000) -> None:
        self.rate = rate
        self.max_callers = max_callers
        self._tat: dict[str, float] = {}

    def admit(self, key: str, now: float) -> float | None:
        """Spend one request of `key`: None if admitted, else the seconds to wait."""
        verdict = admit(self._tat.get(key), now, self.rate)
        if verdict.admitted:
            self._tat.pop(key, None)  # re-inserted last: the most recently seen
            self._tat[key] = verdict.tat
            self._bound(now)
            return None
        return verdict.retry_after_s

    def check(self, key: str, now: float) -> float | None:
        """Whether `key` would be admitted now, spending nothing: None, or the seconds to
        wait."""
        verdict = peek(self._tat.get(key), now, self.rate)
        return None if verdict.admitted else verdict.retry_after_s

    def __len__(self) -> int:
        return len(self._tat)

    def _bound(self, now: float) -> None:
        if len(self._tat) <= self.max_callers:
            return
        for key in [k for k, tat in self._tat.items() if is_idle(tat, now)]:
            del self._tat[key]
        while len(self._tat) > self.max_callers * 3 // 4:
            del self._tat[next(iter(self._tat))]


class KnownCredentials:
    """Tokens accepted in the last `KNOWN_FOR_S` (by their `proof_key`), bounded."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._seen: dict[str, float] = {}

    def add(self, key: str, now: float) -> None:
        """`key` was accepted at `now`."""
        self._seen.pop(key, None)
        self._seen[key] = now
        while len(self._seen) > self.max_entries:
            del self._seen[next(iter(self._seen))]

    def known(self, key: str, now: float) -> bool:
        """Whether `key` was accepted recently."""
        seen = self._seen.get(key)
        return seen is not None and now - seen < KNOWN_FOR_S


def _credential(scope: Scope) -> str | None:
    """The token a request carries (bearer header, else the portal's cookie), by its proof
    key: the tables never hold a usable secret."""
    found: bytes | None = None
    for name, value in scope.get("headers", []):
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            found = value[7:].strip()
            break
        if name == b"cookie" and found is None:
            for part in value.split(b";"):
                part = part.strip()
                if part.startswith(TOKEN_COOKIE):
                    found = part[len(TOKEN_COOKIE) :]
    return proof_key(found) if found else None


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RateLimitMiddleware:
    """Plain ASGI: the limits are checked before the app sees the request, and a 401 the app
    answers counts as a failed sign-in of the client's address."""

    def __init__(
        self,
        app: ASGIApp,
        limits: Limits,
        refused: Counter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.refused = refused
        self.clock = clock
        self.limits = limits
        self.tables = {
            name: CallerTable(rate)
            for name, rate in (
                ("token", limits.token),
                ("token_writes", limits.token_writes),
                ("address", limits.address),
                ("failed_signins", limits.failed_signins),
            )
            if rate is not None
        }
        # Tokens that were accepted: a flood of failures from their address does not lock
        # them out (an attacker behind the same NAT as a colleague cannot lock the colleague).
        self.known_good = KnownCredentials()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(EXEMPT):
            await self.app(scope, receive, send)
            return
        now = self.clock()
        credential = _credential(scope)
        address = _address(scope)
        signing_in = scope.get("method") == "POST" and path == SIGN_IN
        refusal = self._refusal(scope, path, now, credential, address, signing_in)
        if refusal is not None:
            limit, wait_s, detail = refusal
            if self.refused is not None:
                self.refused.labels(limit).inc()
            answer = problem(
                429, detail, path, code="too-many-requests",
                headers={"Retry-After": retry_after_header(wait_s)},
            )  # fmt: skip
            await answer(scope, receive, send)
            return
        proofs = collect_proofs()

        async def watch(message: Message) -> None:
            # Counted before the client can read the answer (and send its next guess): the
            # app may go on after it (closing its session) while the client is already back.
            if message["type"] == "http.response.start":
                self._account(message["status"], now, credential, address, signing_in, proofs)
            await send(message)

        await self.app(scope, receive, watch)

    def _refusal(
        self,
        scope: Scope,
        path: str,
        now: float,
        credential: str | None,
        address: str,
        signing_in: bool,
    ) -> tuple[str, float, str] | None:
        failures = self.tables.get("failed_signins")
        if failures is not None and (signing_in or credential is not None):
            unproven = credential is None or not self.known_good.known(credential, now)
            if unproven and (wait := failures.check(address, now)) is not None:
                return ("failed_signins", wait, (
                    f"too many failed sign-ins from {address} (at most "
                    f"{failures.rate.describe()}); try again in {retry_after_header(wait)} s "
                    "with a valid token (FABRIEK_RATE_LIMIT_FAILED_SIGNINS_PER_MIN)"
                ))  # fmt: skip
        if path.startswith(GATEWAY):
            return None  # endpoint keys have limits of their own
        checks: list[tuple[str, str, str]] = [("address", address, "FABRIEK_RATE_LIMIT_ADDRESS")]
        if credential is not None:
            checks.append(("token", credential, "FABRIEK_RATE_LIMIT_TOKEN"))
            if scope.get("method") in WRITES:
                checks.append(("token_writes", credential, "FABRIEK_RATE_LIMIT_TOKEN_WRITES"))
        # Checked before any is spent: a refused request costs the caller nothing.
        for name, key, setting in checks:
            table = self.tables.get(name)
            if table is not None and (wait := table.check(key, now)) is not None:
                whose = f"from {address}" if name == "address" else "with this token"
                kind = "writes" if name == "token_writes" else "requests"
                return (name, wait, (
                    f"too many {kind} {whose} (at most {table.rate.describe()}); try again in "
                    f"{retry_after_header(wait)} s, or ask the operator to raise {setting}_PER_S"
                ))  # fmt: skip
        for name, key, _ in checks:
            table = self.tables.get(name)
            if table is not None:
                table.admit(key, now)
        return None

    def _account(
        self,
        status: int,
        now: float,
        credential: str | None,
        address: str,
        signing_in: bool,
        proofs: list[str],
    ) -> None:
        for key in proofs:
            self.known_good.add(key, now)
        failures = self.tables.get("failed_signins")
        if failures is not None and status == 401 and (signing_in or credential is not None):
            failures.admit(address, now)
