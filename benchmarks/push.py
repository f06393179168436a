"""Push: how fast a sign-out reaches another open tab, and what open streams cost.

    .venv/bin/python benchmarks/push.py                    # Redis and PostgreSQL, 50 sign-outs each
    .venv/bin/python benchmarks/push.py --revokes 100 --brokers redis --streams 500

Latency: the example site under uvicorn with two worker processes, polling
off. A Chromium context ("watcher") keeps the account page open; another
("actor") signs out one of the user's other sessions at a time, with the
widget's own request. Measured: from the actor's request leaving to the
watcher's row disappearing from the DOM (benchmarks/push_browser.mjs). Every
event goes through the broker, also when both requests reach the same worker:
a worker hears only its subscription.

Streams: one uvicorn worker holds ``--streams`` open streams of one session;
the worker's resident memory before and after, per stream; the time one
event takes to reach all of them; and the account page's response time with
none and with all of them open.

Needs Chromium at /usr/bin/chromium and node_modules (npm ci), uvicorn,
Redis (``REDIS_URL``) and PostgreSQL (127.0.0.1:5432); a missing one is
reported and its part left out. Timings depend on the machine: printed, never
asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.cookies import SimpleCookie
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = os.environ.get("PYTHON", sys.executable)
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14")
POSTGRES_URL = "host={} port={} user={} dbname=postgres".format(
    os.environ.get("PGHOST", "127.0.0.1"),
    os.environ.get("PGPORT", "5432"),
    os.environ.get("PGUSER", "postgres"),
)
USERNAME = "bench"
PASSWORD = "demo-password"
TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def broker_down(broker: str) -> str | None:
    try:
        if broker == "redis":
            import redis

            redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        else:
            import psycopg

            psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


class Site:
    """The example site on a throwaway SQLite file, served by uvicorn."""

    def __init__(self, workdir: Path, broker: str, workers: int, max_streams: int = 10) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "example_site.settings",
            "EXAMPLE_DB_PATH": str(workdir / "db.sqlite3"),
            "EXAMPLE_FAST_HASHER": "1",
            "EXAMPLE_QUIET_SERVER": "1",
            "EXAMPLE_DEBUG": "0",
            "EXAMPLE_SERVE_STATIC": "1",
            "EXAMPLE_REFRESH_INTERVAL": "0",
            "EXAMPLE_PUSH_BROKER": broker,
            "EXAMPLE_PUSH_URL": REDIS_URL if broker == "redis" else POSTGRES_URL,
            "EXAMPLE_PUSH_CHANNEL": f"user_sessions_bench_{os.getpid()}",
            "EXAMPLE_PUSH_MAX_STREAMS": str(max_streams),
        }
        self.workers = workers
        self.log = workdir / f"uvicorn-{broker}-{workers}.log"

    def manage(self, *args: str) -> None:
        subprocess.run(
            [PYTHON, "example/manage.py", *args],
            cwd=ROOT,
            env=self.env,
            check=True,
            timeout=300,
        )

    @contextmanager
    def running(self) -> Iterator[subprocess.Popen[bytes]]:
        with self.log.open("wb") as sink:
            process = subprocess.Popen(
                [
                    *(PYTHON, "-m", "uvicorn", "example_site.asgi:application"),
                    *("--app-dir", "example", "--host", "127.0.0.1", "--port", str(self.port)),
                    *("--workers", str(self.workers), "--no-access-log", "--log-level", "warning"),
                ],
                cwd=ROOT,
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("uvicorn did not start:\n" + self.log.read_text()[-2000:])
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        break
                except OSError:
                    time.sleep(0.1)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Visitor:
    """One cookie jar on one keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.http = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> str:
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
        if response.status >= 400:
            raise RuntimeError(f"{method} {path}: {response.status}")
        return text

    def sign_in(self) -> None:
        token = TOKEN.search(self.request("GET", "/login/"))
        assert token is not None
        self.request(
            "POST",
            "/login/",
            {"username": USERNAME, "password": PASSWORD, "csrfmiddlewaretoken": token[1]},
        )
        self.http.close()


