"""The JSON API (user_sessions.api): every endpoint, every error, checked against openapi.json.

Every response a test gets through :func:`call` is validated against the
operation and status the shipped OpenAPI document gives for it, and scanned
for session keys.
"""

# The fixtures imported from test_views are redefined as test arguments, as pytest means them.
# ruff: noqa: F811
from __future__ import annotations

import datetime
import json
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, connections
from django.http import HttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import get_resolver, reverse
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.conftest import FIREFOX_LINUX, SAFARI_IPHONE
from tests.test_views import (  # noqa: F401  (fixtures, and the helpers they share)
    _forget_seen_keys,
    _seen_keys,
    assert_no_session_keys,
    bulk_sessions,
    capped,
    laptop,
    phone,
    remember_keys,
    session_of,
    sign_in,
    signed_in_user,
)
from user_sessions import api, throttle
from user_sessions.events import EndedBy, Reason, SessionEvent, session_ended
from user_sessions.models import Session
from user_sessions.paging import Cursor

LIST = "/account/sessions/api/sessions/"
OTHERS = "/account/sessions/api/sessions/others/"
SCHEMA = "/account/sessions/api/openapi.json"
TOO_MANY = "Too many wrong passwords. Try again in a few minutes."


def one(handle: str) -> str:
    return f"/account/sessions/api/sessions/{handle}/"


# Responses against the OpenAPI document ------------------------------------------------

DOCUMENT = api.openapi_document()
_REGISTRY = Registry().with_resource(
    "urn:user-sessions-api", Resource.from_contents(DOCUMENT, default_specification=DRAFT202012)
)
_TEMPLATES = [
    (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path)
    for path in sorted(DOCUMENT["paths"], key=lambda p: "{" in p)  # literal paths first
]


