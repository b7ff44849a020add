"""One router per kind of object; each route parses, calls one service, returns.

Each router carries the full versioned prefix itself, so a route's own path is its whole
template (what metrics label requests with).
"""

API_PREFIX = "/api/v1"