def latency(broker: str, revokes: int, workdir: Path) -> dict[str, object]:
    site = Site(workdir / broker, broker, workers=2)
    (workdir / broker).mkdir()
    site.manage("migrate", "--no-input", "-v0")
    site.manage("create_demo_users", "-v0", USERNAME)
    with site.running():
        # The sessions the actor signs out, each a sign-in of its own.
        for _ in range(revokes + 5):
            Visitor(site.port).sign_in()
        done = subprocess.run(
            [
                *("node", "benchmarks/push_browser.mjs", f"http://127.0.0.1:{site.port}"),
                *(USERNAME, PASSWORD, str(revokes)),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
    if done.returncode != 0:
        raise RuntimeError(f"browser run failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    values: list[float] = json.loads(done.stdout.strip().splitlines()[-1])["latencies"]
    return {
        "broker": broker,
        "revokes": len(values),
        "p50_ms": round(percentile(values, 0.5), 1),
        "p95_ms": round(percentile(values, 0.95), 1),
        "max_ms": round(max(values), 1),
        "mean_ms": round(statistics.fmean(values), 1),
    }


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def open_stream(port: int, cookie: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            "GET /account/sessions/stream/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Cookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    await asyncio.wait_for(reader.readuntil(b"event: ready"), 30)
    return reader, writer


async def all_hear(streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]) -> float:
    """Seconds until every stream got the next "changed" message."""
    started = time.perf_counter()
    await asyncio.gather(
        *(asyncio.wait_for(reader.readuntil(b"event: changed"), 60) for reader, _ in streams)
    )
    return time.perf_counter() - started


def page_times(port: int, cookie_jar: Visitor, rounds: int = 100) -> float:
    # A fresh connection: uvicorn closes one idle for 5 s.
    cookie_jar.http.close()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        cookie_jar.request("GET", "/account/")
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def streams(count: int, workdir: Path) -> dict[str, object]:
    site = Site(workdir / "streams", "redis", workers=1, max_streams=count + 10)
    (workdir / "streams").mkdir()
    site.manage("migrate", "--no-input", "-v0")
    site.manage("create_demo_users", "-v0", USERNAME)
    with site.running() as process:
        visitor = Visitor(site.port)
        visitor.sign_in()
        cookie = "; ".join(f"{k}={v}" for k, v in visitor.cookies.items())
        page = Visitor(site.port)
        page.cookies = dict(visitor.cookies)
        page_times(site.port, page, 20)  # warm up
        before_page = page_times(site.port, page)
        before = rss_kib(process.pid)

        async def hold() -> tuple[int, float, float]:
            opened = []
            for start in range(0, count, 50):
                opened += await asyncio.gather(
                    *(open_stream(site.port, cookie) for _ in range(min(50, count - start)))
                )
            await asyncio.sleep(1)
            during = rss_kib(process.pid)
            hearing = asyncio.ensure_future(all_hear(opened))
            await asyncio.sleep(0.2)
            # A sign-in of the same user: one "started" event for every stream.
            await asyncio.to_thread(Visitor(site.port).sign_in)
            fan_out = await hearing
            with_streams = await asyncio.to_thread(page_times, site.port, page)
            for _, writer in opened:
                writer.close()
            return during, fan_out, with_streams

        during, fan_out, with_streams = asyncio.run(hold())
    return {
        "streams": count,
        "rss_before_kib": before,
        "rss_with_streams_kib": during,
        "per_stream_kib": round((during - before) / count, 1),
        "one_event_to_all_ms": round(fan_out * 1000, 1),
        "account_page_ms_no_streams": round(before_page, 2),
        "account_page_ms_with_streams": round(with_streams, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--revokes", type=int, default=50)
    parser.add_argument("--brokers", default="redis,postgres")
    parser.add_argument("--streams", type=int, default=500)
    options = parser.parse_args()
    if not Path("/usr/bin/chromium").exists() or not (ROOT / "node_modules").is_dir():
        print("SKIPPED latency: needs /usr/bin/chromium and node_modules (npm ci)")
        brokers = []
    else:
        brokers = [name for name in options.brokers.split(",") if name]
    report: dict[str, object] = {"latency": [], "streams": None}
    workdir = Path(tempfile.mkdtemp(prefix="push-bench-"))
    try:
        for broker in brokers:
            down = broker_down(broker)
            if down:
                print(f"SKIPPED latency ({broker}): {down}")
                continue
            result = latency(broker, options.revokes, workdir)
            print(
                f"{broker}: sign-out in one context -> row gone in another, {result['revokes']}"
                f" sign-outs: p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms,"
                f" max {result['max_ms']} ms"
            )
            report["latency"].append(result)  # type: ignore[attr-defined]
        if options.streams:
            down = broker_down("redis")
            if down:
                print(f"SKIPPED streams: Redis: {down}")
            else:
                result = streams(options.streams, workdir)
                report["streams"] = result
                print(
                    f"{result['streams']} open streams in one worker: "
                    f"{result['per_stream_kib']} KiB each (RSS {result['rss_before_kib']}"
                    f" -> {result['rss_with_streams_kib']} KiB); one event reaches all in"
                    f" {result['one_event_to_all_ms']} ms (from a sign-in's first request);"
                    " account page median"
                    f" {result['account_page_ms_no_streams']} ms without streams,"
                    f" {result['account_page_ms_with_streams']} ms with them"
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
