"""History of ended sessions: what is recorded, what it costs, how long it stays, where it shows."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.conftest import CHROME_WINDOWS, FIREFOX_LINUX, SAFARI_IPHONE
from tests.test_views import parse, session_of
from tests.test_widget import WIDGET, make_session, page_request, render
from user_sessions import endings, history
from user_sessions.events import EndedBy, Reason
from user_sessions.models import EndedSession, Session

pytestmark = pytest.mark.django_db

SESSIONS = Session._meta.db_table
RECORDS = EndedSession._meta.db_table


@pytest.fixture
def sign_in(browser_factory: Callable[..., Client]) -> Callable[..., Client]:
    def make(user: Any, **browser: Any) -> Client:
        client = browser_factory(**browser)
        response = client.post(
            "/login/", {"username": user.username, "password": "secret-password"}
        )
        assert response.status_code == 302
        return client

    return make


def statements(queries: CaptureQueriesContext, table: str) -> list[str]:
    return [q["sql"].split()[0].upper() for q in queries.captured_queries if table in q["sql"]]


# What is recorded ------------------------------------------------------------------------


def test_a_logout_leaves_a_record_of_the_session(engine: str, sign_in: Any, user: Any):
    client = sign_in(user, user_agent=FIREFOX_LINUX, ip="198.51.100.7")
    client.get("/read/")
    session = session_of(client)

    client.post("/logout/")

    record = EndedSession.objects.get()
    assert record.user == user
    assert record.handle == session.handle
    assert record.ip == "198.51.100.7"
    assert record.user_agent == FIREFOX_LINUX
    assert record.created_at == session.created_at
    assert record.last_activity == session.last_activity
    assert timezone.now() - record.ended_at < datetime.timedelta(minutes=1)
    assert (record.reason, record.ended_by, record.by_handle) == (
        Reason.LOGOUT,
        EndedBy.USER,
        session.handle,
    )
    assert record.device == "Firefox on Linux"
    assert str(record) == session.handle


def test_records_name_who_signed_a_session_out(sign_in: Any, user: Any):
    phone = session_of(sign_in(user, user_agent=SAFARI_IPHONE))
    laptop = sign_in(user)

    laptop.post(reverse("user_sessions:session_delete", args=[phone.handle]))

    record = EndedSession.objects.get()
    assert (record.handle, record.reason, record.ended_by, record.by_handle) == (
        phone.handle,
        Reason.SIGNED_OUT_ELSEWHERE,
        EndedBy.USER,
        session_of(laptop).handle,
    )


def test_the_address_is_recorded_as_the_privacy_setting_says_now(
    sign_in: Any, user: Any, settings: Any
):
    client = sign_in(user, ip="203.0.113.77")
    settings.USER_SESSIONS_IP_PRIVACY = "truncate"
    session_of(client).revoke()
    assert EndedSession.objects.get().ip == "203.0.113.0"

    client = sign_in(user)
    settings.USER_SESSIONS_IP_PRIVACY = "none"
    session_of(client).revoke()
    assert EndedSession.objects.filter(ip__isnull=True).count() == 1


def test_with_history_off_nothing_is_recorded(engine: str, sign_in: Any, user: Any, settings: Any):
    settings.USER_SESSIONS_HISTORY_DAYS = 0
    others = [sign_in(user) for _ in range(2)]
    laptop = sign_in(user)
    laptop.post(reverse("user_sessions:session_delete_other"))
    laptop.post("/logout/")
    assert [session_of(c) for c in others if Session.objects.exists()] == []
    assert not EndedSession.objects.exists()


def test_anonymous_sessions_leave_no_record():
    from user_sessions.backends.db import SessionStore

    store = SessionStore()
    store["cart"] = 1
    store.save()
    store.flush()
    Session.objects.all().delete()
    assert not EndedSession.objects.exists()


def test_deleting_the_owner_deletes_their_history(sign_in: Any, user: Any):
    session_of(sign_in(user)).revoke()
    assert EndedSession.objects.filter(user=user).exists()
    user.delete()
    assert not EndedSession.objects.exists()


# What it costs ---------------------------------------------------------------------------


def test_sign_out_all_others_writes_its_records_in_one_insert(engine: str, sign_in: Any, user: Any):
    for _ in range(4):
        sign_in(user, user_agent=SAFARI_IPHONE)
    laptop = sign_in(user)
    with CaptureQueriesContext(connection) as queries:
        laptop.post(reverse("user_sessions:session_delete_other"))
    assert statements(queries, RECORDS) == ["INSERT"]
    assert EndedSession.objects.filter(reason=Reason.SIGNED_OUT_ALL_OTHERS).count() == 4


def test_many_endings_write_one_insert_per_batch(
    sign_in: Any, user: Any, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(endings, "BATCH_SIZE", 2)
    for _ in range(5):
        sign_in(user)
    with CaptureQueriesContext(connection) as queries:
        assert endings.end_sessions(Session.objects.all(), Reason.LIFETIME) == 5
    assert statements(queries, RECORDS) == ["INSERT"] * 3
    assert statements(queries, SESSIONS) == ["SELECT", "DELETE"] * 3
    assert EndedSession.objects.filter(reason=Reason.LIFETIME).count() == 5


def test_a_logout_costs_one_statement_more_for_its_record(sign_in: Any, user: Any, settings: Any):
    settings.SESSION_ENGINE = "user_sessions.backends.db"

    def logout_statements() -> list[str]:
        client = sign_in(user)
        with CaptureQueriesContext(connection) as queries:
            client.post("/logout/")
        return statements(queries, SESSIONS) + statements(queries, RECORDS)

    settings.USER_SESSIONS_HISTORY_DAYS = 0
    without = logout_statements()
    settings.USER_SESSIONS_HISTORY_DAYS = 90
    assert logout_statements() == [*without, "INSERT"]


@pytest.mark.parametrize("path", ["/read/", "/write/", "/untouched/"])
def test_ordinary_requests_cost_what_they_cost_without_history(
    engine: str, sign_in: Any, user: Any, settings: Any, path: str
):
    client = sign_in(user)
    client.get("/read/")

    def cost() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(path).status_code == 200
        return len(queries.captured_queries)

    settings.USER_SESSIONS_HISTORY_DAYS = 0
    without = cost()
    settings.USER_SESSIONS_HISTORY_DAYS = 90
    assert cost() == without


# How long it stays ----------------------------------------------------------------------


def old_records(user: Any, count: int, days_ago: int) -> None:
    ended = timezone.now() - datetime.timedelta(days=days_ago)
    EndedSession.objects.bulk_create(
        [
            EndedSession(
                user=user,
                handle=f"old{days_ago}-{i}",
                ended_at=ended,
                reason=Reason.LOGOUT,
                ended_by=EndedBy.USER,
            )
            for i in range(count)
        ]
    )


def test_clearsessions_prunes_records_past_the_retention_in_batches(
    user: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
):
    settings.USER_SESSIONS_HISTORY_DAYS = 30
    monkeypatch.setattr(history, "PRUNE_BATCH_SIZE", 2)
    old_records(user, 5, days_ago=31)
    old_records(user, 2, days_ago=29)
    out = StringIO()

    with CaptureQueriesContext(connection) as queries:
        call_command("clearsessions", stdout=out)

    assert statements(queries, RECORDS) == ["SELECT", "DELETE"] * 3
    assert "Deleted 5 records of ended sessions." in out.getvalue()
    assert sorted(EndedSession.objects.values_list("handle", flat=True)) == [
        "old29-0",
        "old29-1",
    ]


def test_with_history_turned_off_clearsessions_drops_what_was_kept(user: Any, settings: Any):
    old_records(user, 2, days_ago=1)
    settings.USER_SESSIONS_HISTORY_DAYS = 0
    call_command("clearsessions", stdout=StringIO())
    assert not EndedSession.objects.exists()


# Where it shows: the widget's "Recent activity" -------------------------------------------


def end(user: AbstractBaseUser, reason: Reason, **fields: Any) -> Session:
    session = make_session(user, **fields)
    session.revoke(reason)
    return session


def test_recent_activity_lists_the_latest_endings_collapsed(
    user: AbstractBaseUser, settings: Any, geoip_settings: Any
) -> None:
    from tests.geoip import ZWOLLE_IP

    settings.USER_SESSIONS_HISTORY_WIDGET_LIMIT = 2
    current = make_session(user)
    end(user, Reason.EXPIRED, user_agent=SAFARI_IPHONE)
    end(user, Reason.PASSWORD_CHANGED, user_agent=CHROME_WINDOWS)
    end(user, Reason.LOGOUT, user_agent=FIREFOX_LINUX, ip=ZWOLLE_IP)
    EndedSession.objects.filter(reason=Reason.LOGOUT).update(
        ended_at=timezone.now() - datetime.timedelta(hours=2)
    )
    EndedSession.objects.filter(reason=Reason.EXPIRED).update(
        ended_at=timezone.now() - datetime.timedelta(days=3)
    )

    page = parse(render(page_request(user, current)))

    details = page.find("details", data_us_history=True)
    assert "open" not in details.attrs
    assert details.find("summary").text.strip() == "Recent activity"
    items = details.find_all("li")
    assert [li.find("span").text for li in items] == ["Chrome on Windows", "Firefox on Linux"]
    assert [li.find("time").text.strip() for li in items] == [
        "Password changed, 1 minute ago",
        "Signed out, 2 hours ago",
    ]
    assert items[1].find("p", text="Zwolle, Netherlands")
    assert details.find("ul").attrs["role"] == "list"


def test_recent_activity_says_when_nothing_ended(user: AbstractBaseUser) -> None:
    page = parse(render(page_request(user, make_session(user))))
    details = page.find("details", data_us_history=True)
    assert details.find("p", text="No session has ended recently.")


def test_recent_activity_shows_only_the_users_own_and_recent_endings(
    user: AbstractBaseUser, user_factory: Any, settings: Any
) -> None:
    settings.USER_SESSIONS_HISTORY_DAYS = 30
    end(user_factory(), Reason.LOGOUT)
    old_records(user, 1, days_ago=31)  # not pruned yet, but past the retention
    page = parse(render(page_request(user, make_session(user))))
    assert page.find("details", data_us_history=True).find_all("li") == []


def test_the_widget_costs_one_query_more_with_history_and_none_without(
    user: AbstractBaseUser, settings: Any, django_assert_num_queries: Any
) -> None:
    current = make_session(user)
    for _ in range(3):
        end(user, Reason.LOGOUT)
    request = page_request(user, current)

    settings.USER_SESSIONS_HISTORY_DAYS = 0
    with CaptureQueriesContext(connection) as without:
        html = render(request)
    assert parse(html).find_all("details", data_us_history=True) == []
    assert statements(without, RECORDS) == []

    settings.USER_SESSIONS_HISTORY_DAYS = 90
    with django_assert_num_queries(len(without.captured_queries) + 1):
        html = render(request)
    assert len(parse(html).find("details", data_us_history=True).find_all("li")) == 3


def test_a_limit_of_zero_leaves_the_section_out(user: AbstractBaseUser, settings: Any) -> None:
    settings.USER_SESSIONS_HISTORY_WIDGET_LIMIT = 0
    end(user, Reason.LOGOUT)
    with CaptureQueriesContext(connection) as queries:
        html = render(page_request(user, make_session(user)))
    assert parse(html).find_all("details", data_us_history=True) == []
    assert statements(queries, RECORDS) == []


def test_the_list_refresh_reads_no_history(auth_client: Client) -> None:
    session_of(auth_client)  # signed in
    with CaptureQueriesContext(connection) as queries:
        response = auth_client.get(reverse("user_sessions:session_list"), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert statements(queries, RECORDS) == []


def test_the_full_page_shows_recent_activity(auth_client: Client, user: Any) -> None:
    end(user, Reason.ADMIN, user_agent=SAFARI_IPHONE)
    page = parse(auth_client.get(reverse("user_sessions:session_list")).content.decode())
    item = page.find("details", data_us_history=True).find("li")
    assert item.find("span").text == "Safari on iPhone"
    assert item.find("time").text.strip() == "Ended by an administrator, 1 minute ago"


def test_recent_activity_is_a_template_of_its_own(
    user: AbstractBaseUser, settings: Any, tmp_path: Any
) -> None:
    override = tmp_path / "user_sessions" / "partials"
    override.mkdir(parents=True)
    (override / "history.html").write_text(
        "<p data-mine>{% for r in widget.recent_activity %}{{ r.reason }}{% endfor %}</p>"
    )
    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "DIRS": [str(tmp_path), *settings.TEMPLATES[0].get("DIRS", [])]}
    ]
    end(user, Reason.IDLE)
    html = render(page_request(user, make_session(user)), WIDGET)
    assert parse(html).find("p", data_mine=True).text == "idle"


# Where it shows: the admin ------------------------------------------------------------


@pytest.fixture
def staff(sign_in: Any, user_factory: Any) -> Client:
    admin_user = user_factory(is_staff=True, is_superuser=True)
    return sign_in(admin_user)


HISTORY_ADMIN = reverse("admin:user_sessions_endedsession_changelist")


def test_the_admin_lists_history_read_only_and_never_a_key(
    staff: Client, user: Any, sign_in: Any
) -> None:
    gone = session_of(sign_in(user, user_agent=SAFARI_IPHONE))
    gone.revoke()
    live_key = session_of(staff).session_key

    response = staff.get(HISTORY_ADMIN)

    assert response.status_code == 200
    html = response.content.decode()
    assert "Safari on iPhone" in html
    assert "Ended by an administrator" in html
    assert gone.session_key not in html and live_key not in html
    assert reverse("admin:user_sessions_endedsession_add") not in html
    record = EndedSession.objects.get()
    change = reverse("admin:user_sessions_endedsession_change", args=[record.pk])
    page = staff.get(change).content.decode()
    assert gone.handle in page
    assert 'name="_save"' not in page
    assert staff.post(change, {"reason": "logout"}).status_code == 403
    delete = reverse("admin:user_sessions_endedsession_delete", args=[record.pk])
    assert staff.post(delete, {"post": "yes"}).status_code == 403
    assert staff.get(reverse("admin:user_sessions_endedsession_add")).status_code == 403
    assert EndedSession.objects.get().reason == Reason.ADMIN


def test_the_history_admin_filters_only_as_declared(staff: Client, user: Any, sign_in: Any):
    session_of(sign_in(user)).revoke(Reason.IDLE)
    session_of(sign_in(user)).revoke(Reason.EXPIRED)

    idle = staff.get(HISTORY_ADMIN, {"reason__exact": "idle"})
    assert idle.status_code == 200
    assert [r.reason for r in idle.context["cl"].result_list] == [Reason.IDLE]
    assert staff.get(HISTORY_ADMIN, {"ended_by__exact": "system"}).status_code == 200
    assert staff.get(HISTORY_ADMIN, {"q": user.username}).status_code == 200
    for probe in ({"handle__startswith": "a"}, {"reason__regex": "."}, {"user__password": "x"}):
        assert staff.get(HISTORY_ADMIN, probe).status_code == 400, probe
