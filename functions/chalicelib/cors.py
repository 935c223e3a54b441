"""CORS for the origins in ``TASKCAST_ALLOWED_ORIGINS``: pages there may call the API.

Chalice's own ``CORSConfig`` allows one fixed origin per route; this edge allows a list, the
same one the realtime service checks for websockets. So an allowed request's ``Origin`` is
echoed in ``Access-Control-Allow-Origin`` (with ``Vary: Origin``, so caches keep one answer per
origin), on every response the app makes, errors included. Any other origin gets no CORS
headers at all, and its page cannot read the answer. Preflights are answered by explicit
``OPTIONS`` routes, one per path, so API Gateway and ``chalice local`` answer them alike.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

ALLOWED_METHODS = "GET, POST, OPTIONS"
ALLOWED_HEADERS = "Content-Type, X-Api-Key, Idempotency-Key, traceparent"
EXPOSED_HEADERS = "Location, Idempotent-Replayed, Retry-After, traceparent"
PREFLIGHT_MAX_AGE_S = 600


def headers(origin: str | None, allowed: Collection[str]) -> dict[str, str]:
    """The CORS headers of an answer to a request from ``origin`` (none if not allowed)."""
    normalised = None if origin is None else origin.rstrip("/")
    if normalised is None or normalised not in allowed:
        return {"Vary": "Origin"}
    return {
        "Access-Control-Allow-Origin": normalised,
        "Access-Control-Expose-Headers": EXPOSED_HEADERS,
        "Vary": "Origin",
    }


def preflight_headers(
    request_headers: Mapping[str, str], allowed: Collection[str]
) -> dict[str, str | list[str]]:
    """The headers of the answer to a preflight, which the middleware completes with :func:`headers`."""
    if request_headers.get("origin", "").rstrip("/") not in allowed:
        return {}
    return {
        "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Allow-Headers": ALLOWED_HEADERS,
        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
    }
