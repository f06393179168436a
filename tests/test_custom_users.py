"""Custom user models (UUID and string keys, a default manager that hides rows).

``AUTH_USER_MODEL`` cannot change in a running process, so each model gets
a pytest run of its own (``tests/custom_users/cases.py`` under
``tests/custom_users/settings.py``), on this run's database and cache.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("variant", ["uuid", "string", "managed"])
def test_custom_user_model(variant: str) -> None:
    env = {**os.environ, "CUSTOM_USER": variant}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--ds=tests.custom_users.settings",
            "tests/custom_users/cases.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    summary = output.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed in .*", summary), output[-2000:]
