"""The widget's state: which sessions one render shows, and what its templates get.

``build_device_list`` is what ``{% user_sessions_widget %}`` and the views
hand to the templates as ``widget`` (see docs/templates.md); the helpers
above it work out where a visitor returns to after a form or a sign-in.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from django.contrib.auth.views import redirect_to_login
from django.db.models import Case, IntegerField, Q, Value, When
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import ngettext
from django_htmx.middleware import HtmxDetails

from user_sessions import history
from user_sessions.conf import app_settings
from user_sessions.forms import ConfirmPasswordForm
from user_sessions.models import EndedSession, Session, get_session_model
from user_sessions.paging import ORDER, Cursor
from user_sessions.timeago import ago

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.backends.base import SessionBase

#: The dialog key of "Sign out all other sessions"; a handle is never this short.
OTHERS = "others"

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


def active_window() -> datetime.timedelta:
    return max(MIN_ACTIVE_WINDOW, datetime.timedelta(seconds=2 * app_settings.ACTIVITY_INTERVAL))


def password_form(
    user: AbstractBaseUser, dialog_key: str, data: Any = None, *, locked: bool = False
) -> ConfirmPasswordForm:
    # Each dialog holds its own form, so ids must differ between dialogs.
    return ConfirmPasswordForm(user, data, auto_id=f"us-{dialog_key}-%s", locked=locked)


def checked_password_form(
    user: AbstractBaseUser, dialog_key: str, data: Any, session: SessionBase
) -> ConfirmPasswordForm:
    """The confirmation form, validated under the per-session attempt limit.

    Shared by the dialog and the JSON API, so both count the same attempts.
    An empty or missing password checks nothing and costs no attempt. The
    wrong password that used the last attempt comes back as a locked form
    (error ``too_many_attempts``): say so now, not at the next try.
    """
    from user_sessions import throttle

    attempt = throttle.reserve(session) if data.get("password") else throttle.NOT_LIMITED
    form = password_form(user, dialog_key, data, locked=attempt is None)
    if form.is_valid():
        throttle.succeeded(session)
    elif (
        attempt is not None
        and form.has_error("password", "password_incorrect")
        and throttle.failed(session, attempt)
    ):
        form = password_form(user, dialog_key, data, locked=True)
        form.is_valid()
    return form


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

    ``sessions`` are the rows to show: the current session first, then up to
    ``USER_SESSIONS_WIDGET_LIMIT`` others by most recent activity (a page of
    ``PAGE_SIZE`` when ``paged``). Each carries extra attributes for
    templates: ``is_current``, ``is_recent`` (active within the activity
    window), ``last_seen`` ("2 hours ago") and ``delete_url``.
    """

    user: AbstractBaseUser | AnonymousUser
    sessions: list[Session]
    next_url: str
    login_url: str
    refresh_url: str
    refresh_interval: int
    heading_level: int = 2
    #: Every other live session of the user, shown or not (0 in a page partial).
    other_count: int = 0
    #: The next page of rows ("" when every session is shown): a link without
    #: JavaScript, ``hx-get`` with it.
    more_url: str = ""
    #: These rows continue an earlier page ("Show more" rather than "Show all").
    paged: bool = False
    others_form: ConfirmPasswordForm | None = None
    others_dialog_open: bool = False
    #: The session whose dialog opens on arrival (a refused password), with its form.
    dialog_session: Session | None = None
    dialog_form: ConfirmPasswordForm | None = None
    announcement: str = ""
    #: What a sign-out just ended: a handle or ``OTHERS`` (the script drops
    #: rows it had loaded beyond the first page accordingly).
    ended: str = ""

    @property
    def is_authenticated(self) -> bool:
        return bool(self.user.is_authenticated)

    @property
    def current_session(self) -> Session | None:
        first = self.sessions[0] if self.sessions else None
        return first if first is not None and getattr(first, "is_current", False) else None

    @property
    def other_sessions(self) -> list[Session]:
        """The other sessions shown in this render."""
        return [s for s in self.sessions if not getattr(s, "is_current", False)]

    @property
    def total(self) -> int:
        """All live sessions of the user, this one included."""
        return self.other_count + (1 if self.current_session is not None else 0)

    @property
    def history_shown(self) -> bool:
        """Whether the widget has a "Recent activity" section (history kept, limit above 0)."""
        return (
            self.is_authenticated
            and history.enabled()
            and app_settings.HISTORY_WIDGET_LIMIT > 0
            and not self.paged
        )

    @cached_property
    def recent_activity(self) -> list[EndedSession]:
        """The user's latest ended sessions, newest first: one query, when a template asks.

        Up to ``USER_SESSIONS_HISTORY_WIDGET_LIMIT``; each carries ``ended_ago``
        ("2 hours ago") for templates.
        """
        if not self.history_shown:
            return []
        records = history.recent(self.user)
        now = timezone.now()
        for record in records:
            record.ended_ago = ago(record.ended_at, now)  # type: ignore[attr-defined]
        return records


#: Rows one "Show more" adds; the first render shows ``USER_SESSIONS_WIDGET_LIMIT``.
PAGE_SIZE = 50
# Reversed once per render and filled in per row: a reverse() costs more than
# the rest of a row's URL work. Handles are URL-safe (``new_handle``).
_HANDLE_SLOT = "handle"


