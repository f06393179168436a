from __future__ import annotations

import datetime
from collections.abc import Callable
from importlib import import_module
from typing import Any

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.exceptions import DisallowedModelAdminLookup
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import quote
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.conftest import FIREFOX_LINUX, SAFARI_IPHONE
from tests.geoip import ZWOLLE_IP
from user_sessions.admin import SessionAdmin
from user_sessions.models import Session

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:user_sessions_session_changelist")


@pytest.fixture
def user(user_factory: Callable[..., Any]) -> Any:
    # ``auth_client`` signs this user in; the admin needs a superuser.
    return user_factory(
        username="alice", email="alice@example.com", is_staff=True, is_superuser=True
    )


@pytest.fixture
def bob(user_factory: Callable[..., Any]) -> Any:
    return user_factory(username="bob", email="bob@example.org")


@pytest.fixture
def sign_in(browser_factory: Callable[..., Client]) -> Callable[..., Client]:
    """Sign ``user`` in from a new browser: one more real session row."""

    def make(user: Any, **browser: Any) -> Client:
        client = browser_factory(**browser)
        response = client.post(
            "/login/", {"username": user.username, "password": "secret-password"}
        )
        assert response.status_code == 302
        return client

    return make


def change_url(session: Session) -> str:
    return reverse("admin:user_sessions_session_change", args=[quote(session.handle)])


