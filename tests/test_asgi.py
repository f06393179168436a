"""Under a real ASGI server, signed-in requests leave no database connection behind.

Django keeps its connections per request context under ASGI, so with
``CONN_MAX_AGE`` every request gets a new connection wrapper (and a new
database connection), and the old one lives until the garbage collector frees
it. Anything in the package that held on to a wrapper would keep its
connection open forever: a few hundred requests would exhaust the database's
connection limit. This test serves 1,000 signed-in requests (sync and async
views, reads and writes) through uvicorn in a subprocess, on the database the
suite runs on (``USER_SESSIONS_TEST_DB``; SQLite as a file), then counts the
wrappers alive in the server and the connections the database still sees.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
# A leak grows by one connection per request: 400 requests take it well past
# MOST_CONNECTIONS_WHILE_RUNNING (and MariaDB's limit) in 40% of the time 1000 took.
REQUESTS = 400
# Sync and async views reading and writing the session, in turn, and every
# so often the sessions page (the widget's queries; slower to render).
PATHS = ("/read/", "/async/read/", "/write/", "/async/write/")
PAGE, PAGE_EVERY = "/account/sessions/", 50
# What "small" means once the server is idle: Django's own store keeps one.
MOST_WRAPPERS = 4
MOST_CONNECTIONS = 4
# While requests run, wrappers Django dropped wait for the cycle collector
# with their connections open (about 25 here): well under MariaDB's default
# limit of 151 connections, which a leak reaches after ~150 requests.
MOST_CONNECTIONS_WHILE_RUNNING = 100
USERNAME = "asgi"
PASSWORD = "asgi-password"
TOKEN_PATTERN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def server_database_entry() -> dict[str, Any]:
    """The suite's database settings without the name (the site gets its own)."""
    base = settings.DATABASES["default"]
    keys = ("ENGINE", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS")
    return {key: base[key] for key in keys if key in base}


def admin_connection(vendor: str, entry: dict[str, Any]) -> Any:
    """A driver connection outside Django, or a skip saying why there is none."""
    try:
        if vendor == "postgres":
            import psycopg

            return psycopg.connect(
                host=entry["HOST"],
                port=entry["PORT"],
                user=entry["USER"],
                password=entry.get("PASSWORD") or None,
                dbname="postgres",
                autocommit=True,
                connect_timeout=5,
            )
        import MySQLdb

        connection = MySQLdb.connect(
            host=entry["HOST"],
            port=int(entry["PORT"]),
            user=entry["USER"],
            passwd=entry.get("PASSWORD", ""),
            connect_timeout=5,
        )
        connection.autocommit(True)
        return connection
    except Exception as exc:
        pytest.skip(f"{vendor} is not reachable: {type(exc).__name__}: {exc}")


@dataclass
class SiteDatabase:
    entry: dict[str, Any]
    # How many connections the database sees from the server right now.
    count_connections: Callable[[], int]


@pytest.fixture
def site_database(tmp_path: Path) -> Iterator[SiteDatabase]:
    vendor = settings.DB_VENDOR
    if vendor == "sqlite":
        path = tmp_path / "site.sqlite3"
        entry = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}
        yield SiteDatabase(entry, lambda: 0)  # replaced by open_files() once it runs
        return
    entry = server_database_entry()
    entry["NAME"] = name = "test_user_sessions_asgi" + os.environ.get("TEST_DB_SUFFIX", "")
    admin = admin_connection(vendor, entry)
    lock = threading.Lock()
    if vendor == "postgres":
        count_sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
        drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        create = f'CREATE DATABASE "{name}"'
    else:
        count_sql = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = %s"
        drop = f"DROP DATABASE IF EXISTS `{name}`"
        create = f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"

    def execute(sql: str, params: tuple[Any, ...] = ()) -> Any:
        with lock:
            cursor = admin.cursor()
            try:
                cursor.execute(sql, params)
                return cursor.fetchone() if cursor.description else None
            finally:
                cursor.close()

    def count_connections() -> int:
        return int(execute(count_sql, (name,))[0])

    execute(drop)
    execute(create)
    try:
        yield SiteDatabase(entry, count_connections)
    finally:
        try:
            execute(drop)
        finally:
            admin.close()


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@dataclass
class Browser:
    """One keep-alive HTTP connection with a cookie jar."""

    server: Server
    cookies: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.http = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, str]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.http.request(method, path, body=body, headers=headers)
        response = self.http.getresponse()
        text = response.read().decode()
        for header in response.headers.get_all("Set-Cookie") or ():
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        return response.status, text

    def sign_in(self) -> None:
        status, page = self.request("GET", "/login/")
        assert status == 200, page
        token = TOKEN_PATTERN.search(page)
        assert token is not None, page
        form = {"username": USERNAME, "password": PASSWORD, "csrfmiddlewaretoken": token[1]}
        status, page = self.request("POST", "/login/", form)
        assert status == 302, page

    def wrappers(self) -> dict[str, int]:
        status, text = self.request("GET", "/asgi/wrappers/")
        assert status == 200, self.server.output()
        counts: dict[str, int] = json.loads(text)
        return counts


