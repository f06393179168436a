"""Front-end weight: what the widget adds to a page, raw and gzipped."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

from django.contrib.staticfiles import finders

from user_sessions.templatetags.user_sessions_widget import SCRIPT, STYLESHEET


def _sizes(label: str, content: bytes) -> dict[str, Any]:
    # Level 9, as a static-file pipeline precompresses; servers compressing on
    # the fly at a lower level send a little more.
    return {"asset": label, "raw": len(content), "gzip": len(gzip.compress(content, 9, mtime=0))}


def measure(widget_html: str, sessions: int) -> list[dict[str, Any]]:
    rows = []
    for name in (STYLESHEET, SCRIPT):
        path = finders.find(name)
        if path is None:
            raise AssertionError(f"static file {name} not found")
        rows.append(_sizes(name, Path(str(path)).read_bytes()))
    rows.append(_sizes(f"widget HTML, {sessions} sessions", widget_html.encode()))
    return rows