def _resolve(obj: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in obj and obj["$ref"].startswith("#/components/responses/"):
        obj = DOCUMENT["components"]["responses"][obj["$ref"].rsplit("/", 1)[1]]
    return obj


def documented(path: str, method: str, status: int) -> dict[str, Any]:
    """The response object the document gives for this request and status; fails if none."""
    relative = path.removeprefix("/account/sessions").split("?")[0]
    template = next(t for pattern, t in _TEMPLATES if pattern.match(relative))
    operations = DOCUMENT["paths"][template]
    if status == 405:
        assert method.lower() not in operations, f"{method} {template} is documented"
        return _resolve({"$ref": "#/components/responses/MethodNotAllowed"})
    operation = operations[method.lower() if method != "HEAD" else "get"]
    responses = operation["responses"]
    assert str(status) in responses, f"{method} {template} answered an undocumented {status}"
    return _resolve(responses[str(status)])


def check(response: HttpResponse, path: str, method: str) -> Any:
    """Validate ``response`` against the document; return its JSON body."""
    spec = documented(path, method, response.status_code)
    if Session.objects.exists() or _seen_keys:
        assert_no_session_keys(response)
    for header in spec.get("headers", {}):
        assert response.has_header(header), f"{header} missing from {response.status_code}"
    if method == "HEAD":
        return None
    assert response["Content-Type"] == "application/json"
    body = json.loads(response.content)
    schema = spec["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator(
        _anchored(schema),
        registry=_REGISTRY,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    ).validate(body)
    return body


def _anchored(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its document-relative refs made absolute."""
    text = json.dumps(schema).replace('"$ref": "#/', '"$ref": "urn:user-sessions-api#/')
    anchored: dict[str, Any] = json.loads(text)
    return anchored


def call(
    client: Client,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | str | None = None,
    content_type: str = "application/json",
    **extra: Any,
) -> tuple[int, Any]:
    """One request, validated against the document: (status, JSON body)."""
    data: Any = raw if raw is not None else (json.dumps(body) if body is not None else "")
    remember_keys()
    response = client.generic(method, path, data, content_type=content_type, **extra)
    return response.status_code, check(response, path, method)


def code(body: Any) -> str:
    return str(body["error"]["code"])


# The list -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_list_current_first_then_by_activity(
    auth_client: Client, phone: Client, laptop: Client, user: AbstractBaseUser
) -> None:
    status, body = call(auth_client, "GET", LIST)

    assert status == 200
    sessions = body["sessions"]
    assert [s["handle"] for s in sessions] == [
        session_of(auth_client).handle,
        session_of(laptop).handle,
        session_of(phone).handle,
    ]
    here, latest, first = sessions
    assert here["is_current"] is True
    assert latest["is_current"] is first["is_current"] is False
    assert here["device"] == "Chrome on Windows"
    assert here["device_kind"] == "desktop"
    assert first["device"] == "Safari on iPhone"
    assert first["device_kind"] == "phone"
    assert first["ip"] == "198.51.100.7"
    assert first["is_recent"] is True
    assert first["url"] == one(first["handle"])
    assert first["signed_in_at"] == session_of(phone).created_at.isoformat()
    assert body["total"] == 3
    assert body["next"] is None


@pytest.mark.django_db
def test_list_has_the_recent_history(
    settings: Any, auth_client: Client, phone: Client, laptop: Client
) -> None:
    settings.USER_SESSIONS_HISTORY_WIDGET_LIMIT = 2
    here = session_of(auth_client).handle
    ended = session_of(phone).handle
    assert call(auth_client, "DELETE", one(ended))[0] == 200
    Session.objects.filter(pk=session_of(laptop).pk).revoke()  # the site's default reason

    _status, body = call(auth_client, "GET", LIST)

    admin, mine = body["history"]
    assert admin["reason"] == "admin"
    assert mine["handle"] == ended
    assert mine["device"] == "Safari on iPhone"
    assert mine["ip"] == "198.51.100.7"
    assert (mine["reason"], mine["ended_by"], mine["by_handle"]) == (
        "signed_out_elsewhere",
        "user",
        here,
    )
    assert mine["reason_label"] == "Signed out from another device"
    assert [s["handle"] for s in body["sessions"]] == [here]


@pytest.mark.django_db
def test_no_history_when_the_site_keeps_none(
    settings: Any, auth_client: Client, phone: Client
) -> None:
    settings.USER_SESSIONS_HISTORY_DAYS = 0
    call(auth_client, "DELETE", one(session_of(phone).handle))

    assert call(auth_client, "GET", LIST)[1]["history"] == []


@pytest.mark.django_db
def test_list_leaves_out_other_users_and_expired_sessions(
    auth_client: Client, phone: Client, browser_factory: Any, user_factory: Any
) -> None:
    sign_in(browser_factory(), user_factory(username="mallory"))
    Session.objects.filter(pk=session_of(phone).pk).update(expire_date="2000-01-01T00:00Z")

    status, body = call(auth_client, "GET", LIST)

    assert status == 200
    assert [s["handle"] for s in body["sessions"]] == [session_of(auth_client).handle]
    assert body["total"] == 1


@pytest.mark.django_db
@pytest.mark.parametrize(("privacy", "shown"), [("truncate", "198.51.100.0"), ("none", None)])
def test_list_shows_the_address_as_the_privacy_setting_kept_it(
    settings: Any, auth_client: Client, browser_factory: Any, user: Any, privacy: str, shown: Any
) -> None:
    settings.USER_SESSIONS_IP_PRIVACY = privacy
    phone = sign_in(browser_factory(user_agent=SAFARI_IPHONE, ip="198.51.100.7"), user)

    _status, body = call(auth_client, "GET", LIST)

    row = next(s for s in body["sessions"] if s["handle"] == session_of(phone).handle)
    assert row["ip"] == shown
    assert "198.51.100.7" not in json.dumps(body)


@pytest.mark.django_db
def test_pages_go_through_every_session_once(
    auth_client: Client, capped: Callable[..., list[Session]]
) -> None:
    bulk = capped(7, limit=2, page_size=3)

    status, first = call(auth_client, "GET", LIST)
    assert status == 200
    assert first["total"] == 8
    assert [s["is_current"] for s in first["sessions"]] == [True, False, False]
    seen = [s["handle"] for s in first["sessions"]]
    pages = 1
    url = first["next"]
    cursor_schema = DOCUMENT["paths"]["/api/sessions/"]["get"]["parameters"][0]["schema"]
    while url:
        # The cursor is what the document says clients may send.
        jsonschema.validate(parse_qs(urlsplit(url).query)["after"][0], cursor_schema)
        status, page = call(auth_client, "GET", url)
        assert status == 200
        assert "total" not in page
        assert not any(s["is_current"] for s in page["sessions"])
        seen += [s["handle"] for s in page["sessions"]]
        url = page["next"]
        pages += 1

    assert seen == [session_of(auth_client).handle] + [s.handle for s in bulk]
    assert pages == 3  # 1 + 2, then 3 + 2


@pytest.mark.django_db
def test_a_page_after_sign_outs_skips_and_repeats_nothing(
    auth_client: Client, capped: Callable[..., list[Session]]
) -> None:
    bulk = capped(6, limit=2, page_size=2)
    _status, first = call(auth_client, "GET", LIST)
    # Two shown rows end before the next page is asked for.
    Session.objects.filter(handle__in=[bulk[0].handle, bulk[1].handle]).revoke()

    _status, page = call(auth_client, "GET", first["next"])

    assert [s["handle"] for s in page["sessions"]] == [bulk[2].handle, bulk[3].handle]


@pytest.mark.django_db
def test_a_cursor_from_another_users_list_shows_nothing_of_theirs(
    auth_client: Client, phone: Client, browser_factory: Any, user_factory: Any
) -> None:
    mallory = sign_in(browser_factory(), user_factory(username="mallory"))
    theirs = Session.objects.get(pk=session_of(mallory).pk)
    cursor = Cursor(
        theirs.last_activity + datetime.timedelta(days=1), theirs.created_at, theirs.handle
    )

    status, page = call(auth_client, "GET", f"{LIST}?after={cursor.encode()}")

    assert status == 200
    assert [s["handle"] for s in page["sessions"]] == [session_of(phone).handle]


@pytest.mark.django_db
@pytest.mark.parametrize("cursor", ["", "nonsense", "1.2", "1.2.h/x", "²." * 3, "9" * 40 + ".1.a"])
def test_a_cursor_that_is_not_one_is_bad_input(auth_client: Client, cursor: str) -> None:
    status, body = call(auth_client, "GET", f"{LIST}?after={cursor}")

    assert status == 400
    assert code(body) == "invalid_cursor"


@pytest.mark.django_db
@pytest.mark.parametrize(("history_days", "queries"), [(90, 3), (0, 2)])
def test_list_query_count(
    settings: Any, auth_client: Client, user: AbstractBaseUser, history_days: int, queries: int
) -> None:
    settings.USER_SESSIONS_HISTORY_DAYS = history_days

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = auth_client.get(LIST)
        assert response.status_code == 200
        return len(queries)

    few = count()
    bulk_sessions(user, 49)
    many = count()
    _status, body = call(auth_client, "GET", LIST)

    # The session (its owner joined), the list and, with history on, its
    # latest records; more sessions than fit cost one query more: counting them.
    assert few == queries
    assert many == few + 1
    assert len(body["sessions"]) == 11
    assert body["total"] == 50
    with CaptureQueriesContext(connection) as queries:
        assert auth_client.get(body["next"]).status_code == 200
    assert len(queries) == 2  # the session and one page: no history there


@pytest.mark.django_db
def test_list_sets_the_csrf_cookie(user: AbstractBaseUser) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    response = client.get(LIST)

    assert response.status_code == 200
    assert response.cookies[settings.CSRF_COOKIE_NAME].value


@pytest.mark.django_db
def test_head_and_options(auth_client: Client) -> None:
    head = auth_client.head(LIST)
    check(head, LIST, "HEAD")
    assert head.status_code == 200
    assert head.content == b""

    options = auth_client.options(one("x"))
    assert options.status_code == 200
    assert options["Allow"] == "DELETE, OPTIONS"


# Signed out ---------------------------------------------------------------------------


REQUESTS = [("GET", LIST), ("DELETE", one("abc")), ("DELETE", OTHERS), ("POST", OTHERS)]


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), REQUESTS)
def test_signed_out_gets_401_never_a_redirect(
    client: Client, phone: Client, method: str, path: str
) -> None:
    status, body = call(client, method, path)

    assert status == 401
    assert code(body) == "not_authenticated"
    response = client.generic(method, path)
    assert response["WWW-Authenticate"] == 'Cookie realm="user_sessions", form-action="/login/"'
    assert signed_in_user(phone) != "user="


@pytest.mark.django_db
def test_login_required_middleware_leaves_the_401_to_the_api(settings: Any, client: Client) -> None:
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django.contrib.auth.middleware.LoginRequiredMiddleware",
    ]

    status, _body = call(client, "GET", LIST)
    schema = client.get(SCHEMA)

    assert status == 401
    assert schema.status_code == 200
    # The HTML views still send visitors to sign in.
    assert client.get("/account/sessions/").status_code == 302


@pytest.mark.django_db
def test_a_revoked_client_gets_401(auth_client: Client, phone: Client) -> None:
    Session.objects.filter(pk=session_of(phone).pk).revoke()

    status, body = call(phone, "GET", LIST)

    assert status == 401
    assert code(body) == "not_authenticated"


# Methods ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", LIST, "GET, HEAD, OPTIONS"),
        ("DELETE", LIST, "GET, HEAD, OPTIONS"),
        ("GET", one("abc"), "DELETE, OPTIONS"),
        ("POST", one("abc"), "DELETE, OPTIONS"),
        ("PUT", one("abc"), "DELETE, OPTIONS"),
        ("GET", OTHERS, "DELETE, POST, OPTIONS"),
        ("PATCH", OTHERS, "DELETE, POST, OPTIONS"),
        ("POST", SCHEMA, "GET, HEAD, OPTIONS"),
    ],
)
def test_other_methods_get_405_with_allow(
    auth_client: Client, phone: Client, method: str, path: str, allow: str
) -> None:
    response = auth_client.generic(method, path)

    body = check(response, path, method)
    assert response.status_code == 405
    assert response["Allow"] == allow
    assert code(body) == "method_not_allowed"
    assert signed_in_user(phone) != "user="


# Signing out one session --------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ["db", "cached_db"], indirect=True)
def test_sign_out_another_session(
    engine: str,
    auth_client: Client,
    phone: Client,
    laptop: Client,
    django_capture_on_commit_callbacks: Any,
) -> None:
    events: list[SessionEvent] = []

    def receiver(event: SessionEvent, **kwargs: Any) -> None:
        events.append(event)

    target = session_of(phone).handle
    session_ended.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            status, body = call(auth_client, "DELETE", one(target))
    finally:
        session_ended.disconnect(receiver)

    assert status == 200
    assert body == {"ended": 1, "signed_out": False}
    assert signed_in_user(phone) == "user="
    assert signed_in_user(laptop) != "user="
    assert signed_in_user(auth_client) != "user="
    assert [(e.handle, e.reason, e.ended_by, e.by_handle) for e in events] == [
        (target, Reason.SIGNED_OUT_ELSEWHERE, EndedBy.USER, session_of(auth_client).handle)
    ]


@pytest.mark.django_db
def test_signing_out_this_session_is_a_logout(auth_client: Client) -> None:
    handle = session_of(auth_client).handle
    remember_keys()

    response = auth_client.delete(one(handle))

    assert check(response, one(handle), "DELETE") == {"ended": 1, "signed_out": True}
    assert response.cookies[settings.SESSION_COOKIE_NAME].value == ""
    assert not Session.objects.filter(handle=handle).exists()
    assert call(auth_client, "GET", LIST)[0] == 401


@pytest.mark.django_db
@pytest.mark.parametrize("history_days", [90, 0])
def test_unknown_and_other_users_handles_get_the_same_404(
    settings: Any,
    auth_client: Client,
    phone: Client,
    browser_factory: Any,
    user_factory: Any,
    history_days: int,
) -> None:
    settings.USER_SESSIONS_HISTORY_DAYS = history_days
    mallory = user_factory(username="mallory")
    theirs = session_of(sign_in(browser_factory(), mallory)).handle
    # Mallory's ended session has a history record, but it is not alice's.
    their_ended = session_of(sign_in(browser_factory(), mallory)).handle
    Session.objects.filter(handle=their_ended).revoke()
    ended = session_of(phone).handle
    Session.objects.filter(handle=ended).revoke()
    remember_keys()

    answers = {}
    handles = [theirs, their_ended, ended, "x" * 22, "others-not", "a" * 33, "%00", "%C3%A9", ".."]
    for handle in handles:
        response = auth_client.delete(one(handle))
        check(response, one(handle), "DELETE")
        answers[handle] = (
            response.status_code,
            response.content,
            # Less the two headers that tell the time.
            sorted((k, v) for k, v in response.headers.items() if k not in {"Date", "Expires"}),
        )

    assert answers[theirs][0] == 404
    assert json.loads(answers[theirs][1])["error"]["code"] == "not_found"
    if history_days:
        # alice's own ended session: her history says so.
        gone = answers.pop(ended)
        assert gone[0] == 410
        assert json.loads(gone[1])["error"]["code"] == "ended"
    assert len(set(map(repr, answers.values()))) == 1, answers
    assert signed_in_user(session_client(mallory, theirs)) != "user="


def session_client(user: AbstractBaseUser, handle: str) -> Client:
    """A client holding the cookie of ``user``'s session ``handle``."""
    client = Client()
    key = Session.objects.get(user=user, handle=handle).session_key
    client.cookies[settings.SESSION_COOKIE_NAME] = key
    return client


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("history_days", "answer"), [(90, (410, "ended")), (0, (404, "not_found"))]
)
def test_a_session_ended_meanwhile(
    settings: Any,
    auth_client: Client,
    phone: Client,
    monkeypatch: pytest.MonkeyPatch,
    history_days: int,
    answer: tuple[int, str],
) -> None:
    settings.USER_SESSIONS_HISTORY_DAYS = history_days
    target = session_of(phone).handle
    real = api.end_sessions

    def racing(*args: Any, **kwargs: Any) -> int:
        Session.objects.filter(handle=target).revoke()  # another request wins
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "end_sessions", racing)

    status, body = call(auth_client, "DELETE", one(target))

    assert (status, code(body)) == answer


