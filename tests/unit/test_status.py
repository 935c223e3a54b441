import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskcore.errors import TransitionError
from taskcore.status import TERMINAL, TRANSITIONS, Status, can_transition, check_transition


def test_the_happy_path_is_allowed() -> None:
    for source, target in [
        (Status.PENDING, Status.QUEUED),
        (Status.QUEUED, Status.RUNNING),
        (Status.RUNNING, Status.SUCCEEDED),
        (Status.RUNNING, Status.RETRYING),
        (Status.RETRYING, Status.RUNNING),
    ]:
        check_transition(source, target)


@given(st.sampled_from(sorted(TERMINAL)), st.sampled_from(list(Status)))
def test_terminal_statuses_never_change(source: Status, target: Status) -> None:
    assert source.is_terminal
    with pytest.raises(TransitionError):
        check_transition(source, target)


@given(st.sampled_from(list(Status)))
def test_no_status_moves_back_to_pending(source: Status) -> None:
    assert not can_transition(source, Status.PENDING)


def test_every_live_status_can_end() -> None:
    for status in Status:
        if not status.is_terminal:
            assert TRANSITIONS[status] & TERMINAL, status
