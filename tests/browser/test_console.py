"""The console, used as a person would: launch, watch, search, cancel, operate, in Chromium."""

from __future__ import annotations

import json
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Dialog, Page, expect

from taskcast import Client
from taskcast.local.stack import Stack

from .conftest import KEYS, OtherOrigin

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"


def sign_in(page: Page, stack: Stack, key: str = KEYS["operator"]) -> None:
    assert stack.console_url is not None
    page.goto(stack.console_url)
    page.fill("#api-key", key)
    page.click("#key-use")
    expect(page.locator("#nav")).to_be_visible()


def launch(page: Page, task_type: str, payload: dict[str, Any]) -> str:
    """Submit from the Launch view; returns the id of the task the page opens."""
    page.click("#nav a[data-view=launch]")
    page.select_option("#launch-type", task_type)
    page.fill("#launch-payload", json.dumps(payload))
    page.click("#launch-submit")
    page.wait_for_url(re.compile(r"#/task/[0-9a-f-]{36}$"))
    return page.url.rsplit("/", 1)[1]


def list_tasks(page: Page, button: str = "#filter-apply") -> None:
    """Click ``button`` and wait for the page of tasks it asks the API for."""
    page.click(button)
    expect(page.locator("#tasks-table")).to_have_attribute("aria-busy", "false")


def row_ids(page: Page) -> list[str]:
    ids: list[str] = page.locator("#tasks-body tr").evaluate_all(
        "rows => rows.map(row => row.dataset.taskId)"
    )
    return ids


def event_seqs(page: Page) -> list[int]:
    seqs: list[int] = page.locator("#detail-events li").evaluate_all(
        "items => items.map(item => Number(item.dataset.seq))"
    )
    return seqs


def test_a_launched_task_shows_its_progress_live_then_its_result(
    page: Page, console_stack: Stack
) -> None:
    sign_in(page, console_stack)
    page.click("#nav a[data-view=launch]")
    # The type's defaults are the payload to start from.
    page.select_option("#launch-type", "demo.sleep")
    assert json.loads(page.input_value("#launch-payload")) == {"fail_rate": 0.1, "steps": 5}

    task_id = launch(page, "demo.sleep", {"seconds": 2, "steps": 4, "fail_rate": 0})

    expect(page.locator("#detail-id")).to_have_text(task_id)
    # Live: the bar moves while the task runs, before its end.
    page.wait_for_function(
        "() => { const w = parseFloat(document.getElementById('detail-bar').style.width);"
        " return document.getElementById('detail-status').textContent === 'running'"
        " && w > 0 && w < 100 }"
    )
    expect(page.locator("#detail-status")).to_have_text("succeeded")
    expect(page.locator("#detail-result")).to_contain_text('"slept_s": 2')
    seqs = event_seqs(page)
    assert seqs == list(range(1, len(seqs) + 1))  # every event once, in order
    assert page.locator("#detail-events li[data-kind=progress]").count() == 4
    for hop in ("accepted", "queued", "started", "ended"):
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", page.inner_text(f"#hop-{hop}")), hop


def test_a_failing_task_shows_its_error_and_runs_again_as_a_new_task(
    page: Page, console_stack: Stack
) -> None:
    sign_in(page, console_stack)
    task_id = launch(page, "demo.sleep", {"seconds": 0.2, "steps": 1, "fail_rate": 1})

    expect(page.locator("#detail-status")).to_have_text("failed")
    expect(page.locator("#detail-result")).to_contain_text("simulated")
    page.click("#detail-resubmit")

    page.wait_for_url(lambda url: re.search(r"#/task/[0-9a-f-]{36}$", url) and task_id not in url)
    expect(page.locator("#detail-status")).to_have_text("failed")  # it fails again, as told


def test_api_errors_are_shown_in_words(page: Page, console_stack: Stack) -> None:
    sign_in(page, console_stack)
    page.click("#nav a[data-view=launch]")
    page.select_option("#launch-type", "demo.sleep")
    page.fill("#launch-payload", '{"seconds": -1}')
    page.click("#launch-submit")
    expect(page.locator("#error")).to_contain_text("payload.seconds")
    expect(page.locator("#error")).to_contain_text("minimum")

    page.fill("#launch-payload", "{not json")
    page.click("#launch-submit")
    expect(page.locator("#error")).to_contain_text("not valid JSON")

    page.click("#key-forget")
    page.fill("#api-key", "a-key-nobody-has")
    page.click("#key-use")
    expect(page.locator("#error")).to_contain_text("API key is not valid")
    expect(page.locator("#nav")).to_be_hidden()


