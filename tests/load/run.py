"""Drive the example site with simulated users and check that no session goes wrong.

Each simulated user is one browser (a thread with its own cookies and
keep-alive connection). Browsers share accounts, five to an account, and for
the whole run they sign in, open the account page, refresh the widget's list
(htmx), add to a counter in their session, sign each other out (one session,
or "all other sessions") and sign out themselves.

Invariants, each counted as a violation when broken:

* no response is a 5xx, and no request fails at the transport level;
* no session write is lost: every counter answer is the browser's previous one
  plus one, in the same session (handle);
* a revoked session is rejected by every request sent after the revoke was
  answered, and is never listed again; at the end every revoked or signed-out
  session key is sent once more and must be anonymous;
* no browser is signed out unless something signed it out;
* with ``--max-live-wrappers``, the server holds no more database connection
  wrappers than that after the run (``/load/wrappers/``, after a garbage
  collection): under ASGI Django makes one per request, and one kept alive
  keeps its database connection open when connections are persistent.

Standard library only. ``scripts/load`` starts the server and runs this;
run it by hand with ``python tests/load/run.py --base-url http://127.0.0.1:PORT``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import statistics
import sys
import threading
import time
import urllib.parse
from collections import defaultdict
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

PASSWORD = "demo-password"  # what example_site's create_demo_users sets
SESSION_COOKIE = "sessionid"
LIST_URL = "/account/sessions/"
OTHERS_URL = "/account/sessions/others/delete/"
COUNTER_URL = "/load/counter/"
WRAPPERS_URL = "/load/wrappers/"
# What a user does between two requests, in seconds.
THINK_TIME = (0.0, 0.1)
# Relative frequency of each action of a signed-in browser.
ACTIONS = {"counter": 40, "list": 25, "page": 15, "revoke": 8, "logout": 2, "others": 1}
HANDLE_PATTERN = re.compile(r'data-handle="([^"]+)"')
TOKEN_PATTERN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
MAX_VIOLATIONS_KEPT = 50


class TransportError(Exception):
    pass


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str
    started: float


@dataclass
class Sample:
    kind: str
    status: int
    seconds: float


@dataclass
class Account:
    username: str
    # handle -> session key, for every session a browser of this account signed in
    keys: dict[str, str] = field(default_factory=dict)
    # handle -> when the revoke of it was answered (monotonic clock)
    revoked_at: dict[str, float] = field(default_factory=dict)
    # handles a revoke was sent for, answered or not
    revoking: set[str] = field(default_factory=set)
    # when the latest revoke of any session of the account was sent
    last_revoke_sent: float = 0.0
    # (start, end) of every "sign out all other sessions"; end None while running
    others_runs: list[list[float | None]] = field(default_factory=list)


class World:
    """What all browsers share: accounts, revocations, violations, samples."""

    def __init__(self, usernames: list[str]) -> None:
        self.lock = threading.Lock()
        self.accounts = {name: Account(name) for name in usernames}
        self.violations: list[str] = []
        self.violation_counts: dict[str, int] = defaultdict(int)
        self.samples: list[Sample] = []
        self.counter_checks = 0
        self.revocations = 0
        self.sign_ins = 0

    def violation(self, kind: str, detail: str) -> None:
        with self.lock:
            self.violation_counts[kind] += 1
            if len(self.violations) < MAX_VIOLATIONS_KEPT:
                self.violations.append(f"{kind}: {detail}")

    def signed_in(self, account: Account, handle: str, key: str) -> None:
        with self.lock:
            account.keys[handle] = key
            self.sign_ins += 1

    def revoking(self, account: Account, handle: str) -> None:
        with self.lock:
            account.revoking.add(handle)
            account.last_revoke_sent = time.monotonic()

    def may_be_revoked(self, account: Account, handle: str | None, since: float) -> bool:
        """Whether a session signed in at ``since`` may have been ended by someone."""
        with self.lock:
            if handle in account.revoking or handle in account.revoked_at:
                return True
            if handle is None and account.last_revoke_sent >= since:
                # A sign-in shows in lists before its own request has finished.
                return True
        return self.others_ran_since(account, since)

    def revoked(self, account: Account, handle: str, at: float) -> None:
        with self.lock:
            if handle not in account.revoked_at:
                account.revoked_at[handle] = at
                self.revocations += 1

    def revoked_before(self, account: Account, handle: str) -> float | None:
        with self.lock:
            return account.revoked_at.get(handle)

    def others_ran_since(self, account: Account, since: float) -> bool:
        """Whether an account's "sign out all others" may have ended a session from ``since``."""
        with self.lock:
            return any(end is None or end >= since for _start, end in account.others_runs)