@pytest.mark.django_db
def test_sign_out_costs(auth_client: Client, phone: Client, laptop: Client) -> None:
    target = session_of(phone).handle

    with CaptureQueriesContext(connection) as one_query:
        assert auth_client.delete(one(target)).status_code == 200
    with CaptureQueriesContext(connection) as others_query:
        assert auth_client.delete(OTHERS).status_code == 200

    def statements(queries: CaptureQueriesContext) -> list[str]:
        # Less the savepoint the sign-out's transaction is inside a test.
        return [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]]

    # The session; the target and this session's handle (one query); what
    # the history record needs, the DELETE and the record's INSERT.
    assert len(statements(one_query)) == 5
    # The session; this session's handle; then as above.
    assert len(statements(others_query)) == 5


# Signing out all the others -----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["DELETE", "POST"])
def test_sign_out_all_others(
    auth_client: Client,
    phone: Client,
    laptop: Client,
    browser_factory: Any,
    user_factory: Any,
    method: str,
    django_capture_on_commit_callbacks: Any,
) -> None:
    mallory = sign_in(browser_factory(), user_factory(username="mallory"))
    here = session_of(auth_client).handle
    ended: list[SessionEvent] = []

    def receiver(event: SessionEvent, **kwargs: Any) -> None:
        ended.append(event)

    session_ended.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            status, body = call(auth_client, method, OTHERS)
    finally:
        session_ended.disconnect(receiver)

    assert status == 200
    assert body == {"ended": 2, "signed_out": False}
    assert signed_in_user(phone) == signed_in_user(laptop) == "user="
    assert signed_in_user(auth_client) != "user="
    assert signed_in_user(mallory) != "user="
    assert {(e.reason, e.ended_by, e.by_handle) for e in ended} == {
        (Reason.SIGNED_OUT_ALL_OTHERS, EndedBy.USER, here)
    }
    # Nothing left: a second request ends none.
    assert call(auth_client, method, OTHERS)[1] == {"ended": 0, "signed_out": False}


