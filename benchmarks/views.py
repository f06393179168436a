"""The pages every benchmarked store serves: the same views for Django's stores and ours."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse


def read(request: HttpRequest) -> HttpResponse:
    """A typical signed-in page: it needs the user, so it loads the session."""
    return HttpResponse(f"user={request.user.pk}")


def write(request: HttpRequest) -> HttpResponse:
    """A page that changes the session (a cart, a flash value)."""
    request.session["counter"] = request.session.get("counter", 0) + 1
    return HttpResponse(f"counter={request.session['counter']}")


async def async_read(request: HttpRequest) -> HttpResponse:
    """``read`` as an async view, the way an ASGI site writes it."""
    user = await request.auser()
    return HttpResponse(f"user={user.pk}")
