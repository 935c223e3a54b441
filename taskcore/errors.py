"""taskcast's contract-level exceptions.

Every error that taskcast raises on purpose derives from :class:`TaskcastError`. Components add
their own subclasses; the edge maps them to HTTP status codes, the realtime service to close codes.
"""

from __future__ import annotations


class TaskcastError(Exception):
    """Base class of every error taskcast raises on purpose."""


class ConfigError(TaskcastError):
    """A configuration variable is missing or malformed; the message names it."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


class ValidationError(TaskcastError):
    """A request or payload does not match what it must be; ``field`` says where and ``rule``,
    for a payload, which rule of its schema it breaks."""

    def __init__(self, message: str, *, field: str | None = None, rule: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.rule = rule
        self.message = message


class UnknownTaskType(ValidationError):
    """The task type is not in the catalogue."""


class TooLarge(ValidationError):
    """An input is larger than its limit in :mod:`taskcore.limits`; the message names the limit."""


class PayloadTooLarge(TooLarge):
    """The payload's JSON form is larger than the limit."""


class BadJSON(ValidationError):
    """A document is not JSON, or is JSON beyond a limit of :mod:`taskcore.limits` (nesting,
    digits, non-finite numbers, unpaired surrogates) that no size check catches."""


class TransitionError(TaskcastError):
    """A status change that the lifecycle does not allow."""


class ConditionLost(TaskcastError):
    """A conditional write found the record in another state: someone else got there first."""


class TaskNotFound(TaskcastError):
    """No task record has that id (or the caller may not see it)."""


class EventDecodeError(TaskcastError):
    """A message on the event log is not a version of the event this code understands."""


class TokenError(TaskcastError):
    """A watch token is not acceptable; ``code`` is a short machine-readable reason."""

    code = "invalid_token"


class ExpiredToken(TokenError):
    """The watch token was valid but its time is up."""

    code = "token_expired"


class WrongTaskToken(TokenError):
    """The watch token is valid but for another task."""

    code = "token_wrong_task"
