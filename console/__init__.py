"""taskcast's console: a web page to launch, watch, search and operate tasks.

Plain HTML, CSS and JavaScript modules in ``static/``, with no build step. The page talks only to
the public HTTP API (with CORS) and to the realtime service, as any browser client would; it
holds no state of its own beyond the API key the user types, kept in the browser's session
storage. ``python -m console --api URL`` serves it; ``taskcast up`` runs that as a part of the
stack. In production, put ``static/`` on any static host and allow its origin in
``TASKCAST_ALLOWED_ORIGINS``.
"""

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
