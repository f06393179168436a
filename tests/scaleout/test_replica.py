"""Read your writes on a PostgreSQL primary with a lagging streaming replica.

The site's router sends every read to the replica and every write to the
primary. Replay on the replica is paused while each test acts, so whatever
the request reads from the replica is exactly as old as the test says.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.scaleout.conftest import PostgresReplication
from user_sessions.models import Session

ROUTERS = ["tests.scaleout.routers.ReadReplicaRouter"]
PASSWORD = "secret-password"


@pytest.fixture(params=["db", "cached_db"])
def engine(request: pytest.FixtureRequest, settings: Any, replica: PostgresReplication) -> str:
    settings.DATABASE_ROUTERS = ROUTERS
    settings.SESSION_ENGINE = f"user_sessions.backends.{request.param}"
    from django.core.cache import cache

    cache.clear()
    return str(request.param)


@pytest.fixture
def alice(replica: PostgresReplication) -> Any:
    user = get_user_model().objects.db_manager("default").create_user("alice", password=PASSWORD)
    replica.catch_up()
    return user


def sign_in(client: Client, user: Any) -> None:
    response = client.post("/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, response.content


def signed_in_as(client: Client) -> str:
    response = client.get("/read/")
    assert response.status_code == 200
    return response.content.decode().removeprefix("user=")


def test_the_replica_lags_while_paused(replica: PostgresReplication, alice: Any) -> None:
    replica.pause()
    get_user_model().objects.db_manager("default").create_user("bob")
    assert get_user_model().objects.using("default").filter(username="bob").exists()
    assert not get_user_model().objects.using("replica").filter(username="bob").exists()
    replica.resume()
    replica.catch_up()
    assert get_user_model().objects.using("replica").filter(username="bob").exists()


def test_djangos_way_of_reading_signs_the_user_out(
    settings: Any, replica: PostgresReplication, alice: Any
) -> None:
    """Reading sessions where the router reads: the failure ``db_for_read()`` prevents.

    The request after the sign-in finds no session on the replica, and the
    session middleware deletes the cookie of a session it could not find: the
    user is signed out for good, not only until the replica catches up.
    """
    settings.DATABASE_ROUTERS = ROUTERS
    settings.SESSION_ENGINE = "tests.scaleout.replica_reads"
    replica.pause()
    client = Client()
    sign_in(client, alice)
    assert signed_in_as(client) == ""
    replica.resume()
    replica.catch_up()
    assert Session.objects.using("replica").filter(user=alice).count() == 1
    assert signed_in_as(client) == ""


def test_a_sign_in_is_read_back_while_the_replica_lags(
    engine: str, replica: PostgresReplication, alice: Any
) -> None:
    replica.pause()
    client = Client()
    sign_in(client, alice)
    assert signed_in_as(client) == str(alice.pk)
    assert client.get("/async/read/").content == f"user={alice.pk}".encode()
    # Every write is read back by the next request: none is lost.
    assert [client.get("/write/").json()["counter"] for _ in range(3)] == [1, 2, 3]
    assert not Session.objects.using("replica").filter(user=alice).exists()


def test_a_revoke_is_final_while_the_replica_lags(
    engine: str, replica: PostgresReplication, alice: Any
) -> None:
    client = Client()
    sign_in(client, alice)
    assert signed_in_as(client) == str(alice.pk)
    replica.pause()
    assert Session.objects.filter(user=alice).revoke() == 1
    # The replica still has the row; the store does not ask it.
    assert Session.objects.using("replica").filter(user=alice).count() == 1
    assert signed_in_as(client) == ""
    assert client.get("/async/read/").content == b"user="
    assert client.get("/write/").status_code == 200
    assert not Session.objects.using("default").filter(user=alice).exists()


def test_a_session_signed_out_from_the_widget_ends_while_the_replica_lags(
    engine: str, replica: PostgresReplication, alice: Any
) -> None:
    laptop, phone = Client(), Client()
    sign_in(laptop, alice)
    sign_in(phone, alice)
    replica.catch_up()
    page = laptop.get("/account/sessions/")
    assert page.status_code == 200
    phone_key = phone.cookies["sessionid"].value
    phone_handle = Session.objects.using("default").get(session_key=phone_key).handle
    assert re.search(rf'data-handle="{re.escape(phone_handle)}"', page.content.decode())
    replica.pause()
    response = laptop.post(f"/account/sessions/{phone_handle}/delete/")
    assert response.status_code in (200, 302), response.content[:300]
    assert signed_in_as(phone) == ""
    assert signed_in_as(laptop) == str(alice.pk)


@pytest.mark.parametrize("cache_user", [False, True], ids=["", "USER_SESSIONS_CACHE_USER"])
def test_a_password_change_keeps_this_session_and_ends_the_others(
    engine: str, replica: PostgresReplication, alice: Any, settings: Any, cache_user: bool
) -> None:
    settings.USER_SESSIONS_CACHE_USER = cache_user
    laptop, phone = Client(), Client()
    sign_in(laptop, alice)
    sign_in(phone, alice)
    replica.pause()
    response = laptop.post(
        "/password/change/",
        {
            "old_password": PASSWORD,
            "new_password1": "n3w-Passw0rd!",
            "new_password2": "n3w-Passw0rd!",
        },
    )
    assert response.status_code == 302, response.content[:300]
    # The replica still has the old password hash: only the primary's row is right.
    assert signed_in_as(laptop) == str(alice.pk)
    assert signed_in_as(phone) == ""
