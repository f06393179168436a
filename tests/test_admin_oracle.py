"""The Session admin answers a right and a wrong guess about a session key the same way.

The reported attack: a staff user who may only view sessions put
``?session_key__startswith=a`` in the changelist address, saw whether the
superuser's row stayed, and recovered the whole key one character at a time.
Each test here sends a guess that matches a real session and one that does not
and requires the two answers to be the same, for every lookup registered on
``session_key`` and ``session_data`` and for every other way a guess can reach
the admin.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, quote_plus, urlencode

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import build_q_object_from_lookup_parameters, prepare_lookup_value
from django.contrib.auth.models import Permission
from django.core.exceptions import FieldError, ValidationError
from django.db import DatabaseError, connection, transaction
from django.db.models import CharField, Field, Lookup, TextField, Transform
from django.db.models.functions import Length, Lower
from django.test import Client
from django.test.utils import CaptureQueriesContext, register_lookup
from django.urls import reverse

from tests import test_admin
from tests.test_admin import (
    CHANGELIST,
    assert_no_secrets,
    change_url,
    session_key_of,
    shown_handles,
)
from user_sessions.admin import SessionAdmin
from user_sessions.models import Session

pytestmark = pytest.mark.django_db
sign_in = test_admin.sign_in  # a fixture, shared with the other admin tests

AUTOCOMPLETE = reverse("admin:autocomplete")
# The primary key is session_key under another name.
SECRET_FIELDS = ("session_key", "pk", "session_data")
# The same fields reached back through the owner: user -> all their sessions.
WALK_BACK = "user__session_set__"
NOWHERE = "zq-no-session-has-this-zq"
CSRF_TOKEN = re.compile(r'(name="csrfmiddlewaretoken" value=")[^"]+"')


@pytest.fixture
def user(user_factory: Callable[..., Any]) -> Any:
    """The attacker (``auth_client``): staff, allowed only to view sessions."""
    viewer = user_factory(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_session"))
    return viewer


@pytest.fixture(autouse=True)
def steady_activity(settings: Any) -> None:
    # Pages compared with each other must not differ by a fresh last-activity write.
    settings.USER_SESSIONS_ACTIVITY_INTERVAL = 86400


@pytest.fixture
def target(sign_in: Callable[..., Client], user_factory: Callable[..., Any]) -> Session:
    """The superuser's real session, the one worth stealing."""
    root = user_factory(username="root", is_staff=True, is_superuser=True)
    key = session_key_of(sign_in(root))
    return Session.objects.get(session_key=key)


@pytest.fixture
def site_transforms() -> Iterator[None]:
    # Django registers no transforms on text fields, but a site may (Lower and
    # Length are common); each one opens a family of lookups to walk.
    with register_lookup(CharField, Lower, Length), register_lookup(TextField, Lower, Length):
        yield


def lookups_of(field: Field[Any, Any]) -> Iterator[str]:
    """Every lookup Django accepts on ``field``, one transform deep."""
    column = field.get_col(Session._meta.db_table)
    for name, lookup in field.get_lookups().items():
        if issubclass(lookup, Transform):
            for inner, inner_lookup in lookup(column).output_field.get_lookups().items():
                if issubclass(inner_lookup, Lookup):
                    yield f"{name}__{inner}"
        elif issubclass(lookup, Lookup):
            yield name


def near_miss(text: str) -> str:
    """``text`` with its last character changed: the wrong guess closest to a right one."""
    return text[:-1] + ("b" if text[-1:] != "b" else "c")


def candidates(actual: Any) -> list[str]:
    """URL values that may or may not match ``actual``, in the order an attacker tries them."""
    if isinstance(actual, int):
        number = str(actual)
        return [number, str(actual - 1), str(actual + 1), "0", f"{number},{actual + 9}", "1,2"]
    text = str(actual)
    prefix, suffix, middle = text[:6], text[-6:], text[3:9]
    return [
        prefix,
        near_miss(prefix),
        suffix,
        near_miss(suffix),
        middle,
        prefix.upper(),
        f"^{re.escape(prefix)}",
        f"^{re.escape(near_miss(prefix))}",
        f"{re.escape(suffix)}$",
        text,
        f"{text},{NOWHERE}",
        f"{NOWHERE},{NOWHERE}2",
        # A two-character value is the only one ``__range`` can take from a URL.
        f"{text[0]}{chr(ord(text[0]) + 1)}",
        "",
        "0",
        "1",
        NOWHERE,
    ]