class Browser:
    """One browser; with several servers, each request goes to one of them at random."""

    def __init__(
        self, world: World, account: Account, servers: list[tuple[str, int]], seed: int
    ) -> None:
        self.world = world
        self.account = account
        self.servers = servers
        self.host, self.port = servers[0]
        self.origin = f"http://{self.host}:{self.port}"
        self.random = random.Random(seed)
        self.cookies: dict[str, str] = {}
        # One keep-alive connection per server.
        self.connections: dict[tuple[str, int], http.client.HTTPConnection] = {}
        self.samples: list[Sample] = []
        self.handle: str | None = None
        self.login_started = 0.0
        self.count = 0
        self.others_seen: list[str] = []

    # -- HTTP ------------------------------------------------------------------------

    def request(
        self,
        kind: str,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        headers = dict(headers or {})
        if len(self.servers) > 1:
            self.host, self.port = self.random.choice(self.servers)
            self.origin = f"http://{self.host}:{self.port}"
            if "HX-Current-URL" in headers:
                headers["HX-Current-URL"] = f"{self.origin}/account/"
        server = (self.host, self.port)
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if method == "POST":
            headers["Origin"] = self.origin
            headers.setdefault("X-CSRFToken", self.cookies.get("csrftoken", ""))
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        headers["User-Agent"] = "load-run/1.0 (X11; Linux x86_64) Firefox/133.0"
        started = time.monotonic()
        try:
            connection = self.connections.get(server)
            if connection is None:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
                self.connections[server] = connection
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as exc:
            dropped = self.connections.pop(server, None)
            if dropped is not None:
                dropped.close()
            self.samples.append(Sample(kind, 0, time.monotonic() - started))
            raise TransportError(f"{method} {self.origin}{path}: {exc!r}") from exc
        self.samples.append(Sample(kind, response.status, time.monotonic() - started))
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                self.take_cookie(value)
        reply = Reply(
            response.status, {k.lower(): v for k, v in response.getheaders()}, text, started
        )
        if reply.status >= 500:
            self.world.violation("5xx", f"{method} {self.origin}{path} answered {reply.status}")
        return reply

    def take_cookie(self, header: str) -> None:
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        for name, morsel in jar.items():
            if morsel.value == "" or morsel["max-age"] == "0":
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = morsel.value

    # -- what one browser does -------------------------------------------------------

    def run(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                if self.handle is None:
                    self.sign_in()
                else:
                    action = self.random.choices(list(ACTIONS), weights=list(ACTIONS.values()))[0]
                    getattr(self, action)()
            except TransportError as exc:
                self.world.violation("transport", str(exc))
                # The answer is unknown: start again from a known state.
                self.cookies.clear()
                self.handle = None
            except Exception as exc:  # a bug here must fail the run, not end a thread quietly
                self.world.violation("driver error", repr(exc))
                break
            time.sleep(self.random.uniform(*THINK_TIME))
        for connection in self.connections.values():
            connection.close()

    def sign_in(self) -> None:
        self.cookies.pop(SESSION_COOKIE, None)
        self.login_started = time.monotonic()
        page = self.request("login", "GET", "/login/")
        token = TOKEN_PATTERN.search(page.body)
        if page.status != 200 or token is None:
            self.world.violation("sign-in", f"login page answered {page.status}")
            return
        reply = self.request(
            "login",
            "POST",
            "/login/",
            form={
                "username": self.account.username,
                "password": PASSWORD,
                "csrfmiddlewaretoken": token.group(1),
            },
        )
        if reply.status != 302 or SESSION_COOKIE not in self.cookies:
            # 400: the new session was signed out by another browser before the
            # sign-in request had finished (Django's SessionInterrupted).
            if reply.status != 400 or not self.world.may_be_revoked(
                self.account, None, self.login_started
            ):
                self.world.violation("sign-in", f"sign-in answered {reply.status}")
            return
        counted = self.request("counter", "GET", COUNTER_URL)
        data = json.loads(counted.body) if counted.status == 200 else {}
        if data.get("counter") != 1 or not data.get("handle"):
            # Signed out again already? Only if someone else was signing sessions out.
            if not self.world.may_be_revoked(self.account, None, self.login_started):
                self.world.violation("sign-in", f"fresh session answered {counted.status}")
            return
        self.handle, self.count = data["handle"], 1
        self.world.signed_in(self.account, self.handle, self.cookies[SESSION_COOKIE])

    def saw_signed_in(self, reply: Reply, what: str) -> None:
        assert self.handle is not None
        revoked_at = self.world.revoked_before(self.account, self.handle)
        if revoked_at is not None and reply.started > revoked_at:
            self.world.violation(
                "revoked session accepted",
                f"{what} sent {reply.started - revoked_at:.3f}s after the revoke was answered",
            )

    def saw_signed_out(self, reply: Reply, what: str) -> None:
        assert self.handle is not None
        if not self.world.may_be_revoked(self.account, self.handle, self.login_started):
            self.world.violation(
                "signed out for no reason", f"{what} answered {reply.status} ({self.handle})"
            )
        self.handle = None

    def counter(self) -> None:
        reply = self.request("counter", "GET", COUNTER_URL)
        if reply.status == 200:
            self.saw_signed_in(reply, "counter")
            data = json.loads(reply.body)
            with self.world.lock:
                self.world.counter_checks += 1
            if data["handle"] != self.handle or data["counter"] != self.count + 1:
                self.world.violation(
                    "lost write",
                    f"expected {self.count + 1} in {self.handle}, "
                    f"got {data['counter']} in {data['handle']}",
                )
            self.count = data["counter"]
        elif reply.status in (400, 403):
            # 400: Django's SessionInterrupted, a save racing a revoke.
            self.saw_signed_out(reply, "counter")
        else:
            self.world.violation("unexpected status", f"counter answered {reply.status}")

    def page(self) -> None:
        reply = self.request("page", "GET", "/account/")
        if reply.status == 200:
            self.saw_signed_in(reply, "account page")
        elif reply.status == 302 and reply.headers.get("location", "").startswith("/login/"):
            self.saw_signed_out(reply, "account page")
        else:
            self.world.violation("unexpected status", f"account page answered {reply.status}")

    def htmx(self) -> dict[str, str]:
        return {"HX-Request": "true", "HX-Current-URL": f"{self.origin}/account/"}

    def list(self) -> None:
        reply = self.request("list", "GET", LIST_URL, headers=self.htmx())
        if reply.status == 200 and "hx-redirect" in reply.headers:
            self.saw_signed_out(reply, "list")
            return
        if reply.status != 200:
            self.world.violation("unexpected status", f"list answered {reply.status}")
            return
        self.saw_signed_in(reply, "list")
        handles = HANDLE_PATTERN.findall(reply.body)
        for handle in handles:
            revoked_at = self.world.revoked_before(self.account, handle)
            if revoked_at is not None and reply.started > revoked_at:
                self.world.violation("revoked session listed", handle)
        self.others_seen = [handle for handle in handles if handle != self.handle]

    def revoke(self) -> None:
        if not self.others_seen:
            return self.list()
        target = self.others_seen.pop(self.random.randrange(len(self.others_seen)))
        url = f"/account/sessions/{urllib.parse.quote(target)}/delete/"
        self.world.revoking(self.account, target)
        reply = self.request("revoke", "POST", url, headers=self.htmx())
        if reply.status == 200 and "hx-redirect" in reply.headers:
            self.saw_signed_out(reply, "revoke")
        elif reply.status == 200:
            # Signed out now, or it had already ended: gone either way.
            self.world.revoked(self.account, target, time.monotonic())
        else:
            self.world.violation("unexpected status", f"revoke answered {reply.status}")
        return None

    def others(self) -> None:
        run: list[float | None] = [time.monotonic(), None]
        with self.world.lock:
            self.account.others_runs.append(run)
            before = dict(self.account.keys)
        reply = self.request("others", "POST", OTHERS_URL, headers=self.htmx())
        ended = time.monotonic()
        run[1] = ended
        if reply.status == 200 and "hx-redirect" in reply.headers:
            self.saw_signed_out(reply, "sign out all others")
        elif reply.status == 200:
            # Sessions signed in before the request certainly ended; later ones may not have.
            for handle in before:
                if handle != self.handle:
                    self.world.revoked(self.account, handle, ended)
        else:
            self.world.violation("unexpected status", f"sign out others answered {reply.status}")

    def logout(self) -> None:
        assert self.handle is not None
        handle = self.handle
        self.world.revoking(self.account, handle)
        reply = self.request("logout", "POST", "/logout/", form={})
        if reply.status != 302:
            self.world.violation("unexpected status", f"logout answered {reply.status}")
        self.world.revoked(self.account, handle, time.monotonic())
        self.handle = None


def sweep(world: World, servers: list[tuple[str, int]]) -> int:
    """Send every session key that was revoked or signed out once more, to every server.

    Each must be nobody.
    """
    keys = [
        account.keys[handle]
        for account in world.accounts.values()
        for handle in account.revoked_at
        if handle in account.keys
    ]
    for host, port in servers:
        connection = http.client.HTTPConnection(host, port, timeout=60)
        for key in keys:
            connection.request("GET", COUNTER_URL, headers={"Cookie": f"{SESSION_COOKIE}={key}"})
            response = connection.getresponse()
            response.read()
            if response.status != 403:
                world.violation(
                    "revoked session accepted",
                    f"final sweep on port {port} answered {response.status}",
                )
        connection.close()
    return len(keys)


def live_wrappers(world: World, host: str, port: int, most: int) -> int | None:
    """The server's live connection wrappers; a violation above ``most``."""
    connection = http.client.HTTPConnection(host, port, timeout=60)
    try:
        connection.request("GET", WRAPPERS_URL)
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        world.violation("transport", f"GET {WRAPPERS_URL}: {exc!r}")
        return None
    finally:
        connection.close()
    if response.status != 200:
        world.violation("unexpected status", f"GET {WRAPPERS_URL} answered {response.status}")
        return None
    live = int(json.loads(body)["live"])
    if live > most:
        world.violation(
            "connection wrappers kept", f"{live} alive after the run, at most {most} expected"
        )
    return live


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def summarise(
    world: World, elapsed: float, swept: int, wrappers: int | None, args: argparse.Namespace
) -> dict[str, Any]:
    by_kind: dict[str, list[Sample]] = defaultdict(list)
    for sample in world.samples:
        by_kind[sample.kind].append(sample)

    def figures(samples: list[Sample]) -> dict[str, Any]:
        seconds = [s.seconds for s in samples]
        return {
            "requests": len(samples),
            "per_second": round(len(samples) / elapsed, 1),
            "p50_ms": round(percentile(seconds, 0.50) * 1000, 1),
            "p95_ms": round(percentile(seconds, 0.95) * 1000, 1),
            "max_ms": round(max(seconds, default=0) * 1000, 1),
            "mean_ms": round(statistics.fmean(seconds) * 1000, 1) if seconds else 0.0,
            "5xx": sum(1 for s in samples if s.status >= 500),
            "transport_errors": sum(1 for s in samples if s.status == 0),
        }

    return {
        "duration_s": round(elapsed, 1),
        "users": args.users,
        "servers": len(args.base_url),
        "accounts": len(world.accounts),
        "session_engine": args.engine,
        "total": figures(world.samples),
        "by_kind": {kind: figures(samples) for kind, samples in sorted(by_kind.items())},
        "sign_ins": world.sign_ins,
        "revocations": world.revocations,
        "counter_checks": world.counter_checks,
        "revoked_keys_swept": swept,
        "live_wrappers_after": wrappers,
        "violations": dict(world.violation_counts),
        "violation_samples": world.violations,
    }


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        f"Load run: {summary['users']} users on {summary['accounts']} accounts, "
        f"{summary['duration_s']} s, SESSION_ENGINE {summary['session_engine']}"
        + (f", {summary['servers']} servers" if summary["servers"] > 1 else ""),
        "",
        "| requests | kind | req/s | p50 ms | p95 ms | max ms | 5xx | transport errors |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [*summary["by_kind"].items(), ("**all**", summary["total"])]
    for kind, f in rows:
        lines.append(
            f"| {f['requests']} | {kind} | {f['per_second']} | {f['p50_ms']} | {f['p95_ms']} "
            f"| {f['max_ms']} | {f['5xx']} | {f['transport_errors']} |"
        )
    lines += [
        "",
        f"sign-ins {summary['sign_ins']}, sessions ended {summary['revocations']}, "
        f"counter checks {summary['counter_checks']}, "
        f"revoked keys re-sent at the end {summary['revoked_keys_swept']}"
        + (
            ""
            if summary["live_wrappers_after"] is None
            else f", connection wrappers alive after the run {summary['live_wrappers_after']}"
        ),
        "violations: "
        + (", ".join(f"{k} {v}" for k, v in summary["violations"].items()) or "none"),
    ]
    lines += [f"  - {sample}" for sample in summary["violation_samples"][:10]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base-url",
        required=True,
        action="append",
        help="e.g. http://127.0.0.1:8000; repeat for several servers (each request picks one)",
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--users", type=int, default=50, help="simulated browsers (default 50)")
    parser.add_argument("--per-account", type=int, default=5, help="browsers per account")
    parser.add_argument("--account-prefix", default="load", help="accounts are PREFIX0, PREFIX1…")
    parser.add_argument("--engine", default="db", help="only reported")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-live-wrappers",
        type=int,
        help="fail if the server holds more database connection wrappers after the run",
    )
    args = parser.parse_args(argv)

    servers: list[tuple[str, int]] = []
    for base_url in args.base_url:
        url = urllib.parse.urlsplit(base_url)
        if url.hostname not in ("127.0.0.1", "localhost", "::1"):
            parser.error("the load run only drives a server on this machine (127.0.0.1)")
        servers.append((url.hostname, url.port or 80))
    accounts = max(2, args.users // args.per_account)
    world = World([f"{args.account_prefix}{n}" for n in range(accounts)])
    account_list = list(world.accounts.values())
    browsers = [
        Browser(world, account_list[n % accounts], servers, seed=args.seed * 100_000 + n)
        for n in range(args.users)
    ]
    started = time.monotonic()
    deadline = started + args.duration
    threads = [threading.Thread(target=b.run, args=(deadline,), daemon=True) for b in browsers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(args.duration + 120)
    elapsed = time.monotonic() - started
    if any(thread.is_alive() for thread in threads):
        world.violation("hang", "a browser did not finish within two minutes of the deadline")
    for browser in browsers:
        world.samples.extend(browser.samples)
    swept = sweep(world, servers)
    wrappers = None
    if args.max_live_wrappers is not None:
        for host, port in servers:
            live = live_wrappers(world, host, port, args.max_live_wrappers)
            if live is not None:
                wrappers = max(wrappers or 0, live)
    summary = summarise(world, elapsed, swept, wrappers, args)
    print(markdown(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"\nfigures written to {args.json}")
    return 1 if summary["violations"] or not summary["counter_checks"] else 0


if __name__ == "__main__":
    sys.exit(main())
