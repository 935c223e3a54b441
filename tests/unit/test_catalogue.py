import pytest

from taskcore.catalogue import CATALOGUE, MAX_PAYLOAD_BYTES, Priority, lookup
from taskcore.errors import PayloadTooLarge, UnknownTaskType, ValidationError


def test_sleep_fills_in_defaults() -> None:
    assert lookup("demo.sleep").validate({}) == {"fail_rate": 0.1, "steps": 5}


def test_sleep_keeps_given_values() -> None:
    payload = {"seconds": 2, "fail_rate": 0, "steps": 3}
    assert lookup("demo.sleep").validate(payload) == payload


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"seconds": "2"}, "payload.seconds"),
        ({"seconds": True}, "payload.seconds"),
        ({"seconds": -1}, "payload.seconds"),
        ({"seconds": 601}, "payload.seconds"),
        ({"seconds": float("nan")}, "payload.seconds"),
        ({"fail_rate": 1.5}, "payload.fail_rate"),
        ({"steps": 2.5}, "payload.steps"),
        ({"steps": 0}, "payload.steps"),
        ({"sleep": 1}, "payload.sleep"),
    ],
)
def test_sleep_refuses_bad_fields_naming_them(payload: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        lookup("demo.sleep").validate(payload)
    assert raised.value.field == field
    assert field in raised.value.message


def test_payload_must_be_an_object() -> None:
    with pytest.raises(ValidationError, match="JSON object"):
        lookup("demo.noop").validate([1, 2])


def test_oversized_payload_is_too_large_not_invalid() -> None:
    with pytest.raises(PayloadTooLarge):
        lookup("demo.noop").validate({"x": "a" * MAX_PAYLOAD_BYTES})


def test_unknown_type_lists_the_known_ones() -> None:
    with pytest.raises(UnknownTaskType) as raised:
        lookup("demo.nope")
    assert "demo.sleep" in str(raised.value)


def test_type_must_be_a_string() -> None:
    with pytest.raises(ValidationError) as raised:
        lookup(42)
    assert raised.value.field == "type"


def test_every_type_has_sane_defaults() -> None:
    for task_type in CATALOGUE.values():
        assert task_type.timeout_s > 0
        assert task_type.max_attempts >= 1
        assert task_type.priority in Priority
        assert task_type.describe()["name"] == task_type.name


def test_every_type_in_the_catalogue_has_a_handler_and_no_handler_is_orphaned() -> None:
    from worker_container.handlers import HANDLERS

    assert set(HANDLERS) == set(CATALOGUE)
