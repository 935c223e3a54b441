"""A Chalice app whose ``current_request`` belongs to the thread handling it.

Chalice keeps the request being handled in one attribute of the app. That is right on Lambda,
where an instance handles one invocation at a time, but ``chalice local`` serves every request on
its own thread: two concurrent requests would read each other's bodies and API keys, so a task
could be created for the wrong owner. Keeping the attribute per thread makes the same app code
correct in both places.
"""

from __future__ import annotations

import threading
from typing import Any

from chalice.app import Chalice


class ThreadSafeChalice(Chalice):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._per_thread = threading.local()
        super().__init__(*args, **kwargs)

    @property
    def current_request(self) -> Any:
        return getattr(self._per_thread, "request", None)

    @current_request.setter
    def current_request(self, request: Any) -> None:
        self._per_thread.request = request
