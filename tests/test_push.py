"""user_sessions.push and user_sessions.stream: brokers, the hub, the event stream.

The Redis and PostgreSQL brokers run against the real services
(``REDIS_URL``; PostgreSQL on 127.0.0.1:5432 as in tests/settings.py); a
service that is not reachable skips its tests with the reason. Every test
listens on a channel of its own, since pub/sub channels are shared by every
database of a Redis server and every database of a PostgreSQL cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient, Client

from user_sessions import checks, events, push
from user_sessions.conf import PushSettings, app_settings
from user_sessions.events import Reason, SessionEvent
from user_sessions.models import Session

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14")
POSTGRES_URL = "host={} port={} user={} dbname=postgres".format(
    os.environ.get("PGHOST", "127.0.0.1"),
    os.environ.get("PGPORT", "5432"),
    os.environ.get("PGUSER", "postgres"),
)
STREAM = "/account/sessions/stream/"
# Long enough for a loaded 2-core machine; a missing event costs this much.
WAIT = 5.0


def redis_or_skip() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {type(exc).__name__}: {exc}")


def postgres_or_skip() -> None:
    import psycopg

    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except Exception as exc:
        pytest.skip(f"PostgreSQL is not reachable ({POSTGRES_URL}): {type(exc).__name__}: {exc}")


def channel() -> str:
    return f"user_sessions_test_{uuid.uuid4().hex[:12]}"


def push_setting(broker: str, **extra: Any) -> dict[str, Any]:
    setting: dict[str, Any] = {"BROKER": broker, "CHANNEL": channel(), **extra}
    if broker == "redis":
        redis_or_skip()
        setting.setdefault("URL", REDIS_URL)
    elif broker == "postgres":
        postgres_or_skip()
        setting.setdefault("URL", POSTGRES_URL)
    return setting


@pytest.fixture(params=["memory", "redis", "postgres"])
def broker_name(request: pytest.FixtureRequest, settings: Any) -> str:
    settings.USER_SESSIONS_PUSH = push_setting(request.param)
    return str(request.param)


def ended(user_id: Any, handle: str) -> SessionEvent:
    return SessionEvent.ended(user_id, handle, Reason.SIGNED_OUT_ELSEWHERE)


async def next_batch(queue: asyncio.Queue[list[SessionEvent]]) -> list[SessionEvent]:
    return await asyncio.wait_for(queue.get(), WAIT)


def publish_from_thread(batch: list[SessionEvent]) -> Any:
    # As announce() does: from sync code, usually not the loop's thread.
    return asyncio.to_thread(push.publish, batch)


# Payloads ---------------------------------------------------------------------


def test_payloads_stay_under_postgres_limit_and_keep_every_event() -> None:
    batch = [ended(7, f"handle{number:04d}") for number in range(300)]
    payloads = list(push.chunks(batch))
    assert len(payloads) > 1
    assert all(len(payload.encode()) <= push.MAX_PAYLOAD < 8000 for payload in payloads)
    assert [e for p in payloads for e in push.parse(p)] == batch


def test_payloads_carry_handles_never_keys() -> None:
    (payload,) = push.chunks([SessionEvent.started(3, "h" * 22)])
    assert set(push.parse(payload)[0].as_dict()) == set(SessionEvent.started(3, "x").as_dict())
    assert "session_key" not in payload and "data" not in payload


def test_malformed_payloads_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    good = SessionEvent.started(1, "good")
    (payload,) = push.chunks([good])
    mixed = payload[:-1] + ',{"kind":"exploded","user_id":"1","handle":"x","at":"now"}]'
    assert push.parse(mixed) == [good]
    assert push.parse("not json") == []
    assert push.parse('{"kind": "started"}') == []
    assert "malformed" in caplog.text


# Settings and checks -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("redis", "must be a dict"),
        ({"BROKER": "kafka"}, "BROKER"),
        ({"BROKER": "redis"}, "URL"),
        ({"BROKER": "memory", "HEARTBEAT": 0}, "HEARTBEAT"),
        ({"BROKER": "memory", "MAX_STREAMS": True}, "MAX_STREAMS"),
        ({"BROKER": "memory", "CHANNEL": "x" * 64}, "CHANNEL"),
        ({"BROKER": "memory", "TIMEOUT": 3}, "unknown keys: TIMEOUT"),
    ],
)
def test_bad_push_settings_are_refused(settings: Any, value: Any, message: str) -> None:
    settings.USER_SESSIONS_PUSH = value
    with pytest.raises(ImproperlyConfigured, match=message):
        app_settings.PUSH  # noqa: B018
    assert [e.id for e in checks.check_setup()] == ["user_sessions.E005"]
    assert not push.enabled()


def test_push_is_off_by_default() -> None:
    assert app_settings.PUSH is None
    assert push.get_broker() is None
    assert push.PUBLISHER not in events._publishers


def test_memory_broker_warns_outside_debug(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.USER_SESSIONS_PUSH = {"BROKER": "memory"}
    settings.DEBUG = False
    assert [m.id for m in checks.check_push()] == ["user_sessions.W020"]
    settings.DEBUG = True
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    assert checks.check_push() == []
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    assert [m.id for m in checks.check_push()] == ["user_sessions.W020"]


def test_postgres_broker_without_url_needs_a_postgres_database(settings: Any) -> None:
    settings.USER_SESSIONS_PUSH = {"BROKER": "postgres", "DATABASE": "default"}
    expected = [] if settings.DATABASES["default"]["ENGINE"].endswith("postgresql") else ["E021"]
    assert [m.id.split(".")[1] for m in checks.check_push()] == expected
    settings.USER_SESSIONS_PUSH = {"BROKER": "postgres", "DATABASE": "nope"}
    assert [m.id for m in checks.check_push()] == ["user_sessions.E021"]
    settings.USER_SESSIONS_PUSH = {"BROKER": "postgres", "URL": POSTGRES_URL}
    assert checks.check_push() == []


# Brokers, through one process's hub ---------------------------------------------


def test_events_reach_the_streams_of_their_user_only(broker_name: str) -> None:
    async def scenario() -> None:
        hub = push.get_hub()
        assert hub is not None
        assert await hub.start()
        alice, alice_too, bob = hub.open("1"), hub.open("1"), hub.open("2")
        try:
            first = [SessionEvent.started(1, "a1"), ended(2, "b1"), ended(1, "a2")]
            await publish_from_thread(first)
            assert await next_batch(alice) == [first[0], first[2]]
            assert await next_batch(alice_too) == [first[0], first[2]]
            assert await next_batch(bob) == [first[1]]
            # A "sign out all others" of hundreds arrives whole, in several payloads.
            many = [ended(1, f"x{number:03d}") for number in range(200)]
            await publish_from_thread(many)
            received: list[SessionEvent] = []
            while len(received) < len(many):
                received += await next_batch(alice)
            assert received == many
            assert bob.empty()
        finally:
            await hub.stop()
        assert hub.count("1") == 2

    asyncio.run(scenario())


def publish_and_close(batch: list[SessionEvent]) -> None:
    from django.db import connection

    try:
        push.publish(batch)
    finally:
        connection.close()  # this thread's, or the test database could not be dropped


def test_postgres_broker_through_the_django_database(settings: Any, db: None) -> None:
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("the suite runs on SQLite or MariaDB (USER_SESSIONS_TEST_DB=postgres runs it)")
    settings.USER_SESSIONS_PUSH = {"BROKER": "postgres", "CHANNEL": channel()}

    async def scenario() -> None:
        hub = push.get_hub()
        assert hub is not None and await hub.start()
        stream = hub.open("5")
        try:
            event = SessionEvent.started(5, "via-django")
            await asyncio.to_thread(publish_and_close, [event])
            assert await next_batch(stream) == [event]
        finally:
            await hub.stop()

    asyncio.run(scenario())


def cut_off(broker: str, settings: PushSettings) -> None:
    """End the hub's broker connection from the server's side (this test's channel only)."""
    name = f"{push.CLIENT_NAME}:{settings.channel}"
    if broker == "redis":
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        ids = [entry["id"] for entry in client.client_list() if entry.get("name") == name]
        assert ids, "no listener to cut off"
        for client_id in ids:
            client.client_kill_filter(_id=client_id)
        return
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        ended = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            [name],
        ).fetchall()
        assert ended, "no listener to cut off"


