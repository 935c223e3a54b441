"""The edge's app as ``chalice package`` reads it, before it builds the Lambda's policy."""

from __future__ import annotations

from pathlib import Path

from chalice.analyzer import get_client_calls_for_app

APP = Path(__file__).resolve().parents[2] / "functions" / "app.py"


def test_chalice_packages_policy_analyzer_can_read_the_app() -> None:
    # It parses app.py's source and fails on some valid Python (annotated locals, a
    # comprehension at module level), which breaks `make package` and nothing else.
    assert isinstance(get_client_calls_for_app(APP.read_text()), dict)
