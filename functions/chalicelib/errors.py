"""HTTP errors of the edge, each a status code and a JSON body that says what is wrong.

Bodies are ``{"error": {"code", "message", "field"?, "rule"?}}``: ``field`` says where the
request is wrong, ``rule`` which rule of the payload's JSON Schema it breaks. Views raise;
:func:`json_errors` turns the raise into the response, and logs anything unexpected with its
traceback and task id. Chalice answers some requests itself before any view runs (a method the
path does not have, a ``Content-Type`` the route does not take), in a body of its own:
:func:`in_api_shape` puts those in this one.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from enum import Enum
from typing import Any, ClassVar, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from chalice.app import Request, Response

from taskcore.errors import BadJSON, TaskNotFound, ValidationError
from taskcore.errors import TooLarge as InputTooLarge

log = logging.getLogger(__name__)
INTERNAL_MESSAGE = "an internal error occurred; it has been logged"
E = TypeVar("E", bound=Enum)


class HttpError(Exception):
    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        rule: str | None = None,
        headers: dict[str, str | list[str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.rule = rule
        self.headers: dict[str, str | list[str]] = headers or {}

    def response(self) -> Response:
        error: dict[str, str] = {"code": self.code, "message": self.message}
        if self.field:
            error["field"] = self.field
        if self.rule:
            error["rule"] = self.rule
        return Response({"error": error}, status_code=self.status, headers=self.headers)


class BadRequest(HttpError):
    status, code = 400, "bad_request"


class Unauthorized(HttpError):
    status, code = 401, "unauthorized"


class Forbidden(HttpError):
    status, code = 403, "forbidden"


class NotFound(HttpError):
    status, code = 404, "not_found"


class MethodNotAllowed(HttpError):
    status, code = 405, "method_not_allowed"


class RequestTimeout(HttpError):
    status, code = 408, "timeout"


class Conflict(HttpError):
    status, code = 409, "conflict"


class LengthRequired(HttpError):
    status, code = 411, "length_required"


class TooLarge(HttpError):
    status, code = 413, "too_large"


class UriTooLong(TooLarge):
    status = 414


class UnsupportedMediaType(HttpError):
    status, code = 415, "unsupported_media_type"


class Unprocessable(HttpError):
    status, code = 422, "invalid"


class TooManyRequests(HttpError):
    """API Gateway's answer when throttling (``functions/.chalice/gateway-responses.json``)."""

    status, code = 429, "too_many_requests"


class HeadersTooLarge(TooLarge):
    status = 431


class Internal(HttpError):
    status, code = 500, "internal"


class Unavailable(HttpError):
    status, code = 503, "unavailable"


def one_of(kind: type[E], value: Any, field: str) -> E:
    """``value`` as a member of the enum ``kind``, or a 422 listing the members."""
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(str(member.value) for member in kind)
        raise Unprocessable(f"{field} must be one of {allowed}", field=field) from None


def json_errors(view: Callable[..., Any]) -> Callable[..., Any]:
    """Map what a view raises to a JSON error response; log the unexpected."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except HttpError as exc:
            return exc.response()
        except InputTooLarge as exc:
            return TooLarge(exc.message, field=exc.field).response()
        except BadJSON as exc:
            return BadRequest(exc.message, field=exc.field).response()
        except ValidationError as exc:
            return Unprocessable(exc.message, field=exc.field, rule=exc.rule).response()
        except TaskNotFound as exc:
            return NotFound(str(exc)).response()
        except (BotoCoreError, ClientError) as exc:
            if not _unavailable(exc):
                return _internal(view.__name__, kwargs, exc)
            log.warning(
                "AWS unavailable in %s (task %s): %s",
                view.__name__,
                kwargs.get("task_id", "-"),
                exc,
                exc_info=True,
            )
            return Unavailable(
                "the task store is unavailable; try again", headers={"Retry-After": "5"}
            ).response()
        except Exception as exc:
            return _internal(view.__name__, kwargs, exc)

    return wrapped


# DynamoDB's answers that mean "not now" rather than "never".
_TRANSIENT = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


def _unavailable(exc: BotoCoreError | ClientError) -> bool:
    """Whether an AWS error is the backend being down or busy (a 503), not a bug (a 500)."""
    if isinstance(exc, BotoCoreError):
        return True  # could not connect, timed out, ...
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    return status >= 500 or exc.response.get("Error", {}).get("Code") in _TRANSIENT


# Chalice's own error bodies, by their ``Code``: the edge's error each becomes.
_CHALICE_ERRORS: dict[str, type[HttpError]] = {
    "MethodNotAllowedError": MethodNotAllowed,
    "UnsupportedMediaType": UnsupportedMediaType,
    "BadRequest": BadRequest,
    "BadRequestError": BadRequest,
    "NotFoundError": NotFound,
}


def in_api_shape(request: Request, get_response: Callable[[Request], Response]) -> Response:
    """An ``http`` middleware: Chalice's own error answers, in the edge's error body.

    Chalice answers ``{"Code", "Message"}`` when a path lacks the method (``405``, with
    ``Allow``) or a route does not take the ``Content-Type`` (``415``); under API Gateway and
    ``chalice local`` alike, so this runs in the app rather than in either server.
    """
    response = get_response(request)
    body = response.body
    if not (isinstance(body, dict) and set(body) == {"Code", "Message"}):
        return response
    error = _CHALICE_ERRORS.get(str(body["Code"]))
    if error is None:
        return _internal("chalice", {}, RuntimeError(f"chalice answered {body}"))
    headers = dict(response.headers)
    if error is MethodNotAllowed:
        allowed = headers.get("Allow", "none")
        message = f"{request.method} is not a method of {request.path}; it has {allowed}"
    elif error is UnsupportedMediaType:
        message = "the Content-Type must be application/json"
    else:
        message = str(body["Message"])
    return error(message, headers=headers).response()


def _internal(view: str, kwargs: dict[str, Any], exc: BaseException) -> Response:
    log.error("unexpected error in %s (task %s)", view, kwargs.get("task_id", "-"), exc_info=exc)
    return Internal(INTERNAL_MESSAGE).response()
