"""taskcast: start long tasks, watch them live. The SDK, the CLI and the local stack."""

from .client import ApiError, Client, Page, Submission, Update, WatchError

__all__ = ["ApiError", "Client", "Page", "Submission", "Update", "WatchError"]
