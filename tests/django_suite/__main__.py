"""Run Django's session tests against this package: ``python -m tests.django_suite``.

Exit status: 0 all applicable tests passed, 1 a test failed (or the fetched
tests are not those of the installed Django), 3 Django's tests could not be
fetched (the caller reports the run as skipped).
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import types
import unittest
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import django

SKIPPED_EXIT = 3


@contextmanager
def custom_store_extends_ours() -> Iterator[None]:
    """While Django loads ``sessions_tests.models``, its database engine is ours.

    That module is Django's example of extending an engine: a store subclassing
    ``django.contrib.sessions.backends.db.SessionStore`` with its own model.
    Imported this way, the same code extends ``user_sessions.backends.db``.
    """
    from django.contrib.sessions.backends import db as django_db

    from user_sessions.backends.db import SessionStore

    original = django_db.SessionStore
    django_db.SessionStore = SessionStore  # type: ignore[misc]
    try:
        yield
    finally:
        django_db.SessionStore = original  # type: ignore[misc]


@contextmanager
def our_session_model() -> Iterator[None]:
    """While Django's tests are imported, ``django.contrib.sessions.models`` holds our model.

    They import Django's ``Session`` at the top, which needs ``django.contrib.sessions``
    installed; this package replaces that app, model included.
    """
    from user_sessions.models import Session

    name = "django.contrib.sessions.models"
    stand_in = types.ModuleType(name, "Stands in for Django's session model while tests import.")
    stand_in.Session = Session  # type: ignore[attr-defined]
    original = sys.modules.get(name)
    sys.modules[name] = stand_in
    try:
        yield
    finally:
        if original is None:
            del sys.modules[name]
        else:
            sys.modules[name] = original


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.django_suite", description=__doc__)
    parser.add_argument("-v", "--verbosity", type=int, default=1)
    parser.add_argument("-k", dest="patterns", action="append", help="only tests matching")
    parser.add_argument("--failfast", action="store_true")
    args = parser.parse_args(argv)

    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.django_suite.settings"
    from tests.django_suite import source

    label = f"Django {django.get_version()} sessions_tests"
    try:
        folder = source.tests_folder()
    except source.SourceUnavailable as exc:
        print(f"SKIPPED {label}: {exc}")
        return SKIPPED_EXIT
    except source.SourceMismatch as exc:
        print(f"FAILED {label}: {exc}")
        return 1
    sys.path.insert(0, str(folder))
    with custom_store_extends_ours():
        django.setup()

    from django.conf import settings
    from django.test.runner import DiscoverRunner

    with our_session_model():
        from tests.django_suite import suite as ours

    loader = unittest.TestLoader()
    if args.patterns:
        loader.testNamePatterns = [f"*{pattern}*" for pattern in args.patterns]
    tests = unittest.TestSuite()
    selected: list[tuple[str, str]] = []  # (class, test id): the suite forgets its tests
    excluded: list[str] = []
    for cls in ours.CLASSES:
        for name in loader.getTestCaseNames(cls):
            if name in ours.EXCLUDED:
                excluded.append(f"{cls.__name__}.{name}")
            else:
                test = cls(name)
                tests.addTest(test)
                selected.append((cls.__name__, test.id()))

    class Runner(DiscoverRunner):
        result: unittest.TestResult

        def build_suite(self, *args: Any, **kwargs: Any) -> unittest.TestSuite:
            return tests

        def suite_result(self, suite: Any, result: unittest.TestResult, **kwargs: Any) -> int:
            self.result = result
            return super().suite_result(suite, result, **kwargs)

    database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(f"{label} from {folder}, database {database}, Redis {'up' if ours.REDIS_UP else 'down'}")
    runner = Runner(verbosity=args.verbosity, interactive=False, failfast=args.failfast)
    runner.run_tests([])
    result = runner.result

    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    failed = {test.id() for test, _ in result.failures + result.errors}
    failed |= {test.id() for test in result.unexpectedSuccesses}
    skipped = {test.id() for test, _ in result.skipped}
    for cls_name, test_id in selected:
        outcome = "failed" if test_id in failed else "skipped" if test_id in skipped else "passed"
        counts[cls_name][outcome] += 1
    print("\nPer class (passed / failed / skipped):")
    for cls in ours.CLASSES:
        c = counts[cls.__name__]
        print(f"  {cls.__name__:<42} {c['passed']:>3} / {c['failed']:>3} / {c['skipped']:>3}")
    print(f"\nExcluded ({len(excluded)}), each with its reason:")
    for test_id in excluded:
        print(f"  {test_id}: {ours.EXCLUDED[test_id.rsplit('.', 1)[1]]}")
    for reason in sorted({reason for _test, reason in result.skipped}):
        print(f"Skipped: {reason}")
    total = collections.Counter[str]()
    for c in counts.values():
        total.update(c)
    print(
        f"{label} [{database}]: {total['passed']} passed, {total['failed']} failed, "
        f"{total['skipped']} skipped, {len(excluded)} excluded"
    )
    return 1 if total["failed"] or not result.wasSuccessful() else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
