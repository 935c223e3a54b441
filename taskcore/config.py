"""Configuration, read once from the environment at start-up.

One URL per backend: ``TASKCAST_RABBITMQ_URL``, ``TASKCAST_REDIS_URL`` and ``AWS_ENDPOINT_URL``
(absent means real AWS). Each part states what it needs; a missing or malformed value fails at
once with a :class:`~taskcore.errors.ConfigError` that names the variable.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from .errors import ConfigError
from .limits import MAX_API_KEY_CHARS
from .names import Names

Need = Literal["rabbitmq", "redis", "watch_secret", "api_keys"]

_NAMESPACE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
MIN_SECRET_BYTES = 16

# Where each part listens by default, on one machine: the one place these numbers are written.
LOCALHOST = "127.0.0.1"
EDGE_PORT = 8000
REALTIME_PORT = 8765
EMULATOR_PORT = 5000
"""The embedded AWS emulator (moto's server) that ``taskcast up`` starts."""
CONSOLE_PORT = 8080
METRICS_PORT = 9100
"""The first of the ports ``taskcast up`` gives its parts' Prometheus metrics, one port each."""
METRICS_HOST = "0.0.0.0"
"""Where a part serves its metrics unless told otherwise: every interface, for a scraper on
another host (as prometheus_client does)."""
LOCAL_API_KEY = "dev-key"
"""The API key of the local stack's one user, ``dev`` (``taskcast up``), and the CLI's default."""
_T = TypeVar("_T")


@dataclass(frozen=True)
class Config:
    namespace: str = "taskcast"
    region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    rabbitmq_url: str | None = None
    redis_url: str | None = None
    watch_secret: bytes | None = None
    api_keys: Mapping[str, str] = field(default_factory=dict)
    """Owner by SHA-256 of the API key, so the keys themselves are never held in memory twice."""
    realtime_url: str = f"ws://{LOCALHOST}:{REALTIME_PORT}"
    allowed_origins: tuple[str, ...] = (
        f"http://{LOCALHOST}:{EDGE_PORT}",
        f"http://localhost:{EDGE_PORT}",
    )
    """Origins whose pages may call the API (CORS) and open websockets; ``taskcast up`` adds its
    console's. Clients that send no Origin (CLI, SDK) always may."""
    operators: frozenset[str] = frozenset()
    """Owners whose API keys may use the operations routes (``TASKCAST_OPERATORS``)."""
    watch_token_ttl_s: int = 3600
    task_ttl_s: int = 30 * 86400
    event_log_ttl_s: int = 86400
    idempotency_ttl_s: int = 86400
    """How long an ``Idempotency-Key`` names the task it made."""
    cancel_grace_s: int = 10
    """How long a running task has to stop by itself before its job is stopped by force."""
    heartbeat_ttl_s: int = 30
    """A running attempt whose heartbeat is missing this long is presumed lost with its worker."""
    sweep_interval_s: int = 15
    """How often the sweeper looks for tasks that faults left behind."""
    stale_after_s: int = 60
    """How long a task may sit ``pending`` or ``queued`` unattended before the sweeper steps in."""
    task_modules: tuple[str, ...] = ()
    """The user's modules that declare task types (``TASKCAST_TASKS``), imported by workers."""
    catalogue_path: str | None = None
    """The catalogue exported from the task modules (``TASKCAST_CATALOGUE``), read by the edge."""

    @property
    def names(self) -> Names:
        return Names(self.namespace)

    @property
    def rabbitmq(self) -> str:
        return _needed(self.rabbitmq_url, "TASKCAST_RABBITMQ_URL")

    @property
    def redis(self) -> str:
        return _needed(self.redis_url, "TASKCAST_REDIS_URL")

    @property
    def secret(self) -> bytes:
        return _needed(self.watch_secret, "TASKCAST_WATCH_SECRET")

    def aws_client_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``boto3.client``: one code path for AWS, LocalStack and moto."""
        kwargs = {"region_name": self.region}
        if self.aws_endpoint_url:
            kwargs["endpoint_url"] = self.aws_endpoint_url
        return kwargs

    def owner_of(self, api_key: str) -> str | None:
        """The owner an API key belongs to, or ``None`` (for one over ``MAX_API_KEY_CHARS`` too)."""
        if len(api_key) > MAX_API_KEY_CHARS:
            return None
        # surrogatepass: a header value that is no valid Unicode is no key, not an error.
        digest = hashlib.sha256(api_key.encode("utf-8", "surrogatepass")).hexdigest()
        return self.api_keys.get(digest)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, need: Collection[Need] = ()
    ) -> Config:
        """Read the configuration, failing on the first missing or malformed variable."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        namespace = get("TASKCAST_NAMESPACE") or cls.namespace
        if not _NAMESPACE.match(namespace):
            raise ConfigError(
                "TASKCAST_NAMESPACE",
                f"{namespace!r} must be 1-40 lowercase letters, digits or '-', starting with a letter",
            )
        rabbitmq = parse_url(
            get("TASKCAST_RABBITMQ_URL"), "TASKCAST_RABBITMQ_URL", {"amqp", "amqps"}
        )
        redis = parse_url(
            get("TASKCAST_REDIS_URL"), "TASKCAST_REDIS_URL", {"redis", "rediss", "unix"}
        )
        endpoint = parse_url(get("AWS_ENDPOINT_URL"), "AWS_ENDPOINT_URL", {"http", "https"})
        realtime = parse_url(get("TASKCAST_REALTIME_URL"), "TASKCAST_REALTIME_URL", {"ws", "wss"})
        secret = get("TASKCAST_WATCH_SECRET")
        if secret is not None and len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                "TASKCAST_WATCH_SECRET", f"must be at least {MIN_SECRET_BYTES} bytes long"
            )
        config = cls(
            namespace=namespace,
            region=get("AWS_REGION") or get("AWS_DEFAULT_REGION") or cls.region,
            aws_endpoint_url=endpoint,
            rabbitmq_url=rabbitmq,
            redis_url=redis,
            watch_secret=None if secret is None else secret.encode(),
            api_keys=_api_keys(get("TASKCAST_API_KEYS")),
            realtime_url=realtime or cls.realtime_url,
            allowed_origins=_origins(get("TASKCAST_ALLOWED_ORIGINS")) or cls.allowed_origins,
            operators=_operators(get("TASKCAST_OPERATORS")),
            watch_token_ttl_s=_seconds(
                get("TASKCAST_WATCH_TOKEN_TTL"), "TASKCAST_WATCH_TOKEN_TTL", cls.watch_token_ttl_s
            ),
            task_ttl_s=_seconds(get("TASKCAST_TASK_TTL"), "TASKCAST_TASK_TTL", cls.task_ttl_s),
            idempotency_ttl_s=_seconds(
                get("TASKCAST_IDEMPOTENCY_TTL"), "TASKCAST_IDEMPOTENCY_TTL", cls.idempotency_ttl_s
            ),
            cancel_grace_s=_seconds(
                get("TASKCAST_CANCEL_GRACE"), "TASKCAST_CANCEL_GRACE", cls.cancel_grace_s
            ),
            heartbeat_ttl_s=_seconds(
                get("TASKCAST_HEARTBEAT_TTL"), "TASKCAST_HEARTBEAT_TTL", cls.heartbeat_ttl_s
            ),
            sweep_interval_s=_seconds(
                get("TASKCAST_SWEEP_INTERVAL"), "TASKCAST_SWEEP_INTERVAL", cls.sweep_interval_s
            ),
            stale_after_s=_seconds(
                get("TASKCAST_SWEEP_AFTER"), "TASKCAST_SWEEP_AFTER", cls.stale_after_s
            ),
            event_log_ttl_s=_seconds(
                get("TASKCAST_EVENT_LOG_TTL"), "TASKCAST_EVENT_LOG_TTL", cls.event_log_ttl_s
            ),
            task_modules=parse_modules(get("TASKCAST_TASKS")),
            catalogue_path=get("TASKCAST_CATALOGUE"),
        )
        for needed, variable, value in (
            ("rabbitmq", "TASKCAST_RABBITMQ_URL", config.rabbitmq_url),
            ("redis", "TASKCAST_REDIS_URL", config.redis_url),
            ("watch_secret", "TASKCAST_WATCH_SECRET", config.watch_secret),
            ("api_keys", "TASKCAST_API_KEYS", config.api_keys or None),
        ):
            if needed in need and value is None:
                raise ConfigError(variable, "is not set")
        return config


