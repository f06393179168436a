"""Per-request cost: the same signed-in request served by Django's stores and by ours.

Every side gets its own session (same contents), its own handler built under
its own ``SESSION_ENGINE`` and ``MIDDLEWARE``, and the same pre-built requests.
Rounds are interleaved (the order rotates every round) and the median round is
reported, so a slow moment on the machine hits every side alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmarks.harness import (
    CHROME_WINDOWS,
    CLIENT_IP,
    SIDES,
    AsgiClient,
    Side,
    WsgiClient,
    count_statements,
    median,
    rotations,
    sign_in,
    timed,
    timed_both,
)


@dataclass(frozen=True)
class Case:
    key: str
    title: str
    path: str
    asgi: bool = False
    # A phone moving between networks: every request comes from another address.
    new_ip_each_request: bool = False


CASES = (
    Case("read", "GET, session read", "/read/"),
    Case("write", "GET, session modified", "/write/"),
    Case("new_ip", "GET, session read, new IP each request", "/read/", new_ip_each_request=True),
    Case("asgi", "ASGI GET (async view), session read", "/async/read/", asgi=True),
)


def _requests(case: Case, client: Any, session_key: str, count: int) -> list[dict[str, Any]]:
    build = client.scope if case.asgi else client.environ
    return [
        build(
            case.path,
            session_key,
            f"198.51.{i // 250 % 250}.{i % 250 + 1}" if case.new_ip_each_request else CLIENT_IP,
            CHROME_WINDOWS,
        )
        for i in range(count)
    ]


def _check(case: Case, body: bytes, user: Any) -> None:
    # A request that silently lost its session would be cheaper and meaningless.
    ok = body.startswith(b"counter=") if case.key == "write" else body == f"user={user.pk}".encode()
    if not ok:
        raise AssertionError(f"{case.key}: unexpected response {body[:80]!r}")


def _calibrate(client: Any, requests: list[dict[str, Any]], seconds: float) -> int:
    """How many requests make a round of about ``seconds`` (at least 10)."""
    sample = requests[:20]
    per_request = timed(lambda: client.run(sample)) / len(sample)
    return max(10, round(seconds / per_request))


def measure(user: Any, rounds: int, round_seconds: float, counted: int) -> list[dict[str, Any]]:
    """One row per (case, side): median microseconds, queries and writes per request.

    Rounds are short (``round_seconds`` per side) and many, so a burst of
    other work on the machine lands in a few rounds, which the median drops.
    """
    rows = []
    for case in CASES:
        clients: dict[Side, Any] = {}
        keys: dict[Side, str] = {}
        counts: dict[Side, Any] = {}
        for side in SIDES:
            client = clients[side] = AsgiClient(side) if case.asgi else WsgiClient(side)
            keys[side] = sign_in(side, user)
            requests = _requests(case, client, keys[side], counted)
            with side.settings():
                _check(case, client.run(requests[:20]), user)  # warm-up, fills caches
                with count_statements() as statements:
                    _check(case, client.run(requests), user)
            counts[side] = statements
        with SIDES[0].settings():
            first = clients[SIDES[0]]
            batch = _calibrate(first, _requests(case, first, keys[SIDES[0]], 20), round_seconds)
        requests_by_side = {
            side: _requests(case, clients[side], keys[side], batch) for side in SIDES
        }
        wall: dict[Side, list[float]] = {side: [] for side in SIDES}
        cpu: dict[Side, list[float]] = {side: [] for side in SIDES}
        for order in rotations(SIDES, rounds):
            for side in order:
                client, batch_requests = clients[side], requests_by_side[side]
                with side.settings():
                    seconds, cpu_seconds = timed_both(lambda: client.run(batch_requests))  # noqa: B023
                wall[side].append(seconds / batch * 1e6)
                cpu[side].append(cpu_seconds / batch * 1e6)
        for side in SIDES:
            statements = counts[side]
            rows.append(
                {
                    "case": case.key,
                    "title": case.title,
                    "side": side.label,
                    "us_per_request": median(wall[side]),
                    "cpu_us_per_request": median(cpu[side]),
                    "us_rounds": wall[side],
                    "cpu_us_rounds": cpu[side],
                    "requests_per_round": batch,
                    "queries_per_request": statements.queries / counted,
                    "writes_per_request": statements.writes / counted,
                    "statements": dict(statements.kinds),
                    "requests_counted": counted,
                }
            )
    return rows
