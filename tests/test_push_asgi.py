"""The stream under a real ASGI server: the example site on uvicorn, two workers, Redis.

Sign-ins and sign-outs made through one connection reach streams held on
others (on either worker) through the broker; a stream whose own session is
signed out says so and ends; another user's stream hears nothing of it.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import in_the_sqlite_run_only
from tests.test_asgi import Browser, Server, free_port
from tests.test_push import redis_or_skip

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14")
PASSWORD = "demo-password"
STREAM = "/account/sessions/stream/"

# The site runs on a SQLite file of its own whatever the suite's database, so
# one run of the suite (the SQLite one) is enough: ~15 s of server start and waits.
pytestmark = in_the_sqlite_run_only


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Server]:
    redis_or_skip()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "example_site.settings",
        "EXAMPLE_DB_PATH": str(tmp_path / "db.sqlite3"),
        "EXAMPLE_FAST_HASHER": "1",
        "EXAMPLE_DEBUG": "0",
        "EXAMPLE_PUSH_BROKER": "redis",
        "EXAMPLE_PUSH_URL": REDIS_URL,
        "EXAMPLE_PUSH_CHANNEL": f"user_sessions_asgi_test_{os.getpid()}",
    }
    for command in (["migrate", "--no-input", "-v0"], ["create_demo_users", "-v0", "ann", "bob"]):
        subprocess.run(
            [sys.executable, "example/manage.py", *command], cwd=ROOT, env=env, check=True
        )
    port = free_port()
    log = tmp_path / "uvicorn.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "example_site.asgi:application"),
                *("--app-dir", "example", "--host", "127.0.0.1", "--port", str(port)),
                *("--workers", "2", "--no-access-log", "--log-level", "warning"),
            ],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, port, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, server.output()
            assert time.monotonic() < deadline, server.output()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Stream:
    """An open event stream, read message by message from a raw socket."""

    def __init__(self, server: Server, browser: Browser) -> None:
        cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
        self.socket = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        self.socket.sendall(
            f"GET {STREAM}?next=/account/ HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        self.buffer = b""
        head = self.read_until(b"\r\n\r\n")
        self.status = int(head.split()[1])
        self.head = head.decode("latin-1").lower()

    def read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            chunk = self.socket.recv(65536)
            if not chunk:
                raise EOFError(self.buffer.decode(errors="replace"))
            self.buffer += chunk
        found, _, self.buffer = self.buffer.partition(marker)
        return found + marker

    def next_event(self) -> tuple[str, str]:
        """The next message that is not a heartbeat: (event name, data)."""
        while True:
            text = self.read_until(b"\n\n").decode()
            name = re.search(r"^event: (.+)$", text, re.M)
            if name:
                data = re.search(r"^data: (.*)$", text, re.M)
                return name[1], data[1] if data else ""

    def ended(self) -> bool:
        """Whether the response is over: its last chunk came, or the server hung up."""
        try:
            self.read_until(b"0\r\n\r\n")  # a chunked body's end
        except EOFError:
            return True
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self.socket.close()


def worker_threads(server: Server) -> int:
    """Threads of the server's worker processes (children of the supervisor)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == server.process.pid:
                status = (entry / "status").read_text()
                total += int(re.search(r"^Threads:\s+(\d+)", status, re.M)[1])  # type: ignore[index]
        except (OSError, IndexError):
            continue
    return total


def signed_in(server: Server, username: str) -> Browser:
    browser = Browser(server)
    status, page = browser.request("GET", "/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token is not None, page
    form = {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token[1]}
    status, page = browser.request("POST", "/login/", form)
    assert status == 302, page
    return browser


def handle_of(browser: Browser) -> str:
    status, page = browser.request("GET", "/account/sessions/")
    assert status == 200
    found = re.search(r'data-handle="([^"]+)"[^>]*data-us-current', page)
    assert found is not None, page
    return found[1]


def test_streams_across_two_workers(site: Server) -> None:
    ann_phone, ann_laptop, bob = (
        signed_in(site, "ann"),
        signed_in(site, "ann"),
        signed_in(site, "bob"),
    )
    streams = []
    threads_before = worker_threads(site)
    try:
        # Several streams, so both workers hold some whatever the balancing.
        phone = [Stream(site, ann_phone) for _ in range(4)]
        laptop = Stream(site, ann_laptop)
        bobs = Stream(site, bob)
        streams = [*phone, laptop, bobs]
        for stream in streams:
            assert stream.status == 200, site.output()
            assert "content-type: text/event-stream" in stream.head
            assert "x-accel-buffering: no" in stream.head
            assert stream.next_event()[0] == "ready"
        # No thread per stream: Django's per-request thread is let go once
        # the stream runs (it shuts down a moment later).
        deadline = time.monotonic() + 5
        while worker_threads(site) > threads_before + 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert worker_threads(site) <= threads_before + 2 < threads_before + len(streams)
        refused = Stream(site, Browser(site))
        assert refused.status == 403
        refused.close()

        tablet = signed_in(site, "ann")
        tablet_handle = handle_of(tablet)
        for stream in [*phone, laptop]:
            assert stream.next_event() == ("changed", f'{{"handles":["{tablet_handle}"]}}')

        # The laptop signs the phone out: every phone stream is told and ends.
        phone_handle = handle_of(ann_phone)
        status, page = ann_laptop.request("GET", "/account/sessions/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token is not None
        status, _ = ann_laptop.request(
            "POST", f"/account/sessions/{phone_handle}/delete/", {"csrfmiddlewaretoken": token[1]}
        )
        assert status == 302
        for stream in phone:
            name, data = stream.next_event()
            assert (name, data) == ("signed-out", '{"url":"/login/?next=/account/"}')
            assert stream.ended()
        assert laptop.next_event() == ("changed", f'{{"handles":["{phone_handle}"]}}')
        # Bob heard of none of it: his stream is quiet (a heartbeat at most).
        bobs.socket.settimeout(1)
        with pytest.raises(TimeoutError):
            bobs.next_event()
        # The phone's cookie opens no stream any more.
        again = Stream(site, ann_phone)
        assert again.status == 403
        again.close()
    finally:
        for stream in streams:
            stream.close()