class _RowDecorator:
    """Sets the template-facing extras (see ``DeviceList``) on session rows."""

    def __init__(self, current_key: str | None) -> None:
        self.current_key = current_key
        self.now = timezone.now()
        self.window = active_window()
        url = reverse("user_sessions:session_delete", args=[_HANDLE_SLOT])
        self.url_head, _slot, self.url_tail = url.rpartition(_HANDLE_SLOT)

    def __call__(self, session: Session) -> Session:
        is_current = self.current_key is not None and session.session_key == self.current_key
        session.is_current = is_current  # type: ignore[attr-defined]
        session.is_recent = (  # type: ignore[attr-defined]
            is_current or self.now - session.last_activity <= self.window
        )
        session.last_seen = ago(session.last_activity, self.now)  # type: ignore[attr-defined]
        session.delete_url = (  # type: ignore[attr-defined]
            f"{self.url_head}{session.handle}{self.url_tail}"
        )
        return session


def page_url(cursor: Cursor) -> str:
    return f"{list_url()}?{urlencode({'after': cursor.encode()})}"


def _current_key(request: HttpRequest) -> str | None:
    key = getattr(getattr(request, "session", None), "session_key", None)
    return key if isinstance(key, str) else None


def build_device_list(
    request: HttpRequest,
    *,
    heading_level: int = 2,
    open_dialog: str | None = None,
    form: ConfirmPasswordForm | None = None,
    announcement: str = "",
    next_url: str | None = None,
    after: Cursor | None = None,
    dialog_session: Session | None = None,
    ended: str = "",
) -> DeviceList:
    """Collect the widget's state: one query, two when not every session fits.

    The current session and the ``USER_SESSIONS_WIDGET_LIMIT`` most recently
    active others come in one query; only when there are more is a second
    one spent on counting them. ``after`` (the no-JS "Show more" page) shows
    the ``PAGE_SIZE`` others after that cursor instead. A signed-out visitor
    costs no query.

    ``open_dialog`` names a dialog (a handle or ``OTHERS``) to show on arrival
    with ``form``, the bound form that failed validation; for a handle,
    ``dialog_session`` is that session (it may lie beyond the rows shown).
    """
    user = request.user
    next_url = next_url or current_page(request)
    sessions: list[Session] = []
    other_count = 0
    more_url = ""
    if user.is_authenticated:
        current_key = _current_key(request)
        limit = app_settings.WIDGET_LIMIT if after is None else PAGE_SIZE
        live = get_session_model().objects.active().filter(user=user)
        rows = live.defer("session_data")
        if after is not None:
            wanted = after.rows_after()
            rows = rows.filter(wanted | Q(session_key=current_key) if current_key else wanted)
        if current_key:
            # The current session sorts first, whatever its activity.
            rows = rows.alias(
                us_elsewhere=Case(
                    When(session_key=current_key, then=Value(0)),
                    default=Value(1),
                    output_field=IntegerField(),
                )
            ).order_by("us_elsewhere", *ORDER)
        else:
            rows = rows.order_by(*ORDER)
        # One more than fits says whether there are more.
        fetched = list(rows[: limit + 2])
        current = fetched[0] if fetched and fetched[0].session_key == current_key else None
        others = fetched[1:] if current is not None else fetched
        if len(others) > limit:
            others = others[:limit]
            more_url = page_url(Cursor.after(others[-1]))
        other_count = len(others)
        if more_url or after is not None:
            # Rows that ended between the two queries must not make it negative.
            other_count = max(live.count() - (1 if current is not None else 0), other_count)
        decorate = _RowDecorator(current_key)
        sessions = [decorate(s) for s in ([current] if current else []) + others]
        if dialog_session is not None:
            shown = {s.handle: s for s in sessions}
            dialog_session = shown.get(dialog_session.handle) or decorate(dialog_session)
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
        # A page further down is a snapshot: the refresh brings the first page.
        refresh_interval=app_settings.REFRESH_INTERVAL if after is None else 0,
        heading_level=heading_level,
        other_count=other_count,
        more_url=more_url,
        paged=after is not None,
        others_form=others_form,
        others_dialog_open=open_dialog == OTHERS,
        dialog_session=dialog_session,
        dialog_form=form if dialog_session is not None and open_dialog != OTHERS else None,
        announcement=announcement,
        ended=ended,
    )


def build_device_page(request: HttpRequest, after: Cursor | None) -> DeviceList:
    """The ``PAGE_SIZE`` other sessions after ``after`` (from the top without one): one query.

    What "Show all" / "Show more" loads into the list. The current session
    is never part of a page: the list always shows it first.
    """
    user = request.user
    assert user.is_authenticated  # the views require it
    current_key = _current_key(request)
    rows = get_session_model().objects.active().filter(user=user).defer("session_data")
    if current_key:
        rows = rows.exclude(session_key=current_key)
    if after is not None:
        rows = rows.filter(after.rows_after())
    fetched = list(rows.order_by(*ORDER)[: PAGE_SIZE + 1])
    more_url = page_url(Cursor.after(fetched[PAGE_SIZE - 1])) if len(fetched) > PAGE_SIZE else ""
    decorate = _RowDecorator(current_key)
    sessions = [decorate(session) for session in fetched[:PAGE_SIZE]]
    next_url = current_page(request)
    return DeviceList(
        user=user,
        sessions=sessions,
        next_url=next_url,
        login_url=login_url(next_url),
        refresh_url=list_url(),
        refresh_interval=app_settings.REFRESH_INTERVAL,
        more_url=more_url,
        paged=True,
        announcement=ngettext(
            "%(count)d more session shown.", "%(count)d more sessions shown.", len(sessions)
        )
        % {"count": len(sessions)},
    )
