"""``python -m taskcast.edge_local ARGS``: ``chalice local ARGS`` with a listen backlog fit for load.

``chalice local`` serves each request on its own thread but listens with Python's default
backlog of 5 connections; under 50 concurrent clients the kernel drops the rest and they see
reset connections. This runs the very same ``chalice local`` command with a larger backlog.
"""

from __future__ import annotations

import sys

from chalice import local
from chalice.cli import main

BACKLOG = 1024


def run() -> int:
    local.ThreadedHTTPServer.request_queue_size = BACKLOG
    sys.argv[0] = "chalice"
    return int(main() or 0)


if __name__ == "__main__":
    sys.exit(run())
