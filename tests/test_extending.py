"""A site's own session model, wired as Django documents (``get_model_class()``).

``SiteSession`` extends ``AbstractSession`` with a column of its own;
``PlainSession`` has only ``AbstractBaseSession``'s columns (tests/testapp/models.py).
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth import SESSION_KEY
from django.contrib.auth import views as auth_views
from django.core.management import call_command
from django.db.migrations.loader import MigrationLoader
from django.test import Client
from django.urls import include, path, reverse
from django.utils import timezone

from tests.conftest import FIREFOX_LINUX
from tests.testapp import plain_engine, site_engine
from tests.testapp.models import PlainSession, SiteSession
from user_sessions.admin import SessionAdmin
from user_sessions.checks import check_session_model
from user_sessions.models import Session, get_session_model

pytestmark = pytest.mark.django_db

SITE_ENGINE = "tests.testapp.site_engine"
PLAIN_ENGINE = "tests.testapp.plain_engine"

# The admin a site would set up for its model (see test_the_admin_lists_the_sites_model).
site_admin = admin.AdminSite(name="admin")
site_admin.register(SiteSession, SessionAdmin)
urlpatterns = [
    path("admin/", site_admin.urls),
    path("login/", auth_views.LoginView.as_view()),
    path("account/sessions/", include("user_sessions.urls")),
]


@pytest.fixture
def site_engine_on(settings: Any) -> Any:
    settings.SESSION_ENGINE = SITE_ENGINE
    return settings


def sign_in(client: Client, user: Any) -> Client:
    response = client.post("/login/", {"username": user.username, "password": "secret-password"})
    assert response.status_code == 302
    return client


# -- AbstractSession ----------------------------------------------------------------


def test_the_abstract_model_carries_every_column_and_the_api():
    columns = {field.name for field in SiteSession._meta.concrete_fields}
    assert columns == {field.name for field in Session._meta.concrete_fields} | {"trusted_device"}
    assert SiteSession._meta.db_table == "testapp_sitesession"
    assert [index.name for index in SiteSession._meta.indexes] == ["testapp_sitesession_recent"]
    for name in ("active", "expired", "revoke", "encode", "save"):
        assert callable(getattr(SiteSession.objects, name))


def test_migrations_for_the_sites_model_carry_the_columns_and_index():
    # tests/testapp/migrations/0001_initial.py is what makemigrations wrote for it.
    call_command("makemigrations", "testapp", check=True, dry_run=True, verbosity=0)
    state = MigrationLoader(None).project_state().models["testapp", "sitesession"]
    assert set(state.fields) == {field.name for field in SiteSession._meta.concrete_fields}
    assert [index.name for index in state.options["indexes"]] == ["testapp_sitesession_recent"]


def test_the_package_model_keeps_its_migration_state():
    call_command("makemigrations", "user_sessions", check=True, dry_run=True, verbosity=0)
    assert Session._meta.get_field("user").remote_field.related_name == "session_set"  # type: ignore[union-attr]


def test_the_store_records_everything_on_the_sites_model(user: Any):
    store = site_engine.SessionStore(user_agent=FIREFOX_LINUX, ip="203.0.113.9")
    store[SESSION_KEY] = str(user.pk)
    store["trusted_device"] = True
    store.save()
    row = SiteSession.objects.get()
    assert (row.user, row.ip, row.user_agent, row.trusted_device) == (
        user,
        "203.0.113.9",
        FIREFOX_LINUX,
        True,
    )
    assert not Session.objects.exists()
    assert list(user.sitesession_set.all()) == [row]  # beside user.session_set, no clash
    handle, signed_in = row.handle, row.created_at

    # A later save writes the site's column (from create_model_instance, as
    # Django's store does) and never the handle or sign-in time.
    again = site_engine.SessionStore(store.session_key, user_agent=FIREFOX_LINUX, ip="203.0.113.9")
    again["trusted_device"] = False
    again.save()
    row.refresh_from_db()
    assert (row.trusted_device, row.handle, row.created_at) == (False, handle, signed_in)


def test_the_sites_model_needs_no_warning(site_engine_on: Any):
    assert check_session_model() == []
    assert get_session_model() is SiteSession


def test_the_widget_lists_and_signs_out_sessions_of_the_sites_model(
    site_engine_on: Any, browser_factory: Any, user: Any
):
    laptop = sign_in(browser_factory(), user)
    phone = sign_in(browser_factory(FIREFOX_LINUX, "198.51.100.5"), user)
    assert SiteSession.objects.filter(user=user).count() == 2
    phone_row = SiteSession.objects.get(session_key=phone.cookies["sessionid"].value)

    page = laptop.get(reverse("user_sessions:session_list"))
    assert page.status_code == 200
    assert phone_row.handle in page.content.decode()

    response = laptop.post(reverse("user_sessions:session_delete", args=[phone_row.handle]))
    assert response.status_code == 302
    assert not SiteSession.objects.filter(pk=phone_row.pk).exists()
    assert phone.get(reverse("user_sessions:session_list")).status_code == 302  # signed out


def test_a_password_change_ends_the_users_sessions_of_the_sites_model(
    site_engine_on: Any,
    browser_factory: Any,
    user: Any,
    django_capture_on_commit_callbacks: Any,
):
    sign_in(browser_factory(), user)
    sign_in(browser_factory(FIREFOX_LINUX, "198.51.100.5"), user)
    assert SiteSession.objects.filter(user=user).count() == 2
    with django_capture_on_commit_callbacks(execute=True):
        user.set_password("another-password")
        user.save()
    assert not SiteSession.objects.filter(user=user).exists()


@pytest.mark.urls("tests.test_extending")
def test_the_admin_lists_the_sites_model(
    site_engine_on: Any, admin_client: Client, browser_factory: Any, user: Any
):
    sign_in(browser_factory(FIREFOX_LINUX, "198.51.100.5"), user)
    row = SiteSession.objects.get(user=user)
    page = admin_client.get("/admin/testapp/sitesession/")
    assert page.status_code == 200
    assert row.handle in page.content.decode()
    assert row.session_key not in page.content.decode()


# -- a model with AbstractBaseSession's columns only ---------------------------------


def test_the_store_writes_only_the_columns_a_plain_model_has(user: Any):
    store = plain_engine.SessionStore(user_agent=FIREFOX_LINUX, ip="203.0.113.9")
    store[SESSION_KEY] = str(user.pk)
    store.save()
    row = PlainSession.objects.get()
    assert (row.get_decoded(), row.account_id) == ({SESSION_KEY: str(user.pk)}, user.pk)

    loaded = plain_engine.SessionStore(
        store.session_key, user_agent=FIREFOX_LINUX, ip="203.0.113.9"
    )
    assert loaded[SESSION_KEY] == str(user.pk)
    assert loaded.user_id == user.pk
    # Nothing to track: no activity is ever due, touch() writes nothing.
    assert loaded.activity_due(timezone.now() + datetime.timedelta(days=1)) is False
    loaded.pop(SESSION_KEY)
    loaded.save()
    row.refresh_from_db()
    assert (row.get_decoded(), row.account_id) == ({}, None)

    old_key = loaded.session_key
    loaded[SESSION_KEY] = str(user.pk)
    loaded.cycle_key()
    assert loaded.session_key != old_key
    assert list(PlainSession.objects.values_list("session_key", flat=True)) == [loaded.session_key]
    loaded.delete()
    assert not PlainSession.objects.exists()
    assert not Session.objects.exists()


def test_a_plain_model_through_the_middleware(settings: Any, browser_factory: Any, user: Any):
    settings.SESSION_ENGINE = PLAIN_ENGINE
    client = sign_in(browser_factory(), user)
    assert client.get("/read/").content == f"user={user.pk}".encode()
    assert client.get("/write/").json() == {"counter": 1}
    assert PlainSession.objects.get().account_id == user.pk


def test_what_needs_our_columns_says_so_through_a_check(settings: Any):
    settings.SESSION_ENGINE = PLAIN_ENGINE
    [warning] = check_session_model()
    assert warning.id == "user_sessions.W011"
    assert warning.obj is PlainSession
    assert "testapp.PlainSession" in warning.msg
    assert "user, ip, user_agent, created_at, last_activity, handle" in warning.msg
    assert "widget" in warning.msg and "admin" in warning.msg and "activity" in warning.msg
    assert "AbstractSession" in (warning.hint or "")
    # What uses the columns stays on the package's model: no FieldError.
    assert get_session_model() is Session