def session_key_of(client: Client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def shown_handles(response: Any) -> set[str]:
    return {session.handle for session in response.context["cl"].result_list}


def assert_no_secrets(response: Any) -> None:
    html = response.content.decode()
    for key, data in Session.objects.values_list("session_key", "session_data"):
        assert key not in html
        assert data not in html


def revoke(client: Client, *sessions: Session, **query: str) -> Any:
    return client.post(
        reverse("admin:user_sessions_session_changelist", query=query or None),
        {
            "action": "revoke_sessions",
            ACTION_CHECKBOX_NAME: [session.handle for session in sessions],
            "index": "0",
        },
        follow=True,
    )


@pytest.mark.usefixtures("geoip_settings")
def test_changelist_shows_owner_device_location_and_links_by_handle(
    auth_client: Client, sign_in: Callable[..., Client], bob: Any
):
    sign_in(bob, user_agent=SAFARI_IPHONE, ip=ZWOLLE_IP)
    sign_in(bob, user_agent=FIREFOX_LINUX, ip="198.51.100.7")

    response = auth_client.get(CHANGELIST)

    assert response.status_code == 200
    html = response.content.decode()
    for text in ["bob", "alice", "Safari on iPhone", "Firefox on Linux", "Zwolle, Netherlands"]:
        assert text in html
    for session in Session.objects.all():
        assert f'href="{change_url(session)}' in html
        assert f'name="{ACTION_CHECKBOX_NAME}" value="{session.handle}"' in html
    assert 'alt="True"' in html  # the status column


@pytest.mark.usefixtures("geoip_settings")
def test_detail_page_is_read_only_and_reached_by_handle(
    auth_client: Client, sign_in: Callable[..., Client], bob: Any
):
    sign_in(bob, user_agent=SAFARI_IPHONE, ip=ZWOLLE_IP)
    session = Session.objects.get(user=bob)

    response = auth_client.get(change_url(session))

    assert response.status_code == 200
    html = response.content.decode()
    for text in [SAFARI_IPHONE, ZWOLLE_IP, "Safari on iPhone", "Zwolle, Netherlands", "bob"]:
        assert text in html
    assert 'name="ip"' not in html  # shown, not editable
    assert not response.context["has_change_permission"]
    assert not response.context["has_delete_permission"]


def test_session_key_in_a_url_finds_nothing(
    auth_client: Client, sign_in: Callable[..., Client], bob: Any
):
    key = session_key_of(sign_in(bob))

    url = change_url(Session(handle=key))
    response = auth_client.get(url)
    assert response.status_code == 302
    assert response.url == reverse("admin:index")
    # Whatever field a _to_field names, it is refused before any lookup.
    assert auth_client.get(f"{url}?_to_field=session_key").status_code == 400


def test_there_is_no_history_page(auth_client: Client, sign_in: Callable[..., Client], bob: Any):
    sign_in(bob)
    session = Session.objects.get(user=bob)

    response = auth_client.get(change_url(session))

    history = reverse("admin:user_sessions_session_history", args=[quote(session.handle)])
    assert history not in response.content.decode()
    assert auth_client.get(history).status_code == 404


@pytest.mark.usefixtures("geoip_settings")
def test_no_page_shows_a_session_key_or_data(
    auth_client: Client, sign_in: Callable[..., Client], bob: Any
):
    for ip in [ZWOLLE_IP, "198.51.100.7", "2001:db8:1::7"]:
        sign_in(bob, user_agent=SAFARI_IPHONE, ip=ip)
    session = Session.objects.filter(user=bob).first()
    assert session is not None

    pages = [
        CHANGELIST,
        f"{CHANGELIST}?q=bob",
        f"{CHANGELIST}?q={ZWOLLE_IP}",
        f"{CHANGELIST}?status=active&owner=mine",
        f"{CHANGELIST}?_popup=1",
        f"{CHANGELIST}?_facets=1",
        change_url(session),
        reverse("admin:index"),
        reverse("admin:app_list", args=["user_sessions"]),
    ]
    for page in pages:
        response = auth_client.get(page)
        assert response.status_code == 200, page
        assert_no_secrets(response)

    response = revoke(auth_client, session)
    assert response.status_code == 200
    assert_no_secrets(response)


def test_status_filter(auth_client: Client, sign_in: Callable[..., Client], bob: Any):
    for _ in range(3):
        sign_in(bob)
    expired = Session.objects.filter(user=bob)[:2]
    Session.objects.filter(pk__in=[s.pk for s in expired]).update(
        expire_date=timezone.now() - datetime.timedelta(minutes=1)
    )
    expired_handles = {s.handle for s in Session.objects.expired()}
    active_handles = {s.handle for s in Session.objects.active()}
    assert len(expired_handles) == 2
    assert len(active_handles) == 2  # bob's last one, and alice's own

    assert shown_handles(auth_client.get(f"{CHANGELIST}?status=expired")) == expired_handles
    assert shown_handles(auth_client.get(f"{CHANGELIST}?status=active")) == active_handles
    assert len(shown_handles(auth_client.get(CHANGELIST))) == 4


def test_owner_filter_mine_and_everyone(
    auth_client: Client, sign_in: Callable[..., Client], user: Any, bob: Any
):
    sign_in(bob)
    sign_in(user, user_agent=FIREFOX_LINUX)
    mine = {s.handle for s in Session.objects.filter(user=user)}
    assert len(mine) == 2

    assert shown_handles(auth_client.get(f"{CHANGELIST}?owner=mine")) == mine
    response = auth_client.get(CHANGELIST)
    assert len(shown_handles(response)) == 3
    html = response.content.decode()
    assert "Everyone" in html
    assert "Mine" in html


def test_search_by_username_email_and_ip(
    auth_client: Client, sign_in: Callable[..., Client], bob: Any
):
    sign_in(bob, ip="198.51.100.7")
    bobs = {s.handle for s in Session.objects.filter(user=bob)}
    alices = set(Session.objects.exclude(user=bob).values_list("handle", flat=True))

    assert shown_handles(auth_client.get(CHANGELIST, {"q": "bob"})) == bobs
    assert shown_handles(auth_client.get(CHANGELIST, {"q": "bob@example.org"})) == bobs
    assert shown_handles(auth_client.get(CHANGELIST, {"q": "198.51.100"})) == bobs
    assert shown_handles(auth_client.get(CHANGELIST, {"q": "203.0.113.10"})) == alices
    assert shown_handles(auth_client.get(CHANGELIST, {"q": "nobody"})) == set()


def test_search_never_matches_on_the_session_key(
    auth_client: Client, sign_in: Callable[..., Client], bob: Any
):
    key = session_key_of(sign_in(bob))

    assert shown_handles(auth_client.get(CHANGELIST, {"q": key})) == set()


def test_revoke_action_signs_the_sessions_out(
    engine: str, auth_client: Client, sign_in: Callable[..., Client], bob: Any
):
    phone = sign_in(bob, user_agent=SAFARI_IPHONE)
    laptop = sign_in(bob, user_agent=FIREFOX_LINUX)
    phone_key = session_key_of(phone)
    assert phone.get("/read/").content == f"user={bob.pk}".encode()
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    assert store_class(phone_key).load()  # cached now, for cached_db

    response = revoke(auth_client, Session.objects.get(session_key=phone_key))

    assert response.status_code == 200
    assert "1 session was signed out." in response.content.decode()
    assert not Session.objects.filter(session_key=phone_key).exists()
    assert store_class(phone_key).load() == {}
    assert phone.get("/read/").content == b"user="
    assert laptop.get("/read/").content == f"user={bob.pk}".encode()


def test_revoke_action_reports_plural_count(
    auth_client: Client, sign_in: Callable[..., Client], bob: Any
):
    sign_in(bob)
    sign_in(bob)

    response = revoke(auth_client, *Session.objects.filter(user=bob), q="bob")

    assert "2 sessions were signed out." in response.content.decode()
    assert not Session.objects.filter(user=bob).exists()
    assert Session.objects.count() == 1  # alice's own is untouched


def test_revoke_action_ignores_keys_posted_as_selection(
    auth_client: Client, sign_in: Callable[..., Client], bob: Any
):
    key = session_key_of(sign_in(bob))

    auth_client.post(
        CHANGELIST,
        {"action": "revoke_sessions", ACTION_CHECKBOX_NAME: [key], "index": "0"},
    )

    assert Session.objects.filter(session_key=key).exists()


def test_revoke_action_needs_the_delete_permission(
    sign_in: Callable[..., Client], user_factory: Callable[..., Any], bob: Any
):
    from django.contrib.auth.models import Permission

    viewer = user_factory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_session"))
    client = sign_in(viewer)
    sign_in(bob)

    response = client.get(CHANGELIST)

    assert response.status_code == 200
    assert "revoke_sessions" not in response.content.decode()
    revoke(client, *Session.objects.filter(user=bob))
    assert Session.objects.filter(user=bob).exists()


def test_only_the_revoke_action_is_offered(auth_client: Client):
    response = auth_client.get(CHANGELIST)

    choices = [name for name, _label in response.context["action_form"].fields["action"].choices]
    assert choices == ["", "revoke_sessions"]


def test_changelist_query_count_does_not_grow_with_sessions(
    auth_client: Client, sign_in: Callable[..., Client], user_factory: Callable[..., Any]
):
    def queries_for_changelist() -> int:
        with CaptureQueriesContext(connection) as context:
            assert auth_client.get(CHANGELIST).status_code == 200
        return len(context.captured_queries)

    for _ in range(2):
        sign_in(user_factory())
    few = queries_for_changelist()
    for _ in range(8):
        sign_in(user_factory())

    assert Session.objects.count() == 11
    assert queries_for_changelist() == few


def test_add_change_and_delete_are_refused(
    auth_client: Client, sign_in: Callable[..., Client], bob: Any
):
    sign_in(bob)
    session = Session.objects.get(user=bob)
    handle = quote(session.handle)

    assert auth_client.get(reverse("admin:user_sessions_session_add")).status_code == 403
    response = auth_client.post(change_url(session), {"ip": "192.0.2.1"})
    assert response.status_code == 403
    delete_url = reverse("admin:user_sessions_session_delete", args=[handle])
    assert auth_client.get(delete_url).status_code == 403
    assert auth_client.post(delete_url, {"post": "yes"}).status_code == 403
    session.refresh_from_db()
    assert session.ip == "203.0.113.10"


def test_staff_only(sign_in: Callable[..., Client], bob: Any):
    client = sign_in(bob)

    response = client.get(CHANGELIST)

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_a_subclass_can_declare_field_filters_and_a_date_hierarchy(
    rf: Any, user: Any, sign_in: Callable[..., Client], bob: Any
):
    # lookup_allowed refuses all but the declared filters' parameters; a site
    # that declares more filters must not find them refused.
    class SiteSessionAdmin(SessionAdmin):
        list_filter = [*SessionAdmin.list_filter, "ip", ("user", admin.RelatedOnlyFieldListFilter)]
        date_hierarchy = "created_at"

    model_admin = SiteSessionAdmin(Session, admin.site)
    sign_in(bob, ip="198.51.100.7")
    sign_in(user)
    bobs = {s.handle for s in Session.objects.filter(user=bob)}
    today = timezone.now()

    def changelist(**query: Any) -> set[str]:
        request = rf.get(CHANGELIST, query)
        request.user = user
        response = model_admin.changelist_view(request)
        return {session.handle for session in response.context_data["cl"].result_list}

    assert changelist(ip="198.51.100.7") == bobs
    assert changelist(user__id__exact=str(bob.pk)) == bobs
    assert changelist(user__isnull="True") == set()
    day = {
        "created_at__year": today.year,
        "created_at__month": today.month,
        "created_at__day": today.day,
    }
    assert len(changelist(**day)) == 2
    assert changelist(created_at__year=str(today.year - 1)) == set()
    for refused in [
        {"ip__regex": "^198"},
        {"created_at__gte": "2000-01-01"},
        {"user__session_set__session_key__startswith": "a"},
        {"user__password__startswith": "m"},
        {"session_key__startswith": "a"},
    ]:
        with pytest.raises(DisallowedModelAdminLookup):
            changelist(**refused)
