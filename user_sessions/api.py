"""The JSON API: the device list and its sign-outs, for single-page and mobile apps.

The views do what the widget's views do and answer in JSON: the list comes
from the same ``build_device_list`` / ``build_device_page``, signing out asks
for the password under the same rule and attempt limit, and ends sessions
the same way. Clients are signed in with the session cookie, so every DELETE
or POST carries Django's CSRF token (``X-CSRFToken``), checked by Django's own
``CsrfViewMiddleware``. Every error is ``{"error": {"code", "message"}}`` with
its status code; ``openapi.json`` beside this module documents each request
and response and :class:`OpenApiView` serves it.
"""

from __future__ import annotations

import copy
import json
import logging
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig
from django.db import router, transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware, get_token
from django.shortcuts import resolve_url
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.http import urlencode
from django.utils.log import log_response
from django.utils.translation import gettext
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from user_sessions import history
from user_sessions.conf import app_settings
from user_sessions.endings import OwnTransactions, end_sessions
from user_sessions.events import EndedBy, Reason
from user_sessions.models import EndedSession, Session, get_session_model
from user_sessions.paging import HANDLE_PATTERN, Cursor
from user_sessions.widget import (
    OTHERS,
    DeviceList,
    build_device_list,
    build_device_page,
    checked_password_form,
    requires_password,
)

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.http.response import HttpResponseBase

__all__ = [
    "MAX_BODY",
    "ApiError",
    "OpenApiView",
    "OtherSessionsApiView",
    "SessionApiView",
    "SessionListApiView",
    "history_json",
    "session_json",
]

csrf_logger = logging.getLogger("django.security.csrf")

#: Bytes a request body may have: it carries a password at most.
MAX_BODY = 8 * 1024
#: The fields a sign-out request body may have.
BODY_FIELDS = frozenset({"password"})


class ApiError(Exception):
    """An answer other than success: raised anywhere below a view, sent as JSON."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def response(self) -> JsonResponse:
        response = JsonResponse(
            {"error": {"code": self.code, "message": self.message}}, status=self.status
        )
        for name, value in self.headers.items():
            response[name] = value
        return response


def not_found() -> ApiError:
    # One answer for a handle that never existed and another user's: nothing
    # tells them apart.
    return ApiError(404, "not_found", gettext("No such session."))


def missing(user: AbstractBaseUser, handle: str) -> ApiError:
    """410 for a session of ``user`` that history says has ended, else the 404."""
    if history.enabled() and EndedSession.objects.filter(user=user, handle=handle).exists():
        return ApiError(410, "ended", gettext("That session had already ended."))
    return not_found()


class _JsonCsrfCheck(CsrfViewMiddleware):
    """Django's CSRF check, refusing in JSON instead of through the HTML failure view."""

    def _reject(self, request: HttpRequest, reason: str) -> HttpResponseForbidden:
        body = {"error": {"code": "csrf_failed", "message": reason}}
        response = HttpResponseForbidden(json.dumps(body), content_type="application/json")
        # Logged as Django logs its own refusals.
        log_response(
            "Forbidden (%s): %s",
            reason,
            request.path,
            response=response,
            request=request,
            logger=csrf_logger,
        )
        return response


def _checked_view(request: HttpRequest) -> HttpResponse:
    # What the check is told it guards: never marked csrf_exempt, unlike the
    # API's view functions.
    raise NotImplementedError


def _csrf_refusal(request: HttpRequest) -> HttpResponseForbidden | None:
    check = _JsonCsrfCheck(_checked_view)
    # Reads the token cookie, as the site's middleware would have done.
    check.process_request(request)
    return check.process_view(request, _checked_view, (), {})


