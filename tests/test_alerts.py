"""New sign-in alerts (``alerts``) and their "This wasn't me" link (``report``)."""

from __future__ import annotations

import datetime
import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import django
import pytest
from django.contrib.auth import views as auth_views
from django.core import mail, signing
from django.core.cache import cache
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import include, path
from django.utils import timezone

from tests.conftest import CHROME_WINDOWS, FIREFOX_LINUX, SAFARI_IPHONE
from tests.geoip import GERMANY_IP, ZWOLLE_IP
from user_sessions import alerts
from user_sessions.adapter import SessionsAdapter
from user_sessions.alerts import REPORT_SALT, SignInAlert, device_signature
from user_sessions.events import EndedBy, Reason, SessionEvent, session_ended
from user_sessions.models import EndedSession, Session

pytestmark = pytest.mark.django_db

SignIn = Callable[..., Client]

# A second address in the Zwolle network: same country as ZWOLLE_IP.
ZWOLLE_IP_2 = "203.0.113.99"


@pytest.fixture(autouse=True)
def alerts_on(settings: Any, geoip_settings: Any) -> Iterator[None]:
    settings.USER_SESSIONS_SIGN_IN_ALERTS = True
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def sign_in(
    browser_factory: Callable[..., Client], django_capture_on_commit_callbacks: Any
) -> SignIn:
    """Sign ``user`` in through the login view from a given browser; after-commit work runs."""

    def go(
        user: Any, user_agent: str = CHROME_WINDOWS, ip: str = ZWOLLE_IP, **extra: Any
    ) -> Client:
        client = browser_factory(user_agent=user_agent, ip=ip, **extra)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/login/", {"username": user.username, "password": "secret-password"}
            )
        assert response.status_code == 302, response.content
        return client

    return go


@pytest.fixture
def mail_user(user_factory: Callable[..., Any]) -> Any:
    return user_factory(username="mia", email="mia@example.com", first_name="Mia")


def alert_mails() -> list[Any]:
    # Alerts carry an HTML part; the subject is in the mail's language.
    return [message for message in mail.outbox if getattr(message, "alternatives", None)]