def test_a_running_task_is_cancelled_from_its_page(page: Page, console_stack: Stack) -> None:
    sign_in(page, console_stack)
    launch(page, "demo.sleep", {"seconds": 30, "steps": 30, "fail_rate": 0})
    expect(page.locator("#detail-status")).to_have_text("running")

    page.click("#detail-cancel")

    expect(page.locator("#detail-status")).to_have_text("cancelled")
    expect(page.locator("#detail-cancel")).to_be_hidden()


def test_the_watch_resumes_without_a_gap_after_the_connection_drops(
    page: Page, console_stack: Stack
) -> None:
    sign_in(page, console_stack)
    task_id = launch(page, "demo.sleep", {"seconds": 6, "steps": 12, "fail_rate": 0})
    expect(page.locator("#detail-events li[data-kind=progress]")).to_have_count(2)

    console_stack.kill("realtime", signal.SIGKILL)  # every socket to the page drops at once
    expect(page.locator("#detail-connection")).to_have_text("reconnecting…")
    shown = page.locator("#detail-events li[data-kind=progress]").count()
    with Client(console_stack.edge_url, KEYS["operator"]) as client:
        # The task goes on meanwhile: wait until it has made two steps the page has not seen.
        deadline = time.monotonic() + 20
        while client.get(task_id)["progress"]["percent"] < (shown + 2) * 100 / 12 - 0.01:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    console_stack.restart("realtime")

    expect(page.locator("#detail-status")).to_have_text("succeeded", timeout=30_000)
    seqs = event_seqs(page)
    assert seqs == list(range(1, len(seqs) + 1))
    assert page.locator("#detail-events li[data-kind=progress]").count() == 12
    # A page opened afresh reads the same history from the log.
    page.reload()
    expect(page.locator("#detail-id")).to_have_text(task_id)
    expect(page.locator("#detail-events li")).to_have_count(len(seqs))


def test_tasks_are_filtered_paged_and_found_on_the_server(page: Page, console_stack: Stack) -> None:
    with Client(console_stack.edge_url, KEYS["search"]) as client, ThreadPoolExecutor(8) as pool:
        noops = list(pool.map(lambda _: client.submit("demo.noop").task, range(230)))
        # Delayed an hour, then cancelled: the only cancelled tasks of this key.
        later = [client.submit("demo.sleep", delay_seconds=3600).task_id for _ in range(10)]
        for task_id in later:
            client.cancel(task_id)
    sign_in(page, console_stack, KEYS["search"])
    page.click("#nav a[data-view=tasks]")

    # Filtered by type, every page of 20, newest first, each task once.
    page.select_option("#filter-type", "demo.noop")
    list_tasks(page)
    seen: list[str] = []
    created: list[str] = []
    for number in range(1, 13):
        expect(page.locator("#page-number")).to_have_text(f"page {number}")
        seen += row_ids(page)
        created += page.locator("#tasks-body td:nth-child(5)").all_inner_texts()
        if number < 12:
            list_tasks(page, "#page-next")
    expect(page.locator("#page-next")).to_be_disabled()
    assert len(seen) == len(set(seen)) == 230
    assert set(seen) == {t["task_id"] for t in noops}
    assert created == sorted(created, reverse=True)

    page.select_option("#filter-type", "")
    page.select_option("#filter-status", "cancelled")
    list_tasks(page)
    assert sorted(row_ids(page)) == sorted(later)
    expect(page.locator("#page-next")).to_be_disabled()

    # From a second on: the tasks created at or after it (the input takes whole seconds, UTC).
    since = sorted(t["created_at"] for t in noops)[150][:19]
    expected = sum(1 for t in noops if t["created_at"] >= since) + len(later)
    page.select_option("#filter-status", "")
    page.fill("#filter-since", since)
    list_tasks(page)
    listed = len(row_ids(page))
    while page.locator("#page-next").is_enabled():
        list_tasks(page, "#page-next")
        listed += len(row_ids(page))
    assert listed == expected

    page.fill("#find-id", noops[7]["task_id"])
    page.click("#find-go")
    expect(page.locator("#detail-id")).to_have_text(noops[7]["task_id"])


def test_the_rows_of_unfinished_tasks_change_live(page: Page, console_stack: Stack) -> None:
    with Client(console_stack.edge_url, KEYS["search"]) as client:
        started = [client.submit("demo.sleep", {"seconds": 3, "fail_rate": 0}) for _ in range(2)]
    sign_in(page, console_stack, KEYS["search"])
    page.click("#nav a[data-view=tasks]")
    page.select_option("#filter-type", "demo.sleep")
    list_tasks(page)

    for submission in started:
        row = page.locator(f"#tasks-body tr[data-task-id='{submission.task_id}']")
        expect(row).to_be_visible()
        expect(row.locator(".status")).to_have_text("succeeded", timeout=30_000)  # no reload
        expect(row.locator("td:nth-child(4)")).to_have_text("100%")


