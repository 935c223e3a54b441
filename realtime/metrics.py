"""Prometheus metrics of the realtime service: its connections, and how late events reach them.

- ``taskcast_ws_connections``: websocket connections open on this instance, a gauge;
- ``taskcast_ws_delivery_lag_seconds``: a histogram of the time from an event's ``ts`` (stamped
  by its writer just before it appends and publishes it) to the moment this instance has handed
  its frame to a watching client's connection. Only events that reach a watch live count: those a
  snapshot replays from the log (a client resuming, a page showing a task's history) are history,
  and would drown the live path's lag in their age. The writer's clock is another host's: what
  separates the two clocks is in the figure (NTP keeps it to milliseconds), and a negative lag
  counts as 0.

Each live event costs one timestamp parse and one histogram observation per watch it reaches.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from datetime import datetime
from wsgiref.simple_server import WSGIServer

from prometheus_client import Gauge, Histogram, start_http_server

from taskcore.event import Event

CONNECTIONS = Gauge("taskcast_ws_connections", "Websocket connections open on this instance")
LAG_BUCKETS = (
    *(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
    *(1, 2.5, 5, 10, 30, 60),
)
DELIVERY_LAG = Histogram(
    "taskcast_ws_delivery_lag_seconds",
    "Time from an event's timestamp (its writer's, as it publishes it) to its send to a client "
    "watching live",
    buckets=LAG_BUCKETS,
)


def connection() -> AbstractContextManager[object]:
    """Counts a connection in ``taskcast_ws_connections`` while the context is open."""
    return CONNECTIONS.track_inprogress()


def delivered(event: Event) -> None:
    """``event`` has just been sent to a client that watches live: observe how late it came."""
    try:
        # fromisoformat, not taskcore.clock.parse_iso (strptime): this is per event per watch.
        published = datetime.fromisoformat(event.ts).timestamp()
    except ValueError:
        return  # a writer's timestamp no one can read says nothing about the lag
    DELIVERY_LAG.observe(max(time.time() - published, 0.0))


def serve(host: str, port: int) -> WSGIServer:
    """Serve this process's metrics at ``http://host:port/metrics``, from a thread of its own."""
    server, _ = start_http_server(port, host)
    return server