@pytest.mark.parametrize("broker", ["redis", "postgres"])
def test_a_lost_broker_closes_streams_and_the_hub_reconnects(settings: Any, broker: str) -> None:
    settings.USER_SESSIONS_PUSH = push_setting(broker)

    async def scenario() -> None:
        hub = push.get_hub()
        assert hub is not None and await hub.start()
        stream = hub.open("1")
        try:
            assert app_settings.PUSH is not None
            await asyncio.to_thread(cut_off, broker, app_settings.PUSH)
            assert await next_batch(stream) is push.LOST
            assert not hub.listening
            # The next stream to open subscribes again.
            assert await hub.start()
            again = hub.open("1")
            event = SessionEvent.started(1, "after")
            await publish_from_thread([event])
            assert await next_batch(again) == [event]
        finally:
            await hub.stop()

    asyncio.run(scenario())


def test_an_unreachable_broker_is_reported_not_raised(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.USER_SESSIONS_PUSH = {"BROKER": "redis", "URL": "redis://127.0.0.1:1/0"}

    async def scenario() -> bool:
        hub = push.get_hub()
        assert hub is not None
        return await hub.start()

    assert asyncio.run(scenario()) is False
    assert "cannot subscribe through the redis broker" in caplog.text


class SilentServer:
    """Accepts connections and never answers: a broker that hangs."""

    def __init__(self) -> None:
        import socket

        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted: list[Any] = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.accepted.append(self.listener.accept()[0])

    def close(self) -> None:
        for connection in self.accepted:
            connection.close()
        self.listener.close()


def test_a_hanging_broker_costs_one_timeout_per_pause_not_one_per_ending(
    settings: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    server = SilentServer()
    settings.USER_SESSIONS_PUSH = {"BROKER": "redis", "URL": f"redis://127.0.0.1:{server.port}/0"}
    try:
        with pytest.raises(Exception, match=r"[Tt]imeout"):
            push.publish([ended(1, "first")])
        assert len(server.accepted) == 1
        assert "publishing paused" in caplog.text
        # The next endings do not wait on the broker again while it is paused.
        push.publish([ended(1, "second")])
        push.publish([ended(1, f"more{number}") for number in range(300)])
        assert len(server.accepted) == 1
        # After the pause, it is tried again.
        later = push.time.monotonic() + push.PAUSE_AFTER_FAILURE + 1
        monkeypatch.setattr(push, "time", SimpleNamespace(monotonic=lambda: later))
        with pytest.raises(Exception, match=r"[Tt]imeout"):
            push.publish([ended(1, "third")])
        assert len(server.accepted) == 2
    finally:
        server.close()


def test_a_broker_back_after_the_pause_publishes_again(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.USER_SESSIONS_PUSH = push_setting("redis")
    broker = push.get_broker()
    assert broker is not None
    broker.paused_until = push.time.monotonic() + 60
    sent: list[str] = []
    monkeypatch.setattr(broker, "publish", sent.append)
    push.publish([ended(1, "lost")])
    assert sent == []
    broker.paused_until = 0.0
    push.publish([ended(1, "sent")])
    assert [event.handle for payload in sent for event in push.parse(payload)] == ["sent"]


# The stream view --------------------------------------------------------------------


@pytest.fixture
def memory_push(settings: Any) -> Iterator[None]:
    settings.USER_SESSIONS_PUSH = {"BROKER": "memory", "HEARTBEAT": 1}
    yield


def signed_in(client: Client | AsyncClient, user: Any) -> str:
    """Sign ``client`` in as ``user``; the new session's handle."""
    client.force_login(user)
    key = client.cookies["sessionid"].value
    return str(Session.objects.get(session_key=key).handle)


class Reader:
    """Reads an event stream message by message."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.chunks: AsyncIterator[bytes] = response.streaming_content.__aiter__()

    async def next(self) -> str:
        return (await asyncio.wait_for(self.chunks.__anext__(), WAIT)).decode()

    async def until(self, prefix: str, limit: int = 5) -> str:
        """The next message that is not a heartbeat."""
        for _ in range(limit):
            text = await self.next()
            if not text.startswith(": heartbeat"):
                assert text.startswith(prefix), text
                return text
        raise AssertionError(f"only heartbeats, no {prefix!r}")

    async def close(self) -> None:
        """Go away as a browser does: the server cancels the task reading the stream."""
        reading = asyncio.ensure_future(self.chunks.__anext__())
        await asyncio.sleep(0.05)
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading


def run(scenario: Callable[[], Any]) -> Any:
    # async_to_sync keeps sync_to_async in this thread: the test's transaction.
    return async_to_sync(scenario)()


@pytest.mark.django_db
def test_stream_sends_the_users_changes_and_signs_out_its_own_end(
    memory_push: None, user_factory: Callable[..., Any]
) -> None:
    alice, bob = user_factory(), user_factory()
    client = AsyncClient()
    handle = signed_in(client, alice)
    other_handle = signed_in(Client(), alice)

    async def scenario() -> None:
        response = await client.get(STREAM + "?next=/account/")
        assert response.status_code == 200
        assert response["Content-Type"] == "text/event-stream"
        assert response["X-Accel-Buffering"] == "no"
        assert "no-cache" in response["Cache-Control"]
        reader = Reader(response)
        assert "event: ready" in await reader.next()
        # Bob's sessions are none of this stream's business: heartbeats only.
        push.publish([SessionEvent.started(bob.pk, "bobs")])
        assert (await reader.next()).startswith(": heartbeat")
        push.publish([ended(alice.pk, other_handle)])
        changed = await reader.until("event: changed")
        assert f'"handles":["{other_handle}"]' in changed
        # An "ended" naming this session while its row lives is checked, not believed.
        push.publish([ended(alice.pk, handle)])
        assert f'"handles":["{handle}"]' in await reader.until("event: changed")
        await sync_to_async(Session.objects.filter(handle=handle).delete)()
        push.publish([ended(alice.pk, handle)])
        signed_out = await reader.until("event: signed-out")
        assert '"url":"/login/?next=/account/"' in signed_out
        with pytest.raises(StopAsyncIteration):
            await reader.next()
        hub = push.get_hub()
        assert hub is not None and hub.count(str(alice.pk)) == 0
        await hub.stop()

    run(scenario)


@pytest.mark.django_db
def test_stream_notices_a_session_that_ended_without_an_event(
    memory_push: None, user_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from user_sessions import stream

    monkeypatch.setattr(stream, "RECHECK_HEARTBEATS", 2)
    client = AsyncClient()
    handle = signed_in(client, user_factory())

    async def scenario() -> None:
        reader = Reader(await client.get(STREAM))
        assert "event: ready" in await reader.next()
        assert (await reader.next()).startswith(": heartbeat")  # 1st quiet heartbeat
        assert (await reader.next()).startswith(": heartbeat")  # 2nd: checked, still live
        # Expired (or deleted by a script that announced nothing).
        await sync_to_async(Session.objects.filter(handle=handle).delete)()
        assert (await reader.next()).startswith(": heartbeat")
        assert "event: signed-out" in await reader.next()
        with pytest.raises(StopAsyncIteration):
            await reader.next()
        hub = push.get_hub()
        assert hub is not None
        await hub.stop()

    run(scenario)


@pytest.mark.django_db
def test_stream_refuses_whoever_has_no_live_session(
    memory_push: None, user_factory: Callable[..., Any]
) -> None:
    alice = user_factory()
    anonymous = AsyncClient()
    revoked = AsyncClient()
    handle = signed_in(revoked, alice)
    Session.objects.filter(handle=handle).delete()

    async def scenario() -> None:
        assert (await revoked.head(STREAM)).status_code == 405
        assert (await revoked.post(STREAM)).status_code == 405
        assert (await anonymous.get(STREAM)).status_code == 403
        assert (await revoked.get(STREAM)).status_code == 403
        forged = AsyncClient()
        forged.cookies["sessionid"] = "x" * 32
        assert (await forged.get(STREAM)).status_code == 403

    run(scenario)


@pytest.mark.django_db
def test_stream_is_bounded_per_user(settings: Any, user_factory: Callable[..., Any]) -> None:
    settings.USER_SESSIONS_PUSH = {"BROKER": "memory", "MAX_STREAMS": 1}
    alice = user_factory()
    first, second = AsyncClient(), AsyncClient()
    signed_in(first, alice)
    signed_in(second, alice)

    async def scenario() -> None:
        reader = Reader(await first.get(STREAM))
        assert "event: ready" in await reader.next()
        refused = await second.get(STREAM)
        assert refused.status_code == 429
        await reader.close()
        again = Reader(await second.get(STREAM))
        assert "event: ready" in await again.next()
        await again.close()
        hub = push.get_hub()
        assert hub is not None
        await hub.stop()

    run(scenario)


@pytest.mark.django_db
def test_streams_asked_for_at_once_stay_within_the_bound(
    settings: Any, user_factory: Callable[..., Any]
) -> None:
    settings.USER_SESSIONS_PUSH = {"BROKER": "memory", "MAX_STREAMS": 1}
    alice = user_factory()
    clients = [AsyncClient() for _ in range(3)]
    for client in clients:
        signed_in(client, alice)

    async def scenario() -> None:
        # Each answer is given before any of the streams has started to send.
        responses = [await client.get(STREAM) for client in clients]
        readers = [Reader(response) for response in responses]
        first = [await reader.next() for reader in readers[:1]]
        assert "event: ready" in first[0]
        for reader in readers[1:]:
            with pytest.raises(StopAsyncIteration):
                await reader.next()
        hub = push.get_hub()
        assert hub is not None and hub.count(str(alice.pk)) == 1
        await readers[0].close()
        await hub.stop()

    run(scenario)


@pytest.mark.django_db
def test_stream_without_push_or_under_wsgi_answers_204(
    settings: Any, user_factory: Callable[..., Any]
) -> None:
    alice = user_factory()
    client = AsyncClient()
    signed_in(client, alice)
    assert async_to_sync(client.get)(STREAM).status_code == 204
    settings.USER_SESSIONS_PUSH = {"BROKER": "memory"}
    wsgi = Client()
    signed_in(wsgi, alice)
    # Under WSGI an endless stream would hold a worker thread for good.
    assert wsgi.get(STREAM).status_code == 204


@pytest.mark.django_db
def test_stream_while_the_broker_is_down_answers_503(
    settings: Any, user_factory: Callable[..., Any]
) -> None:
    settings.USER_SESSIONS_PUSH = {"BROKER": "redis", "URL": "redis://127.0.0.1:1/0"}
    client = AsyncClient()
    signed_in(client, user_factory())
    response = async_to_sync(client.get)(STREAM)
    assert response.status_code == 503
    assert response["Retry-After"]


@pytest.mark.django_db
def test_widget_offers_the_stream_only_with_push_under_asgi(
    settings: Any, user_factory: Callable[..., Any]
) -> None:
    alice = user_factory()
    asgi, wsgi = AsyncClient(), Client()
    signed_in(asgi, alice)
    signed_in(wsgi, alice)
    page = "/account/sessions/"
    assert "data-us-stream-url" not in async_to_sync(asgi.get)(page).content.decode()
    settings.USER_SESSIONS_PUSH = {"BROKER": "memory"}
    assert f'data-us-stream-url="{STREAM}"' in async_to_sync(asgi.get)(page).content.decode()
    assert "data-us-stream-url" not in wsgi.get(page).content.decode()
    # A later page of rows is a snapshot: it neither polls nor listens.
    paged = async_to_sync(asgi.get)(page + "?after=x")
    assert paged.status_code == 200


@pytest.mark.django_db(transaction=True)
def test_sign_in_publishes_a_started_event_after_commit(
    settings: Any, user_factory: Callable[..., Any]
) -> None:
    settings.USER_SESSIONS_PUSH = {"BROKER": "memory"}
    events.add_publisher(push.PUBLISHER, push.publish)
    alice = user_factory()
    received: list[list[SessionEvent]] = []
    done = threading.Event()

    async def scenario() -> None:
        hub = push.get_hub()
        assert hub is not None and await hub.start()
        stream = hub.open(str(alice.pk))
        try:
            await sync_to_async(Client().post, thread_sensitive=False)(
                "/login/", {"username": alice.username, "password": "secret-password"}
            )
            received.append(await next_batch(stream))
        finally:
            await hub.stop()
            done.set()

    try:
        asyncio.run(scenario())
    finally:
        events.remove_publisher(push.PUBLISHER)
    handle = Session.objects.get(user=alice).handle
    assert [(e.kind, e.user_id, e.handle) for e in received[0]] == [
        ("started", str(alice.pk), handle)
    ]


@pytest.fixture
def publishing() -> Iterator[None]:
    # apps.ready registers the publisher only when push is on at start-up.
    events.add_publisher(push.PUBLISHER, push.publish)
    yield
    events.remove_publisher(push.PUBLISHER)


@pytest.mark.django_db
def test_a_sign_out_publishes_its_end_with_the_reason(
    memory_push: None,
    publishing: None,
    user_factory: Callable[..., Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    alice = user_factory()
    phone, laptop = Client(), Client()
    phone_handle, laptop_handle = signed_in(phone, alice), signed_in(laptop, alice)

    async def scenario() -> list[SessionEvent]:
        hub = push.get_hub()
        assert hub is not None and await hub.start()
        stream = hub.open(str(alice.pk))

        def sign_out_phone() -> None:
            with django_capture_on_commit_callbacks(execute=True):
                response = laptop.post(f"/account/sessions/{phone_handle}/delete/")
            assert response.status_code == 302

        await sync_to_async(sign_out_phone)()
        try:
            return await next_batch(stream)
        finally:
            await hub.stop()

    (event,) = run(scenario)
    assert (event.kind, event.handle, event.user_id) == ("ended", phone_handle, str(alice.pk))
    assert event.reason is Reason.SIGNED_OUT_ELSEWHERE
    assert event.by_handle == laptop_handle


@pytest.mark.django_db
def test_a_broker_down_never_stops_a_sign_out(
    settings: Any,
    publishing: None,
    user_factory: Callable[..., Any],
    django_capture_on_commit_callbacks: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.USER_SESSIONS_PUSH = {"BROKER": "redis", "URL": "redis://127.0.0.1:1/0"}
    alice = user_factory()
    phone, laptop = Client(), Client()
    phone_handle = signed_in(phone, alice)
    signed_in(laptop, alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = laptop.post(f"/account/sessions/{phone_handle}/delete/")
    assert response.status_code == 302
    assert not Session.objects.filter(handle=phone_handle).exists()
    assert "publishing session events through 'user_sessions.push' failed" in caplog.text


def test_postgres_events_heard_during_the_check_come_first() -> None:
    class Listener:
        async def notifies(self) -> AsyncIterator[Any]:
            yield SimpleNamespace(payload="later")

    async def read() -> list[str]:
        subscription = push.PostgresSubscription(Listener(), ["early"])  # type: ignore[arg-type]
        return [payload async for payload in subscription.messages()]

    assert asyncio.run(read()) == ["early", "later"]
