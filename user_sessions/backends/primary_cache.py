"""The session cache as the store must read it: from the server that takes the writes.

Django's ``RedisCache`` given several servers (``LOCATION`` a list) writes to
the first and reads from one of the others at random, as Django documents for
a primary with replicas. Replication is asynchronous, so a replica may not yet
have a revoke's tombstone (the revoked session would still work) or the
entry a save just wrote (the next request would build on older data and the
save would be lost). The store therefore reads through a second ``RedisCache``
of the same class and options on the first server only; every other cache
user keeps the replicas.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.cache import BaseCache, caches
from django.core.cache.backends.redis import RedisCache
from django.core.signals import setting_changed

_primaries: dict[str, BaseCache] = {}


def servers(alias: str) -> list[str]:
    """The cache's ``LOCATION`` as a list of servers, split as Django's Redis cache splits it."""
    location: str | list[str] = settings.CACHES.get(alias, {}).get("LOCATION") or []
    if isinstance(location, str):
        return [server for server in re.split("[;,]", location) if server]
    return list(location)


def primary_cache(alias: str) -> BaseCache:
    """``caches[alias]``; for a Redis cache with replicas, one that reads from the primary too."""
    cache = caches[alias]
    if not isinstance(cache, RedisCache):
        return cache
    try:
        return _primaries[alias]
    except KeyError:
        pass
    locations = servers(alias)
    primary: BaseCache = cache
    if len(locations) > 1:
        # Same class, options, key prefix, version and key function; one server.
        primary = type(cache)(locations[0], dict(settings.CACHES[alias]))
    _primaries[alias] = primary
    return primary


def _caches_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "CACHES":
        _primaries.clear()


setting_changed.connect(_caches_changed, dispatch_uid="user_sessions.primary_cache")
