import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from taskcore import trace
from taskcore.trace import Trace

VALID = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")

hex_ids = st.text("0123456789abcdef", min_size=32, max_size=32).filter(lambda s: s != "0" * 32)
span_ids = st.text("0123456789abcdef", min_size=16, max_size=16).filter(lambda s: s != "0" * 16)
traces = st.builds(Trace, hex_ids, span_ids, st.integers(0, 255))


@given(traces)
def test_format_then_parse_gives_the_same_trace(t: Trace) -> None:
    assert trace.parse(t.format()) == t


@given(st.text())
@example("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
@example("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds")
def test_any_string_parses_to_none_or_a_trace_that_formats_as_a_valid_traceparent(
    value: str,
) -> None:
    parsed = trace.parse(value)

    assert parsed is None or VALID.fullmatch(parsed.format())


def test_the_spec_s_example_parses() -> None:
    parsed = trace.parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")

    assert parsed == Trace("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1)
    assert parsed.sampled


@pytest.mark.parametrize(
    "value",
    [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # trace-id all zeros
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # parent-id all zeros
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # uppercase
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # the forbidden version
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # 00 has four fields
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01extra",  # no dash after them
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",  # flags not hex
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",  # dashes moved
        "",
        None,
        42,
    ],
)
def test_an_invalid_traceparent_parses_to_none(value: object) -> None:
    assert trace.parse(value) is None


def test_a_later_version_is_read_by_its_first_four_fields_and_passed_on_as_00() -> None:
    parsed = trace.parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more")

    assert parsed is not None
    assert parsed.format() == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_white_space_around_the_header_value_is_ignored() -> None:
    assert trace.parse(" \t00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ") is not None


@given(st.one_of(st.none(), st.text(), traces.map(Trace.format)))
def test_a_submission_continues_a_valid_trace_and_starts_one_otherwise(value: str | None) -> None:
    parent = trace.parse(value)

    task_trace = trace.continued(value)

    assert VALID.fullmatch(task_trace.format())
    if parent is not None:
        assert task_trace.trace_id == parent.trace_id
        assert task_trace.parent_id != parent.parent_id
        # Only the flags the spec defines are passed on: it says to zero the others.
        assert task_trace.flags == parent.flags & (trace.SAMPLED | trace.RANDOM_TRACE_ID)


def test_a_new_trace_is_not_sampled_and_new_each_time() -> None:
    first, second = Trace.new(), Trace.new()

    assert not first.sampled
    assert first.trace_id != second.trace_id


@pytest.mark.parametrize(
    ("trace_id", "parent_id", "flags"),
    [
        ("0" * 32, "1" * 16, 0),
        ("1" * 32, "0" * 16, 0),
        ("1" * 31, "1" * 16, 0),
        ("1" * 32, "1" * 16, 256),
    ],
)
def test_an_invalid_trace_cannot_be_built(trace_id: str, parent_id: str, flags: int) -> None:
    with pytest.raises(ValueError, match="trace"):
        Trace(trace_id, parent_id, flags)