def _not_signed_in() -> ApiError:
    # A 401 names an authentication scheme. None is registered for cookie
    # sessions: "Cookie" (an old Internet-Draft's) says where to sign in, and
    # browsers show no password prompt for a scheme they do not know.
    try:
        sign_in = resolve_url(settings.LOGIN_URL)
    except NoReverseMatch:
        sign_in = ""
    challenge = 'Cookie realm="user_sessions"'
    if sign_in:
        challenge += f', form-action="{sign_in}"'
    return ApiError(
        401,
        "not_authenticated",
        gettext("Sign in first."),
        {"WWW-Authenticate": challenge},
    )


def _instant(moment: Any) -> str:
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return str(moment.isoformat())


def session_json(session: Session, url: str) -> dict[str, Any]:
    """One row of the list, as the ``Session`` schema of ``openapi.json`` describes it.

    ``session`` comes from ``build_device_list`` or ``build_device_page``,
    which set ``is_current`` and ``is_recent``. ``ip`` is what
    ``USER_SESSIONS_IP_PRIVACY`` let the row keep, as the widget shows it.
    """
    return {
        "handle": session.handle,
        "url": url,
        "device": session.device,
        "device_kind": session.device_kind,
        "location": session.location,
        "ip": session.ip,
        "signed_in_at": _instant(session.created_at),
        "last_activity": _instant(session.last_activity),
        "is_current": bool(getattr(session, "is_current", False)),
        "is_recent": bool(getattr(session, "is_recent", False)),
    }


def history_json(record: EndedSession) -> dict[str, Any]:
    """One ended session, as the ``EndedSession`` schema of ``openapi.json`` describes it.

    What the widget's "Recent activity" shows, with the stable ``reason`` and
    ``ended_by`` codes (``user_sessions.events``) beside the reason's label.
    """
    return {
        "handle": record.handle,
        "device": record.device,
        "device_kind": record.device_kind,
        "location": record.location,
        "ip": record.ip,
        "signed_in_at": _instant(record.created_at) if record.created_at else None,
        "last_activity": _instant(record.last_activity) if record.last_activity else None,
        "ended_at": _instant(record.ended_at),
        "reason": record.reason,
        "reason_label": str(record.get_reason_display()),
        "ended_by": record.ended_by,
        "by_handle": record.by_handle,
    }


def _session_url_maker() -> Any:
    # One reverse() per response, not per row (as the widget does).
    slot = "handle"
    head, _slot, tail = reverse("user_sessions:api_session", args=[slot]).rpartition(slot)
    return lambda handle: f"{head}{handle}{tail}"


def _too_large() -> ApiError:
    return ApiError(413, "body_too_large", gettext("The request body is too large."))


def _declares_too_much(request: HttpRequest) -> bool:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0) > MAX_BODY
    except ValueError:
        return False


def read_body(request: HttpRequest) -> dict[str, Any]:
    """The JSON object a sign-out request sent (``{}`` for no body), or an ``ApiError``."""
    try:
        body = request.body
    except RequestDataTooBig:
        raise _too_large() from None
    if len(body) > MAX_BODY:
        raise _too_large()
    if not body:
        return {}
    if request.content_type != "application/json":
        raise ApiError(
            415, "unsupported_media_type", gettext("Send the request body as application/json.")
        )
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise ApiError(
            400, "invalid_json", gettext("The request body is not valid JSON.")
        ) from None
    if not isinstance(data, dict) or not set(data) <= BODY_FIELDS:
        raise ApiError(
            400,
            "invalid_body",
            gettext("The request body must be a JSON object with at most a “password”."),
        )
    password = data.get("password", "")
    if not isinstance(password, str) or not _is_text(password):
        # JSON can spell a lone surrogate ("\ud800"), which no hasher encodes.
        raise ApiError(400, "invalid_body", gettext("“password” must be a string."))
    return data