def probe(session: Session, lookup: str, value: str) -> bool | None:
    """Whether ``session`` matches ``lookup=value`` as the admin filters; None if refused."""
    parameters = {lookup: prepare_lookup_value(lookup, [value])}
    try:
        with transaction.atomic():
            matching = Session.objects.filter(build_q_object_from_lookup_parameters(parameters))
            return matching.filter(pk=session.pk).exists()
    except (DatabaseError, FieldError, ValidationError, ValueError, TypeError, IndexError):
        return None


def guesses(session: Session, lookup: str) -> tuple[str, str, bool]:
    """A right and a wrong guess for ``lookup``, and whether a right one exists at all.

    Some lookups cannot match from a URL (``__range`` on a number, say); they
    still get two different guesses, which must also be answered alike.
    """
    field_path = lookup.rsplit("__", 1)[0]
    actual = Session.objects.filter(pk=session.pk).values_list(field_path, flat=True).get()
    right = wrong = None
    for value in candidates(actual):
        matched = probe(session, lookup, value)
        if matched and right is None:
            right = value
        elif matched is False and wrong is None:
            wrong = value
    if right is None:
        return NOWHERE, near_miss(NOWHERE), False
    return right, wrong if wrong is not None else NOWHERE, True


def echo_forms(guess: str) -> set[str]:
    """How a page may repeat a guess back: raw, escaped, URL-quoted (once or twice)."""
    forms = {guess}
    for encode in (quote_plus, lambda text: quote(text, safe="")):
        once = encode(guess)
        forms |= {once, encode(once), encode(f"={guess}"), encode(encode(f"={guess}"))}
    return {escaped for form in forms if form for escaped in (form, html.escape(form))}


def answer(response: Any, *guesses: str) -> tuple[Any, ...]:
    """What an attacker learns from a response, minus the parts that differ per request.

    A page may repeat the guess it was sent (a search box does); that tells the
    attacker nothing, so it is replaced before the comparison. Whatever is left
    must not contain any session's key or data.
    """
    body = CSRF_TOKEN.sub(r'\1"', response.content.decode())
    location = response.get("Location", "")
    chain = [url for url, _status in getattr(response, "redirect_chain", [])]
    for guess in sorted(guesses, key=len, reverse=True):
        for form in sorted(echo_forms(guess), key=len, reverse=True):
            body = body.replace(form, "<guess>")
            location = location.replace(form, "<guess>")
            chain = [url.replace(form, "<guess>") for url in chain]
    assert_no_secrets(SimpleNamespace(content=body.encode()))
    return response.status_code, location, chain, body


def compare(differences: list[str], name: str, right: Any, wrong: Any, *guesses: str) -> None:
    """Note in ``differences`` if the two answers differ, or if either is a server error."""
    right_answer, wrong_answer = answer(right, *guesses), answer(wrong, *guesses)
    statuses = f"right guess -> {right_answer[0]}, wrong guess -> {wrong_answer[0]}"
    if right_answer[0] >= 500 or wrong_answer[0] >= 500:
        differences.append(f"{name}: server error: {statuses}")
    elif right_answer != wrong_answer:
        same_status = right_answer[0] == wrong_answer[0]
        differences.append(f"{name}: {statuses}{' (different page)' if same_status else ''}")


@pytest.mark.usefixtures("site_transforms")
def test_no_lookup_on_the_secret_fields_answers_a_right_guess_differently(
    auth_client: Client, target: Session
):
    auth_client.raise_request_exception = False  # a 500 is an answer too
    # The viewer sees the superuser's row, so a filter keeping or dropping it would tell.
    assert target.handle in shown_handles(auth_client.get(CHANGELIST))
    differences: list[str] = []
    matchable: dict[str, set[str]] = {}

    for field_name in SECRET_FIELDS:
        field = Session._meta.pk if field_name == "pk" else Session._meta.get_field(field_name)
        assert isinstance(field, Field)
        for lookup in lookups_of(field):
            path = f"{field_name}__{lookup}"
            right, wrong, can_match = guesses(target, path)
            if can_match:
                matchable.setdefault(field_name, set()).add(lookup)
            for prefix in ("", WALK_BACK):
                if prefix and "__" in lookup:
                    continue  # one relational walk per plain lookup is enough
                param = f"{prefix}{path}"
                with CaptureQueriesContext(connection) as queries:
                    right_response = auth_client.get(CHANGELIST, {param: right})
                compare(
                    differences,
                    f"{param}={right!r} vs {wrong!r}",
                    right_response,
                    auth_client.get(CHANGELIST, {param: wrong}),
                    right,
                    wrong,
                )
                if right_response.status_code == 400 and len(right) > 3:
                    # Refused before the guess reached the database (so no timing tells either).
                    assert not [q["sql"] for q in queries.captured_queries if right in q["sql"]]

    assert differences == [], "\n".join(["answers that give the key away:", *differences])
    # The walk is only worth something if the classic probes could really match.
    assert {"exact", "startswith", "regex", "contains", "gt", "in", "isnull"} <= matchable[
        "session_key"
    ]
    assert {"startswith", "contains", "lower__startswith", "length__exact"} <= matchable[
        "session_data"
    ]


