"""One router per kind of object; each route parses, calls one service, returns."""
