"""The limits on what the HTTP side reads, in one place, and the parsers that hold to them.

Every parser of client input (request bodies, payloads, query parameters, list cursors, watch
tokens, API keys, the local server's request line and headers) checks these before anything
else looks at the input, and its error names the limit, so no input reaches code that fails on
it in its own way: Python's JSON parser recursing past the stack, ``int()`` refusing more than
4300 digits, or taking ``"٣"`` for 3, ``float()`` making ``1e999`` infinite.

Sizes over a limit raise :class:`~taskcore.errors.TooLarge` (the edge's ``413``); JSON beyond
the other limits, or not JSON, raises :class:`~taskcore.errors.BadJSON` (``400``); a query
parameter that is no number in range raises :class:`~taskcore.errors.ValidationError` (``422``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import BadJSON, TooLarge, ValidationError

MAX_BODY_BYTES = 128 * 1024
"""The largest request body read."""
MAX_PAYLOAD_BYTES = 64 * 1024
"""The largest payload (and result) held inline, as compact JSON."""
MAX_JSON_DEPTH = 32
"""The deepest nesting of arrays and objects in any JSON read: a body, payload, cursor, token.

Far beyond what a payload needs, and far below where Python's parser, ``json.dumps`` and
``jsonschema`` recurse out of stack (about 1000)."""
MAX_JSON_STRING_CHARS = 64 * 1024
"""The longest string (or object key) in a JSON document: a payload cannot be longer anyway."""
MAX_JSON_NUMBER_CHARS = 100
"""The longest number in a JSON document, as written: any float fits, and ``int()``'s own
limit (4300 digits) is never reached."""
MAX_WHOLE_NUMBER_DIGITS = 18
"""The most ASCII digits of a whole number in a query parameter or header (below 2**63)."""
MAX_URL_BYTES = 8192
"""The longest request target (path and query), as API Gateway's edge-optimised APIs allow."""
MAX_HEADER_BYTES = 10240
"""All request header lines together, as API Gateway allows."""
MAX_CURSOR_CHARS = 1024
"""The longest list cursor: the ones given out are about 140 characters."""
MAX_TOKEN_CHARS = 2048
"""The longest watch token: the ones given out are about 200 characters."""
MAX_API_KEY_CHARS = 256
"""The longest ``X-Api-Key``: a longer one is no key at all (``401``)."""

# A JSON string (skipped whole, so brackets inside it do not count) or a bracket.
_STRUCTURE = re.compile(r'"(?:[^"\\]++|\\.)*+"?|[\[\]{}]', re.DOTALL)
"""Possessive, so that an unterminated string full of escapes is scanned once, to the end, not
again from every quote (which took 105 s on a 128 KiB body); the parser refuses it after."""
_SURROGATE = re.compile("[\ud800-\udfff]")
_ASCII_DIGITS = re.compile(r"[0-9]+")


def loads(data: str | bytes, *, what: str, max_bytes: int = MAX_BODY_BYTES) -> Any:
    """The JSON value of ``data``, checked against every JSON limit above.

    ``what`` names the document in error messages (``"the body"``). Bytes must be UTF-8.
    Raises :class:`TooLarge` (more than ``max_bytes``, or a string over
    :data:`MAX_JSON_STRING_CHARS`) or :class:`BadJSON`; never anything else.
    """
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise TooLarge(f"{what} is {size} bytes; the limit is {max_bytes}")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadJSON(f"{what} is not UTF-8 (byte {exc.start})") from None
    else:
        text = data
    _check_depth(text, what)
    try:
        value = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_no_constant)
    except _NumberRefused as exc:
        raise BadJSON(f"{what}: {exc}") from None
    except RecursionError:  # not reached past the depth check; kept so it could never be a 500
        raise BadJSON(f"{what} nests JSON too deep; the limit is {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:
        raise BadJSON(f"{what} is not valid JSON: {exc}") from None
    _check_strings(value, what)
    return value


def check_json(value: Any, what: str, field: str | None = None) -> None:
    """Check an already parsed JSON value (a payload, say) against the same limits.

    ``field``, if given, is the errors' ``field``.
    """
    depth = _depth(value)
    if depth > MAX_JSON_DEPTH:  # counted only to one past the limit
        raise BadJSON(
            f"{what} nests JSON more than {MAX_JSON_DEPTH} levels deep; "
            f"the limit is {MAX_JSON_DEPTH}",
            field=field,
        )
    _check_strings(value, what, field)


def _check_strings(value: Any, what: str, field: str | None = None) -> None:
    """Every string and key in ``value`` is within :data:`MAX_JSON_STRING_CHARS` and Unicode.

    An unpaired surrogate (``"\\ud800"`` is valid JSON) cannot be encoded as UTF-8, which
    hashing, storing and answering all do.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if len(item) > MAX_JSON_STRING_CHARS:
                raise TooLarge(
                    f"{what} has a string of {len(item)} characters; "
                    f"the limit is {MAX_JSON_STRING_CHARS}",
                    field=field,
                )
            if _SURROGATE.search(item):
                raise BadJSON(
                    f"{what} has a string with an unpaired surrogate (\\ud800-\\udfff)",
                    field=field,
                )


def whole_number(text: str, field: str, low: int, high: int) -> int:
    """``text`` as a whole number from ``low`` to ``high``, written in ASCII digits only.

    ``int()`` alone would take ``"٣"`` or ``" 3_0 "``, and fail on 5000 digits.
    """
    if (
        len(text) > MAX_WHOLE_NUMBER_DIGITS
        or not _ASCII_DIGITS.fullmatch(text)
        or not low <= int(text) <= high
    ):
        raise ValidationError(
            f"{field} must be a whole number from {low} to {high} in ASCII digits", field=field
        )
    return int(text)


def _check_depth(text: str, what: str) -> None:
    """Refuse ``text`` if its arrays and objects nest deeper than :data:`MAX_JSON_DEPTH`.

    Done on the text, before parsing, so that no parser ever recurses on it. Brackets in
    strings are skipped; a malformed document is the parser's to refuse.
    """
    depth = 0
    for match in _STRUCTURE.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise BadJSON(
                    f"{what} nests JSON more than {MAX_JSON_DEPTH} levels deep; "
                    f"the limit is {MAX_JSON_DEPTH}"
                )
        elif token in ("]", "}"):
            depth -= 1


def _depth(value: Any) -> int:
    """How deep arrays and objects nest in ``value`` (0 for a scalar), without recursing."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            if depth <= MAX_JSON_DEPTH:  # deeper is refused anyway: stop counting
                children = item.values() if isinstance(item, dict) else item
                stack.extend((child, depth) for child in children)
    return deepest


class _NumberRefused(ValueError):
    """A number the parse hooks refuse; turned into :class:`BadJSON` by :func:`loads`."""


def _int(text: str) -> int:
    if len(text) > MAX_JSON_NUMBER_CHARS:
        raise _NumberRefused(
            f"a number has {len(text)} characters; the limit is {MAX_JSON_NUMBER_CHARS}"
        )
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_JSON_NUMBER_CHARS:
        raise _NumberRefused(
            f"a number has {len(text)} characters; the limit is {MAX_JSON_NUMBER_CHARS}"
        )
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise _NumberRefused(f"the number {text} is out of range (a 64-bit float)")
    return number


def _no_constant(name: str) -> Any:
    raise _NumberRefused(f"{name} is not JSON")
