"""New sign-in alerts: mail the owner when an account is signed in from a new device.

Off unless ``USER_SESSIONS_SIGN_IN_ALERTS`` is on. At sign-in the rule below
decides whether the device is new; the site's adapter can replace it
(``is_new_device``) and the way an alert goes out (``send_sign_in_alert``).

A device is *known* when the account has a live session, or a history record
within the retention window, with the same browser, platform and country.
Only family names count ("Chrome", "Windows", "NL"), never versions: a
browser update or the first request's missing client hints must not look
like a stranger.

Each alert carries a "This wasn't me" link (see :func:`make_report_token`
and ``user_sessions.report``) that names the session by its handle only.

The mail goes out once the sign-in commits: through Django's task framework
when the site configured ``TASKS`` (Django 6), else straight from the
on-commit callback. Whatever fails on the way is logged; a sign-in never
fails because of an alert.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from django.contrib.sites.shortcuts import get_current_site
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.db import connections, router, transaction
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone, translation
from django.utils.translation import gettext

from user_sessions.conf import app_settings
from user_sessions.events import Reason

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django.http import HttpRequest

    from user_sessions.models import AbstractSession

__all__ = [
    "REPORT_SALT",
    "DeviceSignature",
    "ReportClaim",
    "SignInAlert",
    "build_alert",
    "consider",
    "deliver",
    "device_signature",
    "is_first_sign_in",
    "is_new_device",
    "make_report_token",
    "on_user_logged_in",
    "read_report_token",
    "render_sign_in_alert",
    "schedule",
    "send_sign_in_alert",
]

logger = logging.getLogger(__name__)

#: The ``django.core.signing`` salt of "This wasn't me" links: a token signed
#: for anything else (a password reset, another app's link) never passes.
REPORT_SALT = "user_sessions.alerts.report"

TEMPLATE_FOLDER = "user_sessions/email/sign_in_alert"

# How far back the known-device check looks, at most: enough for any real
# account, bounded for an account with thousands of sessions.
_COMPARED_ROWS = 200

# One alert per user and device per day.
_ONCE_PER = datetime.timedelta(days=1)
_ONCE_KEY_PREFIX = "user_sessions.alerts:"


# What makes a device ----------------------------------------------------------


class DeviceSignature(NamedTuple):
    """What a device is compared by: browser, platform and country, each may be unknown."""

    browser: str | None
    platform: str | None
    country: str | None


# Client hints name the real browser of a Chromium build ("Edge", "Brave",
# "Opera") where the user agent says "Chrome"; platform and the rest are the
# user agent's family, which the hints only refine with versions.
_CHROMIUM_FAMILY = frozenset({"Chrome", "Chromium"})


def device_signature(
    user_agent: str | None, client_hints: str | None, ip: str | None
) -> DeviceSignature:
    """The signature of a session's client, as :func:`is_new_device` compares it."""
    from user_sessions.devices import browser_label, lookup_ip, platform_label
    from user_sessions.hints import parse_stored

    browser = browser_label(user_agent)
    if browser in _CHROMIUM_FAMILY and client_hints:
        hints = parse_stored(client_hints)
        # The brand list is a low-entropy hint, sent with every request
        # (the sign-in too), so this does not flicker between requests.
        if hints is not None and hints.browser and hints.browser != "Chromium":
            browser = hints.browser
    location = lookup_ip(ip)
    return DeviceSignature(
        browser=browser,
        platform=platform_label(user_agent),
        country=location.country_code if location is not None else None,
    )


def _signature_of(session: AbstractSession) -> DeviceSignature:
    return device_signature(session.user_agent, session.client_hints, session.ip)


def _history(user: Any) -> QuerySet[Any] | None:
    """The user's ended sessions within retention, newest first; ``None`` with history off."""
    from user_sessions import history
    from user_sessions.models import EndedSession

    if not history.enabled():
        return None
    cutoff = timezone.now() - datetime.timedelta(days=app_settings.HISTORY_DAYS)
    records: QuerySet[Any] = EndedSession._default_manager.filter(
        user=user, ended_at__gte=cutoff
    ).order_by("-ended_at")
    return records


def is_new_device(user: Any, session: AbstractSession) -> bool:
    """``True`` unless another live session or a recent history record has the same signature.

    History records of sessions reported with "This wasn't me" do not count.

    Costs two queries (one without history): the account's other live
    sessions and its ended ones within the retention window, most recent
    first, at most 200 of each.
    """
    from user_sessions.models import get_session_model

    signature = _signature_of(session)
    others = (
        get_session_model()
        .objects.active()
        .filter(user=user)
        .exclude(pk=session.pk)
        .order_by("-last_activity")
        .values_list("user_agent", "client_hints", "ip")[:_COMPARED_ROWS]
    )
    if any(device_signature(*row) == signature for row in others):
        return False
    history = _history(user)
    if history is None:
        return True
    # A device reported with "This wasn't me" is not the owner's: it stays new.
    rows = history.exclude(reason=Reason.REPORTED).values_list("user_agent", "client_hints", "ip")[
        :_COMPARED_ROWS
    ]
    return not any(device_signature(*row) == signature for row in rows)


