"""Session events across processes: published through a broker, fanned out to open streams.

``USER_SESSIONS_PUSH`` names the broker: Redis pub/sub, PostgreSQL
``LISTEN/NOTIFY`` or, for development in one process, memory. Whatever
starts or ends a session calls :func:`user_sessions.events.announce`; after
commit that hands the batch to :func:`publish`, which sends it, as JSON, on
the site's channel. Each worker process holds one subscription (a
:class:`Hub` per event loop) and passes each user's events to that user's
open streams (``user_sessions.stream``). Events carry handles only: never a
session key, never session data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
import weakref
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured

from user_sessions.conf import PushSettings, app_settings
from user_sessions.events import SessionEvent

if TYPE_CHECKING:
    from psycopg import AsyncConnection

logger = logging.getLogger(__name__)

#: PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; every broker gets
#: batches cut below that, so a payload works on all three.
MAX_PAYLOAD = 7900
#: The listener's name on the broker (Redis CLIENT LIST, PostgreSQL
#: application_name), followed by ":" and the channel.
CLIENT_NAME = "user_sessions.push"
#: Seconds a stream waits for the broker before the widget is told to poll.
CONNECT_TIMEOUT = 3.0
#: Seconds a new PostgreSQL subscription waits to hear its own test notification.
PROBE_TIMEOUT = 2.0


def chunks(events: Sequence[SessionEvent]) -> Iterator[str]:
    """``events`` as JSON arrays of at most ``MAX_PAYLOAD`` bytes each."""
    batch: list[str] = []
    size = 2
    for event in events:
        item = json.dumps(event.as_dict(), separators=(",", ":"))
        if batch and size + len(item) + 1 > MAX_PAYLOAD:
            yield "[" + ",".join(batch) + "]"
            batch, size = [], 2
        batch.append(item)
        size += len(item) + 1
    if batch:
        yield "[" + ",".join(batch) + "]"


def parse(payload: str | bytes) -> list[SessionEvent]:
    """The events in one payload; anything malformed is logged and left out."""
    try:
        items = json.loads(payload)
    except ValueError:
        logger.warning("ignored a push payload that is not JSON")
        return []
    if not isinstance(items, list):
        return []
    events = []
    for item in items:
        try:
            events.append(SessionEvent.from_dict(item))
        except (KeyError, ValueError, TypeError):
            logger.warning("ignored a malformed session event on the push channel")
    return events


class Subscription:
    """One process's connection to the broker, listening on the site's channel."""

    def messages(self) -> AsyncIterator[str]:
        """Payloads as they arrive; raises when the connection is lost."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class Broker:
    """Carries payloads between processes: publishes from sync code, subscribes from async."""

    def __init__(self, settings: PushSettings) -> None:
        self.settings = settings
        self.channel = settings.channel
        #: ``time.monotonic()`` before which :func:`publish` does not try (see
        #: ``PAUSE_AFTER_FAILURE``).
        self.paused_until = 0.0

    def publish(self, payload: str) -> None:
        raise NotImplementedError

    async def subscribe(self) -> Subscription:
        raise NotImplementedError


# Redis ----------------------------------------------------------------------


class RedisSubscription(Subscription):
    def __init__(self, client: Any, pubsub: Any) -> None:
        self.client = client
        self.pubsub = pubsub

    async def messages(self) -> AsyncIterator[str]:
        async for message in self.pubsub.listen():
            if message.get("type") == "message":
                data = message["data"]
                yield data.decode() if isinstance(data, bytes) else str(data)

    async def close(self) -> None:
        try:
            await self.pubsub.aclose()
        finally:
            await self.client.aclose()


class RedisBroker(Broker):
    """Redis pub/sub (redis-py; its asyncio client listens)."""

    def __init__(self, settings: PushSettings) -> None:
        super().__init__(settings)
        assert settings.url  # conf requires it
        self.url = settings.url
        self._client: Any = None

    def publish(self, payload: str) -> None:
        if self._client is None:
            import redis

            # Short timeouts: a broker that is down must not hold up the
            # request that ended a session (the widgets fall back to polling).
            self._client = redis.Redis.from_url(
                self.url, socket_timeout=2, socket_connect_timeout=2
            )
        self._client.publish(self.channel, payload)

    async def subscribe(self) -> Subscription:
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(
            self.url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            health_check_interval=30,
            # Named, so an operator sees in CLIENT LIST what holds the connection.
            client_name=f"{CLIENT_NAME}:{self.channel}",
        )
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
        except BaseException:
            await client.aclose()
            raise
        return RedisSubscription(client, pubsub)


# PostgreSQL -----------------------------------------------------------------


class PostgresSubscription(Subscription):
    def __init__(self, connection: AsyncConnection[Any], pending: Sequence[str] = ()) -> None:
        self.connection = connection
        # Events that arrived while the subscription was being checked.
        self.pending = list(pending)

    async def messages(self) -> AsyncIterator[str]:
        while self.pending:
            yield self.pending.pop(0)
        async for notify in self.connection.notifies():
            yield notify.payload

    async def close(self) -> None:
        await self.connection.close()


