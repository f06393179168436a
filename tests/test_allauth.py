"""django-allauth's views with this package (the upgrade guide's promises).

allauth's apps and middleware cannot be added to a running process, so its
cases run in a pytest run of their own (``tests/allauth_site/cases.py``
under ``tests/allauth_site/settings.py``), on this run's cache.
"""

from __future__ import annotations

import pytest

from tests.conftest import in_the_sqlite_run_only, run_pytest_under

pytest.importorskip("allauth", reason="django-allauth is in the test dependency group")


# allauth's views do not depend on the database (the site's own SQLite run is enough).
@in_the_sqlite_run_only
def test_allauths_views_sign_in_change_passwords_and_sign_out_with_this_package() -> None:
    summary = run_pytest_under("tests.allauth_site.settings", "tests/allauth_site/cases.py")
    assert summary.startswith("3 passed")
