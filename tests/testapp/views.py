"""Small views that exercise the session the way real pages do."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse


def read(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"user={request.user.pk or ''}")


def write(request: HttpRequest) -> HttpResponse:
    request.session["counter"] = request.session.get("counter", 0) + 1
    return JsonResponse({"counter": request.session["counter"]})


def untouched(request: HttpRequest) -> HttpResponse:
    return HttpResponse("no session used")


def fail(request: HttpRequest) -> HttpResponse:
    request.session["counter"] = 1
    return HttpResponse("boom", status=500)


async def async_read(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    return HttpResponse(f"user={user.pk or ''}")


async def async_write(request: HttpRequest) -> HttpResponse:
    counter = await request.session.aget("counter", 0) + 1
    await request.session.aset("counter", counter)
    return JsonResponse({"counter": counter})


def _revoke_current(request: HttpRequest) -> None:
    from user_sessions.models import Session

    # Stands in for another request (or another device) revoking this
    # session while the current request is still running.
    Session.objects.filter(session_key=request.session.session_key).delete()


def revoked_then_read(request: HttpRequest) -> HttpResponse:
    user_pk = request.user.pk
    _revoke_current(request)
    return HttpResponse(f"user={user_pk or ''}")


def revoked_then_write(request: HttpRequest) -> HttpResponse:
    request.session.get("counter")
    _revoke_current(request)
    request.session["counter"] = 99
    return HttpResponse("written")


def cycle(request: HttpRequest) -> HttpResponse:
    request.session.cycle_key()
    return HttpResponse(f"user={request.user.pk or ''}")


def set_password_only(request: HttpRequest) -> HttpResponse:
    # A password change that does not call update_session_auth_hash().
    user = request.user
    user.set_password(request.POST["password"])  # type: ignore[union-attr]
    user.save()  # type: ignore[union-attr]
    return HttpResponse("changed")
