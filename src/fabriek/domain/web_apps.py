"""Web apps that jobs serve (JupyterLab, TensorBoard, a Gradio demo): pure rules.

A job's web app listens on the loopback interface of the job's host (on a Slurm site, on
the node's address the control plane reaches, `FABRIEK_WEB_HOST`), and users reach it only
through Fabriek's authenticated proxy at `/apps/<job id>/`. The app trusts the proxy, and
only the proxy: the proxy presents a per-job secret (`FABRIEK_WEB_SECRET` in the job's
environment) that another user of the same host or network does not know, so connecting to
the port directly gets them nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

JUPYTERLAB = "jupyterlab"
# The header the proxy sends a generic web app; the app compares it with its
# FABRIEK_WEB_SECRET. JupyterLab gets the same secret as its token instead.
SECRET_HEADER = "x-fabriek-web-secret"
# Proxy traffic marks a web app active at most this often (one write per minute, not one
# per request).
ACTIVITY_WRITE_EVERY = timedelta(seconds=60)
# The variable naming the Jupyter program a notebook job runs (a site's own, see above).
JUPYTER_VARIABLE = "FABRIEK_JUPYTER"
# The port a notebook declares; an engine that shares a host's loopback among jobs (the
# local engine) gives each its own instead, in FABRIEK_WEB_PORT.
NOTEBOOK_PORT = 8888
# How an idle stop's reason begins (see `idle_reason`).
IDLE_STOPPED = "IdleStopped"

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


def jupyterlab_command() -> list[str]:
    """JupyterLab's command line in a job: on the loopback (on a Slurm site, the address the
    site's jobs listen on, `$FABRIEK_WEB_HOST`), under the proxy's prefix, and opened only
    with the secret the proxy holds (its token).

    Everything job- and site-specific comes from the environment the control plane gives the
    job (port, prefix, secret, workspace), so the command is fixed when the job is submitted,
    before a site is chosen: `$FABRIEK_JUPYTER` is the site's own Jupyter when its sites-file
    table names one, else `jupyter` on the job's PATH (or the image's)."""
    return [
        "sh", "-c",
        # The token from the environment (JUPYTER_TOKEN), never on a command line `ps` shows.
        'export JUPYTER_TOKEN="$FABRIEK_WEB_SECRET"; '
        f'exec "${{{JUPYTER_VARIABLE}:-jupyter}}" lab --no-browser '
        '--ip="${FABRIEK_WEB_HOST:-127.0.0.1}" '
        f'--port="${{FABRIEK_WEB_PORT:-{NOTEBOOK_PORT}}}" '
        '--ServerApp.base_url="$FABRIEK_WEB_BASE_URL" --ServerApp.allow_remote_access=True '
        '--ServerApp.root_dir="${FABRIEK_JOB_DIR:-$HOME}" '
        # Nothing fetched from outside the factory: no update checks, no news feed.
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate "
        "--LabApp.news_url=None",
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
    return f"{IDLE_STOPPED}: stopped after {minutes} min idle; its files are kept"


def is_idle_stop(reason: str | None) -> bool:
    """Whether a job's reason says it was stopped for idleness."""
    return reason is not None and reason.startswith(IDLE_STOPPED + ":")


def jupyter_last_activity(status: Mapping[str, object]) -> str | None:
    """`last_activity` from Jupyter's `/api/status` (ISO 8601), if it says."""
    value = status.get("last_activity")
    return value if isinstance(value, str) else None


def parse_activity(text: str | None) -> datetime | None:
    """An activity time Jupyter wrote (ISO 8601, `Z` or an offset), in UTC; None when it is
    missing or unreadable (a time without a zone is taken as UTC, as Jupyter means it)."""
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def same_origin(origin: str | None, scheme: str, host: str | None) -> bool:
    """Whether a request's `Origin` (if a browser sent one) is the portal itself: a page of
    another site must not drive a person's notebook with their session."""
    if origin is None:
        return True
    return host is not None and origin.rstrip("/") in {f"http://{host}", f"https://{host}"}