def html_of(message: Any) -> str:
    [(content, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return str(content)


def report_link(message: Any) -> str:
    match = re.search(r"http://testserver(/account/sessions/report/[^/\s]+/)", message.body)
    assert match, message.body
    return match.group(1)


# Deciding -------------------------------------------------------------------------------


def test_alerts_are_off_by_default(settings: Any, sign_in: SignIn, mail_user: Any) -> None:
    settings.USER_SESSIONS_SIGN_IN_ALERTS = False
    settings.USER_SESSIONS_SIGN_IN_ALERT_FIRST = True
    with mock.patch.object(alerts, "consider") as consider:
        sign_in(mail_user)
    consider.assert_not_called()
    assert alert_mails() == []


def test_an_accounts_first_sign_in_sends_no_alert_unless_asked(
    settings: Any, sign_in: SignIn, mail_user: Any, user_factory: Callable[..., Any]
) -> None:
    sign_in(mail_user)
    assert alert_mails() == []

    settings.USER_SESSIONS_SIGN_IN_ALERT_FIRST = True
    other = user_factory(email="other@example.com")
    sign_in(other)
    [message] = alert_mails()
    assert message.to == ["other@example.com"]


def test_a_known_device_sends_no_alert(sign_in: SignIn, mail_user: Any) -> None:
    sign_in(mail_user)
    # Same browser, platform and country: another address, another browser
    # version, another session.
    sign_in(mail_user, ip=ZWOLLE_IP_2, user_agent=CHROME_WINDOWS.replace("131.0", "132.0"))
    assert alert_mails() == []


@pytest.mark.parametrize(
    ("user_agent", "ip"),
    [(SAFARI_IPHONE, ZWOLLE_IP), (FIREFOX_LINUX, ZWOLLE_IP), (CHROME_WINDOWS, GERMANY_IP)],
    ids=["another-platform", "another-browser", "another-country"],
)
def test_a_new_browser_platform_or_country_sends_one_alert(
    engine: str, sign_in: SignIn, mail_user: Any, user_agent: str, ip: str
) -> None:
    sign_in(mail_user)
    sign_in(mail_user, user_agent=user_agent, ip=ip)
    [message] = alert_mails()
    assert message.to == ["mia@example.com"]


def test_client_hints_tell_chromium_browsers_apart(settings: Any) -> None:
    chrome = device_signature(CHROME_WINDOWS, 'platform="Windows", browser="Chrome"', ZWOLLE_IP)
    edge = device_signature(CHROME_WINDOWS, 'platform="Windows", browser="Edge"', ZWOLLE_IP)
    bare = device_signature(CHROME_WINDOWS, None, ZWOLLE_IP)
    # High-entropy hints come only after the first response: no flicker from them.
    windows_11 = device_signature(
        CHROME_WINDOWS, 'platform="Windows", platform-version="15.0.0", browser="Chrome"', ZWOLLE_IP
    )
    assert chrome == bare == windows_11 == ("Chrome", "Windows", "NL")
    assert edge == ("Edge", "Windows", "NL")


def test_without_history_an_ended_session_no_longer_makes_its_device_known(
    settings: Any, sign_in: SignIn, mail_user: Any
) -> None:
    settings.USER_SESSIONS_HISTORY_DAYS = 0
    sign_in(mail_user)
    phone = sign_in(mail_user, user_agent=SAFARI_IPHONE)
    assert len(alert_mails()) == 1
    phone.post("/logout/")
    cache.clear()  # the daily limit is tested below
    sign_in(mail_user, user_agent=SAFARI_IPHONE)
    assert len(alert_mails()) == 2


def test_with_history_an_ended_session_keeps_its_device_known_for_the_retention(
    settings: Any, sign_in: SignIn, mail_user: Any
) -> None:
    settings.USER_SESSIONS_HISTORY_DAYS = 30
    sign_in(mail_user)
    phone = sign_in(mail_user, user_agent=SAFARI_IPHONE)
    phone.post("/logout/")
    cache.clear()
    sign_in(mail_user, user_agent=SAFARI_IPHONE)
    assert len(alert_mails()) == 1
    # Once the record is older than the retention, the device is new again.
    Session.objects.filter(user=mail_user, user_agent=SAFARI_IPHONE).delete()
    EndedSession.objects.filter(user=mail_user).update(
        ended_at=timezone.now() - datetime.timedelta(days=31)
    )
    cache.clear()
    sign_in(mail_user, user_agent=SAFARI_IPHONE)
    assert len(alert_mails()) == 2


def test_with_history_an_account_signed_out_everywhere_is_not_new(
    settings: Any, sign_in: SignIn, mail_user: Any
) -> None:
    settings.USER_SESSIONS_HISTORY_DAYS = 30
    sign_in(mail_user).post("/logout/")
    assert not Session.objects.filter(user=mail_user).exists()
    sign_in(mail_user, user_agent=SAFARI_IPHONE)
    assert len(alert_mails()) == 1


def test_a_reported_device_stays_new(settings: Any, sign_in: SignIn, mail_user: Any) -> None:
    settings.USER_SESSIONS_HISTORY_DAYS = 30
    sign_in(mail_user)
    sign_in(mail_user, user_agent=SAFARI_IPHONE)
    [message] = alert_mails()
    assert Client().post(report_link(message)).status_code == 302
    assert EndedSession.objects.get(user=mail_user).reason == Reason.REPORTED
    cache.clear()
    sign_in(mail_user, user_agent=SAFARI_IPHONE)
    assert len(alert_mails()) == 2


def test_at_most_one_alert_per_user_and_device_per_day(
    settings: Any, sign_in: SignIn, mail_user: Any, user_factory: Callable[..., Any]
) -> None:
    settings.USER_SESSIONS_HISTORY_DAYS = 0  # else the ended session alone keeps it known
    sign_in(mail_user)
    phone = sign_in(mail_user, user_agent=SAFARI_IPHONE)
    phone.post("/logout/")
    sign_in(mail_user, user_agent=SAFARI_IPHONE)
    assert len(alert_mails()) == 1
    # Another device, or another user, is another count.
    sign_in(mail_user, user_agent=FIREFOX_LINUX)
    other = user_factory(email="other@example.com")
    sign_in(other)
    sign_in(other, user_agent=SAFARI_IPHONE)
    assert [m.to for m in alert_mails()] == [
        ["mia@example.com"],
        ["mia@example.com"],
        ["other@example.com"],
    ]


def test_a_failing_cache_sends_the_alert_rather_than_lose_it(
    sign_in: SignIn, mail_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sign_in(mail_user)
    broken = mock.Mock()
    broken.add.side_effect = ConnectionError("cache down")
    with mock.patch("user_sessions.backends.cached_db.session_cache", return_value=broken):
        sign_in(mail_user, user_agent=SAFARI_IPHONE)
    assert len(alert_mails()) == 1
    assert "the cache failed" in caplog.text


def test_an_account_without_a_mail_address_gets_no_alert(
    sign_in: SignIn, user_factory: Callable[..., Any]
) -> None:
    silent = user_factory(email="")
    sign_in(silent)
    sign_in(silent, user_agent=SAFARI_IPHONE)
    assert mail.outbox == []


class AlwaysNew(SessionsAdapter):
    def is_new_device(self, user: Any, session: Any) -> bool:
        return True


class Texting(SessionsAdapter):
    sent: list[SignInAlert] = []

    def send_sign_in_alert(self, alert: SignInAlert) -> None:
        self.sent.append(alert)


def test_the_adapter_decides_what_is_new(settings: Any, sign_in: SignIn, mail_user: Any) -> None:
    settings.USER_SESSIONS_ADAPTER = f"{__name__}.AlwaysNew"
    sign_in(mail_user)
    sign_in(mail_user)
    # Still the first sign-in rule, and still once a day per device.
    assert len(alert_mails()) == 1


def test_the_adapter_delivers(settings: Any, sign_in: SignIn, mail_user: Any) -> None:
    settings.USER_SESSIONS_ADAPTER = f"{__name__}.Texting"
    Texting.sent.clear()
    sign_in(mail_user)
    sign_in(mail_user, user_agent=SAFARI_IPHONE)
    assert mail.outbox == []
    [alert] = Texting.sent
    session = Session.objects.get(handle=alert.handle)
    assert (alert.user_agent, alert.ip, alert.user_id) == (
        SAFARI_IPHONE,
        ZWOLLE_IP,
        str(mail_user.pk),
    )
    assert session.user_id == mail_user.pk


def test_a_sign_in_from_a_known_device_costs_two_queries_more(
    settings: Any, sign_in: SignIn, mail_user: Any, browser_factory: Callable[..., Client]
) -> None:
    from user_sessions import history

    sign_in(mail_user)
    counts = []
    for enabled in (False, True):
        settings.USER_SESSIONS_SIGN_IN_ALERTS = enabled
        client = browser_factory(ip=ZWOLLE_IP_2)
        with CaptureQueriesContext(connection) as queries:
            client.post("/login/", {"username": mail_user.username, "password": "secret-password"})
        # Savepoints aside: the test runs in a transaction, where the alert's
        # work gets one of its own.
        counts.append(sum("SAVEPOINT" not in q["sql"] for q in queries.captured_queries))
    # The new session's row and the account's other live sessions, where the
    # device is found: history is not read, nothing is sent.
    assert history.enabled()
    assert counts[1] - counts[0] == 2
    assert alert_mails() == []


# The mail ---------------------------------------------------------------------------------


def test_the_mail_names_device_place_address_time_and_site(sign_in: SignIn, mail_user: Any) -> None:
    sign_in(mail_user)
    sign_in(mail_user, user_agent=SAFARI_IPHONE, ip="203.0.113.44")
    [message] = alert_mails()
    session = Session.objects.get(user=mail_user, user_agent=SAFARI_IPHONE)
    html = html_of(message)
    assert message.subject == "New sign-in to your testserver account"
    for text in (message.body, html):
        assert "Mia" in text
        assert "Safari on iPhone" in text
        assert "Zwolle, Netherlands" in text
        assert "203.0.113.44" in text
        assert "testserver" in text
        assert session.created_at.strftime("%Y") in text
        assert "/account/sessions/report/" in text
    assert 'dir="ltr"' in html and 'lang="en"' in html
    assert ">This wasn't me</a>" in html
    # Inline styles are all a mail client honours; nothing runs or loads.
    assert "<script" not in html and not re.search(r"\son[a-z]+=", html)
    assert re.findall(r'(?:src|href)="([^"]+)"', html) == [
        "http://testserver" + report_link(message)
    ]


def test_the_mail_carries_no_session_key(sign_in: SignIn, mail_user: Any) -> None:
    sign_in(mail_user)
    phone = sign_in(mail_user, user_agent=SAFARI_IPHONE)
    [message] = alert_mails()
    key = phone.cookies["sessionid"].value
    assert Session.objects.filter(session_key=key).exists()
    everything = message.message().as_string()
    token = report_link(message).rsplit("/", 2)[1]
    assert key not in everything
    assert key not in signing.loads(token, salt=REPORT_SALT).values()
    assert (
        Session.objects.get(session_key=key).handle
        in signing.loads(token, salt=REPORT_SALT).values()
    )


@pytest.mark.parametrize(("privacy", "shown"), [("truncate", "203.0.113.0/24"), ("none", None)])
def test_the_mail_shows_the_address_as_the_privacy_setting_stores_it(
    settings: Any, sign_in: SignIn, mail_user: Any, privacy: str, shown: str | None
) -> None:
    settings.USER_SESSIONS_IP_PRIVACY = privacy
    sign_in(mail_user)
    sign_in(mail_user, user_agent=SAFARI_IPHONE, ip="203.0.113.44")
    [message] = alert_mails()
    assert "203.0.113.44" not in message.body
    if shown:
        assert f"IP address: {shown}" in message.body
    else:
        assert "IP address" not in message.body


def test_the_mail_is_in_the_language_active_at_sign_in(sign_in: SignIn, mail_user: Any) -> None:
    sign_in(mail_user)
    sign_in(mail_user, user_agent=SAFARI_IPHONE, HTTP_ACCEPT_LANGUAGE="de")
    [message] = alert_mails()
    html = html_of(message)
    # Place names come from the GeoIP database in the mail's language.
    assert "Zwolle, Niederlande" in message.body
    assert 'lang="de"' in html and 'dir="ltr"' in html


def test_a_right_to_left_language_gets_a_right_to_left_mail(
    sign_in: SignIn, mail_user: Any
) -> None:
    sign_in(mail_user)
    sign_in(mail_user, user_agent=SAFARI_IPHONE, HTTP_ACCEPT_LANGUAGE="ar")
    [message] = alert_mails()
    html = html_of(message)
    assert '<html lang="ar" dir="rtl">' in html
    assert '<body dir="rtl"' in html and "text-align:right" in html
    # An address reads left to right inside right-to-left text.
    assert '<bdi dir="ltr">203.0.113.7</bdi>' in html


def test_a_site_can_override_the_mail_templates(
    settings: Any, sign_in: SignIn, mail_user: Any, tmp_path: Any
) -> None:
    folder = tmp_path / "user_sessions" / "email" / "sign_in_alert"
    folder.mkdir(parents=True)
    (folder / "subject.txt").write_text("Heads up from {{ site_name }}\n")
    (folder / "body.txt").write_text("{{ device }} at {{ location }}")
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [str(tmp_path)]}]
    sign_in(mail_user)
    sign_in(mail_user, user_agent=SAFARI_IPHONE)
    [message] = mail.outbox
    assert message.subject == "Heads up from testserver"
    assert message.body == "Safari on iPhone at Zwolle, Netherlands"
    assert "Safari on iPhone" in html_of(message)  # the package's HTML part


def test_the_site_name_comes_from_the_sites_framework(sign_in: SignIn, mail_user: Any) -> None:
    # get_current_site(): the Site of django.contrib.sites when installed
    # (not in this suite's settings), the request's host otherwise.
    sign_in(mail_user)
    with mock.patch.object(alerts, "get_current_site", return_value=mock.Mock(name="site")) as site:
        site.return_value.name = "Example"
        sign_in(mail_user, user_agent=SAFARI_IPHONE)
    [message] = alert_mails()
    assert message.subject == "New sign-in to your Example account"


def test_the_report_link_names_the_sites_domain_not_the_requests_host(
    settings: Any, sign_in: SignIn, mail_user: Any
) -> None:
    # As Django's password reset does: with the sites framework, a forged Host
    # header (a loose ALLOWED_HOSTS) cannot point the mailed link elsewhere.
    settings.ALLOWED_HOSTS = ["*"]
    sign_in(mail_user)
    with mock.patch.object(alerts, "get_current_site", return_value=mock.Mock(name="site")) as site:
        site.return_value.name = "Example"
        site.return_value.domain = "accounts.example.com"
        sign_in(mail_user, user_agent=SAFARI_IPHONE, HTTP_HOST="evil.example")
    [message] = alert_mails()
    mailed = message.body + html_of(message)
    links = re.findall(r"https?://[^/\s\"]+/account/sessions/report/", mailed)
    assert links and set(links) == {"http://accounts.example.com/account/sessions/report/"}


def test_the_subject_is_plain_text_not_html(sign_in: SignIn, mail_user: Any) -> None:
    # A header is no HTML: "&" stays "&", and a line break cannot start a header.
    sign_in(mail_user)
    with mock.patch.object(alerts, "get_current_site", return_value=mock.Mock(name="site")) as site:
        site.return_value.name = "Tom & Jerry's <Shop>\r\nBcc: x@example.com"
        sign_in(mail_user, user_agent=SAFARI_IPHONE)
    [message] = alert_mails()
    assert message.subject == "New sign-in to your Tom & Jerry's <Shop> Bcc: x@example.com account"
    assert message.bcc == []
    assert message.message()["Bcc"] is None


# When and how it is sent ------------------------------------------------------------------


def test_the_mail_goes_out_after_commit(
    browser_factory: Callable[..., Client],
    sign_in: SignIn,
    mail_user: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    sign_in(mail_user)
    client = browser_factory(user_agent=SAFARI_IPHONE, ip=ZWOLLE_IP)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        client.post("/login/", {"username": mail_user.username, "password": "secret-password"})
    assert alert_mails() == []
    for callback in callbacks:
        callback()
    assert len(alert_mails()) == 1


def test_a_mail_failure_is_logged_and_the_sign_in_succeeds(
    sign_in: SignIn, mail_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sign_in(mail_user)
    with (
        caplog.at_level(logging.ERROR, logger="user_sessions.alerts"),
        mock.patch(
            "django.core.mail.EmailMultiAlternatives.send", side_effect=OSError("SMTP down")
        ),
    ):
        phone = sign_in(mail_user, user_agent=SAFARI_IPHONE)
    assert phone.get("/read/").status_code == 200
    [record] = [r for r in caplog.records if r.name == "user_sessions.alerts"]
    assert "could not be sent" in record.getMessage()
    assert record.exc_info is not None and "SMTP down" in str(record.exc_info[1])


def test_a_failed_query_while_deciding_leaves_the_sign_in_transaction_usable(
    sign_in: SignIn, mail_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(user: Any, session: Any) -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT no_such_column FROM no_such_table")
        return True

    # In the test's transaction, as under ATOMIC_REQUESTS: on PostgreSQL the
    # failed statement would abort everything after it without a savepoint.
    with mock.patch.object(alerts, "is_first_sign_in", side_effect=broken):
        client = sign_in(mail_user)
    assert "could not be prepared" in caplog.text
    assert client.get("/read/").status_code == 200
    assert Session.objects.filter(user=mail_user).count() == 1


def test_a_failure_while_deciding_is_logged_and_the_sign_in_succeeds(
    sign_in: SignIn, mail_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with mock.patch.object(alerts, "is_first_sign_in", side_effect=RuntimeError("bug")):
        sign_in(mail_user)
    assert "could not be prepared" in caplog.text


HAS_TASKS = django.VERSION >= (6, 0)


@pytest.mark.skipif(not HAS_TASKS, reason="django.tasks comes with Django 6.0")
def test_with_a_task_backend_the_mail_is_queued_after_commit(
    settings: Any, sign_in: SignIn, mail_user: Any
) -> None:
    from django.tasks import default_task_backend

    from user_sessions.tasks import send_sign_in_alert_task

    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    sign_in(mail_user)
    sign_in(mail_user, user_agent=SAFARI_IPHONE)
    assert mail.outbox == []  # queued, not sent in the request
    [result] = default_task_backend.results  # type: ignore[attr-defined]
    assert result.task.module_path == "user_sessions.tasks.send_sign_in_alert_task"
    [payload] = result.args
    assert payload["user_agent"] == SAFARI_IPHONE and payload["language"] == "en"
    # What a worker does with it.
    send_sign_in_alert_task.call(*result.args)
    assert len(alert_mails()) == 1


@pytest.mark.skipif(not HAS_TASKS, reason="django.tasks comes with Django 6.0")
def test_an_immediate_task_backend_sends_at_once_and_a_failing_one_is_logged(
    settings: Any, sign_in: SignIn, mail_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    sign_in(mail_user)
    sign_in(mail_user, user_agent=SAFARI_IPHONE)
    assert len(alert_mails()) == 1
    settings.TASKS = {"default": {"BACKEND": "no.such.Backend"}}
    sign_in(mail_user, user_agent=FIREFOX_LINUX)
    assert len(alert_mails()) == 1
    assert "could not be queued" in caplog.text


@pytest.mark.skipif(HAS_TASKS, reason="Django 6 has django.tasks; this is Django 5.2's path")
def test_without_django_tasks_the_mail_is_sent_on_commit(
    settings: Any, sign_in: SignIn, mail_user: Any
) -> None:
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    sign_in(mail_user)
    sign_in(mail_user, user_agent=SAFARI_IPHONE)
    assert len(alert_mails()) == 1


# "This wasn't me" -------------------------------------------------------------------------


@pytest.fixture
def reported(sign_in: SignIn, mail_user: Any) -> tuple[Client, str]:
    """Mia's laptop, and the report link the phone's sign-in mailed her; the phone is signed in."""
    laptop = sign_in(mail_user)
    sign_in(mail_user, user_agent=SAFARI_IPHONE, ip=GERMANY_IP)
    [message] = alert_mails()
    return laptop, report_link(message)


@pytest.fixture
def ended_events() -> Iterator[list[SessionEvent]]:
    events: list[SessionEvent] = []

    def hear(sender: Any, event: SessionEvent, **kwargs: Any) -> None:
        events.append(event)

    session_ended.connect(hear)
    yield events
    session_ended.disconnect(hear)


def phone_of(user: Any) -> Session | None:
    return Session.objects.filter(user=user, user_agent=SAFARI_IPHONE).first()


def test_opening_the_link_asks_and_changes_nothing(
    reported: tuple[Client, str], mail_user: Any, ended_events: list[SessionEvent]
) -> None:
    _laptop, link = reported
    before = list(Session.objects.order_by("pk").values_list("pk", "expire_date"))
    response = Client().get(link)
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    # The token in the address goes nowhere else.
    assert response["Referrer-Policy"] == "same-origin"
    html = response.content.decode()
    assert "Safari on iPhone" in html and "Germany" in html
    assert 'type="checkbox" name="all"' in html
    assert f'action="{link}"' in html and "csrfmiddlewaretoken" in html
    assert list(Session.objects.order_by("pk").values_list("pk", "expire_date")) == before
    assert ended_events == []


def test_confirming_ends_that_session_as_reported_by_the_user(
    engine: str,
    reported: tuple[Client, str],
    mail_user: Any,
    ended_events: list[SessionEvent],
    django_capture_on_commit_callbacks: Any,
) -> None:
    laptop, link = reported
    phone = phone_of(mail_user)
    assert phone is not None
    with django_capture_on_commit_callbacks(execute=True):
        response = Client().post(link)
    assert response.status_code == 302
    assert response["Location"] == "/account/sessions/report/done/"
    assert phone_of(mail_user) is None
    assert laptop.get("/read/").status_code == 200
    assert Session.objects.filter(user=mail_user).count() == 1
    [event] = ended_events
    assert (event.handle, event.reason, event.ended_by, event.by_handle) == (
        phone.handle,
        Reason.REPORTED,
        EndedBy.USER,
        None,
    )
    done = Client().get(response["Location"])
    assert done.status_code == 200 and "was signed out" in done.content.decode()


def test_ticking_the_box_ends_every_session_of_the_account_only(
    engine: str,
    reported: tuple[Client, str],
    mail_user: Any,
    auth_client: Client,
    ended_events: list[SessionEvent],
    django_capture_on_commit_callbacks: Any,
) -> None:
    laptop, link = reported
    with django_capture_on_commit_callbacks(execute=True):
        response = Client().post(link, {"all": "1"})
    assert response.status_code == 302
    assert not Session.objects.filter(user=mail_user).exists()
    assert len(ended_events) == 2
    assert {e.reason for e in ended_events} == {Reason.REPORTED}
    # Alice (auth_client) was not touched.
    assert auth_client.get("/account/sessions/").status_code == 200
    assert laptop.get("/account/sessions/").status_code == 302


def test_the_link_works_once(reported: tuple[Client, str], mail_user: Any, sign_in: SignIn) -> None:
    _laptop, link = reported
    assert Client().post(link).status_code == 302
    # Mia signs in again afterwards; the used link must not reach that session.
    fresh = sign_in(mail_user, user_agent=FIREFOX_LINUX)
    again = Client().post(link, {"all": "1"})
    assert again.status_code == 200
    assert "already ended" in again.content.decode()
    assert fresh.get("/read/").status_code == 200
    assert Client().get(link).status_code == 200
    assert "already ended" in Client().get(link).content.decode()


def test_an_expired_link_is_refused_clearly(
    settings: Any, reported: tuple[Client, str], mail_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _laptop, link = reported
    later = time.time() + 7 * 24 * 3600 + 5
    monkeypatch.setattr(signing, "time", mock.Mock(time=lambda: later))
    for response in (Client().get(link), Client().post(link, {"all": "1"})):
        assert response.status_code == 400
        assert "This link has expired" in response.content.decode()
    assert phone_of(mail_user) is not None
    settings.USER_SESSIONS_REPORT_LINK_MAX_AGE = 8 * 24 * 3600
    assert Client().get(link).status_code == 200


@pytest.mark.parametrize(
    "mangle",
    [
        lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),
        lambda token: "x" + token,
        lambda token: "nonsense",
        lambda token: signing.dumps({"u": "1", "h": "x"}, salt="another.salt"),
        lambda token: signing.dumps(["not", "a", "claim"], salt=REPORT_SALT),
        lambda token: signing.dumps({"u": "not-a-key", "h": "x"}, salt=REPORT_SALT),
    ],
    ids=["signature", "payload", "garbage", "other-salt", "wrong-shape", "wrong-key-type"],
)
def test_a_tampered_link_is_refused_clearly(
    reported: tuple[Client, str], mail_user: Any, mangle: Callable[[str], str]
) -> None:
    _laptop, link = reported
    token = link.rsplit("/", 2)[1]
    bad = link.replace(token, mangle(token))
    for response in (Client().get(bad), Client().post(bad, {"all": "1"})):
        assert response.status_code == 400
        assert response["Referrer-Policy"] == "same-origin"
        assert "This link is not valid" in response.content.decode()
    assert phone_of(mail_user) is not None


def test_a_link_cannot_end_another_accounts_session(
    reported: tuple[Client, str], mail_user: Any, auth_client: Client, user: Any
) -> None:
    alices = Session.objects.get(user=user)
    # Signed by the site, but naming Alice's session under Mia's account.
    crossed = signing.dumps({"u": str(mail_user.pk), "h": alices.handle}, salt=REPORT_SALT)
    response = Client().post(f"/account/sessions/report/{crossed}/", {"all": "1"})
    assert response.status_code == 200 and "already ended" in response.content.decode()
    assert Session.objects.filter(pk=alices.pk).exists()
    assert phone_of(mail_user) is not None


def test_confirming_needs_the_csrf_token(reported: tuple[Client, str], mail_user: Any) -> None:
    _laptop, link = reported
    browser = Client(enforce_csrf_checks=True)
    assert browser.post(link).status_code == 403
    assert phone_of(mail_user) is not None
    page = browser.get(link).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token
    assert browser.post(link, {"csrfmiddlewaretoken": token.group(1)}).status_code == 302
    assert phone_of(mail_user) is None


def test_reporting_from_a_signed_in_browser_of_the_account_signs_it_out_cleanly(
    reported: tuple[Client, str], mail_user: Any
) -> None:
    laptop, link = reported
    response = laptop.post(link, {"all": "1"})
    assert response.status_code == 302
    assert not Session.objects.filter(user=mail_user).exists()
    # The laptop is anonymous now, and saving its messages made no session for Mia.
    assert laptop.get("/account/sessions/").status_code == 302
    assert not Session.objects.filter(user=mail_user).exists()


def _password_reset(request: Any) -> HttpResponse:
    return HttpResponse("reset")


def __getattr__(name: str) -> Any:
    # This module is also a URLconf (below); built when first resolved, not
    # at collection, when the package's URLs cannot be imported yet.
    if name == "urlpatterns":
        return [
            path("login/", auth_views.LoginView.as_view()),
            path("password/reset/", _password_reset, name="password_reset"),
            path("account/sessions/", include("user_sessions.urls")),
        ]
    raise AttributeError(name)


@pytest.mark.urls(__name__)
def test_a_confirmed_report_leads_to_the_password_reset_page(
    reported: tuple[Client, str],
) -> None:
    _laptop, link = reported
    assert Client().post(link)["Location"] == "/password/reset/"


def test_the_setting_names_where_a_confirmed_report_leads(
    settings: Any, reported: tuple[Client, str]
) -> None:
    _laptop, link = reported
    settings.USER_SESSIONS_REPORT_REDIRECT_URL = "/password/change/"
    assert Client().post(link)["Location"] == "/password/change/"


def test_the_report_pages_are_right_to_left_in_such_a_language(
    reported: tuple[Client, str],
) -> None:
    _laptop, link = reported
    page = Client(HTTP_ACCEPT_LANGUAGE="he").get(link).content.decode()
    assert 'class="us-widget us-confirm us-report" dir="rtl"' in page


def test_the_link_works_under_login_required_middleware(
    settings: Any, reported: tuple[Client, str], mail_user: Any
) -> None:
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django.contrib.auth.middleware.LoginRequiredMiddleware",
    ]
    _laptop, link = reported
    assert Client().get(link).status_code == 200
    response = Client().post(link)
    assert response.status_code == 302
    assert Client().get(response["Location"]).status_code == 200
    assert phone_of(mail_user) is None


def test_a_check_warns_when_alerts_would_have_no_report_link(settings: Any) -> None:
    from user_sessions.checks import check_alerts

    assert check_alerts() == []

    class WithoutThePackagesURLs:
        urlpatterns = [path("login/", _password_reset)]

    settings.ROOT_URLCONF = WithoutThePackagesURLs
    [warning] = check_alerts()
    assert warning.id == "user_sessions.W040"
    settings.USER_SESSIONS_SIGN_IN_ALERTS = False
    assert check_alerts() == []


def test_alert_settings_are_validated(settings: Any) -> None:
    from user_sessions.checks import check_setup

    settings.USER_SESSIONS_SIGN_IN_ALERTS = "yes"
    settings.USER_SESSIONS_REPORT_LINK_MAX_AGE = 0
    settings.USER_SESSIONS_REPORT_REDIRECT_URL = 42
    messages = [m.msg for m in check_setup() if m.id == "user_sessions.E005"]
    assert any("SIGN_IN_ALERTS" in m for m in messages)
    assert any("REPORT_LINK_MAX_AGE" in m for m in messages)
    assert any("REPORT_REDIRECT_URL" in m for m in messages)