def start_server(entry: dict[str, Any], workdir: Path) -> Server:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.asgi_site.settings",
        "ASGI_SITE_DATABASE": json.dumps(entry),
        "PYTHONPATH": str(ROOT),
    }
    subprocess.run(
        [sys.executable, "-m", "tests.asgi_site.prepare", USERNAME, PASSWORD],
        env=env,
        cwd=ROOT,
        check=True,
        timeout=120,
    )
    log = workdir / "uvicorn.log"
    port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "tests.asgi_site.asgi:application"),
                *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
                *("--lifespan", "off", "--no-access-log", "--log-level", "warning"),
            ],
            env=env,
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, port, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"uvicorn exited with {process.returncode}:\n{server.output()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            time.sleep(0.1)
    process.kill()
    pytest.fail(f"uvicorn did not listen on 127.0.0.1:{port} within 60 s:\n{server.output()}")


def open_files(pid: int, path: str) -> int:
    """How many file descriptors of the process have the SQLite file open."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.readlink(fd) == path
        except OSError:
            continue  # closed meanwhile
    return count


@pytest.fixture
def server(site_database: SiteDatabase, tmp_path: Path) -> Iterator[Server]:
    server = start_server(site_database.entry, tmp_path)
    if site_database.entry["ENGINE"].endswith("sqlite3") and Path("/proc/self/fd").is_dir():
        pid, path = server.process.pid, site_database.entry["NAME"]
        site_database.count_connections = lambda: open_files(pid, path)
    try:
        yield server
    finally:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


class Peak(threading.Thread):
    """Samples the database's connection count while requests run."""

    def __init__(self, count: Callable[[], int]) -> None:
        super().__init__(daemon=True)
        self.count = count
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            self.peak = max(self.peak, self.count())


def test_requests_under_uvicorn_keep_no_connection_alive(
    server: Server, site_database: SiteDatabase
) -> None:
    browser = Browser(server)
    browser.sign_in()
    before = browser.wrappers()
    peak = Peak(site_database.count_connections)
    peak.start()
    counter = 0
    failures: list[str] = []
    try:
        for number in range(REQUESTS):
            path = PAGE if number % PAGE_EVERY == 0 else PATHS[number % len(PATHS)]
            status, body = browser.request("GET", path)
            if status != 200:
                failures.append(f"request {number} {path}: {status} {body[:200]}")
                if len(failures) >= 5:
                    break
                continue
            if "write" in path:
                counter += 1
                # Every write lands in the same session: signed in all along.
                assert json.loads(body) == {"counter": counter}, (number, path)
            elif "read" in path:
                assert re.fullmatch(r"user=\d+", body), (number, path, body)
            else:
                assert 'data-handle="' in body, (number, path)  # this session, listed
    finally:
        peak.done.set()
        peak.join()
    after = browser.wrappers()
    connections_after = site_database.count_connections()
    report = (
        f"{settings.DB_VENDOR}: wrappers alive before {before['live']}, after {REQUESTS}"
        f" requests {after['live']} ({after['connected']} connected); database connections"
        f" at the end {connections_after}, at most {peak.peak} while requests ran"
    )
    print(report)
    assert not failures, f"{report}\n" + "\n".join(failures) + "\n" + server.output()
    assert after["live"] <= MOST_WRAPPERS, report
    assert connections_after <= MOST_CONNECTIONS, report
    assert peak.peak <= MOST_CONNECTIONS_WHILE_RUNNING, report
