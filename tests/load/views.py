"""The view the load run adds to the example site (and ``tests.asgi_site.views.wrappers``)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from user_sessions.models import Session


def counter(request: HttpRequest) -> JsonResponse:
    """Add one to the session's counter; name the session by its handle.

    A signed-out visitor gets a 403 and no session, so a revoked browser is
    told so without a new row being written for it.
    """
    if not request.user.is_authenticated:
        return JsonResponse({"user": None}, status=403)
    count = request.session.get("counter", 0) + 1
    request.session["counter"] = count
    handle = (
        Session.objects.filter(session_key=request.session.session_key)
        .values_list("handle", flat=True)
        .first()
    )
    return JsonResponse({"user": request.user.get_username(), "handle": handle, "counter": count})
