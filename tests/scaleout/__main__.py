"""Run the scale-out tests on servers started for the purpose, then stop them.

    python -m tests.scaleout [PYTEST ARGS]       everything (what scripts/test runs)
    python -m tests.scaleout --only pgbouncer    one part: replicas, pgbouncer
    python -m tests.scaleout --bindings on       the pgbouncer part with server-side binding only
    python -m tests.scaleout --only pgbouncer --suite tests
                                                 the whole suite through PgBouncer
    python -m tests.scaleout bouncer HOST:PORT PORTFILE
                                                 PgBouncer (transaction pooling) in front of
                                                 HOST:PORT until SIGTERM; its port is written
                                                 to PORTFILE (scripts/load --two-servers)

The servers, all on 127.0.0.1 and in one temporary directory: a PostgreSQL
primary and its streaming replica, PgBouncer in transaction pooling mode in
front of the primary, a Redis primary and its replica. The parts:

* ``replicas``: ``tests/scaleout/`` (read your writes with a lagging
  PostgreSQL replica and a lagging Redis replica; the store behind PgBouncer
  outside test transactions);
* ``pgbouncer``: the suite's PostgreSQL tests of ``PGBOUNCER_SUITE`` through
  PgBouncer, with psycopg's server-side binding off, then on.

Each part ends with one line ``scaleout-result|PASS|label|`` (or FAIL, or
SKIP with the reason) that scripts/test turns into its summary; a server that
cannot start makes its part SKIP, never pass.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import django

from tests.scaleout.harness import (
    PgBouncer,
    PostgresCluster,
    RedisServer,
    Topology,
    Unavailable,
    topology,
)

ROOT = Path(__file__).resolve().parents[2]
# The modules whose tests talk to PostgreSQL the most: the store and its
# compiled statements, the joined owner read, the views, password changes
# (which walk sessions with .iterator()) and the request races.
PGBOUNCER_SUITE = [
    "tests/test_backends.py",
    "tests/test_statements.py",
    "tests/test_auth_join.py",
    "tests/test_views.py",
    "tests/test_passwords.py",
    "tests/test_middleware.py",
    "tests/test_hardening_races.py",
]


def result(status: str, label: str, detail: str = "") -> None:
    print(f"scaleout-result|{status}|{label}|{detail}", flush=True)
    if status == "SKIP":
        print(f"SKIPPED {label}: {detail}", flush=True)


def pytest(args: list[str], env: dict[str, str]) -> int:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    return subprocess.run(command, cwd=ROOT, env={**os.environ, **env}, check=False).returncode


# What could not be started, and why: the reason of every SKIP line.
not_started: dict[str, str] = {}


def start(servers: Topology, what: str, starter: object) -> object | None:
    try:
        server = starter()  # type: ignore[operator]
    except Unavailable as exc:
        print(f"could not start {what}: {exc}", flush=True)
        not_started[what] = f"could not start {what}: {exc}"
        return None
    servers.add(server)
    return server


def drop_database(primary: PostgresCluster, name: str) -> None:
    import psycopg

    with psycopg.connect(primary.dsn(), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def run(parts: list[str], bindings: list[str], suite: list[str], extra: list[str]) -> int:
    version = f"Django {django.get_version()}"
    failed = False
    with topology() as servers:
        primary = start(
            servers, "a PostgreSQL primary", lambda: PostgresCluster.primary(servers.root)
        )
        pg_replica = None
        if primary is not None:
            pg_replica = start(
                servers,
                "a PostgreSQL replica",
                lambda: PostgresCluster.replica_of(primary, servers.root),  # type: ignore[arg-type]
            )
        redis_primary = start(servers, "a Redis primary", lambda: RedisServer.start(servers.root))
        redis_replica = None
        if redis_primary is not None:
            redis_replica = start(
                servers,
                "a Redis replica",
                lambda: RedisServer.start(servers.root, replica_of=redis_primary),  # type: ignore[arg-type]
            )
        bouncer = None
        if primary is not None:
            bouncer = start(
                servers,
                "PgBouncer",
                lambda: PgBouncer.start(servers.root, primary.port),  # type: ignore[union-attr]
            )

        if "replicas" in parts:
            env = {"DJANGO_SETTINGS_MODULE": "tests.scaleout.settings"}
            if isinstance(primary, PostgresCluster):
                env["SCALEOUT_PG_PRIMARY_PORT"] = str(primary.port)
            if isinstance(pg_replica, PostgresCluster):
                env["SCALEOUT_PG_REPLICA_PORT"] = str(pg_replica.port)
            if isinstance(bouncer, PgBouncer):
                env["SCALEOUT_PGBOUNCER_PORT"] = str(bouncer.port)
            if isinstance(redis_primary, RedisServer) and isinstance(redis_replica, RedisServer):
                env["SCALEOUT_REDIS_PRIMARY_PORT"] = str(redis_primary.port)
                env["SCALEOUT_REDIS_REPLICA_PORT"] = str(redis_replica.port)
            label = f"scale-out: PostgreSQL replica, Redis replica, PgBouncer [{version}]"
            if bouncer is None:
                result(
                    "SKIP",
                    f"scale-out: PgBouncer tests in tests/scaleout [{version}]",
                    "; ".join(not_started.values()),
                )
            if primary is None or pg_replica is None or redis_replica is None:
                result("SKIP", label, "; ".join(not_started.values()))
            else:
                status = pytest(["--ds", "tests.scaleout.settings", "tests/scaleout", *extra], env)
                failed |= status != 0
                result("PASS" if status == 0 else "FAIL", label)

        if "pgbouncer" in parts:
            for binding in bindings:
                label = (
                    f"PgBouncer (transaction pooling, server-side binding {binding}) [{version}]"
                )
                if not isinstance(bouncer, PgBouncer) or not isinstance(primary, PostgresCluster):
                    result("SKIP", label, "; ".join(not_started.values()))
                    continue
                name = f"test_user_sessions_bouncer_{binding}_{os.getpid()}"
                env = {
                    "DJANGO_SETTINGS_MODULE": "tests.scaleout.settings_pgbouncer",
                    "USER_SESSIONS_TEST_DB": "postgres",
                    "PGHOST": "127.0.0.1",
                    "PGPORT": str(bouncer.port),
                    "PGDATABASE": "postgres",
                    "SCALEOUT_TEST_DATABASE": name,
                    "SCALEOUT_SERVER_SIDE_BINDING": "1" if binding == "on" else "0",
                }
                if isinstance(redis_primary, RedisServer):
                    env["USER_SESSIONS_TEST_CACHE"] = "redis"
                    env["REDIS_URL"] = f"redis://127.0.0.1:{redis_primary.port}/1"
                print(
                    f"\n==> {label}: PgBouncer {bouncer.version()} on port {bouncer.port}",
                    flush=True,
                )
                # --reuse-db: the database is dropped here, past PgBouncer
                # (its pooled server connections would hold it open for
                # Django's DROP DATABASE).
                status = pytest(
                    [
                        "--ds",
                        "tests.scaleout.settings_pgbouncer",
                        "--reuse-db",
                        *suite,
                        *extra,
                    ],
                    env,
                )
                with contextlib.suppress(Exception):
                    drop_database(primary, name)
                failed |= status != 0
                result("PASS" if status == 0 else "FAIL", label)
    return 1 if failed else 0


def serve_bouncer(upstream: str, port_file: Path) -> int:
    """PgBouncer in front of ``upstream`` until SIGTERM or SIGINT."""
    host, _, port = upstream.rpartition(":")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with topology() as servers:
        try:
            bouncer = PgBouncer.start(servers.root, int(port), upstream_host=host or "127.0.0.1")
        except Unavailable as exc:
            print(f"could not start PgBouncer: {exc}", file=sys.stderr)
            return 3
        servers.add(bouncer)
        port_file.write_text(f"{bouncer.port}\n")
        print(
            f"PgBouncer {bouncer.version()} (transaction pooling) on 127.0.0.1:{bouncer.port}",
            flush=True,
        )
        while not stop.wait(0.5):
            if bouncer.process is not None and bouncer.process.poll() is not None:
                print("PgBouncer exited", file=sys.stderr)
                return 1
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["bouncer"]:
        if len(argv) != 3:
            print("usage: python -m tests.scaleout bouncer HOST:PORT PORTFILE", file=sys.stderr)
            return 2
        return serve_bouncer(argv[1], Path(argv[2]))
    parser = argparse.ArgumentParser(prog="python -m tests.scaleout")
    parser.add_argument("--only", help="comma-separated parts: replicas, pgbouncer")
    parser.add_argument(
        "--bindings",
        default="off,on",
        help="server-side binding for the pgbouncer part: off, on or off,on (default)",
    )
    parser.add_argument(
        "--suite",
        default=",".join(PGBOUNCER_SUITE),
        help="comma-separated test paths for the pgbouncer part (tests: the whole suite)",
    )
    args, extra = parser.parse_known_args(argv)
    parts = args.only.split(",") if args.only else ["replicas", "pgbouncer"]
    return run(parts, args.bindings.split(","), args.suite.split(","), extra)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
