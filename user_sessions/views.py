"""The "Your devices" pages: list a user's sessions and sign them out.

Every view answers two kinds of request: a normal one gets a full page (and a
redirect after a POST), an htmx request gets the list partial the widget swaps
in. Sessions are only ever addressed by their public ``handle``.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.template import TemplateDoesNotExist
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext, ngettext
from django.views import View
from django.views.decorators.cache import never_cache
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from user_sessions import throttle
from user_sessions.conf import app_settings
from user_sessions.devices import device_label
from user_sessions.forms import ConfirmPasswordForm
from user_sessions.models import Session
from user_sessions.timeago import ago

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser
    from django.http.response import HttpResponseBase

__all__ = [
    "DeviceList",
    "SessionDeleteOtherView",
    "SessionDeleteView",
    "SessionListView",
    "build_device_list",
]

#: The dialog key of "Sign out all other sessions"; a handle is never this short.
OTHERS = "others"

PAGE_BASE_TEMPLATE = "user_sessions/base.html"
# Used when the site has no ``base.html`` for the shim to extend.
STANDALONE_BASE_TEMPLATE = "user_sessions/standalone.html"

# The middleware writes ``last_activity`` at most once per activity interval,
# so a session seen within two intervals (and never less than two minutes) is
# as good as "now".
MIN_ACTIVE_WINDOW = datetime.timedelta(minutes=2)


def htmx_details(request: HttpRequest) -> HtmxDetails:
    """``request.htmx``, also when a site forgot django-htmx's middleware."""
    details = getattr(request, "htmx", None)
    return details if isinstance(details, HtmxDetails) else HtmxDetails(request)


def wants_partial(request: HttpRequest) -> bool:
    """An htmx request that swaps part of a page (a boosted one wants the page)."""
    details = htmx_details(request)
    return bool(details) and not details.boosted


def list_url() -> str:
    return reverse("user_sessions:session_list")