def _needed(value: _T | None, variable: str) -> _T:
    # Reached only when a part forgot to declare what it needs: still fail naming the variable.
    if value is None:
        raise ConfigError(variable, "is not set")
    return value


def parse_url(value: str | None, variable: str, schemes: set[str]) -> str | None:
    """``value`` if it is a URL of one of ``schemes`` with a host; :class:`ConfigError` naming
    ``variable`` if not; ``None`` for ``None``."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        allowed = ", ".join(sorted(f"{s}://" for s in schemes))
        raise ConfigError(variable, f"{value!r} is not a URL starting with {allowed}")
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError(variable, f"{value!r} has no host")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ConfigError(variable, f"{value!r} has a malformed port") from None
    return value


def _seconds(value: str | None, variable: str, default: int) -> int:
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()) or int(value) <= 0:
        raise ConfigError(variable, f"{value!r} must be a positive whole number of seconds")
    return int(value)


def parse_modules(value: str | None, variable: str = "TASKCAST_TASKS") -> tuple[str, ...]:
    """Parse ``myapp.tasks,other.tasks`` into module names, refusing what cannot be one."""
    if value is None:
        return ()
    modules = tuple(m.strip() for m in value.split(",") if m.strip())
    for module in modules:
        if not _MODULE.match(module):
            raise ConfigError(variable, f"{module!r} is not a module name like myapp.tasks")
    return modules


def _operators(value: str | None) -> frozenset[str]:
    """``dev,ops`` into owner names; an owner is the name after ``=`` in ``TASKCAST_API_KEYS``."""
    if value is None:
        return frozenset()
    return frozenset(o.strip() for o in value.split(",") if o.strip())


def _origins(value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    origins = tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
    for origin in origins:
        if (
            parse_url(origin, "TASKCAST_ALLOWED_ORIGINS", {"http", "https"})
            and urlsplit(origin).path
        ):
            raise ConfigError(
                "TASKCAST_ALLOWED_ORIGINS", f"{origin!r} must be scheme://host[:port] only"
            )
    return origins


def _api_keys(value: str | None) -> dict[str, str]:
    """Parse ``key=owner,key=owner`` into owners by key hash."""
    if value is None:
        return {}
    keys: dict[str, str] = {}
    for entry in value.split(","):
        key, sep, owner = entry.strip().partition("=")
        if not sep or not key or not owner:
            raise ConfigError("TASKCAST_API_KEYS", "must be a comma-separated list of KEY=OWNER")
        keys[hashlib.sha256(key.encode()).hexdigest()] = owner
    return keys


def port(value: str) -> int:
    """A TCP port, 1-65535, from the command line (an ``argparse`` type: a bad one is a usage
    error that names the option)."""
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number (1-65535)")
    return int(value)


def add_metrics_arguments(parser: argparse.ArgumentParser) -> None:
    """``--metrics-port`` and ``--metrics-host``: where a part serves its Prometheus metrics."""
    parser.add_argument(
        "--metrics-port",
        type=port,
        metavar="PORT",
        help="serve Prometheus metrics on this port, at /metrics (default: none)",
    )
    parser.add_argument(
        "--metrics-host",
        default=METRICS_HOST,
        metavar="HOST",
        help=f"the address to serve metrics on (default {METRICS_HOST})",
    )


def serve_metrics(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    serve: Callable[[str, int], object],
) -> None:
    """Call ``serve(host, port)`` if the command line asked for metrics
    (:func:`add_metrics_arguments`).

    A port that cannot be listened on (taken, or privileged) ends the process at start-up, as a
    usage error naming the option, rather than leaving a part running that no one can scrape.
    """
    if args.metrics_port is None:
        return
    try:
        serve(args.metrics_host, args.metrics_port)
    except OSError as exc:
        parser.error(
            f"--metrics-port {args.metrics_port}: cannot listen on "
            f"{args.metrics_host}:{args.metrics_port} ({exc.strerror or exc})"
        )
