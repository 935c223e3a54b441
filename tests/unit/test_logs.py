import asyncio
import logging
import sys

import pytest

from taskcore import logs


def _line(trace_id: str | None) -> str:
    record = logging.LogRecord(
        "taskcast.test", logging.INFO, __file__, 1, "task %s done", ("t1",), None
    )
    record.trace_id = trace_id
    return logs.TraceFormatter("%(name)s: %(message)s").format(record)


def test_a_line_about_a_task_ends_with_its_trace_and_others_do_not() -> None:
    assert _line("4bf92f35") == "taskcast.test: task t1 done [trace 4bf92f35]"
    assert _line(None) == "taskcast.test: task t1 done"


def test_the_trace_goes_before_a_traceback() -> None:
    formatter = logs.TraceFormatter("%(message)s")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    record.trace_id = "abc"

    first, *rest = formatter.format(record).splitlines()

    assert first == "failed [trace abc]"
    assert rest[-1] == "ValueError: boom"


def test_records_made_within_traced_carry_the_trace_and_others_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("taskcast.test")
    with caplog.at_level(logging.INFO):
        with logs.traced("abc"):
            log.info("inside")
            with logs.traced("def"):
                log.info("nested")
            log.info("inside again")
        log.info("outside")

    assert [(r.getMessage(), r.trace_id) for r in caplog.records] == [
        ("inside", "abc"),
        ("nested", "def"),
        ("inside again", "abc"),
        ("outside", None),
    ]


def test_the_trace_follows_work_handed_to_a_thread(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("taskcast.test")

    async def handle() -> None:
        with logs.traced("abc"):
            await asyncio.to_thread(log.info, "in a thread")

    with caplog.at_level(logging.INFO):
        asyncio.run(handle())

    assert [r.trace_id for r in caplog.records] == ["abc"]