class ListenUnheard(Exception):
    """``LISTEN`` was accepted but heard nothing another connection sent."""


class PostgresBroker(Broker):
    """PostgreSQL ``LISTEN/NOTIFY`` (psycopg 3; its async connection listens).

    Without a ``URL`` it uses the database ``DATABASE`` names: notifications
    are sent on that Django connection, and the listener connects with its
    settings.
    """

    def __init__(self, settings: PushSettings) -> None:
        super().__init__(settings)
        self._connection: Any = None
        self._lock = threading.Lock()

    def connection_kwargs(self) -> dict[str, Any]:
        if self.settings.url:
            return {"conninfo": self.settings.url}
        from django.db import connections

        entry = connections.settings[self.settings.database]
        kwargs: dict[str, Any] = {"dbname": entry.get("NAME") or "postgres"}
        for key, name in (("HOST", "host"), ("PORT", "port"), ("USER", "user")):
            if entry.get(key):
                kwargs[name] = str(entry[key])
        if entry.get("PASSWORD"):
            kwargs["password"] = entry["PASSWORD"]
        for option in ("sslmode", "sslrootcert", "sslcert", "sslkey", "service", "passfile"):
            if option in entry.get("OPTIONS", {}):
                kwargs[option] = entry["OPTIONS"][option]
        return kwargs

    def publish(self, payload: str) -> None:
        sql = "SELECT pg_notify(%s, %s)"
        if not self.settings.url:
            from django.db import connections

            with connections[self.settings.database].cursor() as cursor:
                cursor.execute(sql, [self.channel, payload])
            return
        import psycopg

        with self._lock:
            if self._connection is None or self._connection.closed:
                self._connection = psycopg.connect(
                    self.settings.url, autocommit=True, connect_timeout=2
                )
            try:
                self._connection.execute(sql, [self.channel, payload])
            except psycopg.OperationalError:
                # A connection the server dropped: one more try on a new one.
                self._connection = psycopg.connect(
                    self.settings.url, autocommit=True, connect_timeout=2
                )
                self._connection.execute(sql, [self.channel, payload])

    async def subscribe(self) -> Subscription:
        import psycopg
        from psycopg import sql

        kwargs = self.connection_kwargs()
        kwargs.setdefault("application_name", f"{CLIENT_NAME}:{self.channel}")
        connection = await psycopg.AsyncConnection.connect(
            **kwargs, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT)
        )
        try:
            await connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            pending = await self._hear_probe(connection, kwargs)
        except BaseException:
            await connection.close()
            raise
        return PostgresSubscription(connection, pending)

    async def _hear_probe(
        self, listener: AsyncConnection[Any], kwargs: dict[str, Any]
    ) -> list[str]:
        """Check that a notification from another connection reaches ``listener``.

        Through PgBouncer in transaction (or statement) pooling ``LISTEN``
        succeeds on whichever server connection ran it, and nothing is ever
        heard afterwards: streams would wait forever for events. Returns the
        events heard meanwhile (they are delivered first).
        """
        import psycopg

        probe = json.dumps({"probe": uuid.uuid4().hex})
        async with await psycopg.AsyncConnection.connect(
            **kwargs, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT)
        ) as sender:
            await sender.execute("SELECT pg_notify(%s, %s)", [self.channel, probe])
        pending: list[str] = []
        async for notify in listener.notifies(timeout=PROBE_TIMEOUT):
            if notify.payload == probe:
                return pending
            pending.append(notify.payload)
        raise ListenUnheard(
            f"LISTEN heard no notification within {PROBE_TIMEOUT:.0f} s: is this connection "
            "through PgBouncer in transaction pooling? The postgres broker needs a direct "
            "connection to PostgreSQL (USER_SESSIONS_PUSH URL)"
        )


# Memory (development, one process) ------------------------------------------


class MemorySubscription(Subscription):
    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[str] = asyncio.Queue()

    async def messages(self) -> AsyncIterator[str]:
        while True:
            yield await self.queue.get()

    async def close(self) -> None:
        self.broker.subscriptions.discard(self)


class MemoryBroker(Broker):
    """Within one process only: a second worker never hears the first (system check W020)."""

    def __init__(self, settings: PushSettings) -> None:
        super().__init__(settings)
        self.subscriptions: set[MemorySubscription] = set()

    def publish(self, payload: str) -> None:
        for subscription in list(self.subscriptions):
            if subscription.loop.is_closed():
                self.subscriptions.discard(subscription)
                continue
            # Published from sync code, often in another thread than the loop.
            subscription.loop.call_soon_threadsafe(subscription.queue.put_nowait, payload)

    async def subscribe(self) -> Subscription:
        subscription = MemorySubscription(self)
        self.subscriptions.add(subscription)
        return subscription