@pytest.mark.django_db
def test_sign_out_all_others_reaches_beyond_the_first_page(
    auth_client: Client, capped: Callable[..., list[Session]], user: AbstractBaseUser
) -> None:
    capped(30, limit=2)

    _status, body = call(auth_client, "DELETE", OTHERS)

    assert body["ended"] == 30
    assert list(Session.objects.filter(user=user).values_list("handle", flat=True)) == [
        session_of(auth_client).handle
    ]


# CSRF ---------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["DELETE", "POST"])
def test_csrf_is_enforced_and_refused_in_json(
    user: AbstractBaseUser, phone: Client, method: str
) -> None:
    strict = Client(enforce_csrf_checks=True, HTTP_USER_AGENT=FIREFOX_LINUX)
    strict.force_login(user)
    target = session_of(phone).handle
    path = one(target) if method == "DELETE" else OTHERS

    missing = call(strict, method, path)
    strict.get(LIST)  # the client picks up its token
    token = strict.cookies[settings.CSRF_COOKIE_NAME].value
    wrong = call(strict, method, path, HTTP_X_CSRFTOKEN="x" * len(token))
    cross_site = call(
        strict,
        method,
        path,
        HTTP_X_CSRFTOKEN=token,
        HTTP_ORIGIN="https://evil.example",
        secure=True,
    )

    for status, body in (missing, wrong, cross_site):
        assert status == 403
        assert code(body) == "csrf_failed"
    assert missing[1]["error"]["message"] == "CSRF cookie not set."
    assert Session.objects.filter(handle=target).exists()

    accepted = call(strict, method, path, HTTP_X_CSRFTOKEN=token)

    assert accepted == (200, {"ended": 1, "signed_out": False})
    assert signed_in_user(phone) == "user="


