"""The "This wasn't me" link of a sign-in alert: confirm, then end the session.

Opening the link (GET) only shows what it is about and asks: mail scanners
and link previews open links too. Confirming (a POST with the CSRF token)
ends the reported session, or every session of the account if the person
ticks the box, with reason ``REPORTED`` and ``EndedBy.USER`` (no
``by_handle``: the person acted from their mailbox, not from a session), and
leads to the site's password reset page.

The person need not be signed in. The link is the credential: signed,
expiring, naming the session by handle and owner. It works once, because
what it names is the live session: once that has ended, the link only says
so (and can no longer end the account's other sessions).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_not_required
from django.core import signing
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.urls import NoReverseMatch, reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext
from django.views import View
from django.views.decorators.cache import never_cache

from user_sessions.alerts import ReportClaim, read_report_token
from user_sessions.conf import app_settings
from user_sessions.endings import OwnTransactions
from user_sessions.events import EndedBy, Reason
from user_sessions.models import get_session_model
from user_sessions.views import render_page

if TYPE_CHECKING:
    from django.http.response import HttpResponseBase

    from user_sessions.models import AbstractSession

__all__ = ["ReportDoneView", "ReportView", "after_report_url"]

logger = logging.getLogger(__name__)

#: Name of the checkbox that widens the sign-out to every session of the account.
END_ALL_FIELD = "all"


def after_report_url() -> str:
    """Where a confirmed report leads: the setting, else ``password_reset``, else the done page."""
    configured = app_settings.REPORT_REDIRECT_URL
    if configured:
        try:
            return resolve_url(configured)
        except NoReverseMatch:
            logger.warning("USER_SESSIONS_REPORT_REDIRECT_URL %r does not resolve", configured)
    try:
        return reverse("password_reset")
    except NoReverseMatch:
        return reverse("user_sessions:report_done")


@method_decorator([never_cache, login_not_required], name="dispatch")
class ReportView(OwnTransactions, View):
    """GET: the confirmation page. POST: end the session (or all of them) and move on.

    Templates: ``report/confirm.html`` (context: ``session``, ``token``,
    ``end_all_field``), ``report/ended.html`` (the session ended already;
    ``next_url``) and ``report/invalid.html`` (status 400; ``expired``).
    """

    template_name = "user_sessions/report/confirm.html"
    ended_template_name = "user_sessions/report/ended.html"
    invalid_template_name = "user_sessions/report/invalid.html"
    http_method_names = ["get", "post", "head", "options"]

    claim: ReportClaim

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = self.answer(request, *args, **kwargs)
        # The token is in this page's address: a site's base template may
        # load things from elsewhere, which must not be told it. Not
        # "no-referrer": browsers then send "Origin: null" with the form,
        # which Django's CSRF check refuses.
        response["Referrer-Policy"] = "same-origin"
        return response

    def answer(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method is None or request.method.lower() not in self.http_method_names:
            # A method it never takes is refused as such, whatever the token.
            return self.http_method_not_allowed(request, *args, **kwargs)
        try:
            self.claim = read_report_token(str(kwargs["token"]))
        except signing.SignatureExpired:
            return self.invalid(expired=True)
        except signing.BadSignature:
            return self.invalid(expired=False)
        owner_key = get_session_model()._meta.get_field("user").target_field  # type: ignore[union-attr]
        try:
            owner_key.to_python(self.claim.user_id)
        except ValidationError:
            # Signed here, but for a user model whose keys look otherwise.
            return self.invalid(expired=False)
        return super().dispatch(request, *args, **kwargs)

    def invalid(self, *, expired: bool) -> HttpResponse:
        return render_page(
            self.request, self.invalid_template_name, {"expired": expired}, status=400
        )

    def reported_session(self) -> AbstractSession | None:
        """The live session the link names, if it still belongs to the link's account."""
        session: AbstractSession | None = (
            get_session_model()
            .objects.active()
            .filter(handle=self.claim.handle, user_id=self.claim.user_id)
            .first()
        )
        return session

    def ended(self) -> HttpResponse:
        return render_page(self.request, self.ended_template_name, {"next_url": after_report_url()})

    def get(self, request: HttpRequest, token: str) -> HttpResponse:
        session = self.reported_session()
        if session is None:
            return self.ended()
        context = {"session": session, "token": token, "end_all_field": END_ALL_FIELD}
        return render_page(request, self.template_name, context)

    def post(self, request: HttpRequest, token: str) -> HttpResponse:
        from user_sessions.endings import end_sessions

        session = self.reported_session()
        if session is None:
            # Used already, or ended some other way: nothing is left for this
            # link to do, and it must not reach the account's newer sessions.
            return self.ended()
        end_all = bool(request.POST.get(END_ALL_FIELD))
        model = get_session_model()
        doomed = (
            model.objects.active().filter(user_id=self.claim.user_id)
            if end_all
            else model.objects.filter(pk=session.pk)
        )
        count = end_sessions(doomed, Reason.REPORTED, ended_by=EndedBy.USER)
        if self._was_signed_in_here(session, end_all):
            # This browser's own session is gone: leave it cleanly signed out.
            logout(request)
        if end_all:
            message = gettext("All sessions of your account were signed out.")
        else:
            message = gettext("That session was signed out.")
        logger.info("session %s reported by its owner; %d session(s) ended", session.handle, count)
        messages.success(request, message, fail_silently=True)
        return HttpResponseRedirect(after_report_url())

    def _was_signed_in_here(self, session: AbstractSession, end_all: bool) -> bool:
        user = getattr(self.request, "user", None)
        if user is None or not user.is_authenticated or str(user.pk) != self.claim.user_id:
            return False
        return end_all or self.request.session.session_key == session.session_key


@method_decorator([never_cache, login_not_required], name="dispatch")
class ReportDoneView(View):
    """Where a report ends when the site has no password reset page: ``report/done.html``."""

    template_name = "user_sessions/report/done.html"
    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest) -> HttpResponse:
        return render_page(request, self.template_name, {})
