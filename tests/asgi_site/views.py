"""What the server process holds, for the test to assert on."""

from __future__ import annotations

import gc

from django.db.backends.base.base import BaseDatabaseWrapper
from django.http import HttpRequest, JsonResponse


async def wrappers(request: HttpRequest) -> JsonResponse:
    """How many database connection wrappers are still reachable.

    Collected first: a wrapper is a reference cycle (it and its ``ops``), so
    one nobody holds any more waits for the cycle collector, and only those
    something still holds are a leak. Async, so that asking opens no wrapper.
    """
    collected = gc.collect()
    # type(), not isinstance(): the latter would evaluate lazy objects
    # (request.user) met on the way.
    live = [obj for obj in gc.get_objects() if issubclass(type(obj), BaseDatabaseWrapper)]
    connected = sum(1 for wrapper in live if wrapper.connection is not None)
    return JsonResponse({"live": len(live), "connected": connected, "collected": collected})
