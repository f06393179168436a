"""Fetch Django's ``tests/sessions_tests`` for the installed Django, and check it matches.

The source distribution is downloaded once per version into a cache outside
the repository (``USER_SESSIONS_DJANGO_TESTS_CACHE``, default
``~/.cache/django-user-sessions``). It is used only when its version is the
installed one and its ``django/contrib/sessions`` is byte for byte what is
installed, so the tests always describe the code that runs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from email.parser import HeaderParser
from pathlib import Path

import django

# What the suite imports from Django's tests folder: the session tests and
# the failing cache one of them configures ("cache.failing_cache.CacheClass").
NEEDED = ("sessions_tests/", "cache/__init__.py", "cache/failing_cache.py")


class SourceUnavailable(Exception):
    """Django's tests could not be fetched (offline, no sdist): the run is skipped."""


class SourceMismatch(Exception):
    """The fetched tests are not those of the installed Django: the run fails."""


def cache_root() -> Path:
    configured = os.environ.get("USER_SESSIONS_DJANGO_TESTS_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "django-user-sessions"


def tests_folder() -> Path:
    """A folder holding ``sessions_tests`` and ``cache`` of the installed Django."""
    version = django.get_version()
    folder = cache_root() / f"django-{version}-tests"
    sdist = _download(version, cache_root())
    # Checked on every run (a fraction of a second): the installed Django
    # may have been patched or reinstalled since the tests were extracted.
    _extract_verified(sdist, version, folder)
    return folder


def _download(version: str, root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    sdist = root / f"django-{version}.tar.gz"
    if sdist.is_file():
        return sdist
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--no-binary", ":all:", f"Django=={version}", "--dest", tmp,
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        found = sorted(Path(tmp).glob("[Dd]jango-*.tar.gz"))
        if result.returncode != 0 or len(found) != 1:
            last = (result.stderr.strip().splitlines() or ["no sdist downloaded"])[-1]
            raise SourceUnavailable(f"pip download Django=={version} failed: {last}")
        shutil.move(found[0], sdist)
    return sdist


def _extract_verified(sdist: Path, version: str, folder: Path) -> None:
    installed = Path(django.__file__).parent / "contrib" / "sessions"
    with tarfile.open(sdist) as archive:
        members = {member.name.split("/", 1)[-1]: member for member in archive.getmembers()}
        pkg_info = archive.extractfile(members["PKG-INFO"])
        assert pkg_info is not None
        sdist_version = HeaderParser().parsestr(pkg_info.read().decode())["Version"]
        if sdist_version != version:
            raise SourceMismatch(f"{sdist.name} is Django {sdist_version}, installed is {version}")
        # The installed sessions code must be the one these tests were written for.
        prefix = "django/contrib/sessions/"
        for name, member in members.items():
            if not (name.startswith(prefix) and name.endswith(".py") and member.isfile()):
                continue
            shipped = archive.extractfile(member)
            assert shipped is not None
            target = installed / name[len(prefix) :]
            if not target.is_file() or _digest(target.read_bytes()) != _digest(shipped.read()):
                raise SourceMismatch(f"installed {target} differs from {sdist.name}")
        if (folder / "sessions_tests" / "tests.py").is_file():
            return
        staging = Path(tempfile.mkdtemp(dir=folder.parent))
        for name, member in members.items():
            relative = name.removeprefix("tests/")
            if name.startswith("tests/") and member.isfile() and relative.startswith(NEEDED):
                source = archive.extractfile(member)
                assert source is not None
                target = staging / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(source.read())
    if not (staging / "sessions_tests" / "tests.py").is_file():
        shutil.rmtree(staging)
        raise SourceMismatch(f"{sdist.name} has no tests/sessions_tests/tests.py")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