def test_no_other_parameter_answers_a_right_guess_differently(auth_client: Client, target: Session):
    key, data = target.session_key, target.session_data
    prefix = key[:6]
    handle_url = change_url(target)
    differences: list[str] = []
    auth_client.raise_request_exception = False  # a 500 is an answer too

    def pair(name: str, url: Callable[[str], str], right: str, wrong: str, **post: Any) -> None:
        if post:
            responses = [
                auth_client.post(url(guess), {k: v(guess) for k, v in post.items()}, follow=True)
                for guess in (right, wrong)
            ]
        else:
            responses = [auth_client.get(url(guess), follow=True) for guess in (right, wrong)]
        compare(differences, name, *responses, right, wrong)

    def autocomplete(field_name: str, term: str) -> str:
        query = {"app_label": "user_sessions", "model_name": "session", "field_name": field_name}
        return f"{AUTOCOMPLETE}?{urlencode({**query, 'term': term})}"

    def changelist(**params: str) -> Callable[[str], str]:
        return lambda guess: (
            f"{CHANGELIST}?{urlencode({k: v.format(guess) for k, v in params.items()})}"
        )

    wrong_prefix = near_miss(prefix)
    guess_filter = "session_key__startswith"
    # Search: the declared fields are username, email and IP, never the key or data.
    pair("q=<key prefix>", changelist(q="{}"), prefix, wrong_prefix)
    pair("q=<key>", changelist(q="{}"), key, near_miss(key))
    pair("q=<data>", changelist(q="{}"), data[:12], near_miss(data[:12]))
    # A guess next to the changelist's own parameters.
    for extra in ({"o": "1"}, {"o": "-99"}, {"p": "1"}, {"p": "2"}, {"all": ""}, {"e": "1"}):
        pair(
            f"{extra} & {guess_filter}",
            changelist(**extra, **{guess_filter: "{}"}),
            prefix,
            wrong_prefix,
        )
    pair("_facets & filter", changelist(_facets="1", **{guess_filter: "{}"}), prefix, wrong_prefix)
    pair(
        "status & filter", changelist(status="active", **{guess_filter: "{}"}), prefix, wrong_prefix
    )
    # Popups and _to_field: a popup row would hand its pk (the key) to the opener.
    for to_field in ("session_key", "session_data", "pk", "handle"):
        pair(
            f"_popup&_to_field={to_field}",
            changelist(_popup="1", _to_field=to_field, **{guess_filter: "{}"}),
            prefix,
            wrong_prefix,
        )
    pair("_popup=1 & filter", changelist(_popup="1", **{guess_filter: "{}"}), prefix, wrong_prefix)
    # Date-hierarchy style parameters carrying a guess.
    pair("session_key__year", changelist(session_key__year="{}"), "2025", "2024")
    # The change page: by key instead of handle, and with preserved filters.
    pair(
        "change page named by the key",
        lambda guess: change_url(Session(handle=guess)),
        key,
        near_miss(key),
    )
    for param in (guess_filter, "session_key", "session_data__contains"):
        right = key if param == "session_key" else prefix if param == guess_filter else data[:12]
        for extra in ("", "&_popup=1"):
            pair(
                f"change page _changelist_filters={param}{extra}",
                lambda guess, param=param, extra=extra: (
                    f"{handle_url}?{urlencode({'_changelist_filters': f'{param}={guess}'})}{extra}"
                ),
                right,
                near_miss(right),
            )
    # The admin's autocomplete endpoint, asked about sessions from every side.
    for field_name in ("session_key", "session_data", "pk", "user", "user__session_set"):
        pair(
            f"autocomplete field_name={field_name}",
            lambda guess, field_name=field_name: autocomplete(field_name, guess),
            prefix,
            wrong_prefix,
        )
    # The action POST: a view-only user sending the revoke action with keys.
    pair(
        "revoke action POST with a key",
        lambda guess: CHANGELIST,
        key,
        near_miss(key),
        action=lambda guess: "revoke_sessions",
        index=lambda guess: "0",
        **{ACTION_CHECKBOX_NAME: lambda guess: [guess]},
    )

    assert differences == [], "\n".join(["answers that give the key away:", *differences])
    assert Session.objects.filter(pk=target.pk).exists()


