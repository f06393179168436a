"""How long upgrading a django-user-sessions 2.x table takes, and what 2.x traffic waits.

    BENCH_DB=postgres .venv/bin/python benchmarks/upgrade.py             # 100,000 rows
    BENCH_DB=mysql .venv/bin/python benchmarks/upgrade.py --rows 200000  # MariaDB/MySQL
    .venv/bin/python benchmarks/upgrade.py                               # SQLite, no traffic

Builds the 2.x table (migration 0001) in a database of its own (the test
database of ``tests/settings.py``, suffixed with this process id, dropped
afterwards), fills it with sessions the way 2.x writes them, then applies each
later migration, timed, while another connection (not on SQLite) keeps reading
and updating random sessions as 2.x does. Prints seconds per step and the
longest any of those requests waited. Timings are printed, never asserted:
they depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["USER_SESSIONS_TEST_DB"] = os.environ.get("BENCH_DB", "sqlite")
os.environ["TEST_DB_SUFFIX"] = f"_upgrade_bench_{os.getpid()}"
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from tests.test_upgrade_traffic import (  # noqa: E402
    TABLE,
    insert_2x,
    legacy_values,
    migrate_to,
    steps_after_initial,
    update_2x,
)


class Traffic(threading.Thread):
    """2.x requests on a connection of their own: read a session, then save it."""

    def __init__(self, keys: list[str]) -> None:
        super().__init__(daemon=True)
        self.keys = keys
        self.step = ""
        self.longest: dict[str, float] = {}
        self.requests: dict[str, int] = {}
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        quote = connection.ops.quote_name
        read = (
            f"SELECT {quote('session_data')} FROM {quote(TABLE)} WHERE {quote('session_key')} = %s"
        )
        try:
            with connection.cursor() as cursor:
                while not self.stop.is_set():
                    key, step = random.choice(self.keys), self.step
                    started = time.perf_counter()
                    try:
                        cursor.execute(read, [key])
                        cursor.fetchall()
                        update_2x(cursor, key, legacy_values(None))
                    except Exception as exc:  # counted and shown, the run goes on
                        self.errors.append(f"{step}: {type(exc).__name__}: {exc}")
                    waited = time.perf_counter() - started
                    self.longest[step] = max(self.longest.get(step, 0.0), waited)
                    self.requests[step] = self.requests.get(step, 0) + 1
                    time.sleep(0.005)
        finally:
            connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="2.x sessions in the table")
    options = parser.parse_args(argv)

    creation, database_name = connection.creation, connection.settings_dict["NAME"]
    creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        migrate_to("0001_initial")
        keys = [f"legacy{i:09d}" for i in range(options.rows)]
        values = legacy_values(None)
        with connection.cursor() as cursor:
            for start in range(0, len(keys), 10_000):
                insert_2x(cursor, [(key, values) for key in keys[start : start + 10_000]])
        traffic = Traffic(keys) if connection.vendor != "sqlite" else None
        if traffic:
            traffic.start()
        print(f"{connection.vendor}, {options.rows:,} rows of 2.x sessions")
        print(f"{'step':<28} {'seconds':>8} {'2.x requests':>13} {'longest wait':>13}")
        total = 0.0
        for step in steps_after_initial():
            if traffic:
                traffic.step = step
            started = time.perf_counter()
            migrate_to(step)
            seconds = time.perf_counter() - started
            total += seconds
            if traffic:
                time.sleep(0.05)  # let a request that waited on this step finish
            served = f"{traffic.requests.get(step, 0):>13}" if traffic else f"{'-':>13}"
            wait = f"{traffic.longest.get(step, 0.0):>12.3f}s" if traffic else f"{'-':>13}"
            print(f"{step:<28} {seconds:>8.2f} {served} {wait}")
        per_100k = total * 100_000 / options.rows
        print(f"{'all':<28} {total:>8.2f}   ({per_100k:.1f} s per 100,000 rows)")
        if traffic:
            traffic.stop.set()
            traffic.join(10)
            print(f"2.x requests that failed: {len(traffic.errors)}")
            for error in traffic.errors[:5]:
                print(f"  {error}")
        return 0
    finally:
        creation.destroy_test_db(database_name, verbosity=0)


if __name__ == "__main__":
    raise SystemExit(main())
