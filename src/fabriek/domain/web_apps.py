"""Web apps that jobs serve (JupyterLab, TensorBoard, a Gradio demo): pure rules.

A job's web app listens on the loopback interface of the job's host only, and is reached
only through Fabriek's authenticated proxy at `/apps/<job id>/`. The app trusts the proxy,
and only the proxy: the proxy presents a per-job secret (`FABRIEK_WEB_SECRET` in the job's
environment) that another local user of the same host does not know, so connecting to the
port directly gets them nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

JUPYTERLAB = "jupyterlab"
# The header the proxy sends a generic web app; the app compares it with its
# FABRIEK_WEB_SECRET. JupyterLab gets the same secret as its token instead.
SECRET_HEADER = "x-fabriek-web-secret"
# Proxy traffic marks a web app active at most this often (one write per minute, not one
# per request).
ACTIVITY_WRITE_EVERY = timedelta(seconds=60)

# Hop-by-hop headers (RFC 9110 section 7.6.1) never cross a proxy; nor do the caller's
# credentials for Fabriek, which the app must never see.
_NOT_FORWARDED = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "transfer-encoding", "upgrade", "host", "authorization", "cookie",
        "content-length", "origin", SECRET_HEADER,
    }
)  # fmt: skip
_NOT_RETURNED = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "upgrade", "content-length",
     "set-cookie"}
)  # fmt: skip


def app_prefix(job_id: int) -> str:
    """Where a job's web app is reached on the portal."""
    return f"/apps/{job_id}/"


def jupyterlab_command(job_id: int) -> list[str]:
    """JupyterLab's command line in a job: loopback only, under the proxy's prefix, and
    opened only with the secret the proxy holds (its token, taken from the environment so
    that it never shows in `ps`)."""
    return [
        "sh", "-c",
        "exec jupyter lab --no-browser --ip=127.0.0.1 --port=\"$FABRIEK_WEB_PORT\" "
        f"--ServerApp.base_url={app_prefix(job_id)} "
        "--IdentityProvider.token=\"$FABRIEK_WEB_SECRET\" "
        "--ServerApp.allow_remote_access=True --ServerApp.root_dir=\"$FABRIEK_JOB_DIR\"",
    ]  # fmt: skip


def request_headers(
    headers: Iterable[tuple[str, str]], secret: str, app: str | None
) -> dict[str, str]:
    """The headers the proxy sends the app: the caller's, less hop-by-hop ones and
    Fabriek's credentials, plus the job's secret (as Jupyter's token for JupyterLab)."""
    out = {k: v for k, v in headers if k.lower() not in _NOT_FORWARDED}
    out[SECRET_HEADER] = secret
    if app == JUPYTERLAB:
        out["authorization"] = f"token {secret}"
    return out


def response_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The app's headers the caller gets: no hop-by-hop ones, and no cookies (the app's
    path is under the portal's origin; its cookies must not reach other apps)."""
    return [(k, v) for k, v in headers if k.lower() not in _NOT_RETURNED]


def activity_due(last_active_at: datetime | None, now: datetime) -> bool:
    """Whether proxy traffic now should be written as the app's last activity."""
    return last_active_at is None or now - last_active_at >= ACTIVITY_WRITE_EVERY


def latest_activity(*seen: datetime | None) -> datetime | None:
    """The latest of several sightings of activity (proxy traffic, kernels, the start)."""
    known = [at for at in seen if at is not None]
    return max(known) if known else None


def idle_for(last_active_at: datetime | None, started_at: datetime, now: datetime) -> timedelta:
    """How long a running web app has been idle: since its last activity, or its start."""
    return now - max(last_active_at or started_at, started_at)


def is_idle(idle: timedelta, idle_s: int) -> bool:
    """Whether a web app idle this long is stopped (`idle_s` <= 0: never)."""
    return idle_s > 0 and idle >= timedelta(seconds=idle_s)


def idle_reason(idle_s: int) -> str:
    """The reason a job stopped for idleness is given."""
    minutes = max(1, round(idle_s / 60))
    return f"IdleStopped: stopped after {minutes} min idle; its files are kept"


def jupyter_last_activity(status: Mapping[str, object]) -> str | None:
    """`last_activity` from Jupyter's `/api/status` (ISO 8601), if it says."""
    value = status.get("last_activity")
    return value if isinstance(value, str) else None


def same_origin(origin: str | None, scheme: str, host: str | None) -> bool:
    """Whether a request's `Origin` (if a browser sent one) is the portal itself: a page of
    another site must not drive a person's notebook with their session."""
    if origin is None:
        return True
    return host is not None and origin.rstrip("/") in {f"http://{host}", f"https://{host}"}
