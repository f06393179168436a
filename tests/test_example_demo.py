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

REPO = Path(__file__).resolve().parent.parent

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
