"""Custom user models (UUID and string keys, a default manager that hides rows).

``AUTH_USER_MODEL`` cannot change in a running process, so each model gets
a pytest run of its own (``tests/custom_users/cases.py`` under
``tests/custom_users/settings.py``), on this run's database and cache.
"""

from __future__ import annotations

import pytest

from tests.conftest import run_pytest_under


@pytest.mark.parametrize("variant", ["uuid", "string", "managed"])
def test_custom_user_model(variant: str) -> None:
    run_pytest_under(
        "tests.custom_users.settings", "tests/custom_users/cases.py", {"CUSTOM_USER": variant}
    )
