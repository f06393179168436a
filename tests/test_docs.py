"""The docs site: every public name has a reference entry, the tutorial runs.

The Sphinx build itself (warnings as errors) is ``scripts/docs``, which
``scripts/test`` runs; these tests keep the reference complete and the
tutorial true.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

import user_sessions
from tests.conftest import in_the_sqlite_run_only
from user_sessions.conf import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PACKAGE = Path(user_sessions.__file__).parent


def entries(kind: str) -> set[str]:
    """Names declared with ```{kind} NAME``` in any page of the docs."""
    pattern = re.compile(r"^```\{" + kind + r"\} (\S+)\s*$", re.MULTILINE)
    found: set[str] = set()
    for page in DOCS.rglob("*.md"):
        if "_build" not in page.parts:
            found.update(pattern.findall(page.read_text()))
    return found


def test_every_setting_has_a_reference_entry() -> None:
    names = {
        f"{Settings.prefix}{name}"
        for name, value in vars(Settings).items()
        if isinstance(value, property)
    }
    assert len(names) >= 12
    assert names - entries("setting") == set()


def test_every_system_check_id_has_a_reference_entry() -> None:
    ids = set(re.findall(r'id="(user_sessions\.[EW]\d{3})"', (PACKAGE / "checks.py").read_text()))
    assert {"user_sessions.E001", "user_sessions.W011"} <= ids
    assert ids - entries("check") == set()


def test_every_management_command_has_a_reference_entry() -> None:
    commands = {
        path.stem
        for path in (PACKAGE / "management" / "commands").glob("*.py")
        if not path.stem.startswith("_")
    }
    assert {"clearsessions", "migratesessions"} <= commands
    assert commands - entries("command") == set()


def test_every_url_name_has_a_reference_entry() -> None:
    from user_sessions import urls

    def names(patterns: list[URLPattern | URLResolver]) -> set[str]:
        found: set[str] = set()
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                found |= names(pattern.url_patterns)
            elif pattern.name:
                found.add(f"{urls.app_name}:{pattern.name}")
        return found

    url_names = names(list(urls.urlpatterns))
    assert "user_sessions:session_list" in url_names
    assert url_names - entries("urlname") == set()
    # The test URLconf mounts them, so the names the docs give do reverse.
    _prefix, mounted = get_resolver().namespace_dict[urls.app_name]
    assert {name.split(":", 1)[1] for name in url_names} <= set(mounted.reverse_dict)


def test_every_template_has_a_reference_entry() -> None:
    templates = PACKAGE / "templates"
    reference = "".join(
        page.read_text() for page in DOCS.rglob("*.md") if "_build" not in page.parts
    )
    missing = [
        str(path.relative_to(templates))
        for path in templates.rglob("*.html")
        if str(path.relative_to(templates)) not in reference
    ]
    assert missing == []


# -- The tutorial, step by step ----------------------------------------------

BLOCK = re.compile(
    r"^```\{code-block\} (?P<lang>\S+)\n:caption: (?P<caption>[^\n]+)\n\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)


def tutorial_blocks() -> list[tuple[str, str]]:
    return [
        (match["caption"], match["body"])
        for match in BLOCK.finditer((DOCS / "tutorial.md").read_text())
    ]


# The tutorial's project uses startproject's SQLite file, whatever the suite's database.
@in_the_sqlite_run_only
def test_tutorial_builds_a_working_devices_page(tmp_path: Path) -> None:
    """Run the tutorial's commands and files in a new project, then use the page."""
    blocks = tutorial_blocks()
    assert [caption for caption, _ in blocks] == [
        "shell",
        "mysite/settings.py (add at the end)",
        "mysite/urls.py",
        "templates/account.html",
        "shell",
        "shell",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "USER_SESSIONS_"))}
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    cwd = tmp_path

    def run(*args: str) -> str:
        result = subprocess.run(
            args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout + result.stderr

    for caption, body in blocks:
        if caption != "shell":
            target = cwd / caption.split(" ")[0]
            target.parent.mkdir(parents=True, exist_ok=True)
            if caption.endswith("(add at the end)"):
                target.write_text(target.read_text() + "\n" + body)
            else:
                target.write_text(body)
            continue
        for line in body.splitlines():
            command = line.split()
            if not command or command[0] == ".":
                continue  # activating a venv: this test runs in one already
            if command[:3] == ["python", "-m", "pip"]:
                continue  # the package under test is installed already
            if command == ["cd", "mysite"]:
                cwd = cwd / "mysite"
                continue
            if command[-1] in {"createsuperuser", "runserver"}:
                continue  # interactive; the check below does both
            if command[0] == "python":
                command[0] = sys.executable
            elif command[0] == "django-admin":
                command = [sys.executable, "-m", "django", *command[1:]]
            out = run(*command)
            if command[-1] == "check":
                assert "no issues" in out

    # What step 5 shows: sign in twice, see both, sign the other one out.
    check = """
from django.contrib.auth import get_user_model
from django.test import Client
from django.test.utils import setup_test_environment
from django.urls import reverse

setup_test_environment()  # what runserver's host checks allow for a browser

get_user_model().objects.create_user("alice", password="tutorial-password")
iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)"
here, there = Client(), Client(HTTP_USER_AGENT=iphone)
assert here.get("/account/").status_code == 302  # sign-in first
assert here.login(username="alice", password="tutorial-password")
assert there.login(username="alice", password="tutorial-password")
page = here.get("/account/")
html = page.content.decode()
assert page.status_code == 200, page.status_code
assert "Your devices" in html and "This device" in html, html
assert "Sign out all other sessions" in html, html
other = get_user_model().objects.get().session_set.exclude(
    session_key=here.session.session_key
).get()
response = here.post(reverse("user_sessions:session_delete", args=[other.handle]))
assert response.status_code == 302, response.status_code
assert there.get("/account/").status_code == 302  # signed out
assert here.get("/account/sessions/").status_code == 200
print("tutorial ok")
"""
    assert "tutorial ok" in run(sys.executable, "manage.py", "shell", "-c", check)


@pytest.mark.parametrize("page", ["settings", "checks", "models", "views", "commands"])
def test_reference_page_is_in_the_toctree(page: str) -> None:
    assert f"\n{page}\n" in (DOCS / "reference" / "index.md").read_text()
