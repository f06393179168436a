"""cached_db on a Redis primary and replica, configured as Django documents for several servers.

Django's ``RedisCache`` with several ``LOCATION``\\s writes to the first and
reads from the others. The replica is cut off from its primary while each
test acts (``REPLICAOF NO ONE``), so it answers with what it had: a lag that
lasts exactly as long as the test wants.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client

from tests.scaleout.conftest import PostgresReplication, RedisReplication
from tests.scaleout.test_replica import PASSWORD, ROUTERS, sign_in, signed_in_as
from user_sessions.models import Session


@pytest.fixture
def alice(redis_replica: RedisReplication) -> Any:
    return get_user_model().objects.db_manager("default").create_user("alice", password=PASSWORD)


def test_the_replica_answers_with_what_it_had_while_cut_off(
    redis_replica: RedisReplication,
) -> None:
    cache.set("colour", "red")
    redis_replica.detach()
    cache.set("colour", "blue")
    assert cache.get("colour") == "red"  # Django's RedisCache reads from the replica
    redis_replica.attach()
    assert cache.get("colour") == "blue"


def test_a_revoked_session_is_not_served_from_a_lagging_replica(
    redis_replica: RedisReplication, alice: Any
) -> None:
    client = Client()
    sign_in(client, alice)
    assert signed_in_as(client) == str(alice.pk)  # cached on the primary, copied to the replica
    redis_replica.detach()
    assert Session.objects.filter(user=alice).revoke() == 1
    # The replica still holds the session's entry, not the tombstone.
    key = client.cookies["sessionid"].value
    assert redis_replica.replica.exists(cache.make_key("user_sessions.cached_db" + key))
    assert signed_in_as(client) == ""
    assert client.get("/async/read/").content == b"user="


def test_no_write_is_lost_while_the_replica_lags(
    redis_replica: RedisReplication, alice: Any
) -> None:
    client = Client()
    sign_in(client, alice)
    assert client.get("/write/").json()["counter"] == 1
    redis_replica.detach()
    assert [client.get("/write/").json()["counter"] for _ in range(3)] == [2, 3, 4]
    assert client.get("/async/write/").json()["counter"] == 5


def test_a_sign_in_is_read_back_while_the_replica_lags(
    redis_replica: RedisReplication, alice: Any
) -> None:
    redis_replica.detach()
    client = Client()
    sign_in(client, alice)
    assert signed_in_as(client) == str(alice.pk)
    assert client.get("/write/").json()["counter"] == 1


def test_a_revoke_is_final_with_both_replicas_lagging(
    settings: Any,
    replica: PostgresReplication,
    redis_replica: RedisReplication,
    alice: Any,
) -> None:
    settings.DATABASE_ROUTERS = ROUTERS
    laptop, phone = Client(), Client()
    sign_in(laptop, alice)
    sign_in(phone, alice)
    assert signed_in_as(phone) == str(alice.pk)
    replica.pause()
    redis_replica.detach()
    phone_key = phone.cookies["sessionid"].value
    handle = Session.objects.get(session_key=phone_key).handle
    response = laptop.post(f"/account/sessions/{handle}/delete/")
    assert response.status_code in (200, 302)
    assert signed_in_as(phone) == ""
    assert signed_in_as(laptop) == str(alice.pk)
    assert laptop.get("/write/").json()["counter"] == 1