def safe_next(request: HttpRequest, value: str | None) -> str:
    """``value`` if it points into this site, else the list page."""
    if value and url_has_allowed_host_and_scheme(
        value, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return value
    return list_url()


def current_page(request: HttpRequest) -> str:
    """The page the visitor is looking at: where no-JS forms and sign-in return to."""
    if wants_partial(request):
        return safe_next(request, htmx_details(request).current_url_abs_path)
    if request.method == "GET":
        return request.get_full_path()
    return safe_next(request, request.POST.get("next"))


def login_url(next_url: str) -> str:
    return redirect_to_login(next_url).url


def logout_redirect_url() -> str:
    try:
        return resolve_url(settings.LOGOUT_REDIRECT_URL or "/")
    except NoReverseMatch:
        # A misspelt URL name must not turn signing out into an error page.
        return "/"


def active_window() -> datetime.timedelta:
    return max(MIN_ACTIVE_WINDOW, datetime.timedelta(seconds=2 * app_settings.ACTIVITY_INTERVAL))


def password_form(
    user: AbstractBaseUser, dialog_key: str, data: Any = None, *, locked: bool = False
) -> ConfirmPasswordForm:
    # Each dialog holds its own form, so ids must differ between dialogs.
    return ConfirmPasswordForm(user, data, auto_id=f"us-{dialog_key}-%s", locked=locked)


def requires_password(action: Literal["one", "others"]) -> bool:
    """Whether signing out another session (one, or all the others) asks for the password.

    Both actions follow one policy: asking only for "sign out all others"
    left a side door, since the same visitor could end every other session
    one at a time. Signing out the device in use is exempt (see
    ``SessionDeleteView.needs_password``).
    """
    return app_settings.REQUIRE_PASSWORD is not None


@dataclass
class DeviceList:
    """What the widget templates show: the ``widget`` template variable.

    ``sessions`` are the user's live sessions, the current one first, then
    by most recent activity. Each carries extra attributes for templates:
    ``is_current``, ``is_recent`` (active within the activity window),
    ``last_seen`` ("2 hours ago"), ``confirm_form`` (a ``ConfirmPasswordForm``
    or ``None``) and ``dialog_open`` (the dialog should open on arrival).
    """

    user: AbstractBaseUser | AnonymousUser
    sessions: list[Session]
    next_url: str
    login_url: str
    refresh_url: str
    refresh_interval: int
    heading_level: int = 2
    others_form: ConfirmPasswordForm | None = None
    others_dialog_open: bool = False
    announcement: str = ""

    @property
    def is_authenticated(self) -> bool:
        return bool(self.user.is_authenticated)

    @property
    def current_session(self) -> Session | None:
        first = self.sessions[0] if self.sessions else None
        return first if first is not None and getattr(first, "is_current", False) else None

    @property
    def other_sessions(self) -> list[Session]:
        return [s for s in self.sessions if not getattr(s, "is_current", False)]

    @property
    def other_count(self) -> int:
        return len(self.other_sessions)


def build_device_list(
    request: HttpRequest,
    *,
    heading_level: int = 2,
    open_dialog: str | None = None,
    form: ConfirmPasswordForm | None = None,
    announcement: str = "",
    next_url: str | None = None,
) -> DeviceList:
    """Collect the widget's state with one query (none for a signed-out visitor).

    ``open_dialog`` names a dialog (a handle or ``OTHERS``) to show on arrival
    with ``form``, the bound form that failed validation.
    """
    user = request.user
    next_url = next_url or current_page(request)
    sessions: list[Session] = []
    if user.is_authenticated:
        current_key = getattr(getattr(request, "session", None), "session_key", None)
        rows = (
            Session.objects.active()
            .filter(user=user)
            .defer("session_data")
            .order_by("-last_activity", "-created_at")
        )
        now = timezone.now()
        window = active_window()
        need_password = requires_password("one")
        for session in rows:
            is_current = current_key is not None and session.session_key == current_key
            extra = {
                "is_current": is_current,
                "is_recent": is_current or now - session.last_activity <= window,
                "last_seen": ago(session.last_activity, now),
                "confirm_form": None,
                "dialog_open": open_dialog == session.handle,
            }
            if need_password and not is_current:
                extra["confirm_form"] = (
                    form
                    if open_dialog == session.handle and form is not None
                    else password_form(user, session.handle)
                )
            for name, value in extra.items():
                # Template-facing extras on the row objects (see DeviceList).
                setattr(session, name, value)
            sessions.append(session)
        # Stable sort: the current session first, the rest stay newest first.
        sessions.sort(key=lambda s: not getattr(s, "is_current", False))
    others_form = None
    if user.is_authenticated and requires_password("others"):
        others_form = form if open_dialog == OTHERS and form is not None else None
        others_form = others_form or password_form(user, OTHERS)
    return DeviceList(
        user=user,
        sessions=sessions,
        next_url=next_url,
        login_url=login_url(next_url),
        refresh_url=list_url(),
        refresh_interval=app_settings.REFRESH_INTERVAL,
        heading_level=heading_level,
        others_form=others_form,
        others_dialog_open=open_dialog == OTHERS,
        announcement=announcement,
    )


def render_page(
    request: HttpRequest, template_name: str, context: dict[str, Any], status: int = 200
) -> HttpResponse:
    """Render a full page through the ``user_sessions/base.html`` shim.

    The shim extends the site's ``base.html``; a site without one gets a
    minimal standalone page instead of an error.
    """
    try:
        content = render_to_string(
            template_name, {**context, "base_template": PAGE_BASE_TEMPLATE}, request
        )
    except TemplateDoesNotExist as exc:
        if exc.args[0] != "base.html":
            raise
        content = render_to_string(
            template_name, {**context, "base_template": STANDALONE_BASE_TEMPLATE}, request
        )
    return HttpResponse(content, status=status)


@method_decorator(never_cache, name="dispatch")
class SessionsView(LoginRequiredMixin, View):
    """Shared behaviour: sign-in required, partials for htmx, no caching."""

    partial_template_name = "user_sessions/partials/list.html"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response: HttpResponseBase
        if htmx_details(request) and not request.user.is_authenticated:
            # A swap would put the login page inside the widget; send the
            # whole tab there instead, back to the page it was on.
            response = HttpResponseClientRedirect(login_url(current_page(request)))
        else:
            response = super().dispatch(request, *args, **kwargs)
        # The same URL answers htmx and normal requests differently.
        patch_vary_headers(response, ("HX-Request",))
        return response

    @property
    def user(self) -> AbstractBaseUser:
        user = self.request.user
        assert user.is_authenticated  # guaranteed by LoginRequiredMixin
        return user

    def render_list(self, device_list: DeviceList) -> HttpResponse:
        return HttpResponse(
            render_to_string(self.partial_template_name, {"widget": device_list}, self.request)
        )


class SessionListView(SessionsView):
    """The signed-in user's sessions: the full page, or the list partial for htmx."""

    template_name = "user_sessions/session_list.html"
    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest) -> HttpResponse:
        if wants_partial(request):
            return self.render_list(build_device_list(request))
        return render_page(
            request, self.template_name, {"widget": build_device_list(request, heading_level=1)}
        )


