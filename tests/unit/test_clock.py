"""Timestamps: one fixed-width ISO 8601 form, which sorts in time order and parses back."""

from __future__ import annotations

import pytest

from taskcore.clock import iso, parse_iso


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (1796119200.5, "2026-12-01T10:00:00.500Z"),
        (-43000000000, "0607-05-21T19:33:20.000Z"),
        (-62135596800, "0001-01-01T00:00:00.000Z"),
    ],
)
def test_every_year_has_four_digits_and_the_text_parses_back(seconds: float, text: str) -> None:
    assert iso(seconds) == text
    assert parse_iso(text) == seconds


def test_the_texts_sort_in_time_order() -> None:
    moments = [-62135596800, -43000000000, -1, 0, 1796119200]

    assert sorted(iso(m) for m in moments) == [iso(m) for m in moments]
