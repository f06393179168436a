"""Kept for sites whose tests import the 2.x test client.

Django's own ``django.test.Client`` works unchanged with this package's
stores, so this is only an alias.
"""

from __future__ import annotations

from django.test import Client

__all__ = ["Client"]
