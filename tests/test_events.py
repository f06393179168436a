from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import pytest
from django.db import transaction

from user_sessions.events import (
    EndedBy,
    Reason,
    SessionEvent,
    add_publisher,
    announce,
    remove_publisher,
    session_ended,
    session_started,
)
from user_sessions.models import Session


def test_an_event_survives_a_round_trip_through_json() -> None:
    at = datetime(2026, 12, 3, 10, 0, tzinfo=timezone.utc)
    event = SessionEvent.ended(
        uuid.UUID(int=7), "h" * 32, Reason.SIGNED_OUT_ELSEWHERE,
        ended_by=EndedBy.USER, by_handle="b" * 32, at=at,
    )  # fmt: skip
    wire = json.loads(json.dumps(event.as_dict()))
    assert wire == {
        "kind": "ended",
        "user_id": "00000000-0000-0000-0000-000000000007",
        "handle": "h" * 32,
        "at": "2026-12-03T10:00:00+00:00",
        "reason": "signed_out_elsewhere",
        "ended_by": "user",
        "by_handle": "b" * 32,
    }
    assert SessionEvent.from_dict(wire) == event


def test_an_ended_event_defaults_to_the_system_and_a_started_one_has_no_reason() -> None:
    assert SessionEvent.ended(1, "h", Reason.IDLE).ended_by is EndedBy.SYSTEM
    started = SessionEvent.started(1, "h")
    assert (started.kind, started.reason, started.ended_by) == ("started", None, None)
    assert SessionEvent.from_dict(started.as_dict()) == started


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "deleted", "user_id": "1", "handle": "h", "at": "2026-12-03T10:00:00+00:00"},
        {"kind": "ended", "user_id": "1", "handle": "h", "at": "yesterday"},
        {"kind": "ended", "user_id": "1", "handle": "h", "at": "2026-12-03T10:00:00+00:00",
         "reason": "bored"},
        {"kind": "ended", "handle": "h", "at": "2026-12-03T10:00:00+00:00"},
    ],
)  # fmt: skip
def test_bad_wire_data_raises_a_value_or_key_error(data: dict[str, Any]) -> None:
    with pytest.raises((ValueError, KeyError)):
        SessionEvent.from_dict(data)


def test_every_reason_has_a_label_and_values_are_unique() -> None:
    assert len({reason.value for reason in Reason}) == len(Reason)
    assert all(str(reason.label) for reason in Reason)
    assert all(str(who.label) for who in EndedBy)
    assert dict(Reason.choices())["idle"] == Reason.IDLE.label


@pytest.mark.django_db(transaction=True)
def test_announce_waits_for_commit_and_a_rollback_sends_nothing() -> None:
    received: list[SessionEvent] = []
    batches: list[Sequence[SessionEvent]] = []

    def on_ended(sender: Any, event: SessionEvent, **kwargs: Any) -> None:
        assert sender is Session
        received.append(event)

    session_ended.connect(on_ended)
    add_publisher("test", batches.append)
    try:
        first = SessionEvent.ended(1, "a", Reason.LOGOUT)
        with transaction.atomic():
            announce([first])
            assert received == [] and batches == []
        assert received == [first]
        assert [list(batch) for batch in batches] == [[first]]

        with pytest.raises(RuntimeError), transaction.atomic():
            announce([SessionEvent.ended(1, "b", Reason.LOGOUT)])
            raise RuntimeError
        assert received == [first] and len(batches) == 1

        announce([])  # nothing to say: no empty batch
        assert len(batches) == 1
    finally:
        session_ended.disconnect(on_ended)
        remove_publisher("test")


@pytest.mark.django_db(transaction=True)
def test_a_failing_receiver_or_publisher_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    received: list[SessionEvent] = []
    batches: list[Sequence[SessionEvent]] = []

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("broker down")

    def on_started(sender: Any, event: SessionEvent, **kwargs: Any) -> None:
        received.append(event)

    session_started.connect(broken)
    session_started.connect(on_started)
    add_publisher("broken", broken)
    add_publisher("good", batches.append)
    try:
        event = SessionEvent.started(1, "a")
        with caplog.at_level(logging.ERROR, logger="user_sessions.events"):
            announce([event])
        assert received == [event]
        assert [list(batch) for batch in batches] == [[event]]
        assert "broker down" in caplog.text
        assert "'broken'" in caplog.text
    finally:
        session_started.disconnect(broken)
        session_started.disconnect(on_started)
        remove_publisher("broken")
        remove_publisher("good")
