"""The ``taskcast`` command: run the local stack, submit, watch, inspect and list tasks."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

import httpx
from rich.console import Console
from rich.table import Table

from taskcore.config import (
    CONSOLE_PORT,
    EDGE_PORT,
    EMULATOR_PORT,
    LOCAL_API_KEY,
    LOCALHOST,
    METRICS_PORT,
    REALTIME_PORT,
    port,
)

from .board import Board, summary
from .client import (
    Client,
    ClientError,
    ConnectError,
    ProtocolError,
    RequestTimeout,
    ServerError,
    TaskcastError,
    TransportError,
    WatchError,
)

if TYPE_CHECKING:
    from .local.stack import Ports

log = logging.getLogger("taskcast")

EXIT_OK = 0
EXIT_TASK_FAILED = 1
"""A task ended other than ``succeeded``, or some dead messages were not replayed."""
EXIT_USAGE = 2
"""The command line is wrong (argparse's code)."""
EXIT_CLIENT = 4
"""The API refused the request (4xx) or the watch: fix the request, the key or the id."""
EXIT_SERVER = 5
"""No good answer: the API failed (5xx), was unreachable, too slow, or was not the API."""
ENDED = frozenset({"succeeded", "failed", "cancelled"})


def _client(args: argparse.Namespace) -> Client:
    return Client(args.url, args.api_key, timeout_s=args.request_timeout)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def _watch(client: Client, subs: list[Any]) -> int:
    console = Console()
    with Board(console) as board:
        final = asyncio.run(board.follow(client, subs))
    console.print(summary(final.values()))
    return EXIT_OK if all(t["status"] == "succeeded" for t in final.values()) else EXIT_TASK_FAILED


def cmd_submit(args: argparse.Namespace) -> int:
    try:
        payload = json.loads(args.payload)
    except ValueError as exc:
        print(f"taskcast: --payload is not JSON: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with _client(args) as client:
        sub = client.submit(
            args.type,
            payload,
            priority=args.priority,
            delay_seconds=args.delay,
            max_attempts=args.attempts,
            timeout_s=args.timeout,
            idempotency_key=args.idempotency_key,
        )
        if not args.watch:
            _print_json({"task": sub.task, "watch": sub.watch.__dict__})
            return EXIT_OK
        return _watch(client, [sub])


def cmd_watch(args: argparse.Namespace) -> int:
    from .client import Submission

    with _client(args) as client:
        task = client.get(args.task_id)
        return _watch(client, [Submission(task, client.watch_token(args.task_id))])


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _print_json(client.get(args.task_id))
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        task = client.cancel(args.task_id)
    status = task["status"]
    print(f"{args.task_id}: {'had ended as ' + status if status in ENDED else 'cancel requested'}")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        page = client.list(
            status=args.status, task_type=args.type, limit=args.limit, cursor=args.cursor
        )
    console = Console()
    console.print(summary(page.tasks))
    if page.next_cursor:
        console.print(f"more: taskcast list --cursor {page.next_cursor}")
    return EXIT_OK


def cmd_types(args: argparse.Namespace) -> int:
    """The task types the API accepts, with their defaults; ``--json`` for everything."""
    with _client(args) as client:
        types = client.task_types()
    if args.json:
        _print_json(types)
        return EXIT_OK
    table = Table("type", "queue", "attempts", "timeout", "description", title="task types")
    for t in types:
        d = t["defaults"]
        table.add_row(
            t["name"], d["queue"], str(d["max_attempts"]), f"{d['timeout_s']} s", t["description"]
        )
    Console().print(table)
    return EXIT_OK


def cmd_tasks_export(args: argparse.Namespace) -> int:
    """Import the task modules and write their catalogue, for the edge to load."""
    from taskcore.config import parse_modules
    from taskcore.definition import TaskModuleError, catalogue
    from taskcore.errors import ConfigError

    sys.path.insert(0, os.getcwd())  # the user's package, where they run the command
    try:
        exported = catalogue(parse_modules(args.modules, "MODULES"))
        text = exported.dumps()
    except (ConfigError, TaskModuleError, ValueError) as exc:
        print(f"taskcast tasks export: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.output is None:
        sys.stdout.write(text)
    else:
        with open(args.output, "w") as out:
            out.write(text)
        print(f"{len(exported)} task types from {args.modules} -> {args.output}")
    return EXIT_OK


def cmd_dlq(args: argparse.Namespace) -> int:
    """``taskcast dlq list|replay|purge``: through the API, with an operator's key."""
    with _client(args) as client:
        if args.dlq_command == "purge":
            print(f"purged {client.purge_dead_letters()} dead messages")
            return EXIT_OK
        if args.dlq_command == "list":
            table = Table("message id", "task type", "routing key", "reason", title="dead letters")
            for message in client.dead_letters():
                table.add_row(
                    message["message_id"] or "-",
                    message["type"] or "-",
                    message["routing_key"],
                    message["reason"],
                )
            console = Console()
            console.print(table)
            if args.failed:
                console.print(summary(client.list(status="failed", limit=100).tasks))
            return EXIT_OK
        answer = client.replay_dead_letters(None if args.all else [args.id])
        new_tasks = {r["task_id"]: r["new_task_id"] for r in answer["resubmitted"]}
        for message_id in answer["replayed"]:
            if message_id in new_tasks:
                print(f"{message_id}: submitted again as {new_tasks[message_id]}")
            else:
                print(f"{message_id}: replayed")
        for skipped in answer["skipped"]:
            print(f"{skipped['message_id']}: not replayed: {skipped['error']}", file=sys.stderr)
        if args.all or answer["replayed"] or answer["skipped"]:
            print(f"replayed {len(answer['replayed'])} dead messages")
            return EXIT_TASK_FAILED if answer["skipped"] else EXIT_OK
        return _resubmit_failed_task(client, args.id)


def _resubmit_failed_task(client: Client, task_id: str) -> int:
    """Submit a failed task again as a new task; replaying it twice makes one new task."""
    task = client.get(task_id)
    if task["status"] != "failed":
        print(
            f"taskcast dlq: {task_id} is neither a dead message nor a failed task "
            f"(it is {task['status']})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    submission = client.resubmit(task_id)
    print(f"{task_id}: submitted again as {submission.task_id}")
    return EXIT_OK


def cmd_up(args: argparse.Namespace) -> int:
    from .local.stack import up

    return up(
        os.environ,
        host=args.host,
        ports=_ports(args),
        workers=args.workers,
        tasks=args.tasks,
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from .local.demo import run_demo, run_image_demo

    ports = _ports(args)
    if args.image:
        return run_image_demo(image_filter=args.filter, ports=ports)
    return run_demo(tasks=args.tasks, workers=args.workers, ports=ports)


def _api_url(value: str) -> str:
    """``--url`` (or ``TASKCAST_URL``) as an http(s) URL with a host, else a usage error."""
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not a URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an http(s) URL with a host, e.g. http://127.0.0.1:8000"
        )
    return value


def _port_options(command: argparse.ArgumentParser) -> None:
    """Where the local stack's parts listen (``up``, ``demo``)."""
    command.add_argument("--edge-port", type=int, default=EDGE_PORT)
    command.add_argument("--realtime-port", type=int, default=REALTIME_PORT)
    command.add_argument("--moto-port", type=int, default=EMULATOR_PORT)
    command.add_argument(
        "--console-port", type=int, default=CONSOLE_PORT, help="where the web console is"
    )
    command.add_argument(
        "--metrics-port",
        type=_metrics_port,
        default=METRICS_PORT,
        metavar="PORT",
        help=f"the first of the ports the parts serve Prometheus metrics on, one each "
        f"(relay, sweeper, realtime, then each worker; default {METRICS_PORT}; 0 for none)",
    )


def _metrics_port(value: str) -> int | None:
    return None if value == "0" else port(value)


def _ports(args: argparse.Namespace) -> Ports:
    from .local.stack import Ports

    return Ports(
        args.edge_port, args.realtime_port, args.moto_port, args.console_port, args.metrics_port
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskcast", description=__doc__)
    parser.add_argument(
        "--url",
        type=_api_url,
        default=os.environ.get("TASKCAST_URL", f"http://{LOCALHOST}:{EDGE_PORT}"),
        help="API base URL (TASKCAST_URL)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("TASKCAST_API_KEY", LOCAL_API_KEY),
        help="API key (TASKCAST_API_KEY)",
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for each answer of the API (default 10)",
    )
    parser.add_argument("--debug", action="store_true", help="on an error, also show its traceback")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run the whole local stack in the foreground")
    up.add_argument("--host", default=LOCALHOST)
    _port_options(up)
    up.add_argument("--workers", type=int, default=2)
    up.add_argument(
        "--tasks",
        metavar="MODULES",
        help="comma-separated modules that declare your tasks (TASKCAST_TASKS), e.g. myapp.tasks",
    )
    up.set_defaults(run=cmd_up)

    submit = commands.add_parser("submit", help="submit a task")
    submit.add_argument("type", help="task type, e.g. demo.sleep")
    submit.add_argument("--payload", default="{}", help="payload as JSON")
    submit.add_argument("--priority", choices=["high", "normal", "low"])
    submit.add_argument("--delay", type=int, metavar="SECONDS", help="start it this much later")
    submit.add_argument(
        "--attempts", type=int, metavar="N", help="attempts, within the type's limit"
    )
    submit.add_argument(
        "--timeout", type=int, metavar="SECONDS", help="timeout of each attempt, within the limit"
    )
    submit.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="submitting again with the same key and task returns the first task",
    )
    submit.add_argument("--watch", action="store_true", help="show live progress until it ends")
    submit.set_defaults(run=cmd_submit)

    watch = commands.add_parser("watch", help="show a task's live progress until it ends")
    watch.add_argument("task_id")
    watch.set_defaults(run=cmd_watch)

    status = commands.add_parser("status", help="print a task as JSON")
    status.add_argument("task_id")
    status.set_defaults(run=cmd_status)

    cancel = commands.add_parser("cancel", help="cancel a task (a no-op once it has ended)")
    cancel.add_argument("task_id")
    cancel.set_defaults(run=cmd_cancel)

    listing = commands.add_parser("list", help="list your tasks, newest first")
    listing.add_argument("--status")
    listing.add_argument("--type")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--cursor")
    listing.set_defaults(run=cmd_list)

    dlq = commands.add_parser(
        "dlq", help="dead letters: list, replay or purge (needs an operator's API key)"
    )
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq_commands.add_parser(
        "list", help="list dead messages (each is taken and put back)"
    )
    dlq_list.add_argument("--failed", action="store_true", help="also list your failed tasks")
    dlq_replay = dlq_commands.add_parser(
        "replay", help="republish a dead message, or submit a failed task again"
    )
    which = dlq_replay.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", help="a dead message's id, or a failed task's id")
    which.add_argument("--all", action="store_true", help="every dead message")
    dlq_commands.add_parser("purge", help="drop every dead message")
    dlq.set_defaults(run=cmd_dlq)

    types = commands.add_parser("types", help="list the task types the API accepts")
    types.add_argument("--json", action="store_true", help="with payload schemas and limits")
    types.set_defaults(run=cmd_types)

    tasks = commands.add_parser("tasks", help="your task modules: export their catalogue")
    tasks_commands = tasks.add_subparsers(dest="tasks_command", required=True)
    export = tasks_commands.add_parser(
        "export", help="write the catalogue of the task types MODULES declare, for the edge"
    )
    export.add_argument("modules", metavar="MODULES", help="comma-separated, e.g. myapp.tasks")
    export.add_argument("-o", "--output", metavar="FILE", help="default: standard output")
    export.set_defaults(run=cmd_tasks_export)

    demo = commands.add_parser("demo", help="start the stack, run demo tasks, watch them, stop")
    demo.add_argument("--tasks", type=int, default=6)
    demo.add_argument("--workers", type=int, default=3)
    demo.add_argument(
        "--image", action="store_true", help="run the image task on a sample image instead"
    )
    # No choices here: the task's payload schema is the one list of filters, and the API's 422
    # names them.
    demo.add_argument("--filter", default="sepia", help="the filter of --image (default sepia)")
    _port_options(demo)
    demo.set_defaults(run=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; an SDK error is one line on stderr and an exit code (see README)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.run(args))
    except TaskcastError as exc:
        if args.debug:
            log.debug("the error below, with its traceback", exc_info=True)
        line, code = explain(exc, args.url)
        print(f"taskcast: {line}", file=sys.stderr)
        return code


def explain(exc: TaskcastError, url: str) -> tuple[str, int]:
    """What to tell the user about ``exc`` (one line: what happened, what to try) and the exit
    code."""
    if isinstance(exc, ConnectError):
        return (
            f"cannot reach {url} ({exc.reason}): is the stack up? `taskcast up`, "
            "or point --url (TASKCAST_URL) at the API",
            EXIT_SERVER,
        )
    if isinstance(exc, RequestTimeout):
        return (
            f"{url} did not answer in time: the API may be overloaded or stuck; try again, "
            "or wait longer with --request-timeout",
            EXIT_SERVER,
        )
    if isinstance(exc, TransportError):
        return (
            f"lost the connection to {url} ({exc.reason}): try again; if it persists, "
            "check the API's logs",
            EXIT_SERVER,
        )
    if isinstance(exc, ProtocolError):
        return (
            f"{exc.url} answered {exc.status} with {exc.content_type or 'no content type'}, "
            "not the API's JSON: is --url (TASKCAST_URL) the taskcast API?",
            EXIT_SERVER,
        )
    if isinstance(exc, WatchError):
        return f"watch refused: {exc.message} ({exc.code})", EXIT_CLIENT
    if isinstance(exc, ServerError):
        when = f"in {exc.retry_after_s} s" if exc.retry_after_s is not None else "later"
        return (
            f"the API failed: {exc.message} ({exc.status} {exc.code}); try again {when}, "
            "and if it persists, check the API's logs",
            EXIT_SERVER,
        )
    if isinstance(exc, ClientError):
        where = f", field {exc.field}" if exc.field else ""
        hint = {
            401: ": check --api-key (TASKCAST_API_KEY)",
            403: ": this needs an operator's API key (TASKCAST_OPERATORS)",
        }.get(exc.status, "")
        if exc.code == "not_json":
            hint = ": is --url (TASKCAST_URL) the taskcast API?"
        return f"{exc.message} ({exc.status} {exc.code}{where}){hint}", EXIT_CLIENT
    return f"{exc}", EXIT_SERVER


if __name__ == "__main__":
    sys.exit(main())