def is_first_sign_in(user: Any, session: AbstractSession) -> bool:
    """``True`` when the account has no other session, live or in history.

    With history off (retention 0) only live sessions count, so an account
    signed out everywhere looks new; such sites may prefer
    ``USER_SESSIONS_SIGN_IN_ALERT_FIRST = True``.
    """
    from user_sessions.models import get_session_model

    if get_session_model().objects.filter(user=user).exclude(pk=session.pk).exists():
        return False
    history = _history(user)
    return history is None or not history.exists()


def _claim_once_a_day(user: Any, signature: DeviceSignature) -> bool:
    """Whether this is the day's first alert for the user and device.

    The mark lives in the session cache. When the cache fails the alert is
    sent anyway: a second mail is a nuisance, a missing one a risk. The
    check itself stops most repeats without any cache, since the device's
    session (or its history record) makes it known.
    """
    from user_sessions.backends.cached_db import session_cache

    digest = hashlib.sha256(repr((str(user.pk), *signature)).encode()).hexdigest()[:40]
    try:
        return bool(
            session_cache().add(_ONCE_KEY_PREFIX + digest, 1, int(_ONCE_PER.total_seconds()))
        )
    except Exception:
        logger.warning("sign-in alert: the cache failed; sending without the daily limit")
        return True


# The "This wasn't me" link ---------------------------------------------------


@dataclass(frozen=True)
class ReportClaim:
    """What a valid link says: the owner's primary key (as a string) and the session's handle."""

    user_id: str
    handle: str


def make_report_token(session: AbstractSession) -> str:
    """A signed, timestamped token naming ``session`` by handle and owner (never its key)."""
    return signing.dumps({"u": str(session.user_id), "h": session.handle}, salt=REPORT_SALT)


def read_report_token(token: str) -> ReportClaim:
    """The claim in ``token``.

    Raises ``signing.SignatureExpired`` when it is older than
    ``USER_SESSIONS_REPORT_LINK_MAX_AGE`` and ``signing.BadSignature`` for
    anything else that is not a link this site made.
    """
    data = signing.loads(token, salt=REPORT_SALT, max_age=app_settings.REPORT_LINK_MAX_AGE)
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("u"), str)
        or not isinstance(data.get("h"), str)
    ):
        raise signing.BadSignature("Not a report token.")
    return ReportClaim(user_id=data["u"], handle=data["h"])


# The alert --------------------------------------------------------------------


@dataclass(frozen=True)
class SignInAlert:
    """Everything the mail says, fixed at sign-in: it may be sent by a worker later.

    JSON-safe through ``as_dict()`` / ``from_dict()``, as a task carries
    it. ``ip`` is what ``USER_SESSIONS_IP_PRIVACY`` let the session keep
    (``None`` with ``"none"``); ``report_url`` is empty when the package's
    URLs are not mounted.
    """

    user_id: str
    recipient: str
    name: str
    handle: str
    user_agent: str | None
    client_hints: str | None
    ip: str | None
    signed_in_at: datetime.datetime
    language: str
    site_name: str
    report_url: str

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["signed_in_at"] = self.signed_in_at.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SignInAlert:
        values = dict(data)
        values["signed_in_at"] = datetime.datetime.fromisoformat(values["signed_in_at"])
        return cls(**values)

    def context(self) -> dict[str, Any]:
        """The templates' context, in the active language (see the docs' template reference)."""
        from user_sessions.client import parse_ip
        from user_sessions.devices import device_label, location_label

        ip = self.ip
        address = parse_ip(ip)
        if address is not None and app_settings.IP_PRIVACY == "truncate":
            # A truncated address is a network: say so rather than show a host.
            ip = f"{address}/{24 if address.version == 4 else 48}"
        return {
            "alert": self,
            "name": self.name,
            "device": device_label(self.user_agent, self.client_hints) or gettext("Unknown device"),
            "location": location_label(self.ip),
            "ip": ip,
            "signed_in_at": self.signed_in_at,
            "site_name": self.site_name,
            "report_url": self.report_url,
            "LANGUAGE_CODE": self.language,
            "LANGUAGE_BIDI": translation.get_language_bidi(),
        }


def render_sign_in_alert(alert: SignInAlert) -> EmailMultiAlternatives:
    """The message, rendered in the language active at sign-in, text with an HTML alternative."""
    with translation.override(alert.language):
        context = alert.context()
        subject = render_to_string(f"{TEMPLATE_FOLDER}/subject.txt", context)
        text = render_to_string(f"{TEMPLATE_FOLDER}/body.txt", context)
        html = render_to_string(f"{TEMPLATE_FOLDER}/body.html", context)
    message = EmailMultiAlternatives(
        # A header cannot hold a line break; a template's trailing one is common.
        subject=" ".join(subject.split()),
        body=text,
        to=[alert.recipient],
    )
    message.attach_alternative(html, "text/html")
    return message