def _is_text(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


class ApiView(OwnTransactions, View):
    """Shared behaviour: JSON errors, Django's CSRF check, a signed-in user, no caching.

    ``csrf_exempt`` only keeps the site's middleware from answering a failed
    check with its HTML page: :meth:`dispatch` runs the same check itself
    and answers in JSON. ``login_not_required`` lets a site's
    ``LoginRequiredMiddleware`` leave the 401 to this view instead of
    redirecting an API client to a sign-in page.
    """

    #: False for what anybody may read (the OpenAPI document).
    requires_sign_in = True

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        # On the view function, not on dispatch(): subclasses override that.
        return login_not_required(csrf_exempt(super().as_view(**initkwargs)))

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response: HttpResponseBase
        method = (request.method or "").lower()
        try:
            if method not in self.http_method_names:
                response = self.http_method_not_allowed(request, *args, **kwargs)
            elif _declares_too_much(request):
                # Refused unread: not even the CSRF check parses it.
                raise _too_large()
            elif (refusal := _csrf_refusal(request)) is not None:
                response = refusal
            elif self.requires_sign_in and not request.user.is_authenticated:
                raise _not_signed_in()
            else:
                response = super().dispatch(request, *args, **kwargs)
        except ApiError as error:
            response = error.response()
        except RequestDataTooBig:
            # Django's CSRF check reads a form body for its token.
            response = _too_large().response()
        add_never_cache_headers(response)
        return response

    def http_method_not_allowed(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        response = ApiError(
            405,
            "method_not_allowed",
            gettext("This address does not accept %(method)s.") % {"method": request.method},
        ).response()
        allowed = [m.upper() for m in self.http_method_names if hasattr(self, m)]
        response["Allow"] = ", ".join(allowed)
        return response

    @property
    def user(self) -> AbstractBaseUser:
        user = self.request.user
        assert user.is_authenticated  # checked by dispatch
        return user

    def confirm_password(
        self, data: dict[str, Any], action: Literal["one", "others"], dialog_key: str
    ) -> None:
        """Check the password the HTML dialog would ask for; ``ApiError`` if refused.

        The same attempt limit as the dialog's (``user_sessions.throttle``),
        counted for the session making the request: an empty or missing
        password checks nothing and costs no attempt.
        """
        if not requires_password(action):
            return
        password = data.get("password") or ""
        form = checked_password_form(
            self.user, dialog_key, {"password": password}, self.request.session
        )
        if form.is_valid():
            return
        if form.has_error("password", "too_many_attempts"):
            raise ApiError(
                429,
                "too_many_attempts",
                str(form.error_messages["too_many_attempts"]),
                {"Retry-After": str(app_settings.PASSWORD_LOCKOUT)},
            )
        if form.has_error("password", "password_incorrect"):
            raise ApiError(
                403, "password_incorrect", str(form.error_messages["password_incorrect"])
            )
        raise ApiError(
            403, "password_required", gettext("Confirm with your password to sign out sessions.")
        )


class SessionListApiView(ApiView):
    """``GET``: the user's sessions, the current one first, then by last activity.

    The first page is the widget's first render: the current session and up
    to ``USER_SESSIONS_WIDGET_LIMIT`` others, with ``total``. ``next`` (or
    ``?after=<cursor>``) gives the following ``PAGE_SIZE`` others, as "Show
    more" does.
    """

    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest) -> JsonResponse:
        asked_after = request.GET.get("after")
        device_list: DeviceList
        if asked_after is None:
            device_list = build_device_list(request)
        else:
            after = Cursor.decode(asked_after)
            if after is None:
                raise ApiError(400, "invalid_cursor", gettext("“after” is not a cursor."))
            device_list = build_device_page(request, after)
        # Sets the CSRF cookie: the token a client sends with its sign-outs.
        get_token(request)
        url_of = _session_url_maker()
        body: dict[str, Any] = {
            "sessions": [session_json(s, url_of(s.handle)) for s in device_list.sessions],
            "next": None,
        }
        if device_list.more_url:
            cursor = Cursor.after(device_list.sessions[-1]).encode()
            body["next"] = (
                f"{reverse('user_sessions:api_session_list')}?{urlencode({'after': cursor})}"
            )
        if asked_after is None:
            body["total"] = device_list.total
            body["history"] = [history_json(r) for r in device_list.recent_activity]
        return JsonResponse(body)


def _ended(count: int, *, signed_out: bool = False) -> JsonResponse:
    return JsonResponse({"ended": count, "signed_out": signed_out})


class SessionApiView(ApiView):
    """``DELETE``: sign out one session; for the session in use this is a normal logout."""

    http_method_names = ["delete", "options"]

    def delete(self, request: HttpRequest, handle: str) -> JsonResponse:
        data = read_body(request)
        current_key = request.session.session_key
        if not HANDLE_PATTERN.fullmatch(handle) or not current_key:
            raise not_found()
        live = get_session_model().objects.active().filter(user=self.user)
        # The target and the session making the request (whose handle the
        # record names), in one query.
        handles = dict(
            live.filter(Q(handle=handle) | Q(session_key=current_key)).values_list(
                "handle", "session_key"
            )
        )
        if handle not in handles:
            raise missing(self.user, handle)
        if handles[handle] == current_key:
            # Signing yourself out never needs a password.
            logout(request)
            return _ended(1, signed_out=True)
        self.confirm_password(data, "one", handle)
        current_handle = next((h for h, key in handles.items() if key == current_key), None)
        # The row goes and its history record comes in one transaction, so a
        # racing request sees one or the other: its answer is the 410.
        with transaction.atomic(using=router.db_for_write(live.model)):
            count = end_sessions(
                live.filter(session_key=handles[handle]),
                Reason.SIGNED_OUT_ELSEWHERE,
                ended_by=EndedBy.USER,
                by_handle=current_handle,
            )
        if not count:
            raise missing(self.user, handle)  # ended meanwhile
        return _ended(count)


class OtherSessionsApiView(ApiView):
    """``DELETE`` (or ``POST``): sign out every session of the user but this one."""

    http_method_names = ["delete", "post", "options"]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        # A sign-in racing with this request creates its session after this
        # moment, and so is never signed out by it.
        self.started_at = timezone.now()
        return super().dispatch(request, *args, **kwargs)

    def delete(self, request: HttpRequest) -> JsonResponse:
        data = read_body(request)
        self.confirm_password(data, "others", OTHERS)
        current_key = request.session.session_key
        model = get_session_model()
        current_handle = (
            model.objects.filter(session_key=current_key).values_list("handle", flat=True).first()
        )
        count = end_sessions(
            model.objects.active()
            .filter(user=self.user, created_at__lte=self.started_at)
            .exclude(session_key=current_key),
            Reason.SIGNED_OUT_ALL_OTHERS,
            ended_by=EndedBy.USER,
            by_handle=current_handle,
        )
        return _ended(count)

    post = delete


@cache
def openapi_document() -> dict[str, Any]:
    """``openapi.json`` as shipped: paths relative to where the URLs are mounted."""
    text = resources.files("user_sessions").joinpath("openapi.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


class OpenApiView(ApiView):
    """``GET``: the OpenAPI 3.1 document, its server and security names filled in for this site."""

    http_method_names = ["get", "head", "options"]
    requires_sign_in = False

    def get(self, request: HttpRequest) -> JsonResponse:
        document = copy.deepcopy(openapi_document())
        # Relative, as OpenAPI allows: the paths continue wherever the site
        # mounted user_sessions.urls.
        document["servers"] = [{"url": reverse("user_sessions:session_list").rstrip("/") or "/"}]
        schemes = document["components"]["securitySchemes"]
        schemes["session"]["name"] = settings.SESSION_COOKIE_NAME
        header = settings.CSRF_HEADER_NAME.removeprefix("HTTP_").replace("_", "-")
        if header.upper() != schemes["csrf"]["name"].upper():
            schemes["csrf"]["name"] = header
        response = JsonResponse(document, json_dumps_params={"indent": 2})
        # The document is public and carries nothing of the visitor: API
        # tools on other origins (Swagger UI, Redoc) may read it.
        response["Access-Control-Allow-Origin"] = "*"
        return response
