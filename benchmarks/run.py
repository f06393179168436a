"""Benchmark django-user-sessions against Django's own session stores.

    python benchmarks/run.py            # full run (3-4 minutes on an idle 2-core machine)
    python benchmarks/run.py --smoke    # counts only, small sizes, for CI
    BENCH_DB=postgres python benchmarks/run.py

Prints Markdown tables, writes JSON and Markdown to benchmarks/results/ and
exits non-zero when a count target fails (timings are reported, never asserted).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

# Run as a script, this folder would come first on sys.path and its module
# names (settings, urls) would shadow others'.
if sys.path and Path(sys.path[0]).resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")

PARTS = ("per_request", "writes", "security", "widget", "scale", "weight")


def _sizes(smoke: bool) -> dict[str, Any]:
    if smoke:
        return {
            "rounds": 2,
            "round_seconds": 0.01,
            "counted": 200,
            "identical": 200,
            "simulated_seconds": 600,
            "widget_sizes": (1, 10, 100, 10_000),
            "widget_repeats": 1,
            "rows": 1_000,
            "small_clear": None,
            "stock_clear": 1_000,
        }
    return {
        "rounds": 60,
        "round_seconds": 0.05,
        "counted": 200,
        "identical": 10_000,
        "simulated_seconds": 3_600,
        "widget_sizes": (1, 10, 100, 1_000, 10_000),
        "widget_repeats": 3,
        "rows": 1_000_000,
        # clear_expired's memory at a tenth of the size, to show it stays flat.
        "small_clear": 100_000,
        "stock_clear": 1_000_000,
    }


def _load() -> str:
    try:
        return " ".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        return "n/a"


def _environment() -> dict[str, Any]:
    import django
    from django.conf import settings
    from django.db import connection

    if connection.vendor == "postgresql":
        version = connection.pg_version
        database = f"PostgreSQL {version // 10000}.{version % 10000}"
    else:
        import sqlite3

        database = f"SQLite {sqlite3.sqlite_version}"
    return {
        "date": datetime.date.today().isoformat(),
        "database": database,
        "cache": settings.CACHE_KIND,
        "python": platform.python_version(),
        "django": django.get_version(),
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "load_before": _load(),
    }


class Phases:
    """Announces each part on stderr and records how long it took."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        print(f"  {name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - started, 1)


def _scale(sizes: dict[str, Any], phase: Phases) -> dict[str, Any]:
    from benchmarks import scale

    rows = sizes["rows"]
    users = scale.load_users(max(1, rows // scale.SESSIONS_PER_USER))
    clears = []
    if sizes["small_clear"]:
        with phase(f"clear_expired, {sizes['small_clear']:,} expired rows"):
            scale.prepare(sizes["small_clear"], users)
            clears.append(scale.measure_clear())
    with phase(f"loading {rows:,} expired sessions"):
        load_seconds = scale.prepare(rows, users)
    with phase("listing and signing out others"):
        listing = scale.measure_listing(users, repeats=20)
        listing["load_s"] = load_seconds
    with phase(f"clear_expired, {rows:,} expired rows"):
        clears.append(scale.measure_clear())
    with phase(f"Django's clear_expired, {sizes['stock_clear']:,} expired rows"):
        stock = [scale.measure_stock_clear(sizes["stock_clear"])]
    return {
        "live_rows": scale.LIVE_ROWS,
        "expired_rows": rows,
        "listing": listing,
        "clear": clears,
        "stock_clear": stock,
    }


def run(smoke: bool, parts: tuple[str, ...]) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from benchmarks import per_request, security, weight, widget, writes
    from benchmarks.harness import throwaway_database

    sizes = _sizes(smoke)
    phase = Phases()
    results: dict[str, Any] = {"smoke": smoke, "sizes": sizes, "phase_seconds": phase.seconds}
    with throwaway_database():
        results["environment"] = _environment()
        user = get_user_model().objects.create_user("alice", password="secret-password")
        if "per_request" in parts:
            with phase("per-request cost"):
                results["per_request"] = per_request.measure(
                    user, sizes["rounds"], sizes["round_seconds"], sizes["counted"]
                )
        if "writes" in parts:
            with phase("write discipline"):
                results["writes"] = writes.measure(
                    user, sizes["identical"], sizes["simulated_seconds"]
                )
        if "security" in parts:
            with phase("account security"):
                results["security"] = security.measure(
                    sizes["identical"], sizes["simulated_seconds"]
                )
        if "widget" in parts or "weight" in parts:
            with phase("widget"):
                measured = widget.measure(sizes["widget_sizes"], sizes["widget_repeats"])
            html = measured.pop("html")
            if "widget" in parts:
                results["widget"] = measured
            if "weight" in parts:
                sessions = 10 if 10 in html else max(html)
                results["weight"] = weight.measure(html[sessions], sessions)
        if "scale" in parts:
            results["scale"] = _scale(sizes, phase)
        connection.close()
    results["environment"]["load_after"] = _load()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="small sizes, counts only (for CI)")
    parser.add_argument(
        "--only", default=",".join(PARTS), help=f"comma-separated parts to run ({', '.join(PARTS)})"
    )
    args = parser.parse_args(argv)
    parts = tuple(part for part in args.only.split(",") if part)
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")

    import django

    django.setup()
    from benchmarks.report import markdown, targets

    started = time.perf_counter()
    results = run(args.smoke, parts)
    results["command"] = " ".join(
        [
            *(f"{k}={os.environ[k]}" for k in ("BENCH_DB", "BENCH_CACHE") if k in os.environ),
            "python benchmarks/run.py",
            *map(shlex.quote, argv if argv is not None else sys.argv[1:]),
        ]
    )
    results["wall_s"] = time.perf_counter() - started
    found = targets(results)
    results["targets"] = [target.__dict__ for target in found]
    report = markdown(results, found)
    print(report)

    RESULTS.mkdir(exist_ok=True)
    # Only a complete full run is the "latest" result the README quotes.
    stem = "smoke" if args.smoke else ("latest" if set(parts) == set(PARTS) else "partial")
    vendor = os.environ.get("BENCH_DB", "sqlite")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    payload = json.dumps(results, indent=2, default=str)
    (RESULTS / f"{stamp}-{vendor}{'-smoke' if args.smoke else ''}.json").write_text(payload)
    (RESULTS / f"{stem}.json").write_text(payload)
    (RESULTS / f"{stem}.md").write_text(report)
    print(
        f"Finished in {results['wall_s']:.0f} s; results in {RESULTS / stem}.{{md,json}}",
        file=sys.stderr,
    )

    failed = [t for t in found if t.kind == "count" and not t.held]
    for target in failed:
        print(f"FAILED: {target.name}: {target.detail}", file=sys.stderr)
    missed = [t for t in found if t.kind == "time" and not t.held]
    for target in missed:
        print(f"missed (timing, not asserted): {target.name}: {target.detail}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
