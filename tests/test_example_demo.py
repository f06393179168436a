"""The example site's demo data: what a newcomer sees after ``scripts/example``.

Runs the example's own commands in a subprocess (its settings, a throwaway
database), as scripts/example does, then reads alice's widget.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.filebased import EmailBackend

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "example") not in sys.path:
    sys.path.append(str(REPO / "example"))

from example_site.outbox import read_outbox  # noqa: E402

from tests.conftest import in_the_sqlite_run_only  # noqa: E402

# The demo site runs on a SQLite file of its own, whatever the suite's database.
pytestmark = in_the_sqlite_run_only

pytest.importorskip("mmdb_writer", reason="the demo GeoIP database is written with mmdb-writer")

READ_WIDGET = textwrap.dedent(
    """
    import django
    django.setup()
    from django.test import Client
    from tests.test_views import parse, rows

    firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
    client = Client(HTTP_USER_AGENT=firefox, HTTP_HOST="127.0.0.1")
    response = client.post("/login/", {"username": "alice", "password": "demo-password"})
    assert response.status_code == 302, response.status_code
    page = parse(client.get("/account/").content)
    for row in rows(page):
        label = row.find("span", class_="us-row__device").text
        kind = row.find("svg").attrs["class"].split()[-1].removeprefix("us-icon--")
        facts = {
            fact.find("dt").text: fact.find("dd").text
            for fact in row.find_all("div", class_="us-row__fact")
        }
        print(label, "|", kind, "|", facts.get("Location", ""))
    """
)


READ_OUTBOX = textwrap.dedent(
    """
    import django
    django.setup()
    from django.test import Client
    from tests.test_views import parse

    def sign_in(user_agent):
        client = Client(HTTP_USER_AGENT=user_agent, HTTP_HOST="127.0.0.1")
        response = client.post("/login/", {"username": "bob", "password": "demo-password"})
        assert response.status_code == 302, response.status_code
        return client

    sign_in("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0")
    sign_in(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
    )
    reader = Client(HTTP_HOST="127.0.0.1")  # the outbox needs no sign-in
    page = parse(reader.get("/outbox/").content)
    print(" ".join(page.find("p", class_="demo-note").text.split()))
    for mail in page.find_all("article"):
        print("mail", mail.find("h2").text, "|", mail.find_all("dd")[0].text)
        frame = mail.find("iframe")
        print("sandbox", frame.attrs["sandbox"])
        print("base", '<base target="_top">' in frame.attrs["srcdoc"])
        link = mail.find("pre").find("a").attrs["href"]
        print("link in html", link in frame.attrs["srcdoc"])
        confirm = parse(reader.get(link).content)
        print("link opens", confirm.find("h1").text)
    """
)


def run(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        args, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_demo_sessions_show_devices_places_and_icons(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "EXAMPLE_DB_PATH": str(tmp_path / "db.sqlite3"),
        "EXAMPLE_GEOIP_PATH": str(tmp_path / "Demo-City.mmdb"),
        "EXAMPLE_FAST_HASHER": "1",
        "DJANGO_SETTINGS_MODULE": "example_site.settings",
        "PYTHONPATH": os.pathsep.join([str(REPO / "example"), str(REPO)]),
    }
    manage = [sys.executable, "example/manage.py"]
    run([*manage, "migrate", "--no-input", "-v0"], env)
    run([*manage, "create_demo_users", "-v0"], env)
    run([*manage, "create_demo_sessions"], env)
    # Again: demo sessions are replaced, not added.
    assert run([*manage, "create_demo_sessions"], env) == "5 demo sessions for 'alice'\n"

    lines = run([sys.executable, "-c", READ_WIDGET], env).splitlines()
    assert lines == [
        "Firefox on Linux | desktop | ",  # this browser, on 127.0.0.1: no place
        "Chrome on Windows 11 | desktop | Zwolle, Netherlands",
        "Chrome on Pixel 8 | phone | São Paulo, Brazil",
        "Edge on macOS 15 | desktop | Berlin, Germany",
        "Safari on iPad | tablet | Tokyo, Japan",
        "Firefox on Linux | desktop | Toronto, Canada",
    ]


def test_outbox_shows_the_sign_in_alert_with_its_link(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "EXAMPLE_DB_PATH": str(tmp_path / "db.sqlite3"),
        "EXAMPLE_GEOIP_PATH": str(tmp_path / "Demo-City.mmdb"),
        "EXAMPLE_FAST_HASHER": "1",
        "DJANGO_SETTINGS_MODULE": "example_site.settings",
        "PYTHONPATH": os.pathsep.join([str(REPO / "example"), str(REPO)]),
    }
    manage = [sys.executable, "example/manage.py"]
    run([*manage, "migrate", "--no-input", "-v0"], env)
    run([*manage, "create_demo_users", "-v0"], env)

    lines = run([sys.executable, "-c", READ_OUTBOX], env).splitlines()
    # The first sign-in of an account is not alerted; the new iPhone is, once.
    assert lines[1:] == [
        "mail New sign-in to your 127.0.0.1 account | bob@example.com",
        "sandbox allow-top-navigation-by-user-activation",
        "base True",
        "link in html True",
        "link opens Sign out the device that wasn't you?",
    ]
    assert lines[0].startswith("Demo outbox: mail this site would have sent.")
    # Next to the database, where scripts/e2e-server clears it.
    assert [path.suffix for path in (tmp_path / "outbox").iterdir()] == [".log"]


def _mail(subject: str, html: str | None = None) -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(subject, f"Text of {subject}", to=["bob@example.com"])
    if html is not None:
        message.attach_alternative(html, "text/html")
    return message


def test_read_outbox_newest_first_across_files(tmp_path: Path) -> None:
    # Two messages on one connection share a file; the third has its own.
    # Both backends stay alive: Django names the file by time and id(), and a
    # freed first backend's id may be reused within the same second.
    first, second = EmailBackend(file_path=str(tmp_path)), EmailBackend(file_path=str(tmp_path))
    first.send_messages([_mail("first"), _mail("second")])
    # A file system's clock may tick coarser than two writes: the older file
    # is dated one second back so "newest" is not a tie.
    (older,) = tmp_path.iterdir()
    modified = older.stat().st_mtime_ns - 1_000_000_000
    os.utime(older, ns=(modified, modified))
    second.send_messages([_mail("third")])
    assert len(list(tmp_path.iterdir())) == 2

    mails = read_outbox(tmp_path)
    assert [mail.subject for mail in mails] == ["third", "second", "first"]
    assert [mail.subject for mail in read_outbox(tmp_path, limit=2)] == ["third", "second"]
    assert mails[0].to == "bob@example.com"
    # Django 6 ends a body with a line break; 5.2 does not.
    assert mails[0].text.rstrip("\n") == "Text of third"
    assert mails[0].html is None
    assert mails[0].frame_document is None
    assert mails[0].sent_at is not None and mails[0].sent_at.tzinfo is not None


def test_read_outbox_html_opens_links_in_the_page(tmp_path: Path) -> None:
    html = (
        '<!doctype html><html><head lang="en"><title>t</title></head>'
        '<body><a href="/x/">x</a></body></html>'
    )
    EmailBackend(file_path=str(tmp_path)).send_messages([_mail("alert", html)])
    (mail,) = read_outbox(tmp_path)
    assert mail.html is not None and mail.html.rstrip("\n") == html
    assert mail.frame_document is not None
    assert mail.frame_document.startswith(
        '<!doctype html><html><head lang="en"><base target="_top"><title>'
    )
    # Without a <head>, the base still comes first.
    bare = type(mail)(mail.subject, mail.to, mail.sent_at, mail.text, "<p>hi</p>")
    assert bare.frame_document == '<base target="_top"><p>hi</p>'


def test_read_outbox_skips_a_message_still_being_written(tmp_path: Path) -> None:
    EmailBackend(file_path=str(tmp_path)).send_messages([_mail("whole")])
    (written,) = tmp_path.iterdir()
    with written.open("ab") as file:
        file.write(b"Subject: half\nTo: bob@example.com\n\nNo separator yet")
    assert [mail.subject for mail in read_outbox(tmp_path)] == ["whole"]


def test_read_outbox_without_a_directory_is_empty(tmp_path: Path) -> None:
    assert read_outbox(tmp_path / "never-written") == []
