"""The input limits and their parsers: whatever comes in, a value or the limit's own error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from taskcore import limits
from taskcore.errors import BadJSON, TooLarge, ValidationError
from tests.strategies import json_values


@st.composite
def spliced(draw: st.DrawFn) -> str:
    """Valid JSON with a few characters put in, taken out or changed: mostly not JSON."""
    text = json.dumps(draw(json_values))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        text = (
            text[:at]
            + draw(st.text(st.sampled_from('[]{}",:0-e.\\u'), max_size=3))
            + text[at + 1 :]
        )
    return text


nested = st.builds(
    lambda depth, inner, closed: "[" * depth + inner + "]" * (depth if closed else depth // 2),
    st.integers(0, 3000),
    st.sampled_from(["", "1", '"]]]"', "{}", '{"a":[]}']),
    st.booleans(),
)
documents = st.one_of(
    st.binary(max_size=200),
    st.text(st.characters(), max_size=200),  # unpaired surrogates included
    json_values.map(json.dumps),
    spliced(),
    nested,
    st.integers(1, 6000).map(lambda digits: "1" * digits),
    st.sampled_from(["NaN", "-Infinity", "1e999", "-1e400", '"\\ud800"', '{"\\udfff": 1}']),
)


@settings(max_examples=400, deadline=None)
@given(document=documents)
@example(document="[" * 100_000 + "]" * 100_000)
@example(document=b"\xff\xfe[]")
def test_any_document_is_a_value_or_the_limits_own_error(document: str | bytes) -> None:
    refused: BadJSON | TooLarge | None = None
    try:
        limits.loads(document, what="the body", max_bytes=10**6)
    except (BadJSON, TooLarge) as exc:
        refused = exc
    assert refused is None or refused.message.startswith("the body")


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_json_within_the_limits_round_trips(value: Any) -> None:
    assert limits.loads(json.dumps(value), what="x") == value
    assert limits.loads(json.dumps(value, ensure_ascii=False).encode(), what="x") == value


@given(depth=st.integers(0, 2 * limits.MAX_JSON_DEPTH))
def test_nesting_is_refused_past_the_depth_limit_and_the_error_names_it(depth: int) -> None:
    document = '{"a":' * depth + "1" + "}" * depth
    if depth <= limits.MAX_JSON_DEPTH:
        assert limits.loads(document, what="x") is not None
        limits.check_json(limits.loads(document, what="x"), "x")
    else:
        with pytest.raises(BadJSON, match=f"limit is {limits.MAX_JSON_DEPTH}"):
            limits.loads(document, what="x")


def test_a_parsed_value_nested_too_deep_is_refused_without_recursing() -> None:
    value: Any = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(BadJSON, match="limit is 32"):
        limits.check_json(value, "payload", field="payload")


@pytest.mark.parametrize(
    ("document", "error", "names"),
    [
        ("1" * 101, BadJSON, "limit is 100"),
        ("1" * 5000, BadJSON, "limit is 100"),  # int() alone: ValueError past 4300 digits
        ("1e999", BadJSON, "out of range"),
        ("NaN", BadJSON, "NaN is not JSON"),
        ('"\\ud800"', BadJSON, "unpaired surrogate"),
        ('"' + "a" * (limits.MAX_JSON_STRING_CHARS + 1) + '"', TooLarge, "limit is 65536"),
        (b"\xc3(", BadJSON, "not UTF-8"),
        ("[" * 100_000, BadJSON, "limit is 32"),
        ("x" * (limits.MAX_BODY_BYTES + 1), TooLarge, f"limit is {limits.MAX_BODY_BYTES}"),
    ],
)
def test_each_limit_has_its_own_error_naming_it(
    document: str | bytes, error: type[Exception], names: str
) -> None:
    with pytest.raises(error, match=names):
        limits.loads(document, what="the body")


@given(text=st.text(st.characters(), max_size=30) | st.integers().map(str))
@example(text="٣")
@example(text="1" * 5000)
@example(text=" 7")
@example(text="1_0")
@example(text="+5")
def test_a_whole_number_parameter_is_ascii_digits_in_range_or_a_validation_error(
    text: str,
) -> None:
    try:
        number = limits.whole_number(text, "limit", 1, 100)
    except ValidationError as exc:
        refused = exc
    else:
        assert 1 <= number <= 100
        assert text.isascii()
        assert text.isdigit()
        return
    assert refused.field == "limit"


@given(number=st.integers(0, 10**limits.MAX_WHOLE_NUMBER_DIGITS - 1))
def test_whole_numbers_round_trip(number: int) -> None:
    assert limits.whole_number(str(number), "n", 0, number) == number


@given(digit=st.characters(categories=["Nd"]).filter(lambda c: not c.isascii()))
def test_digits_other_than_ascii_are_refused(digit: str) -> None:
    assert int(digit) in range(10)  # what int() would have taken
    with pytest.raises(ValidationError):
        limits.whole_number(digit, "limit", 0, 9)


@pytest.mark.timeout(
    20
)  # a guard against a scan gone quadratic again (it took 105 s), not a benchmark
def test_an_unterminated_string_of_escapes_is_refused_after_one_scan() -> None:
    body = '"' + '\\"' * (limits.MAX_BODY_BYTES // 2 - 1)
    with pytest.raises(BadJSON):
        limits.loads(body, what="the body")