def test_revoke_action_does_not_match_posted_keys(
    sign_in: Callable[..., Client], user_factory: Callable[..., Any], target: Session
):
    revoker = user_factory(is_staff=True)
    revoker.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_session", "delete_session"])
    )
    client = sign_in(revoker)
    key = target.session_key
    differences: list[str] = []

    for selection in ([key], [key, key[:6]]):
        responses = [
            client.post(
                CHANGELIST,
                {"action": "revoke_sessions", ACTION_CHECKBOX_NAME: guess, "index": "0"},
                follow=True,
            )
            for guess in (selection, [near_miss(value) for value in selection])
        ]
        compare(differences, f"revoke {len(selection)} keys", *responses, key, near_miss(key))
        assert "Items must be selected" in responses[0].content.decode()

    assert differences == []
    assert Session.objects.filter(pk=target.pk).exists()


def test_no_ordering_falls_back_to_the_session_key(auth_client: Client, target: Session):
    # Rows that tie on the chosen column are put in some fixed order; if that
    # order were the key's, sessions an attacker owns would bracket another's key.
    columns = len(SessionAdmin.list_display) + 1  # the action checkbox, for those who may revoke
    orders = [f"{sign}{index}" for sign in ("", "-") for index in range(-2, columns + 2)]
    orders += ["0.1.2", "-1.-3", "x", "99", "-99", "1.1", ""]
    for order in orders:
        with CaptureQueriesContext(connection) as queries:
            response = auth_client.get(CHANGELIST, {"o": order})
        assert response.status_code == 200, order
        listing = [q["sql"] for q in queries.captured_queries if "ORDER BY" in q["sql"].upper()]
        assert listing, order
        for sql in listing:
            order_by = sql.upper().rsplit("ORDER BY", 1)[1]
            assert "SESSION_KEY" not in order_by, (order, sql)
            assert "SESSION_DATA" not in order_by, (order, sql)


@pytest.mark.parametrize(
    "query",
    [
        {"session_key__startswith": "a"},
        {"session_key": "a"},
        {"pk__regex": "^a"},
        {"session_data__contains": "a"},
        {"user__session_set__session_key__startswith": "a"},
        {"user__session_set": "a"},
        {"user__password__startswith": "m"},
        {"user__username": "root"},
        {"ip": "203.0.113.10"},
        {"created_at__year": "2025"},
        {"expire_date__gte": "2025-01-01"},
        {"handle": "abc"},
        {"owner__exact": "mine"},
        {"_changelist_filters": "status=active"},
        {"_to_field": "session_key"},
        {"_to_field": "handle"},
    ],
    ids=lambda query: "&".join(f"{k}={v}" for k, v in query.items()),
)
def test_changelist_refuses_what_is_not_a_declared_filter(
    auth_client: Client, target: Session, query: dict[str, str]
):
    response = auth_client.get(CHANGELIST, query)

    assert response.status_code == 400
    assert_no_secrets(response)


def test_change_page_refuses_to_field_and_drops_undeclared_preserved_filters(
    auth_client: Client, target: Session
):
    url = change_url(target)

    assert auth_client.get(f"{url}?_to_field=session_key").status_code == 400
    guess = f"session_key__startswith={target.session_key[:4]}"
    response = auth_client.get(
        url, {"_changelist_filters": f"{guess}&status=active&q=bob&o=1&_popup=1&e=1"}
    )

    assert response.status_code == 200
    html_text = response.content.decode()
    assert "session_key" not in html_text
    # The way back keeps the search, the declared filter and the ordering, and nothing else.
    assert f'href="{CHANGELIST}?status=active&amp;q=bob&amp;o=1"' in html_text


def test_declared_filters_and_search_still_answer_a_view_only_user(
    auth_client: Client, user: Any, target: Session
):
    mine = set(Session.objects.filter(user=user).values_list("handle", flat=True))
    assert len(mine) == 1

    assert shown_handles(auth_client.get(CHANGELIST, {"owner": "mine"})) == mine
    assert shown_handles(auth_client.get(CHANGELIST, {"status": "active"})) == mine | {
        target.handle
    }
    assert shown_handles(auth_client.get(CHANGELIST, {"status": "expired"})) == set()
    assert shown_handles(auth_client.get(CHANGELIST, {"q": "root"})) == {target.handle}
    assert shown_handles(auth_client.get(CHANGELIST, {"q": "203.0.113"})) == mine | {target.handle}
    both = auth_client.get(
        CHANGELIST, {"q": "viewer", "status": "active", "o": "-1", "_facets": ""}
    )
    assert shown_handles(both) == mine