BROKERS: dict[str, type[Broker]] = {
    "redis": RedisBroker,
    "postgres": PostgresBroker,
    "memory": MemoryBroker,
}
_broker: Broker | None = None
_broker_lock = threading.Lock()


def get_broker() -> Broker | None:
    """This process's broker for the current setting; ``None`` when push is off."""
    global _broker
    settings = app_settings.PUSH
    if settings is None:
        return None
    with _broker_lock:
        if _broker is None or _broker.settings != settings:
            _broker = BROKERS[settings.broker](settings)
        return _broker


#: The name :func:`publish` is registered under (``events.add_publisher``).
PUBLISHER = "user_sessions.push"


def enabled() -> bool:
    """Whether ``USER_SESSIONS_PUSH`` names a broker (a bad setting is check E005's to report)."""
    try:
        return app_settings.PUSH is not None
    except ImproperlyConfigured:
        return False


#: Seconds after a failed publish during which no publish is tried. A broker
#: that hangs then costs one request one timeout (up to 2 s), not every
#: request that ends a session. The events meanwhile are dropped, as they
#: would be anyway: a stream that misses one still finds its own session's end
#: at its next check (``stream.RECHECK_HEARTBEATS``), and the widgets poll.
PAUSE_AFTER_FAILURE = 5.0


def publish(events: Sequence[SessionEvent]) -> None:
    """The publisher :mod:`user_sessions.events` calls after commit."""
    broker = get_broker()
    if broker is None:
        return
    if time.monotonic() < broker.paused_until:
        logger.debug("%d session events not published: the broker failed just now", len(events))
        return
    try:
        for payload in chunks(events):
            broker.publish(payload)
    except Exception:
        broker.paused_until = time.monotonic() + PAUSE_AFTER_FAILURE
        logger.warning(
            "the %s broker failed: publishing paused for %.0f s",
            broker.settings.broker,
            PAUSE_AFTER_FAILURE,
        )
        raise


# This process's side --------------------------------------------------------

#: Put in every stream's queue when the broker connection is lost: the streams
#: close, and the widgets poll until they can reconnect.
LOST: list[SessionEvent] = []


class Hub:
    """One subscription per event loop, shared by the streams open in it."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.streams: dict[str, set[asyncio.Queue[list[SessionEvent]]]] = defaultdict(set)
        self.task: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()

    @property
    def listening(self) -> bool:
        return self.task is not None and not self.task.done()

    async def start(self) -> bool:
        """Subscribe unless already subscribed; ``False`` when the broker cannot be reached."""
        if self.listening:
            return True
        async with self.lock:
            if self.listening:
                return True
            try:
                subscription = await asyncio.wait_for(
                    self.broker.subscribe(), CONNECT_TIMEOUT + PROBE_TIMEOUT
                )
            except Exception as exc:
                logger.warning(
                    "push: cannot subscribe through the %s broker (%s: %s); widgets poll",
                    self.broker.settings.broker,
                    type(exc).__name__,
                    exc,
                )
                return False
            self.task = asyncio.get_running_loop().create_task(self.run(subscription))
            return True

    async def run(self, subscription: Subscription) -> None:
        try:
            async for payload in subscription.messages():
                self.dispatch(parse(payload))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning(
                "push: lost the %s broker (%s: %s); widgets poll until it is back",
                self.broker.settings.broker,
                type(exc).__name__,
                exc,
            )
        finally:
            # Not listening any more: the next stream to open subscribes anew.
            self.task = None
            for queues in self.streams.values():
                for queue in queues:
                    queue.put_nowait(LOST)
            try:
                await subscription.close()
            except Exception:
                logger.debug("push: closing the subscription failed", exc_info=True)

    def dispatch(self, events: list[SessionEvent]) -> None:
        by_user: dict[str, list[SessionEvent]] = defaultdict(list)
        for event in events:
            by_user[event.user_id].append(event)
        for user_id, batch in by_user.items():
            for queue in self.streams.get(user_id, ()):
                queue.put_nowait(batch)

    def count(self, user_id: str) -> int:
        return len(self.streams.get(user_id, ()))

    def open(self, user_id: str) -> asyncio.Queue[list[SessionEvent]]:
        queue: asyncio.Queue[list[SessionEvent]] = asyncio.Queue()
        self.streams[user_id].add(queue)
        return queue

    def close(self, user_id: str, queue: asyncio.Queue[list[SessionEvent]]) -> None:
        queues = self.streams.get(user_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self.streams[user_id]

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def get_hub() -> Hub | None:
    """The running loop's hub for the current broker; ``None`` when push is off."""
    broker = get_broker()
    if broker is None:
        return None
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None or hub.broker is not broker:
        hub = _hubs[loop] = Hub(broker)
    return hub


__all__ = [
    "BROKERS",
    "PUBLISHER",
    "Broker",
    "Hub",
    "MemoryBroker",
    "PostgresBroker",
    "RedisBroker",
    "chunks",
    "enabled",
    "get_broker",
    "get_hub",
    "parse",
    "publish",
]
