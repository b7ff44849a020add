"""Asking a replica's model server whether it is healthy (`GET /health`) and how many
requests wait in its queue (`vllm:num_requests_waiting` on `GET /metrics`), through the
address its engine reports, with the secret it trusts.
"""

from __future__ import annotations

import httpx

from fabriek.domain.endpoints import RUNNING_METRIC, queue_from_metrics
from fabriek.domain.web_apps import SECRET_HEADER

HEALTH_TIMEOUT_S = 3.0


def _headers(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}", SECRET_HEADER: secret}


def probe_health(
    base_url: str,
    secret: str,
    timeout_s: float = HEALTH_TIMEOUT_S,
    http: httpx.Client | None = None,
) -> bool:
    """Whether the replica's server answers `/health` with 200 now."""
    try:
        if http is not None:
            answer = http.get(f"{base_url}/health", headers=_headers(secret))
        else:
            answer = httpx.get(
                f"{base_url}/health",
                headers=_headers(secret),
                timeout=timeout_s,
                trust_env=False,
            )
    except httpx.HTTPError:
        return False
    return answer.status_code == 200


def queue_lengths(base_url: str, secret: str, http: httpx.Client) -> tuple[float, float]:
    """(waiting, running) requests of the replica's server (0, 0 when it reports none)."""
    try:
        answer = http.get(f"{base_url}/metrics", headers=_headers(secret))
    except httpx.HTTPError:
        return 0.0, 0.0
    if answer.status_code != 200:
        return 0.0, 0.0
    text = answer.text
    return queue_from_metrics(text), queue_from_metrics(text, RUNNING_METRIC)