def send_sign_in_alert(alert: SignInAlert) -> None:
    """Render and send the mail (the default adapter's ``send_sign_in_alert``)."""
    render_sign_in_alert(alert).send()


def deliver(payload: dict[str, Any]) -> None:
    """Send one alert through the adapter; log, never raise (the task's and callback's body)."""
    from user_sessions.adapter import get_adapter

    try:
        get_adapter().send_sign_in_alert(SignInAlert.from_dict(payload))
    except Exception:
        logger.exception(
            "sign-in alert for session %s could not be sent", payload.get("handle", "?")
        )


def _uses_tasks() -> bool:
    """Whether the site configured Django's task framework (Django 6).

    Django 6 defaults to ``ImmediateBackend``, which would run the task in
    the request anyway; only a ``TASKS`` the site set counts.
    """
    from django.conf import settings

    try:
        import django.tasks  # noqa: F401
    except ImportError:
        return False
    return bool(cast(Any, settings).is_overridden("TASKS"))


def _enqueue(payload: dict[str, Any]) -> None:
    try:
        from user_sessions.tasks import send_sign_in_alert_task

        send_sign_in_alert_task.enqueue(payload)
    except Exception:
        logger.exception(
            "sign-in alert for session %s could not be queued", payload.get("handle", "?")
        )


def schedule(alert: SignInAlert, *, using: str | None = None) -> None:
    """Send ``alert`` once the current transaction commits: by task if configured, else now."""
    payload = alert.as_dict()
    if _uses_tasks():
        transaction.on_commit(lambda: _enqueue(payload), using=using)
    else:
        transaction.on_commit(lambda: deliver(payload), using=using)


def _report_url(request: HttpRequest, session: AbstractSession) -> str:
    try:
        path = reverse("user_sessions:report", kwargs={"token": make_report_token(session)})
    except NoReverseMatch:
        logger.warning("sign-in alert without a report link: user_sessions.urls is not mounted")
        return ""
    # The site's domain, as Django's password reset mails use: with the sites
    # framework a forged Host header cannot point the link elsewhere; without
    # it this is the request's host, which ALLOWED_HOSTS vouches for.
    domain = get_current_site(request).domain
    return f"{request.scheme}://{domain}{path}"


def build_alert(request: HttpRequest, user: Any, session: AbstractSession) -> SignInAlert | None:
    """The alert for this sign-in, or ``None`` when the account has no mail address."""
    recipient = getattr(user, user.get_email_field_name(), None) or ""
    if not recipient:
        return None
    return SignInAlert(
        user_id=str(user.pk),
        recipient=str(recipient),
        name=user.get_short_name() or user.get_username(),
        handle=session.handle,
        user_agent=session.user_agent,
        client_hints=session.client_hints,
        ip=session.ip,
        signed_in_at=session.created_at or timezone.now(),
        language=translation.get_language() or "en",
        site_name=get_current_site(request).name,
        report_url=_report_url(request, session),
    )


def consider(request: HttpRequest, user: Any) -> SignInAlert | None:
    """Decide on this sign-in and schedule its alert; the alert, or ``None`` if none is due."""
    from user_sessions.adapter import get_adapter
    from user_sessions.backends.db import SessionStore
    from user_sessions.models import get_session_model

    store = getattr(request, "session", None)
    if not isinstance(store, SessionStore) or store.session_key is None:
        return None
    model = get_session_model()
    session = model.objects.filter(session_key=store.session_key).first()
    if session is None or session.user_id is None:
        return None
    if not get_adapter().is_new_device(user, session):
        return None
    if not app_settings.SIGN_IN_ALERT_FIRST and is_first_sign_in(user, session):
        return None
    if not _claim_once_a_day(user, _signature_of(session)):
        return None
    alert = build_alert(request, user, session)
    if alert is not None:
        schedule(alert, using=router.db_for_write(model))
    return alert


def on_user_logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """``user_logged_in`` receiver: alert on a new device when alerts are on; never raises."""
    if request is None or not app_settings.SIGN_IN_ALERTS:
        return
    from user_sessions.models import get_session_model

    using = router.db_for_write(get_session_model())
    try:
        if connections[using].in_atomic_block:
            # In a transaction (ATOMIC_REQUESTS, say) a failed query would
            # break the sign-in's own; a savepoint keeps it apart.
            with transaction.atomic(using=using):
                consider(request, user)
        else:
            consider(request, user)
    except Exception:
        logger.exception("sign-in alert could not be prepared")