@pytest.mark.django_db
def test_a_csrf_failure_is_logged_as_django_logs_it(user: AbstractBaseUser, caplog: Any) -> None:
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)

    with caplog.at_level("WARNING", logger="django.security.csrf"):
        strict.delete(OTHERS)

    assert [r.getMessage() for r in caplog.records] == [
        f"Forbidden (CSRF cookie not set.): {OTHERS}"
    ]


# Password and attempts ----------------------------------------------------------------


@pytest.fixture
def password_required(settings: Any) -> None:
    settings.USER_SESSIONS_REQUIRE_PASSWORD = "others"
    settings.USER_SESSIONS_PASSWORD_ATTEMPTS = 3


@pytest.mark.django_db
@pytest.mark.usefixtures("password_required")
@pytest.mark.parametrize("target", ["one", "others"])
def test_password_when_the_site_asks_for_it(
    auth_client: Client, phone: Client, target: str
) -> None:
    path = one(session_of(phone).handle) if target == "one" else OTHERS

    none = call(auth_client, "DELETE", path)
    empty = call(auth_client, "DELETE", path, {"password": ""})
    wrong = call(auth_client, "DELETE", path, {"password": "guess"})

    assert (none[0], code(none[1])) == (403, "password_required")
    assert (empty[0], code(empty[1])) == (403, "password_required")
    assert (wrong[0], code(wrong[1])) == (403, "password_incorrect")
    assert wrong[1]["error"]["message"] == "The password is not correct."
    assert signed_in_user(phone) != "user="

    right = call(auth_client, "DELETE", path, {"password": "secret-password"})

    assert right == (200, {"ended": 1, "signed_out": False})
    assert signed_in_user(phone) == "user="


