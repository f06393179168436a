"""The "Your devices" pages: list a user's sessions and sign them out.

Every view answers two kinds of request: a normal one gets a full page (and a
redirect after a POST), an htmx request gets the list partial the widget swaps
in. Sessions are only ever addressed by their public ``handle``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.template import TemplateDoesNotExist
from django.template.loader import render_to_string
from django.urls import NoReverseMatch
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.decorators import method_decorator
from django.utils.translation import gettext, ngettext
from django.views import View
from django.views.decorators.cache import never_cache
from django_htmx.http import HttpResponseClientRedirect

from user_sessions.endings import OwnTransactions
from user_sessions.events import EndedBy, Reason
from user_sessions.forms import ConfirmPasswordForm
from user_sessions.models import Session, get_session_model
from user_sessions.paging import Cursor
from user_sessions.widget import (
    OTHERS,
    PAGE_SIZE,
    DeviceList,
    build_device_list,
    build_device_page,
    checked_password_form,
    current_page,
    htmx_details,
    login_url,
    password_form,
    requires_password,
    safe_next,
    wants_partial,
)

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.http.response import HttpResponseBase

__all__ = [
    "PAGE_SIZE",
    "DeviceList",
    "SessionDeleteOtherView",
    "SessionDeleteView",
    "SessionListView",
    "build_device_list",
    "build_device_page",
]

PAGE_BASE_TEMPLATE = "user_sessions/base.html"
# Used when the site has no ``base.html`` for the shim to extend.
STANDALONE_BASE_TEMPLATE = "user_sessions/standalone.html"


def current_handle(request: HttpRequest) -> str | None:
    """The handle of the session making this request: who signed the others out."""
    find = getattr(request.session, "current_handle", None)
    return find() if find is not None else None


def logout_redirect_url() -> str:
    try:
        return resolve_url(settings.LOGOUT_REDIRECT_URL or "/")
    except NoReverseMatch:
        # A misspelt URL name must not turn signing out into an error page.
        return "/"


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
class SessionsView(OwnTransactions, LoginRequiredMixin, View):
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
    """The signed-in user's sessions: the full page, or a partial for htmx.

    ``?after=<cursor>`` asks for the rows after that cursor: htmx gets them
    as ``partials/page.html`` ("Show all" / "Show more"), a normal request a
    full page that shows them. A cursor that does not parse counts as none:
    the page from the top.
    """

    template_name = "user_sessions/session_list.html"
    page_partial_template_name = "user_sessions/partials/page.html"
    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest) -> HttpResponse:
        asked_after = request.GET.get("after")
        after = Cursor.decode(asked_after)
        if wants_partial(request):
            if asked_after is None:
                return self.render_list(build_device_list(request))
            return HttpResponse(
                render_to_string(
                    self.page_partial_template_name,
                    {"widget": build_device_page(request, after)},
                    request,
                )
            )
        widget = build_device_list(request, heading_level=1, after=after)
        return render_page(request, self.template_name, {"widget": widget})


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
        widget = build_device_list(
            request, open_dialog=key, form=form, next_url=return_to, dialog_session=session
        )
        if session is not None:
            session = widget.dialog_session
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
            form = checked_password_form(
                self.user, self.dialog_key(), request.POST, request.session
            )
            if not form.is_valid():
                return self.refuse(form)
        message = self.sign_out()
        if wants_partial(request):
            return self.render_list(
                build_device_list(request, announcement=message, ended=self.dialog_key())
            )
        messages.success(request, message, fail_silently=True)
        return HttpResponseRedirect(safe_next(request, request.POST.get("next")))

    def refuse(self, form: ConfirmPasswordForm) -> HttpResponse:
        # 200 rather than 422: htmx 2 does not swap 4xx responses by default,
        # and the dialog has to show the error.
        if wants_partial(self.request):
            return self.render_list(
                build_device_list(
                    self.request,
                    open_dialog=self.dialog_key(),
                    form=form,
                    dialog_session=self.target(),
                )
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
            model = get_session_model()
            try:
                self._session = model.objects.active().get(
                    handle=self.kwargs["handle"], user=self.user
                )
            except model.DoesNotExist:
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
                build_device_list(
                    request,
                    announcement=gettext("That session had already ended."),
                    ended=self.dialog_key(),
                )
            )
        if self.is_current():
            logout(request)
            if htmx_details(request):
                return HttpResponseClientRedirect(logout_redirect_url())
            return HttpResponseRedirect(logout_redirect_url())
        return super().post(request, **kwargs)

    def sign_out(self) -> str:
        session = self.target()
        device = session.device or gettext("Unknown device")
        session.revoke(
            Reason.SIGNED_OUT_ELSEWHERE,
            ended_by=EndedBy.USER,
            by_handle=current_handle(self.request),
        )
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
            get_session_model()
            .objects.active()
            .filter(user=self.user, created_at__lte=self.started_at)
            .exclude(session_key=self.request.session.session_key)
            .revoke(
                Reason.SIGNED_OUT_ALL_OTHERS,
                ended_by=EndedBy.USER,
                by_handle=current_handle(self.request),
            )
        )
        return ngettext(
            "%(count)d other session was signed out.",
            "%(count)d other sessions were signed out.",
            count,
        ) % {"count": count}
