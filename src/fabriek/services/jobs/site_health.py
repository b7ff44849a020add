"""Whether each site's cluster answers, and when to try one that does not again.

A site that fails a call is left alone for a while that doubles with each failure (up to a
minute), so a cluster that is down costs the dispatcher nothing while its jobs wait; the
first call that succeeds brings it back.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class SiteHealth:
    """Whether a site's cluster answers; when not, until when to leave it alone."""

    down_since: float | None = None
    retry_at: float = 0.0
    delay: float = 1.0
    reason: str = ""

    def available(self) -> bool:
        """Whether the site may be called now."""
        return time.monotonic() >= self.retry_at

    def failed(self, site: str, reason: str) -> None:
        """A call failed: back off, and say so the first time."""
        if self.down_since is None:
            log.warning(
                "site %s: cluster unavailable (%s); jobs wait until it returns", site, reason
            )
            self.down_since, self.delay = time.monotonic(), 1.0
        else:
            self.delay = min(self.delay * 2, 60.0)
        self.reason = reason
        self.retry_at = time.monotonic() + self.delay

    def ok(self, site: str) -> None:
        """A call succeeded: the site is back (said once)."""
        if self.down_since is not None:
            log.warning(
                "site %s: cluster is back after %.0f s", site, time.monotonic() - self.down_since
            )
            self.down_since, self.retry_at, self.delay, self.reason = None, 0.0, 1.0, ""