@pytest.mark.django_db
@pytest.mark.usefixtures("password_required")
def test_signing_this_session_out_needs_no_password(auth_client: Client) -> None:
    status, body = call(auth_client, "DELETE", one(session_of(auth_client).handle))

    assert (status, body) == (200, {"ended": 1, "signed_out": True})


@pytest.mark.django_db
@pytest.mark.usefixtures("password_required")
def test_an_unknown_handle_costs_no_attempt(auth_client: Client, phone: Client) -> None:
    for _ in range(5):
        assert call(auth_client, "DELETE", one("x" * 22), {"password": "guess"})[0] == 404

    assert call(auth_client, "DELETE", OTHERS, {"password": "secret-password"})[0] == 200


@pytest.mark.django_db
@pytest.mark.usefixtures("password_required")
def test_wrong_passwords_lock_the_session_that_made_them(
    auth_client: Client, phone: Client, browser_factory: Any, user: Any
) -> None:
    answers = [call(auth_client, "DELETE", OTHERS, {"password": f"guess-{n}"}) for n in range(3)]

    # The last allowed attempt already says what happens next.
    assert [(s, code(b)) for s, b in answers] == [
        (403, "password_incorrect"),
        (403, "password_incorrect"),
        (429, "too_many_attempts"),
    ]
    assert answers[2][1]["error"]["message"] == TOO_MANY
    # Locked: even the right password is not checked.
    response = auth_client.delete(OTHERS, {"password": "secret-password"}, "application/json")
    assert check(response, OTHERS, "DELETE")["error"]["code"] == "too_many_attempts"
    assert response["Retry-After"] == "300"
    assert signed_in_user(phone) != "user="
    # Another session of the same account is not locked.
    laptop = sign_in(browser_factory(), user)
    assert call(laptop, "DELETE", OTHERS, {"password": "secret-password"})[0] == 200
    assert signed_in_user(phone) == signed_in_user(auth_client) == "user="


@pytest.mark.django_db
@pytest.mark.usefixtures("password_required")
def test_the_api_and_the_dialog_share_one_count(auth_client: Client, phone: Client) -> None:
    html = "/account/sessions/others/delete/"
    for n in range(2):
        auth_client.post(html, {"password": f"guess-{n}"}, HTTP_HX_REQUEST="true")

    # The dialog used two of three: this wrong one is the last.
    status, body = call(auth_client, "DELETE", OTHERS, {"password": "guess-2"})

    assert (status, code(body)) == (429, "too_many_attempts")
    locked = call(auth_client, "DELETE", OTHERS, {"password": "secret-password"})
    assert (locked[0], code(locked[1])) == (429, "too_many_attempts")
    assert signed_in_user(phone) != "user="