def test_another_key_sees_nothing_of_the_first_keys_tasks(page: Page, console_stack: Stack) -> None:
    with Client(console_stack.edge_url, KEYS["operator"]) as client:
        task_id = client.submit("demo.noop").task_id
    sign_in(page, console_stack, KEYS["other"])

    page.click("#nav a[data-view=tasks]")
    expect(page.locator("#tasks-empty")).to_be_visible()
    page.fill("#find-id", task_id)
    page.click("#find-go")
    expect(page.locator("#error")).to_contain_text(f"no task {task_id}")
    page.goto(f"{console_stack.console_url}#/task/{task_id}")
    expect(page.locator("#error")).to_contain_text(f"no task {task_id}")
    expect(page.locator("#detail-payload")).to_have_text("")
    # Operations are an operator's: no tab, and the routes say why.
    expect(page.locator("#nav-ops")).to_be_hidden()
    page.goto(f"{console_stack.console_url}#/ops")
    expect(page.locator("#error")).to_contain_text("not an operator")


def test_a_dead_letter_is_replayed_and_the_rest_purged_from_operations(
    page: Page, console_stack: Stack
) -> None:
    # demo.gpu's queue has no worker in this stack: after 20 s each fails no_worker, dead-lettered.
    with Client(console_stack.edge_url, KEYS["operator"]) as client:
        gpu = [client.submit("demo.gpu").task_id for _ in range(2)]
    sign_in(page, console_stack)
    page.click("#nav a[data-view=ops]")
    expect(page.locator("#ops-workers-alive")).to_have_text("2")
    expect(page.locator("#ops-queues")).to_contain_text(f"{console_stack.config.namespace}.default")

    rows = page.locator("#dead-body tr")
    deadline = time.monotonic() + 60
    # The dead letters are listed when asked: each listing takes every message and puts it back.
    while any(rows.filter(has_text=task_id).count() == 0 for task_id in gpu):
        assert time.monotonic() < deadline, page.inner_text("#dead-body")
        time.sleep(2)
        page.click("#ops-refresh")
    expect(rows.first).to_contain_text("no_worker")
    rows.filter(has_text=gpu[0]).locator("button.dead-replay").click()
    expect(page.locator("#dead-outcome")).to_contain_text(f"{gpu[0]} → new task")
    expect(rows.filter(has_text=gpu[0])).to_have_count(0)

    page.once("dialog", Dialog.accept)
    page.click("#dead-purge")
    expect(page.locator("#dead-outcome")).to_have_text("purged 1")
    expect(page.locator("#dead-empty")).to_be_visible()


def readme_browser_snippet() -> str:
    text = README.read_text()
    start = text.index("In a browser, from a page on any origin in")
    block = re.search(r"```js\n(.*?)```", text[start:], re.S)
    assert block is not None
    return block.group(1)


def test_the_readmes_browser_recipe_submits_from_an_allowed_origin_only(
    page: Page, console_stack: Stack, other_origin: OtherOrigin
) -> None:
    other_origin.pages["/recipe.html"] = (
        "<!doctype html><script>\n"
        + readme_browser_snippet()
        + "\nwindow.submitAndWatch = submitAndWatch;\n</script>"
    ).encode()
    run = """async ([api, key]) => {
        const ops = [];
        try {
            await submitAndWatch(api, key, "demo.sleep", {seconds: 1, steps: 2, fail_rate: 0},
                                 (m) => ops.push(m.op === "end" ? m.status : m.op));
            return ops;
        } catch (error) { return [`error: ${error}`]; }
    }"""

    page.goto(f"{other_origin.allowed}/recipe.html")
    ops = page.evaluate(run, [console_stack.edge_url, KEYS["operator"]])
    assert ops[0] == "snapshot"
    assert ops[-1] == "succeeded"

    page.goto(f"{other_origin.refused}/recipe.html")
    refused = page.evaluate(run, [console_stack.edge_url, KEYS["operator"]])
    assert refused == ["error: TypeError: Failed to fetch"]
    # The browser refused to read the answer; the API still answered (as any server would).
    assert httpx.get(f"{console_stack.edge_url}/health").status_code == 200


def test_the_api_reference_is_reachable_from_the_console_and_lists_the_routes(
    page: Page, console_stack: Stack
) -> None:
    sign_in(page, console_stack)
    with page.context.expect_page() as opened:
        page.click("#nav >> text=API reference")
    reference = opened.value

    operations = reference.locator("section.operation")
    expect(operations.first).to_be_visible()
    listed = set(operations.evaluate_all("s => s.map(x => x.dataset.operation)"))
    assert {
        "POST /tasks",
        "GET /tasks/{task_id}",
        "GET /ops/overview",
        "GET /openapi.json",
    } <= listed
    expect(reference.locator("[data-operation='POST /tasks']")).to_contain_text("Request body")
