"""Sessions as first-class Django models, with a "Your devices" widget."""

from __future__ import annotations

__version__ = "3.0.0.dev0"