@pytest.mark.django_db
@pytest.mark.usefixtures("password_required")
def test_parallel_guesses_cannot_slip_under_the_limit(
    auth_client: Client, phone: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The count is taken before the password is checked (throttle.reserve),
    # so requests racing each other are limited like sequential ones.
    taken: list[int | None] = []
    real = throttle.reserve

    def reserve(session: Any) -> int | None:
        number = real(session)
        taken.append(number)
        return number

    monkeypatch.setattr(throttle, "reserve", reserve)
    statuses = [
        call(auth_client, "DELETE", OTHERS, {"password": f"guess-{n}"})[0] for n in range(5)
    ]

    assert taken == [1, 2, 3, None, None]
    assert statuses == [403, 403, 429, 429, 429]


# Bad input ----------------------------------------------------------------------------


BAD_BODIES = [
    ("{", "application/json", 400, "invalid_json"),
    ("[1, 2]", "application/json", 400, "invalid_body"),
    ("null", "application/json", 400, "invalid_body"),
    ('"secret-password"', "application/json", 400, "invalid_body"),
    ('{"password": 1}', "application/json", 400, "invalid_body"),
    ('{"password": null}', "application/json", 400, "invalid_body"),
    ('{"password": ["secret-password"]}', "application/json", 400, "invalid_body"),
    ('{"pasword": "secret-password"}', "application/json", 400, "invalid_body"),
    (b'{"password": "\xff\xfe"}', "application/json", 400, "invalid_json"),
    ("[" * 100_000, "application/json", 413, "body_too_large"),
    ("[" * 5_000 + "]" * 5_000, "application/json", 413, "body_too_large"),
    ('{"password": "' + "p" * 9000 + '"}', "application/json", 413, "body_too_large"),
    (
        "password=secret-password",
        "application/x-www-form-urlencoded",
        415,
        "unsupported_media_type",
    ),
    ('{"password": "secret-password"}', "text/plain", 415, "unsupported_media_type"),
    ('{"password": "secret-password"}', "application/jsonp", 415, "unsupported_media_type"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("raw", "content_type", "status", "error"), BAD_BODIES)
@pytest.mark.parametrize("target", ["one", "others"])
def test_bad_bodies_are_refused_and_end_nothing(
    auth_client: Client,
    phone: Client,
    raw: str | bytes,
    content_type: str,
    status: int,
    error: str,
    target: str,
) -> None:
    path = one(session_of(phone).handle) if target == "one" else OTHERS

    answer = call(auth_client, "DELETE", path, raw=raw, content_type=content_type)

    assert (answer[0], code(answer[1])) == (status, error)
    assert signed_in_user(phone) != "user="


@pytest.mark.django_db
def test_deeply_nested_json_is_bad_input(auth_client: Client, phone: Client) -> None:
    status, body = call(auth_client, "DELETE", OTHERS, raw="[" * 4_000 + "]" * 4_000)

    # Python 3.11 stops at its recursion limit (not JSON it can read), 3.12+
    # reads a list (not an object): a 400 either way, never a 500.
    assert (status, code(body)) in {(400, "invalid_json"), (400, "invalid_body")}
    assert signed_in_user(phone) != "user="


@pytest.mark.django_db
def test_json_with_a_charset_and_a_body_on_post(auth_client: Client, phone: Client) -> None:
    status, body = call(
        auth_client,
        "POST",
        OTHERS,
        {"password": "x"},
        content_type="application/json; charset=utf-8",
    )

    assert (status, body) == (200, {"ended": 1, "signed_out": False})


@pytest.mark.django_db
def test_a_huge_form_post_is_refused_before_the_csrf_check_reads_it(
    settings: Any, user: AbstractBaseUser, phone: Client
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    body = "csrfmiddlewaretoken=x&padding=" + "p" * 50_000

    status, answer = call(
        strict, "POST", OTHERS, raw=body, content_type="application/x-www-form-urlencoded"
    )

    assert (status, code(answer)) == (413, "body_too_large")


@pytest.mark.django_db
def test_a_body_bigger_than_it_says_is_still_refused(auth_client: Client, phone: Client) -> None:
    big = json.dumps({"password": "p" * 20_000}).encode()
    remember_keys()

    response = auth_client.generic(
        "DELETE", OTHERS, big, content_type="application/json", CONTENT_LENGTH="10"
    )

    # Django reads what the client declared, so the rest is never seen: the
    # request is a short, broken JSON text.
    assert (response.status_code, code(check(response, OTHERS, "DELETE"))) == (
        400,
        "invalid_json",
    )
    assert signed_in_user(phone) != "user="


# Racing requests ----------------------------------------------------------------------


needs_shared_database = pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"),
    reason="needs PostgreSQL or MariaDB: in-memory SQLite locks whole tables between threads "
    "instead of waiting (USER_SESSIONS_TEST_DB=postgres|mysql)",
)


def _in_threads(work: Callable[[int], Any], count: int) -> list[Any]:
    start = threading.Barrier(count)

    def run(n: int) -> Any:
        try:
            start.wait()
            return work(n)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


@needs_shared_database
@pytest.mark.django_db(transaction=True)
def test_parallel_sign_out_all_others_ends_each_session_once(
    auth_client: Client, user: AbstractBaseUser
) -> None:
    bulk_sessions(user, 40)
    token_client = auth_client

    answers = _in_threads(lambda _n: call(token_client, "DELETE", OTHERS), 4)

    assert [status for status, _body in answers] == [200] * 4
    assert sum(body["ended"] for _status, body in answers) == 40
    assert Session.objects.filter(user=user).count() == 1
    assert signed_in_user(auth_client) != "user="


@needs_shared_database
@pytest.mark.django_db(transaction=True)
def test_devices_signing_each_other_out_at_once(
    browser_factory: Any, user: AbstractBaseUser
) -> None:
    devices = [sign_in(browser_factory(ip=f"192.0.2.{n + 1}"), user) for n in range(4)]

    answers = _in_threads(lambda n: call(devices[n], "DELETE", OTHERS), 4)

    # Each request either ended others or found itself ended first (all four
    # may end: each can pass its sign-in check before the others delete it);
    # none failed, and no session was counted twice.
    assert {status for status, _body in answers} <= {200, 401}
    ended = sum(body["ended"] for status, body in answers if status == 200)
    assert ended + Session.objects.filter(user=user).count() == 4


@needs_shared_database
@pytest.mark.django_db(transaction=True)
def test_parallel_sign_outs_of_one_session_end_it_once(
    auth_client: Client, phone: Client, user: AbstractBaseUser
) -> None:
    target = session_of(phone).handle

    answers = _in_threads(lambda _n: call(auth_client, "DELETE", one(target)), 4)

    # One request ended it; the others learn it had ended (its history record).
    assert sorted(status for status, _body in answers) == [200, 410, 410, 410]
    assert [body for status, body in answers if status == 200] == [
        {"ended": 1, "signed_out": False}
    ]
    assert signed_in_user(phone) == "user="


# The OpenAPI document -----------------------------------------------------------------


@pytest.mark.django_db
def test_the_document_is_served_to_anyone(client: Client) -> None:
    response = client.get(SCHEMA)

    assert response.status_code == 200
    served = json.loads(response.content)
    assert served["servers"] == [{"url": "/account/sessions"}]
    assert served["components"]["securitySchemes"]["session"]["name"] == "sessionid"
    assert served["components"]["securitySchemes"]["csrf"]["name"] == "X-CSRFToken"
    assert {k: v for k, v in served.items() if k != "servers"} == {
        k: v for k, v in DOCUMENT.items() if k != "servers"
    }


@pytest.mark.django_db
def test_the_document_names_this_sites_cookie_and_header(settings: Any, client: Client) -> None:
    settings.SESSION_COOKIE_NAME = "sid"
    settings.CSRF_HEADER_NAME = "HTTP_X_XSRF_TOKEN"

    schemes = json.loads(client.get(SCHEMA).content)["components"]["securitySchemes"]

    assert schemes["session"]["name"] == "sid"
    assert schemes["csrf"]["name"] == "X-XSRF-TOKEN"
    assert DOCUMENT["components"]["securitySchemes"]["session"]["name"] == "sessionid"


def test_the_document_describes_exactly_the_mounted_api() -> None:
    _prefix, mounted = get_resolver().namespace_dict["user_sessions"]
    api_routes = {
        "/" + str(pattern.pattern).replace("<str:handle>", "{handle}")
        for pattern in mounted.url_patterns
        if str(pattern.pattern).startswith("api/")
    }

    assert api_routes == set(DOCUMENT["paths"])


def test_every_schema_is_valid_and_every_reference_resolves() -> None:
    for schema in DOCUMENT["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    refs = re.findall(r'"\$ref": "#/([^"]+)"', json.dumps(DOCUMENT))
    assert refs
    for ref in refs:
        node: Any = DOCUMENT
        for part in ref.split("/"):
            node = node[part]
        assert isinstance(node, dict)
    for path, operations in DOCUMENT["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            assert operation["responses"], (path, method)
            assert len(operation["operationId"]) > 3


def test_the_documents_codes_are_the_events_codes() -> None:
    ended = DOCUMENT["components"]["schemas"]["EndedSession"]["properties"]
    assert ended["reason"]["enum"] == [reason.value for reason in Reason]
    assert ended["ended_by"]["enum"] == [who.value for who in EndedBy]


def test_the_document_is_shipped_in_the_package() -> None:
    from importlib import resources

    assert resources.files("user_sessions").joinpath("openapi.json").is_file()
    assert reverse("user_sessions:api_schema") == SCHEMA


# Under ASGI ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_same_answers_under_asgi(user: AbstractBaseUser, phone: Client) -> None:
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    target = session_of(phone).handle

    async def requests() -> list[tuple[HttpResponse, str, str]]:
        client = AsyncClient()
        signed_out = await client.get(LIST)
        await client.aforce_login(user)
        listed = await client.get(LIST)
        bad = await client.delete(OTHERS, "{", content_type="application/json")
        ended = await client.delete(one(target), "{}", content_type="application/json")
        return [
            (signed_out, LIST, "GET"),
            (listed, LIST, "GET"),
            (bad, OTHERS, "DELETE"),
            (ended, one(target), "DELETE"),
        ]

    remember_keys()
    answers = [(r.status_code, check(r, p, m)) for r, p, m in async_to_sync(requests)()]
    (out, _), (listed, body), (bad, error), (ended, result) = answers

    assert (out, listed, bad, ended) == (401, 200, 400, 200)
    assert len(body["sessions"]) == 2
    assert code(error) == "invalid_json"
    assert result == {"ended": 1, "signed_out": False}


@pytest.mark.django_db
@pytest.mark.usefixtures("password_required")
@pytest.mark.parametrize("target", ["one", "others"])
def test_a_password_that_is_no_text_is_refused_not_a_500(
    auth_client: Client, phone: Client, target: str
) -> None:
    # JSON may spell a lone surrogate; no form post can, and hashing it fails.
    path = one(session_of(phone).handle) if target == "one" else OTHERS

    status, body = call(auth_client, "DELETE", path, raw='{"password": "\\ud800"}')

    assert (status, code(body)) == (400, "invalid_body")
    assert signed_in_user(phone) != "user="