class ConfirmedSignOutView(SessionsView):
    """A POST signs out after the optional password check; a GET only asks."""

    template_name = "user_sessions/session_confirm.html"
    dialog_partial_template_name = "user_sessions/partials/dialog.html"
    http_method_names = ["get", "post", "head", "options"]
    action: Literal["one", "others"]

    def dialog_key(self) -> str:
        raise NotImplementedError

    def target(self) -> Session | None:
        """The session the dialog is about; ``None`` for "all other sessions"."""
        return None

    def get(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        return self.ask(form=None, status=200)

    def ask(self, form: ConfirmPasswordForm | None, status: int) -> HttpResponse:
        """Show the confirmation: the dialog (htmx) or the no-JS page."""
        request = self.request
        key = self.dialog_key()
        session = self.target()
        if form is None and self.needs_password():
            form = password_form(self.user, key)
        # The no-JS page is reached from another page (the one in ``next``),
        # so its own address is never the place to return to.
        return_to = (
            current_page(request)
            if wants_partial(request)
            else safe_next(request, request.POST.get("next") or request.GET.get("next"))
        )
        widget = build_device_list(request, open_dialog=key, form=form, next_url=return_to)
        if session is not None:
            session = next((s for s in widget.sessions if s.handle == session.handle), session)
        context = {
            "widget": widget,
            "session": session,
            "form": form,
            "dialog_key": key,
            "open": True,
        }
        if wants_partial(request):
            return HttpResponse(
                render_to_string(self.dialog_partial_template_name, context, request),
                status=status,
            )
        return render_page(request, self.template_name, context, status=status)

    def needs_password(self) -> bool:
        return requires_password(self.action)

    def post(self, request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
        if self.needs_password():
            if not wants_partial(request) and "password" not in request.POST:
                # The no-JS button posts straight away; ask for the password first.
                return self.ask(form=None, status=200)
            session = request.session
            # An empty field checks no password, so it costs no attempt.
            attempt = (
                throttle.reserve(session) if request.POST.get("password") else throttle.NOT_LIMITED
            )
            form = password_form(self.user, self.dialog_key(), request.POST, locked=attempt is None)
            if not form.is_valid():
                if (
                    attempt is not None
                    and form.has_error("password", "password_incorrect")
                    and throttle.failed(session, attempt)
                ):
                    # That was the last attempt: say so now, not next time.
                    form = password_form(self.user, self.dialog_key(), request.POST, locked=True)
                    form.is_valid()
                return self.refuse(form)
            throttle.succeeded(session)
        message = self.sign_out()
        if wants_partial(request):
            return self.render_list(build_device_list(request, announcement=message))
        messages.success(request, message, fail_silently=True)
        return HttpResponseRedirect(safe_next(request, request.POST.get("next")))

    def refuse(self, form: ConfirmPasswordForm) -> HttpResponse:
        # 200 rather than 422: htmx 2 does not swap 4xx responses by default,
        # and the dialog has to show the error.
        if wants_partial(self.request):
            return self.render_list(
                build_device_list(self.request, open_dialog=self.dialog_key(), form=form)
            )
        return self.ask(form=form, status=200)

    def sign_out(self) -> str:
        """Revoke, and return the message that says what happened."""
        raise NotImplementedError


class SessionDeleteView(ConfirmedSignOutView):
    """Sign out one session; for the current session this is a normal logout."""

    action = "one"
    _session: Session

    def dialog_key(self) -> str:
        return str(self.kwargs["handle"])

    def target(self) -> Session:
        if not hasattr(self, "_session"):
            # Another user's handle answers exactly like one that never existed.
            try:
                self._session = Session.objects.active().get(
                    handle=self.kwargs["handle"], user=self.user
                )
            except Session.DoesNotExist:
                raise Http404("No such session.") from None
        return self._session

    def is_current(self) -> bool:
        current_key = self.request.session.session_key
        return current_key is not None and self.target().session_key == current_key

    def needs_password(self) -> bool:
        # Signing yourself out never needs a password.
        return not self.is_current() and super().needs_password()

    def post(self, request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
        try:
            self.target()
        except Http404:
            if not wants_partial(request):
                raise
            # Signed out meanwhile (or never ours: the answer is the same).
            # What the user asked for holds, so htmx gets the fresh list with
            # a 200: htmx 2 swaps no 4xx, and django-htmx's debug script
            # would replace the whole page with a 404 in development.
            return self.render_list(
                build_device_list(request, announcement=gettext("That session had already ended."))
            )
        if self.is_current():
            logout(request)
            if htmx_details(request):
                return HttpResponseClientRedirect(logout_redirect_url())
            return HttpResponseRedirect(logout_redirect_url())
        return super().post(request, **kwargs)

    def sign_out(self) -> str:
        session = self.target()
        device = device_label(session.user_agent) or gettext("Unknown device")
        session.revoke()
        return gettext("%(device)s was signed out.") % {"device": device}


class SessionDeleteOtherView(ConfirmedSignOutView):
    """Sign out every session of the user except this one."""

    action = "others"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        # A sign-in racing with this request creates its session after this
        # moment, and so is never signed out by it.
        self.started_at = timezone.now()
        return super().dispatch(request, *args, **kwargs)

    def dialog_key(self) -> str:
        return OTHERS

    def sign_out(self) -> str:
        count = (
            Session.objects.active()
            .filter(user=self.user, created_at__lte=self.started_at)
            .exclude(session_key=self.request.session.session_key)
            .revoke()
        )
        return ngettext(
            "%(count)d other session was signed out.",
            "%(count)d other sessions were signed out.",
            count,
        ) % {"count": count}
