import argparse

import pytest

from taskcore.config import METRICS_HOST, Config, add_metrics_arguments
from taskcore.errors import ConfigError

FULL = {
    "TASKCAST_RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:5672/",
    "TASKCAST_REDIS_URL": "redis://127.0.0.1:6379/0",
    "TASKCAST_WATCH_SECRET": "s" * 32,
    "TASKCAST_API_KEYS": "k1=alice, k2=bob",
}


def test_reads_every_backend_url() -> None:
    config = Config.from_env(
        {**FULL, "AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}, need=("rabbitmq", "redis")
    )
    assert config.rabbitmq == FULL["TASKCAST_RABBITMQ_URL"]
    assert config.redis == FULL["TASKCAST_REDIS_URL"]
    assert config.aws_client_kwargs() == {
        "region_name": "us-east-1",
        "endpoint_url": "http://127.0.0.1:5000",
    }


def test_no_endpoint_means_real_aws() -> None:
    assert "endpoint_url" not in Config.from_env({}).aws_client_kwargs()


@pytest.mark.parametrize(
    ("need", "variable"),
    [
        ("rabbitmq", "TASKCAST_RABBITMQ_URL"),
        ("redis", "TASKCAST_REDIS_URL"),
        ("watch_secret", "TASKCAST_WATCH_SECRET"),
        ("api_keys", "TASKCAST_API_KEYS"),
    ],
)
def test_a_missing_needed_variable_fails_naming_it(need: str, variable: str) -> None:
    env = {k: v for k, v in FULL.items() if k != variable}
    with pytest.raises(ConfigError) as raised:
        Config.from_env(env, need=(need,))  # type: ignore[arg-type]
    assert raised.value.variable == variable
    assert variable in str(raised.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TASKCAST_RABBITMQ_URL", "http://127.0.0.1:5672"),
        ("TASKCAST_REDIS_URL", "127.0.0.1:6379"),
        ("TASKCAST_REDIS_URL", "redis://127.0.0.1:notaport/0"),
        ("AWS_ENDPOINT_URL", "localhost:4566"),
        ("TASKCAST_REALTIME_URL", "http://127.0.0.1:8765"),
        ("TASKCAST_WATCH_SECRET", "short"),
        ("TASKCAST_API_KEYS", "just-a-key"),
        ("TASKCAST_NAMESPACE", "Has Spaces"),
        ("TASKCAST_WATCH_TOKEN_TTL", "-5"),
        ("TASKCAST_ALLOWED_ORIGINS", "http://example.com/path"),
    ],
)
def test_a_malformed_variable_fails_naming_it(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Config.from_env({**FULL, variable: value})
    assert raised.value.variable == variable


def test_api_keys_map_to_owners_without_keeping_the_keys() -> None:
    config = Config.from_env(FULL)
    assert config.owner_of("k1") == "alice"
    assert config.owner_of("k2") == "bob"
    assert config.owner_of("k3") is None
    assert "k1" not in config.api_keys


def test_namespace_names_every_resource() -> None:
    names = Config.from_env({"TASKCAST_NAMESPACE": "blue"}).names
    assert (names.exchange, names.tasks_queue, names.dead_queue) == (
        "blue",
        "blue.tasks",
        "blue.dlq",
    )
    assert names.tasks_table == "blue-tasks"
    assert names.rq_queues(["default", "images"]) == [
        "blue.default.high",
        "blue.images.high",
        "blue.default.normal",
        "blue.images.normal",
        "blue.default.low",
        "blue.images.low",
    ]


def metrics_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskcast-relay")
    add_metrics_arguments(parser)
    return parser


def test_metrics_are_served_only_on_a_port_given_and_on_every_interface_unless_told() -> None:
    parser = metrics_parser()
    assert vars(parser.parse_args([])) == {"metrics_port": None, "metrics_host": METRICS_HOST}
    given = parser.parse_args(["--metrics-port", "9100", "--metrics-host", "127.0.0.1"])
    assert (given.metrics_port, given.metrics_host) == (9100, "127.0.0.1")
    assert parser.parse_args(["--metrics-port", "65535"]).metrics_port == 65535


@pytest.mark.parametrize("value", ["0", "65536", "-1", "nine", "9100.0", "\u0669\u0661", ""])
def test_a_metrics_port_that_is_no_port_is_a_usage_error_naming_the_option(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        metrics_parser().parse_args(["--metrics-port", value])
    assert exited.value.code == 2
    assert "argument --metrics-port" in capsys.readouterr().err
